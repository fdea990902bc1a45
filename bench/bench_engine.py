"""Cost of the rule engine alone, next to the decode ceiling measured in the same run.

Generates the synthetic corpus in memory (bench/corpus.py), then times:
  ceiling  msgspec typed decode of the top-level fields (bodies raw)
  decode   kubehawk.event.decode_event
  engine   decode_event + Engine.process with the built-in rules (no sinks, no formatting)
and prints events/s, microseconds/event and engine/ceiling.

    python bench/bench_engine.py [--events 100000] [--repeat 3] [--rules DIR ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from kubehawk.event import EventHead, decode_event  # noqa: E402
from kubehawk.rules import Engine, load_rules  # noqa: E402


def best(fn, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rules", nargs="*", default=[])
    args = ap.parse_args()

    lines = [msgspec.json.encode(d) for d in corpus.generate(args.events)]
    lines += [msgspec.json.encode(d) for d in corpus.attacks()]
    n = len(lines)
    t0 = time.perf_counter()
    rs = load_rules(paths=args.rules, builtin=True, collect_errors=True)
    load_s = time.perf_counter() - t0
    for err in rs.errors:
        print("rule error:", err, file=sys.stderr)

    dec = msgspec.json.Decoder(EventHead)

    def ceiling() -> float:
        t = time.perf_counter()
        for line in lines:
            dec.decode(line)
        return time.perf_counter() - t

    def decode() -> float:
        t = time.perf_counter()
        for line in lines:
            decode_event(line)
        return time.perf_counter() - t

    matches = 0

    def engine() -> float:
        nonlocal matches
        eng = Engine(rs)
        t = time.perf_counter()
        m = 0
        for line in lines:
            m += len(eng.process(decode_event(line)))
        elapsed = time.perf_counter() - t
        matches = m
        engine.stats = eng.stats
        return elapsed

    c, d, e = best(ceiling, args.repeat), best(decode, args.repeat), best(engine, args.repeat)
    st = engine.stats
    print(f"rules: {len(rs)} loaded in {load_s * 1000:.0f} ms; index fields {st['index_fields']}, "
          f"always-evaluated {st['always_evaluated']}")
    print(f"events: {n}; candidate rules {st['candidates']} ({st['candidates'] / n:.2f}/event), rule tests run "
          f"{st['tests_run']} ({st['tests_run'] / n:.2f}/event); matches {matches}")
    for name, s in (("ceiling", c), ("decode", d), ("engine", e)):
        print(f"{name:8s} {n / s:10.0f} ev/s  {s / n * 1e6:6.2f} us/ev")
    print(f"engine only (engine - decode): {(e - d) / n * 1e6:.2f} us/ev; engine/ceiling = {c / e:.0%}")


if __name__ == "__main__":
    main()
