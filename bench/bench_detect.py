"""Throughput of ``kubehawk detect`` next to the decode ceiling measured in the same run.

The ceiling is what no Python audit-log tool can beat on this machine: read the lines (with
the buffer kubehawk reads files with) and do a msgspec typed decode of the top-level fields
with the bodies kept raw. The machines are shared and noisy, so the figure that matters is
the ratio, not events/s; each measurement runs in a fresh process (one run's leftovers slow
the next) and the ratios use CPU time (another tenant taking the core does not count).
Reported: the library pipeline (also with its compiled parts off, as without a C compiler), the CLI
with its start-up, the CLI's running rate without it, and the start-up itself (on an empty file).

    python bench/bench_detect.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from installed import as_installed  # noqa: E402
from kubehawk.event import EventHead  # noqa: E402
from kubehawk.sources.files import READ_BUFFER  # noqa: E402


class Clock:
    """Wall and CPU seconds of a block (CPU: this process, or its children for the CLI).

    The machines are shared: another tenant can take the core for a while, which wall time
    counts and CPU time does not. Both are reported; the ratios use CPU time.
    """

    def __init__(self, children: bool = False):
        self.children = children

    def _cpu(self) -> float:
        if self.children:
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime
        return time.process_time()

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, self._cpu() - self.c0


def ceiling(path: Path) -> tuple[int, Clock]:
    # The head type kubehawk decodes (bodies kept raw), used directly: the ceiling does no more.
    dec = msgspec.json.Decoder(EventHead)
    n = 0
    # read as kubehawk reads a file (its buffer size), so that the ratio is about what it does after
    with Clock() as clock, path.open("rb", buffering=READ_BUFFER) as fh:
        for line in fh:
            dec.decode(line)
            n += 1
    return n, clock


def pipeline(path: Path, config_path: Path | None) -> tuple[int, int, Clock, dict]:
    from kubehawk.config import Config
    from kubehawk.detect import Detector
    from kubehawk.sources.files import ReadStats, read_paths

    config = Config.load(config_path) if config_path else None
    detector = Detector(None, config)
    stats = ReadStats()
    alerts = 0
    with Clock() as clock:
        for _ in detector.alerts(read_paths([str(path)], stats, screen=detector.engine.line_screen)):
            alerts += 1
    return stats.events, alerts, clock, detector.engine.stats


def cli(path: Path, config_path: Path | None) -> Clock:
    exe = Path(sys.executable).with_name("kubehawk")
    cmd = [str(exe), "detect", "--format", "json", "-q", str(path)]
    if config_path:
        cmd[2:2] = ["--config", str(config_path)]
    # as installed: bytecode cached (installed.as_installed, in main), rules cache warm
    with Clock(children=True) as clock:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return clock


def child(phase: str, path: Path, config_path: Path | None, native: bool = True) -> tuple[int, Clock, int, dict]:
    """One measurement in a fresh process: what a run leaves behind (memos, a fragmented heap,
    a GC with many live objects) slows the next one down, by ~10% for the ceiling. ``native``
    False: kubehawk's compiled parts off (every line decoded), as on a machine without a C compiler."""
    cmd = [sys.executable, __file__, "--phase", phase, "--corpus", str(path)]
    if config_path:
        cmd += ["--config", str(config_path)]
    env = {**os.environ, "KUBEHAWK_NATIVE": "1" if native else "0"}
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, env=env).stdout)
    clock = Clock()
    clock.cpu, clock.wall = out["cpu"], out["wall"]
    return out["n"], clock, out.get("alerts", 0), out.get("stats", {})


def run_phase(phase: str, path: Path, config_path: Path | None) -> None:
    if phase == "ceiling":
        n, clock = ceiling(path)
        out: dict = {"n": n}
    else:
        n, alerts, clock, stats = pipeline(path, config_path)
        keep = ("events", "screened_out", "candidates", "tests_run", "matches")
        out = {"n": n, "alerts": alerts, "stats": {k: stats[k] for k in keep}}
    print(json.dumps({**out, "cpu": clock.cpu, "wall": clock.wall}))


def _best(clocks: list[Clock]) -> tuple[float, float]:
    return min(c.cpu for c in clocks), min(c.wall for c in clocks)


def main() -> None:
    as_installed()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--config", type=Path, default=HERE.parent / "examples" / "kubehawk.yaml")
    ap.add_argument("--phase", choices=["ceiling", "library"], help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        run_phase(args.phase, args.corpus, args.config)
        return
    path = HERE / "out" / f"corpus-{args.events}.log"
    if not path.exists():
        corpus.write(path, args.events)
    empty = HERE / "out" / "empty.log"
    empty.write_bytes(b"")
    size = path.stat().st_size
    from kubehawk.detect import load_ruleset

    nrules = len(load_ruleset(None).rules)
    print(f"corpus: {args.events} events, {size / args.events:.0f} B/event; built-in pack: {nrules} rules; "
          f"cpu: {os.cpu_count()} cores")
    cli(empty, args.config)  # the first run after a change compiles bytecode and the rules cache
    runs: dict[str, list[Clock]] = {"ceiling": [], "library": [], "decoded": [], "cli": [], "start": []}
    alerts = 0
    for _ in range(args.repeat):
        # Interleave so that noise from other tenants hits every side alike.
        n, c, _, _ = child("ceiling", path, None)
        runs["ceiling"].append(c)
        n2, c, alerts, stats = child("library", path, args.config)
        assert n2 == n, (n, n2)
        runs["library"].append(c)
        n3, c, alerts3, _ = child("library", path, args.config, native=False)
        assert (n3, alerts3) == (n, alerts), (n, n3, alerts, alerts3)
        runs["decoded"].append(c)
        runs["cli"].append(cli(path, args.config))
        runs["start"].append(cli(empty, args.config))
    (c_cpu, c_wall), (p_cpu, p_wall) = _best(runs["ceiling"]), _best(runs["library"])
    (k_cpu, k_wall), (s_cpu, s_wall) = _best(runs["cli"]), _best(runs["start"])

    def line(name: str, cpu: float, wall: float, note: str = "") -> None:
        print(f"{name:<27}: {n / cpu:>9,.0f} events/s = {c_cpu / cpu:>4.0%} of ceiling   "
              f"(wall clock: {n / wall:>9,.0f} = {c_wall / wall:.0%}){note}")

    print(f"best of {args.repeat}, each in a fresh process; events per CPU second (the ratios), wall clock beside")
    line("decode ceiling", c_cpu, c_wall)
    line("detect, library", p_cpu, p_wall, f"  {alerts} alerts")
    line("  pure Python", *_best(runs["decoded"]), "  compiled parts off (KUBEHAWK_NATIVE=0)")
    line("kubehawk detect CLI", k_cpu, k_wall, "  with start-up")
    line("kubehawk detect CLI, running", k_cpu - s_cpu, k_wall - s_wall, "  without start-up")
    print(f"CLI start-up (empty file)  : {s_cpu:.2f} s CPU, {s_wall:.2f} s wall")
    ev = max(1, stats["events"])
    print(f"engine: {stats['screened_out'] / ev:.0%} of the lines skipped undecoded by the line screen; "
          f"{stats['candidates'] / ev:.3f} candidate rules/event, {stats['tests_run'] / ev:.3f} rule tests "
          f"run/event, {stats['matches']} matches (before baselines and level filters)")


if __name__ == "__main__":
    main()
