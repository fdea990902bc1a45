"""The detection pipeline as a library: events in, alerts out.

``Detector`` holds one compiled engine; create one per process (or per Spark
partition) and feed it events in stream order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kubehawk.alerts import Alert, level_rank

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.event import AuditEvent
    from kubehawk.rules import RuleSet
    from kubehawk.rules.model import Rule

__all__ = ["Detector", "detect", "load_ruleset"]


def load_ruleset(config: Config | None = None, rule_paths: Sequence[str | Path] = (), builtin: bool = True,
                 collect_errors: bool = False) -> RuleSet:
    """The rules to run: the built-in pack plus any user rule folders, with the config's placeholders."""
    from kubehawk.rules import load_rules

    variables = config.vars if config is not None else {}
    return load_rules(paths=[Path(p) for p in rule_paths], builtin=builtin, variables=variables,
                      collect_errors=collect_errors)


class Detector:
    """One compiled engine plus alert shaping (level filter, counts)."""

    def __init__(self, rules: RuleSet | None = None, config: Config | None = None, *,
                 min_level: str | None = None, on_note: Callable[[str], None] | None = None):
        """``on_note``: told things worth a line on stderr (first-seen rules learning in memory
        only, once, when one first matches); without it the library says nothing."""
        from kubehawk.rules import Engine
        from kubehawk.rules.tuning import Tuning

        self.config = config
        rules = rules if rules is not None else load_ruleset(config)
        # the config's `rules:` tuning (levels, disabled rules, exceptions), on copies of the rules
        self.tuning = Tuning.from_config(config)
        self.rules = self.tuning.apply(rules) if self.tuning else rules
        exceptions = self.tuning.exceptions(self.rules) if self.tuning else {}
        self.engine = Engine(self.rules, config)
        self.min_rank = level_rank(min_level) if min_level else 0
        self.alerts_by_level: Counter[str] = Counter()
        self.alerts_by_rule: Counter[str] = Counter()
        # alerts on records holding a wrong-typed value where a string belongs (Alert.warnings):
        # counted, and each told to on_warning ("file:line: what") when it is set
        self.odd_records = 0
        self.on_warning: Callable[[str], None] | None = None
        self._odd_event: AuditEvent | None = None
        # --- first-seen baselines (rulepack2): a baseline rule's match alerts only when its value is new ---
        from kubehawk.rules.baseline import Baselines

        self.baselines = Baselines.for_rules(self.rules, config, note=on_note)
        # the engine asks the gates before it builds a Match: most first-seen matches are known,
        # and an event an exception covers neither alerts nor teaches a baseline
        gates = self.baselines.gates() if self.baselines is not None else {}
        kinds = {r.id: r.kind for r in self.rules}
        for rid, excepted in exceptions.items():
            if kinds.get(rid) == "event":
                gates[rid] = _except(excepted, gates.get(rid))
        if gates:
            self.engine.set_gates(gates)
        self._excepted = set(exceptions)
        # correlations: their exceptions are asked about the event that completes them
        self._suppress = {rid: f for rid, f in exceptions.items() if kinds.get(rid) == "correlation"}

    def _shape(self, matches: list) -> list[Alert]:
        out = []
        suppress = self._suppress
        for m in matches:
            if level_rank(m.rule.level) < self.min_rank:
                continue
            if suppress and m.rule.id in suppress and suppress[m.rule.id](m.event):
                continue
            alert = Alert.from_match(m)
            if alert.warnings and alert.event is not self._odd_event:  # once per record
                self._odd_event = alert.event
                self.odd_records += 1
                if self.on_warning is not None:
                    for w in alert.warnings:
                        self.on_warning(f"{alert.event.origin}: {w}")
            self.alerts_by_level[alert.level] += 1
            self.alerts_by_rule[alert.rule.id] += 1
            out.append(alert)
        return out

    def process(self, event: AuditEvent) -> list[Alert]:
        """The alerts of one event (none for RequestReceived, see :meth:`Engine.process`)."""
        baselines = self.baselines
        if baselines is not None and baselines.pending_start:
            baselines.observe(event)
        matches = self.engine.process(event)  # baseline rules already judged (Engine.set_gates)
        return self._shape(matches) if matches else []

    def start_baselines(self, event: AuditEvent) -> None:
        """The first-seen baselines' learning period starts at this event if it has not yet (what
        :meth:`process` does for the first timed event of the stream; kubehawk.scale calls it)."""
        if self.baselines is not None and self.baselines.pending_start:
            self.baselines.observe(event)

    def replay(self, event: AuditEvent, matched: list[tuple[Rule, None]]) -> list[Alert]:
        """The alerts of an event whose matching rules a split engine found (``Engine.split``),
        given as ``(rule, None)`` pairs in plan order: dedup, first-seen baselines and correlations
        run here, as in :meth:`process`. Called in stream order over every worker's matches, it
        gives what one process gives."""
        if self.config is not None:
            event.bind_context(self.config)
        matches = self.engine.run_plan(event, matched)
        return self._shape(matches) if matches else []

    def first_seen_only(self) -> dict[int, str]:
        """The first-seen rules whose match needs nothing after the dedup but the baseline's verdict
        (it alerts, no correlation counts it, no exception covers it), by ordinal: a split run's
        merge judges their matches by entry (kubehawk.scale.merge), without the event."""
        if self.baselines is None:
            return {}
        engine, specs = self.engine, self.baselines.specs
        return {r.ordinal: r.id for r in self.rules if r.id in specs and r.generate and r.id not in self._excepted
                and not engine.feeds_correlations(r.id)}

    def alert_of(self, rule: Rule, event: AuditEvent) -> list[Alert]:
        """The alert of a first-seen match the split run's merge judged new (none below ``min_level``)."""
        from kubehawk.rules.model import Match

        if self.config is not None:
            event.bind_context(self.config)
        return self._shape([Match(rule, event)])

    def alerts(self, events: Iterable[AuditEvent]) -> Iterator[Alert]:
        """Every alert of a stream of events, then those of :meth:`flush`: :meth:`process` in one
        loop (see :meth:`Engine.stream`), which is what readers of large logs should use."""
        it = iter(events)
        baselines = self.baselines
        if baselines is not None and baselines.pending_start:
            for event in it:  # until the baselines have their start time (the first timed event)
                yield from self.process(event)
                if not baselines.pending_start:
                    break
        shape = self._shape
        for _, matches in self.engine.stream(it):
            yield from shape(matches)
        yield from self.flush()

    def flush(self) -> list[Alert]:
        matches = self.engine.flush()
        if self.baselines is not None:
            matches = self.baselines.filter(matches)
            self.baselines.flush()  # end of a batch: what was learned is on disk
        return self._shape(matches)

    def close(self) -> None:
        """Release the baseline store (also done at exit); the Detector is not used afterwards."""
        if self.baselines is not None:
            self.baselines.close()


def _except(excepted: Callable[[AuditEvent], bool],
            then: Callable[[AuditEvent], bool] | None) -> Callable[[AuditEvent], bool]:
    """A gate that drops what an exception covers, then asks ``then`` (a baseline), if any."""
    if then is None:
        return lambda event: not excepted(event)
    return lambda event: not excepted(event) and then(event)


def detect(events: Iterable[AuditEvent], rules: RuleSet | None = None, config: Config | None = None, *,
           min_level: str | None = None) -> Iterator[Alert]:
    """Alerts for a stream of events, in stream order."""
    yield from Detector(rules, config, min_level=min_level).alerts(events)
