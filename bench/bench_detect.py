"""Throughput of ``kubehawk detect`` next to the decode ceiling measured in the same run.

The ceiling is what no Python audit-log tool can beat on this machine: read the lines
and do a msgspec typed decode of the top-level fields with the bodies kept raw. The
machines are shared and noisy, so the figure that matters is the ratio, not events/s.

    python bench/bench_detect.py [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from kubehawk.event import EventHead  # noqa: E402


def ceiling(path: Path) -> tuple[int, float]:
    # The head type kubehawk decodes (bodies kept raw), used directly: the ceiling does no more.
    dec = msgspec.json.Decoder(EventHead)
    n = 0
    t0 = time.perf_counter()
    with path.open("rb") as fh:
        for line in fh:
            dec.decode(line)
            n += 1
    return n, time.perf_counter() - t0


def pipeline(path: Path, config_path: Path | None) -> tuple[int, int, float, dict]:
    from kubehawk.config import Config
    from kubehawk.detect import Detector
    from kubehawk.sources.files import ReadStats, read_paths

    config = Config.load(config_path) if config_path else None
    detector = Detector(None, config)
    stats = ReadStats()
    alerts = 0
    t0 = time.perf_counter()
    for _ in detector.alerts(read_paths([str(path)], stats)):
        alerts += 1
    return stats.events, alerts, time.perf_counter() - t0, detector.engine.stats


def cli(path: Path, config_path: Path | None) -> float:
    exe = Path(sys.executable).with_name("kubehawk")
    cmd = [str(exe), "detect", "--format", "json", "-q", str(path)]
    if config_path:
        cmd[2:2] = ["--config", str(config_path)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--config", type=Path, default=HERE.parent / "examples" / "kubehawk.yaml")
    args = ap.parse_args()
    path = HERE / "out" / f"corpus-{args.events}.log"
    if not path.exists():
        corpus.write(path, args.events)
    size = path.stat().st_size
    from kubehawk.detect import load_ruleset

    nrules = len(load_ruleset(None).rules)
    print(f"corpus: {args.events} events, {size / args.events:.0f} B/event; built-in pack: {nrules} rules; "
          f"cpu: {os.cpu_count()} cores")
    best_c = best_p = best_cli = float("inf")
    alerts = 0
    for _ in range(args.repeat):
        # Interleave so that noise from other tenants hits both sides alike.
        n, t = ceiling(path)
        best_c = min(best_c, t)
        n2, alerts, t2, stats = pipeline(path, args.config)
        assert n2 == n, (n, n2)
        best_p = min(best_p, t2)
        best_cli = min(best_cli, cli(path, args.config))
    c_rate, p_rate, cli_rate = n / best_c, n / best_p, n / best_cli
    print(f"decode ceiling     : {c_rate:>10,.0f} events/s")
    print(f"detect (library)   : {p_rate:>10,.0f} events/s  = {p_rate / c_rate:.0%} of ceiling ({alerts} alerts)")
    print(f"kubehawk detect CLI: {cli_rate:>10,.0f} events/s  = {cli_rate / c_rate:.0%} of ceiling (incl. start-up)")
    ev = max(1, stats["events"])
    print(f"engine: {stats['candidates'] / ev:.3f} candidate rules/event, {stats['tests_run'] / ev:.3f} rule tests "
          f"run/event, {stats['matches']} matches (before baselines and level filters)")


if __name__ == "__main__":
    main()
