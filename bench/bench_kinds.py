"""Where the detection time goes, by request kind, in the mixed stream of the bench corpus.

bench_detect.py says how fast; this says where to look. Every event of the corpus is read as
``kubehawk detect`` reads it and judged by ``Detector.process`` (index, rule tests, first-seen
gates, alerts), timed one by one in the order of the log: a kind's cost in a mixed stream is
higher than in a run of that kind alone (its memo entries and rule state go cold between its
events), so the kinds are not timed separately. Decoding is not in the figures (it is the
ceiling's part). The clock adds about 0.1 us to each event. The line screen is not used here
(``Detector.process`` asks the index for every event. In ``detect`` the screen skips the lines
of the kinds that meet no rule and hands the others their plan), so this is the cost of the
detection itself, by kind.

    python bench/bench_kinds.py [--events 200000] [--top 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
from kubehawk.config import Config  # noqa: E402
from kubehawk.detect import Detector  # noqa: E402
from kubehawk.sources.files import ReadStats, read_paths  # noqa: E402


def kind(event) -> tuple[str, str, str]:
    h = event.head
    ref = h.objectRef or {}
    resource = ref.get("resource") or "-"
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return h.verb or "-", resource, h.level or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--config", type=Path, default=HERE.parent / "examples" / "kubehawk.yaml")
    args = ap.parse_args()
    path = HERE / "out" / f"corpus-{args.events}.log"
    if not path.exists():
        corpus.write(path, args.events)
    detector = Detector(None, Config.load(args.config))
    spent: Counter[tuple[str, str, str]] = Counter()
    seen: Counter[tuple[str, str, str]] = Counter()
    clock = time.perf_counter
    for event in read_paths([str(path)], ReadStats()):
        t = clock()
        detector.process(event)
        t = clock() - t
        k = kind(event)
        spent[k] += t
        seen[k] += 1
    total = sum(spent.values())
    n = sum(seen.values())
    print(f"{n} events, detection (not decoding) {total:.2f} s = {total * 1e6 / n:.2f} us/event on average")
    print(f"{'share':>6} {'us/event':>9} {'events':>8}  verb resource level")
    for k, s in spent.most_common(args.top):
        print(f"{s / total:6.1%} {s * 1e6 / seen[k]:9.2f} {seen[k]:8d}  {' '.join(k)}")


if __name__ == "__main__":
    main()
