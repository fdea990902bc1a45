"""The executors' half of a Spark run: one split-mode engine per Python worker, and each
partition's lines (or local parts, read from the file itself) scanned into the records the
driver merges (:mod:`kubehawk.spark.job`)."""

from __future__ import annotations

import io
import itertools
import os
import socket
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from kubehawk.scale.local import Part, scan_part
from kubehawk.scale.records import ChunkResult, EntryReaders, entry_readers, find_matches
from kubehawk.sources.files import ReadStats, read_lines_of, read_stream

if TYPE_CHECKING:
    from kubehawk.rules import Engine

MAX_WARNINGS = 100  # the warnings a split sends (all are counted)

_engines: dict[int, tuple[Engine, EntryReaders]] = {}


def _engine(key: int, payload: Any) -> Engine:
    """One split-mode engine per Python worker and rule set (workers are reused between tasks)."""
    return _engine_and_readers(key, payload)[0]


def _engine_and_readers(key: int, payload: Any) -> tuple[Engine, EntryReaders]:
    """The worker's engine, and the entry readers of the first-seen rules the payload names
    (``(ruleset, config[, first_seen])``, see :func:`kubehawk.scale.records.find_matches`)."""
    made = _engines.get(key)
    if made is None:
        from kubehawk.rules import Engine

        ruleset, config, *first_seen = payload.value
        engine = Engine(ruleset, config)
        engine.split = True
        _engines.clear()
        made = _engines[key] = (engine, entry_readers(ruleset, first_seen[0] if first_seen else {}))
    return made


def scan_partition(key: int, payload: Any, rows: Iterator[Any]) -> Iterator[tuple[str, int, ChunkResult]]:
    """``(file, byte offset of the split, part)`` for each split of a file in the partition, in order
    (the rows of a DataFrame of positioned lines)."""
    engine = _engine(key, payload)
    group: list[bytes] = []
    where: tuple[str, int] | None = None
    for file, block, value in rows:
        if (file, block) != where:
            if where is not None:
                yield (*where, _scan_rows(engine, where, group))
            where, group = (file, block), []
        group.append(value.encode("utf-8", "surrogateescape"))
    if where is not None:
        yield (*where, _scan_rows(engine, where, group))


def _scan_rows(engine: Engine, where: tuple[str, int], lines: list[bytes]) -> ChunkResult:
    file, block = where
    # origins name the line in its split: path:line in the first, path@offset:line in the split
    # starting at byte offset (Spark gives no line numbers past a split's start)
    name = local_name(file) if block == 0 else f"{local_name(file)}@{block}"
    if len(lines) == 1 and b"\n" in lines[0]:  # a whole file (spark.read.text(..., wholetext=True))
        return _scan(engine, name, lines[0])
    return _scan(engine, name, iter(lines), block == 0)


def scan_split(file: str, key: int, payload: Any, index: int, lines: Iterator[bytes]
                ) -> Iterator[tuple[str, int, ChunkResult]]:
    """The part of the ``index``-th split of one file read with ``textFile`` (lines as bytes)."""
    name = local_name(file) if index == 0 else f"{local_name(file)}#{index}"
    yield file, index, _scan(_engine(key, payload), name, lines, index == 0)


def scan_parts(key: int, payload: Any, max_line_bytes: int, parts: Iterator[Part]) -> Iterator[ChunkResult]:
    """The parts of a Spark partition (one, as :func:`detect_files` plans them), each read from
    the file by the executor's Python itself: the local workers' code (:func:`scan_part`)."""
    for part in parts:
        if not os.path.exists(part.path):  # fail the run rather than count a part unread
            raise FileNotFoundError(
                f"{part.path}: not found by the executor on {socket.gethostname()}; reading local files, every "
                "executor must see the driver's files at the same path (a shared filesystem), or pass "
                "local_read=False")
        engine, readers = _engine_and_readers(key, payload)
        yield scan_part(engine, part, max_line_bytes, readers)


def _scan(engine: Engine, name: str, lines: Iterator[bytes] | bytes, first: bool = False) -> ChunkResult:
    """Run the split engine over a split's lines (or a whole file's bytes); ``first``: the split
    starts the file (a byte-order mark is dropped there, as one process drops it)."""
    stats = ReadStats()
    warnings: list[str] = []

    def warn(message: str) -> None:
        if len(warnings) < MAX_WARNINGS:
            warnings.append(message)

    if isinstance(lines, bytes):
        events: Iterable[Any] = read_stream(io.BytesIO(lines), name, stats, warn, engine.line_screen)
    else:
        if first:
            lines = _without_bom(lines)
        events = read_lines_of(lines, name, stats, warn, engine.line_screen)
    before = len(engine.error_messages)
    out = find_matches(engine, events, ChunkResult(name=name, where=name))
    s = stats.summary()
    s["warnings"] = warnings
    out.stats = s
    out.engine_errors = engine.error_messages[before:]
    return out


def _without_bom(lines: Iterator[bytes]) -> Iterator[bytes]:
    for head in lines:
        return itertools.chain((head.removeprefix(b"\xef\xbb\xbf"),), lines)
    return iter(())


def local_name(path: str) -> str:
    """A file:// path as the local path one process would name it; other schemes as they are."""
    local = local_path(path)
    return path if local is None else local


def local_path(uri: str) -> str | None:
    """The local path of a file Spark listed (``file:`` URIs, percent-escapes decoded; a path
    without a scheme as it is), or None for other storage (s3a://, gs://, hdfs://...)."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return unquote(parts.path)
    return uri if not parts.scheme else None
