"""The detection engine: index lookup, compiled rule evaluation, dedup, correlations.

``Engine(ruleset, config)`` is cheap to build from a :class:`RuleSet` and pickles as
(rule text, config), so each process or Spark worker builds its own compiled engine.
A rule may have a gate (``set_gates``: the first-seen baselines) that has the last word
on its matches before any Match object is built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from kubehawk.event import AuditEvent
from kubehawk.rules.correlation import CorrelationState, event_epoch
from kubehawk.rules.index import RuleIndex, ScreenedPlan
from kubehawk.rules.linescreen import LineScreen, line_screen
from kubehawk.rules.loader import RuleSet
from kubehawk.rules.model import Match, Rule

__all__ = ["Dedup", "Engine"]

MAX_ERROR_MESSAGES = 100


class Dedup:
    """Remembers about the last ``size``..``2*size`` keys in two rotating sets (bounded memory)."""

    __slots__ = ("size", "_cur", "_old")

    def __init__(self, size: int = 200_000):
        self.size = size
        self._cur: set[Any] = set()
        self._old: set[Any] = set()

    def seen(self, key: Any) -> bool:
        """True if ``key`` was added recently; otherwise add it and return False."""
        if key in self._cur or key in self._old:
            return True
        cur = self._cur
        cur.add(key)
        if len(cur) >= self.size:
            self._old = cur
            self._cur = set()
        return False

    def add_all_new(self, keys: Sequence[Any], asked_too: Sequence[Any] = ()) -> bool:
        """What :meth:`seen` would say of each of ``keys``, at C speed, when it is the same in any
        order: none of them was added recently, no two are alike, none is among ``asked_too`` (the
        keys seen() is asked about between them) and all of them fit before the next rotation.
        Then they are added and True (seen would have said False of each, wherever asked between
        the others); otherwise nothing changes and False."""
        cur = self._cur
        new = set(keys)
        if len(new) != len(keys) or len(cur) + len(new) + len(asked_too) >= self.size:
            return False
        if not (cur.isdisjoint(new) and self._old.isdisjoint(new) and new.isdisjoint(asked_too)):
            return False
        cur |= new
        return True

    def __len__(self) -> int:
        return len(self._cur) + len(self._old)


class Engine:
    """Evaluate a rule set over a stream of events; ``process`` returns matches in order."""

    MAX_SCREEN_PLANS = 50_000

    def __init__(self, ruleset: RuleSet, config: Any = None, dedup_size: int = 200_000,
                 index: RuleIndex | None = None):
        """``index``: the rule index of an engine of the same rules and config that has seen no
        event yet, to use instead of building one (a forked worker's copy of its parent's)."""
        self.ruleset = ruleset
        self.config = config
        self._dedup_size = dedup_size
        event_rules = [r for r in ruleset.rules if r.kind == "event"]
        self.index = index if index is not None else RuleIndex(event_rules, config)
        self._plan = self.index.plan
        # Lines whose slots are known to meet no rule are skipped by the file reader, undecoded:
        # read_paths(..., screen=engine.line_screen); the engine teaches it (see stream).
        self.line_screen: LineScreen | None = line_screen(self.index.slots)
        self._screen_plans: list[Any] = []  # plans the screen's keys point to, by number
        self._screen_plan_numbers: dict[int, int] = {}
        self.correlations: list[CorrelationState] = []
        self._feeds: dict[str, list[CorrelationState]] = {}
        for r in ruleset.rules:
            if r.kind == "correlation":
                state = CorrelationState(r)
                self.correlations.append(state)
                for rid in r.correlation.rules:
                    self._feeds.setdefault(rid, []).append(state)
        self._dedup = Dedup(dedup_size)
        # rule -> a last word on its matches (first-seen baselines), asked before a Match is built
        self._gates: dict[Rule, Callable[[AuditEvent], bool]] = {}
        self._events = 0
        self._candidates = 0
        self._tests = 0
        # matches per rule, by ordinal (the position in the rule set)
        self._counts = [0] * (1 + max((r.ordinal for r in ruleset.rules), default=-1))
        # rule -> (ordinal, generate, gate, feeds): what follows its match (see _after_match)
        self._after: dict[Rule, tuple[int, bool, Any, Any]] = {}
        self._errors = 0
        self.error_messages: list[str] = []
        self._last_time = 0.0
        # Split mode (kubehawk.scale): run_plan returns the rules an event matches, in plan order,
        # before dedup, gates and correlations, which one Engine then runs over every worker's
        # matches in stream order (run_plan with plans of (rule, None)): the same answer as one process.
        self.split = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (Engine, (self.ruleset, self.config, self._dedup_size))

    def set_gates(self, gates: Mapping[str, Callable[[AuditEvent], bool]]) -> None:
        """``{rule id: gate(event) -> bool}``: a matching event of that rule yields a Match only when
        its gate says so (after dedup; correlations are fed either way). The Detector passes the
        first-seen baselines here, so the many matches they drop never become Match objects."""
        by_id = {r.id: r for r in self.ruleset.rules}
        self._gates = {by_id[rid]: gate for rid, gate in gates.items() if rid in by_id}
        self._after.clear()

    @property
    def rules(self) -> list[Rule]:
        return self.ruleset.rules

    def process(self, event: AuditEvent) -> list[Match]:
        """Matches for one event: event rules that alert, then any correlation it completes.

        A RequestReceived event gets none: it carries no outcome (no status, no decision), so a
        denied request would look allowed. Its ResponseStarted/ResponseComplete twin is judged.
        """
        self._events += 1
        if event.head.stage == "RequestReceived":
            return []
        config = self.config
        if config is not None and event._ctx is not config:
            # before the index: deciding a new slot combination may read derived (x.*) fields
            event.bind_context(config)
        plan = self._plan(event)
        return self.run_plan(event, plan) if plan else []

    def stream(self, events: Iterable[AuditEvent]) -> Iterator[tuple[AuditEvent, list[Match]]]:
        """``(event, matches)`` for each event of ``events`` that has matches; :meth:`process`
        as one loop. Most events meet no rule, so the loop does for them no more than bind the
        config and ask the index (one call, not three).

        With the line screen (events read by ``read_paths(..., screen=engine.line_screen)``), the
        loop also tells it what the index found for each line: no rule (the reader then skips the
        lines with that key) or a plan, which a later line with that key gets back from the
        screen without asking the index. Both are calls in C that return at once for a line the
        screen did not read.
        """
        config = self.config
        plan_of = self._plan
        run_plan = self.run_plan
        screen = self.line_screen
        learn = screen.learn if screen is not None else None
        recall = screen.recall if screen is not None else None
        plans = self._screen_plans
        n = 0
        try:
            for event in events:
                n += 1
                if event.head.stage == "RequestReceived":
                    if learn is not None:
                        learn(event._line, -1)
                    continue
                if event._ctx is not config and config is not None:  # as process() binds
                    if event._x is None:  # nothing derived yet (a fresh event): binding is setting it
                        event._ctx = config
                    else:
                        event.bind_context(config)
                if recall is not None and (i := recall(event._line)) >= 0:
                    plan = plans[i]
                else:
                    plan = plan_of(event)
                    if learn is not None:
                        learn(event._line, self._plan_number(plan) if plan else -1)
                if plan:
                    matches = run_plan(event, plan)
                    if matches:
                        yield event, matches
        finally:
            self._events += n

    def _plan_number(self, plan: list[Any]) -> int:
        """The plan's number in the list the line screen points into (each plan object once)."""
        number = self._screen_plan_numbers.get(id(plan))
        if number is None:
            if len(self._screen_plans) >= self.MAX_SCREEN_PLANS:
                # memory stays flat: the screen forgets the keys that point into the list
                self._screen_plans.clear()
                self._screen_plan_numbers.clear()
                self.line_screen.forget()
            number = self._screen_plan_numbers[id(plan)] = len(self._screen_plans)
            self._screen_plans.append(plan)  # held here, so its id stays its own
        return number

    def run_plan(self, event: AuditEvent, plan: list[tuple[Rule, Any]]) -> list[Match]:
        """The matches among the candidate rules ``plan`` (from the index) of ``event`` (in split
        mode: the rules whose test passed, nothing else done)."""
        self._candidates += len(plan)
        if plan.__class__ is ScreenedPlan:
            plan = plan.screen(event)  # drops the body tests whose keys the bodies lack, in one pass
        out: list[Match] = []
        aid = event.head.auditID
        after = self._after
        counts = self._counts
        dedup = self._dedup
        split = self.split
        tests = 0
        for r, test in plan:
            if test is not None:  # None: the head fields alone make the rule match
                tests += 1
                try:
                    if not test(event):
                        continue
                except Exception as err:  # noqa: BLE001 - one odd event must not stop the stream
                    self._error(r, event, err)
                    continue
            if split:
                out.append(r)
                continue
            try:
                ordinal, generate, gate, feeds = after[r]
            except KeyError:
                ordinal, generate, gate, feeds = after[r] = self._after_match(r)
            if aid is not None:
                # Dedup.seen, inlined: most events that reach here are matches of one rule
                key = (ordinal, aid)
                cur = dedup._cur
                if key in cur or key in dedup._old:
                    continue
                cur.add(key)
                if len(cur) >= dedup.size:
                    dedup._old = cur
                    dedup._cur = set()
            counts[ordinal] += 1
            if generate and (gate is None or gate(event)):
                out.append(Match(r, event))
            if feeds:
                t = event_epoch(event)
                if t is None:
                    t = self._last_time  # no usable timestamp: assume "now" in stream time
                elif t > self._last_time:
                    self._last_time = t
                for state in feeds:
                    m = state.feed(r.id, event, t)
                    if m is not None:
                        counts[m.rule.ordinal] += 1
                        out.append(m)
        self._tests += tests
        return out

    def admit(self, ordinals: Sequence[int], aids: Sequence[str | None]) -> list[int]:
        """The dedup and count of :meth:`run_plan` for matches found by a split engine and judged
        elsewhere (kubehawk.scale), in stream order: the positions of those that are not a repeat
        of (rule, auditID)."""
        seen, counts = self._dedup.seen, self._counts
        out = []
        for i, aid in enumerate(aids):
            o = ordinals[i]
            if aid is not None and seen((o, aid)):
                continue
            counts[o] += 1
            out.append(i)
        return out

    def admit_all(self, ordinals: Sequence[int], aids: Sequence[str], asked_too: Sequence[Any]) -> bool:
        """:meth:`admit` of matches that all pass the dedup whatever their order among the matches
        of keys ``asked_too`` (:meth:`Dedup.add_all_new`): they are counted and True; or nothing
        changes and False."""
        if not self._dedup.add_all_new(list(zip(ordinals, aids, strict=True)), asked_too):
            return False
        counts = self._counts
        for o, n in Counter(ordinals).items():
            counts[o] += n
        return True

    def feeds_correlations(self, rule_id: str) -> bool:
        """Does a match of this rule count towards some correlation?"""
        return bool(self._feeds.get(rule_id))

    def _after_match(self, r: Rule) -> tuple[int, bool, Callable[[AuditEvent], bool] | None, list[Any] | None]:
        """What follows a match of ``r``, read once: its dedup key, whether it alerts, its gate,
        the correlations it feeds."""
        return r.ordinal, r.generate, self._gates.get(r), self._feeds.get(r.id)

    def flush(self) -> list[Match]:
        """End of stream. Supported correlations decide as events arrive, so nothing is pending."""
        return []

    def _error(self, rule: Rule, event: AuditEvent, err: Exception) -> None:
        self._errors += 1
        if len(self.error_messages) < MAX_ERROR_MESSAGES:
            where = event.origin or event.head.auditID or "event"
            self.error_messages.append(f"{where}: rule {rule.id} ({rule.title}): {type(err).__name__}: {err}")

    @property
    def stats(self) -> dict[str, Any]:
        screened = self.line_screen.skipped() if self.line_screen is not None else 0
        return {
            "events": self._events + screened,
            "screened_out": screened,  # lines the reader skipped, undecoded (kubehawk.rules.linescreen)
            "candidates": self._candidates,
            "tests_run": self._tests,
            "matches": sum(self._counts),
            "matches_by_rule": {r.id: self._counts[r.ordinal] for r in self.ruleset.rules if self._counts[r.ordinal]},
            "errors": self._errors,
            "correlation_groups": sum(len(c) for c in self.correlations),
            "index_fields": list(self.index.field_names),
            "always_evaluated": len(self.index.always),
        }
