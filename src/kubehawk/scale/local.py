"""``kubehawk detect --workers N``: the split run (see :mod:`kubehawk.scale`) on local processes.

The input is cut into parts in reading order: a large uncompressed JSON-lines file into byte
ranges that start at line starts, a compressed file or a document whole, folders into their
files (in the order one process reads them). Each worker process builds one split-mode engine
at start (forked from the parent, or from the rules cache where processes are spawned) and
reads one part at a time, a batch of lines at a time; at most two parts per worker are in
flight, so memory stays flat (per worker: a part's matched events, at most ``MAX_RANGE`` bytes
of input). A worker that dies or fails ends the run with an error: no part is ever dropped
silently.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubehawk.scale.collector import collector_paused, part_collected
from kubehawk.scale.merge import Merge, ScaleError
from kubehawk.scale.records import ChunkResult, EntryReaders, entry_readers, find_matches
from kubehawk.scale.results import load_result, result_folders, write_result
from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.folders import FilesRead, iter_files
from kubehawk.sources.ranges import line_starts, read_range, splittable
from kubehawk.sources.readstats import DEFAULT_MAX_LINE_BYTES

if TYPE_CHECKING:
    from kubehawk.alerts import Alert
    from kubehawk.config import Config
    from kubehawk.detect import Detector
    from kubehawk.filters import EventFilter
    from kubehawk.rules import Engine, RuleSet
    from kubehawk.rules.index import RuleIndex

__all__ = ["Part", "PartMerge", "ScaleError", "plan_parts", "resolve_workers", "run_local", "scan_part"]

MIN_RANGE = 4 << 20
MAX_RANGE = 32 << 20
MIN_TAIL = 1 << 20  # the shortest part the end of a run is cut into
MAX_PART_WARNINGS = 1000


def resolve_workers(value: str | int) -> int:
    """``auto`` (the cores this process may use) or a whole number >= 1; ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    n = int(value)
    if n < 1:
        raise ValueError(f"expected a number of workers >= 1 or auto, got {value!r}")
    return n


@dataclass(frozen=True)
class Part:
    """A worker's share: a file (or folder, for its warning) read whole, or a byte range."""

    path: str
    start: int = 0
    end: int | None = None  # None: the whole path
    first_of_file: bool = True

    def describe(self) -> str:
        return self.path if self.end is None else f"{self.path} bytes {self.start}-{self.end}"


def files_in_order(paths: Sequence[str]) -> Iterator[str]:
    """The files of ``paths`` in the order read_paths reads them (a folder as its files; a path
    that cannot be read as it is, for its reader's warning; a file named twice, once)."""
    read = FilesRead()
    for p in paths:
        try:
            is_dir = stat.S_ISDIR(os.stat(p).st_mode)
        except OSError:
            yield p  # the worker reading it gives the warning one process gives
            continue
        files = iter_files(p) if is_dir else [p]
        yield from (f for f in files if read.first(f)) if files else [p]


def plan_parts(paths: Sequence[str], workers: int, part_bytes: int | None = None, *,
               largest: int = MAX_RANGE, smallest: int = MIN_TAIL) -> list[Part]:
    """The parts of ``paths`` in reading order (see the module docstring); ``part_bytes``: the size
    of a byte range (default: about four parts per worker, within MIN_RANGE..``largest``, and
    smaller towards the end of the input, down to ``smallest``, so that the workers finish
    together)."""
    files = list(files_in_order(paths))
    sizes = {}
    for f in files:
        try:
            sizes[f] = os.stat(f).st_size if stat.S_ISREG(os.stat(f).st_mode) else 0
        except OSError:
            sizes[f] = 0
    total = sum(sizes.values())
    # about four parts per worker over the whole input, so that no worker waits long for the last
    every = part_bytes or min(largest, max(MIN_RANGE, total // max(1, 4 * workers)))
    parts: list[Part] = []
    before = 0  # bytes of the files before this one
    for f in files:
        size = sizes[f]
        if size < 2 * every or not splittable(f):
            parts.append(Part(f))
        else:
            starts = line_starts(f, size, every if part_bytes else _tapering(every, total - before, workers, smallest))
            for i, s in enumerate(starts):
                parts.append(Part(f, s, starts[i + 1] if i + 1 < len(starts) else size, i == 0))
        before += size
    return parts


def _tapering(every: int, left: int, workers: int, smallest: int) -> Callable[[int], int]:
    """Part lengths for a file with ``left`` bytes of input from its start to the end of the run:
    ``every``, down to half the input still to plan divided among the workers, at least
    ``smallest``. The last parts are short, so that a worker given one as the others finish ends
    soon after them (guided self-scheduling)."""
    return lambda pos: max(smallest, min(every, (left - pos) // (2 * workers)))


# --- the worker process ----------------------------------------------------------------------

_engine: Engine | None = None
_max_line_bytes = DEFAULT_MAX_LINE_BYTES  # the run's --max-line-mib, set by _init
_readers: EntryReaders = {}  # the first-seen rules whose matches cross as first-seen records
_filter: EventFilter | None = None  # the run's event filters (--user, --since...)


def _init(ruleset: RuleSet, config: Config | None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
          first_seen: Mapping[int, str] | None = None, event_filter: EventFilter | None = None,
          index: RuleIndex | None = None) -> None:
    """Once per worker process: its split-mode engine (the rules come forked or from the cache;
    ``index``: the parent's rule index, forked with it, so that the worker starts reading without
    building its own), the run's read limit, the entry readers of ``first_seen``
    (:meth:`Detector.first_seen_only`) and the events it keeps (``event_filter``, applied after
    reading as one process applies it)."""
    global _engine, _max_line_bytes, _readers, _filter
    _max_line_bytes = max_line_bytes
    _readers = entry_readers(ruleset, first_seen or {})
    _filter = event_filter
    from kubehawk.rules import Engine

    if multiprocessing.parent_process() is not None:  # a worker: Ctrl-C is the parent's, which ends the run
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _engine = Engine(ruleset, config, index=index)
    _engine.split = True


def _read_part(part: Part) -> ChunkResult:
    """A local worker's part, read by its engine (:func:`scan_part`)."""
    assert _engine is not None, "worker not initialised"
    return scan_part(_engine, part, _max_line_bytes, _readers, _filter)


def _read_part_to(folders: Sequence[str], part: Part) -> str:
    """:func:`_read_part`, its result written to a file (:mod:`kubehawk.scale.results`): the
    file's path is what the pool sends back."""
    return write_result(folders, _read_part(part))


def scan_part(engine: Engine, part: Part, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
              readers: EntryReaders | None = None, event_filter: EventFilter | None = None) -> ChunkResult:
    """The workers' half of a split run over one part (a local worker's, or a Spark task's:
    :mod:`kubehawk.spark`): the part read from the file itself (the line screen skipping the
    lines no rule wants, undecoded) and ``engine``, in split mode, run over its events (those
    ``event_filter`` keeps); ``readers``: see :func:`find_matches`. Origins and warnings count
    lines from the part's start; :class:`PartMerge` makes them the file's."""
    stats = ReadStats(max_warnings=MAX_PART_WARNINGS, max_line_bytes=max_line_bytes)
    warnings: list[str] = []

    def warn(message: str) -> None:  # the first MAX_PART_WARNINGS of a part are sent; all are counted
        if len(warnings) < MAX_PART_WARNINGS:
            warnings.append(message)

    if part.end is None:
        events = read_paths([part.path], stats, on_warning=warn, screen=engine.line_screen)
    else:
        stats.files = 1 if part.first_of_file else 0
        events = read_range(part.path, part.start, part.end, stats, warn, engine.line_screen)
    if event_filter is not None:
        events = event_filter.apply(events)
    before = len(engine.error_messages)
    with part_collected():
        out = find_matches(engine, events, ChunkResult(name=part.path, where=part.describe()), readers)
    s = stats.summary()
    s["warnings"] = warnings
    s["screened_out"] = engine.line_screen.skipped() if engine.line_screen is not None else 0
    out.stats = s
    out.engine_errors = engine.error_messages[before:]
    return out


def read_again(part: Part, n: int, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> bytes:
    """Line ``n`` of a part (numbered from the part's first line), read again (see Merge.add)."""
    stats = ReadStats(max_warnings=0, max_line_bytes=max_line_bytes)
    events = (read_paths([part.path], stats) if part.end is None
              else read_range(part.path, part.start, part.end, stats))
    it = iter(events)
    try:
        for ev in it:
            o = ev._origin
            if o.__class__ is tuple and o[1] == n and ev._line is not None:
                return ev._line
    finally:
        getattr(it, "close", lambda: None)()  # the file is closed now, not at garbage collection
    raise ScaleError(f"{part.describe()}: line {n} changed while the run read it")


# --- the parent ------------------------------------------------------------------------------


def _renumber(message: str, path: str, base: int) -> str:
    """A reader's warning about line n of a byte range, as line base+n of the file."""
    if not base or not message.startswith(path + ":"):
        return message
    rest = message[len(path) + 1:]
    num, sep, tail = rest.partition(":")
    return f"{path}:{int(num) + base}{sep}{tail}" if num.isdigit() else message


class PartMerge:
    """The parts' results merged in reading order: alerts (:class:`Merge`), the read counters
    summed, warnings with the line numbers of the whole file (a range counts from its start)."""

    def __init__(self, detector: Detector, on_warning: Callable[[str], None] | None = None,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, render: Callable[[Alert], Any] | None = None):
        self.merge = Merge(detector, render)
        self.max_line_bytes = max_line_bytes
        self.stats = ReadStats()
        self.engine_errors: list[str] = []
        self.on_warning = on_warning
        self._lines_before: dict[str, int] = {}  # per file: lines of its ranges merged so far

    def add(self, part: Part, res: ChunkResult) -> None:
        base = 0 if part.end is None or part.first_of_file else self._lines_before.get(part.path, 0)
        self.merge.add(res, base, functools.partial(read_again, part, max_line_bytes=self.max_line_bytes))
        s = dict(res.stats, warnings=[_renumber(w, part.path, base) for w in res.stats["warnings"]])
        if part.end is not None:
            self._lines_before[part.path] = base + s["lines"]
        self.stats.add(s)
        if self.on_warning is not None:
            for w in s["warnings"]:
                self.on_warning(w)
        self.engine_errors.extend(res.engine_errors)

    def finish(self) -> list[Any]:
        return self.merge.finish()


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run_local(paths: Sequence[str], detector: Detector, workers: int, *,
              on_warning: Callable[[str], None] | None = None,
              on_progress: Callable[[ReadStats, Detector], None] | None = None,
              part_bytes: int | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
              event_filter: EventFilter | None = None,
              render: Callable[[Alert], Any] | None = None) -> tuple[list[Any], PartMerge]:
    """Every alert of ``paths`` (in :func:`kubehawk.scale.alert_order`) with ``workers`` processes,
    the stateful rules run by ``detector`` (made by the caller, with its config and baselines);
    ``event_filter``: only the events it keeps are detected on; ``render``: what is returned of
    each alert (see :class:`Merge`)."""
    parts = plan_parts(paths, workers, part_bytes)
    workers = max(1, min(workers, len(parts)))  # a forked pool starts all its processes at once
    merged = PartMerge(detector, on_warning, max_line_bytes, render)
    window = 2 * workers
    pending: list[tuple[Part, Future[str]]] = []
    context = _context()
    # forked workers have the parent's rule index (built for its engine, which reads no event)
    index = detector.engine.index if context.get_start_method() == "fork" else None
    try:  # results come back as files, only their names through the pool's pipe (scale.results)
        with result_folders() as folders, collector_paused(), ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_init,
                initargs=(detector.rules, detector.config, max_line_bytes, detector.first_seen_only(), event_filter,
                          index)) as pool:
            try:
                for part in parts:
                    pending.append((part, _submit(pool, folders, part)))
                    while len(pending) >= window or (pending and part is parts[-1]):
                        done, fut = pending[0]
                        res = load_result(_result(done, fut))
                        pending.pop(0)
                        merged.add(done, res)
                        if on_progress is not None:
                            on_progress(merged.stats, detector)
            except BaseException:
                for _, fut in pending:
                    fut.cancel()
                raise
    except BrokenProcessPool:
        where = pending[0][0].describe() if pending else "its input"
        raise ScaleError(f"a worker process died (killed, or out of memory) while the run read {where}; "
                         "the run is incomplete, so no alerts were written") from None
    return merged.finish(), merged


def _submit(pool: ProcessPoolExecutor, folders: Sequence[str], part: Part) -> Future[str]:
    """``pool.submit`` of :func:`_read_part_to` with Ctrl-C held back: the worker processes it may
    start inherit a mask without SIGINT (Ctrl-C is the parent's to handle), and the pool is never
    left half started."""
    if not hasattr(signal, "pthread_sigmask"):
        return pool.submit(_read_part_to, folders, part)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(_read_part_to, folders, part)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _result(part: Part, fut: Future[str]) -> str:
    try:
        return fut.result()
    except BrokenProcessPool:
        raise
    except Exception as e:  # raised in the worker: its part is not read
        raise ScaleError(f"a worker failed reading {part.describe()}: {type(e).__name__}: {e}; "
                         "the run is incomplete, so no alerts were written") from e
