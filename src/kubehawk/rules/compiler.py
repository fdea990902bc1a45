"""Compile a pySigma condition tree into one Python predicate over an :class:`AuditEvent`.

The work is split so that nothing is repeated per event:

1. ``to_ir`` turns the pySigma tree (identifiers and ``1 of``/``all of`` already
   resolved by pySigma) into a small IR of And/Or/Not/Leaf, expanding ``|expand``
   placeholders from the variables and merging OR-ed values of one field into a
   single leaf (one field fetch, one lower-casing, set lookups).
2. ``build`` turns the IR into nested closures; leaves use specialised field getters
   (``head.verb`` is an attribute read, not a path walk) and pre-compiled matchers.
3. ``dnf`` gives the disjunctive normal form of the positive equality constraints,
   used for the rule index and for audit-policy scopes.
4. ``build`` also puts cheap necessary conditions before the real tests (``leaf_guard``):
   a body test first asks the raw JSON bytes (is the key written there, does a value
   written after it pass), a keyword first asks the event as written, an allowlist test
   first asks whether the config has that allowlist; a regex first looks for the literals
   every match contains. They only ever answer "no" when the real test would: see
   "raw-body prefilters" below and tests/rules/test_guards.py.

Semantics (documented in the README): strings compare case-insensitively with ``*``/``?``
wildcards unless ``|cased``; a path through a list matches if any element matches; a
missing field (or JSON null) never equals a value, so ``not sel`` on a missing field is
true; ``field: null`` matches a missing field or JSON null; numbers match ints, floats
and numeric strings; booleans match JSON booleans and the strings true/false.

A body that was not logged is unknown, not empty (:func:`unknown_test`): a test on a path
read from it (``requestObject.*``, ``responseObject.*``, the x.* fields read from a body) is
neither true nor false, and the condition is evaluated in Kleene's three-valued logic; the
rule matches only when the result is true. ``build`` does this without a third value: with
negations pushed to the leaves (the polarity of each leaf), an unknown leaf counts as false
where it is positive and true where it stands under an odd number of ``not`` -- the same
matches as Kleene's logic (And and Or are monotone).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from kubehawk import native
from kubehawk.event import TOP_FIELDS, AuditEvent, split_path

__all__ = ["PRESENT", "And", "CompileError", "Leaf", "Not", "Or", "build", "dnf", "leaf_guard", "leaf_test", "leaves",
           "make_getter", "presence_screen", "to_ir", "unknown_test"]

Pred = Callable[[Any], bool]
Test = Callable[[AuditEvent], bool]


class CompileError(ValueError):
    """A detection that cannot be compiled (the loader adds the file name)."""


# --- IR ----------------------------------------------------------------------------------


@dataclass
class Leaf:
    """One field test. ``atoms`` are OR-ed values of one kind on one field."""

    field: str | None  # None: keyword search over the whole event
    kind: str  # value | null | exists | fieldref | keyword | const
    atoms: list[Any] = field(default_factory=list)
    # leaf_guard(self), computed on first use (see "raw-body prefilters")
    guard: Any = field(default=None, compare=False, repr=False)

    def eq_values(self) -> frozenset[str] | None:
        """The finite set of plain values this leaf requires, or None if it is not one."""
        if self.kind != "value" or self.field is None or not self.atoms:
            return None
        out = set()
        for a in self.atoms:
            if isinstance(a, SigmaString):
                if a.contains_special() or a.contains_placeholder():
                    return None
                out.add(a.to_plain_regex())
            elif isinstance(a, SigmaBool):
                out.add("true" if a.boolean else "false")
            elif isinstance(a, SigmaNumber) and not isinstance(a, SigmaTimestampPart) and isinstance(
                a.number, int
            ):
                out.add(str(a.number))
            else:
                return None
        return frozenset(out)


@dataclass
class And:
    args: list[Any]


@dataclass
class Or:
    args: list[Any]


@dataclass
class Not:
    arg: Any


TRUE = Leaf(None, "const", [True])
FALSE = Leaf(None, "const", [False])


def to_ir(node: Any, variables: Mapping[str, list[str]] | None) -> Any:
    """Convert a pySigma condition tree into the IR (placeholders expanded, ORs merged)."""
    return _simplify(_to_ir(node, variables or {}))


def _to_ir(node: Any, variables: Mapping[str, list[str]]) -> Any:
    # Imported here: sigma.conditions brings pyparsing (~60 ms), which only parsing needs (the
    # rules cache restores the IR without it, see kubehawk.rules.cache).
    from sigma.conditions import (
        ConditionAND,
        ConditionFieldEqualsValueExpression,
        ConditionNOT,
        ConditionOR,
        ConditionValueExpression,
    )

    if isinstance(node, ConditionAND):
        return And([_to_ir(a, variables) for a in node.args])
    if isinstance(node, ConditionOR):
        return Or([_to_ir(a, variables) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Not(_to_ir(node.args[0], variables))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf(node.field, node.value, variables)
    if isinstance(node, ConditionValueExpression):
        return _leaf(None, node.value, variables)
    if node is None:
        return TRUE
    raise CompileError(f"unsupported condition element {type(node).__name__}")


def _expand(value: Any, variables: Mapping[str, list[str]]) -> list[Any]:
    """Resolve ``%name%`` placeholders (``|expand``): a list of values becomes an OR."""
    if not isinstance(value, (SigmaString, SigmaRegularExpression)) or not value.contains_placeholder():
        return [value]

    def values_of(p: Placeholder) -> Any:
        if p.name not in variables:
            known = ", ".join(sorted(variables)) or "none defined"
            raise CompileError(f"unresolved placeholder %{p.name}% (|expand); known variables: {known}")
        vals = variables[p.name]
        if isinstance(vals, (str, int, float)):
            vals = [vals]
        for v in vals:
            # Variable values may use wildcards, like any Sigma value.
            yield str(v) if isinstance(value, SigmaRegularExpression) else SigmaString(str(v))

    out = value.replace_placeholders(values_of)
    if isinstance(value, SigmaCasedString):
        out = [SigmaCasedString.from_sigma_string(s) for s in out]
    elif isinstance(value, SigmaRegularExpression):
        for r in out:
            r.flags = set(value.flags)
    return out


def _leaf(fieldname: str | None, value: Any, variables: Mapping[str, list[str]]) -> Any:
    if isinstance(value, SigmaExpansion):
        atoms = [a for v in value.values for a in _expand(v, variables)]
        return Or([_leaf(fieldname, a, variables) for a in atoms]) if len(atoms) != 1 else _leaf(
            fieldname, atoms[0], variables
        )
    atoms = _expand(value, variables)
    if not atoms:
        return FALSE  # a variable with no values matches nothing
    if len(atoms) > 1:
        return Or([_leaf(fieldname, a, variables) for a in atoms])
    value = atoms[0]
    if fieldname is None:
        if isinstance(value, (SigmaString, SigmaNumber, SigmaRegularExpression, SigmaBool)):
            return Leaf(None, "keyword", [value])
        raise CompileError(f"keyword search with {type(value).__name__} is not supported")
    if isinstance(value, SigmaNull):
        return Leaf(fieldname, "null")
    if isinstance(value, SigmaExists):
        return Leaf(fieldname, "exists", [bool(value.exists)])
    if isinstance(value, SigmaFieldReference):
        return Leaf(fieldname, "fieldref", [value])
    if isinstance(
        value,
        (
            SigmaString,
            SigmaNumber,
            SigmaBool,
            SigmaRegularExpression,
            SigmaCIDRExpression,
            SigmaCompareExpression,
        ),
    ):
        return Leaf(fieldname, "value", [value])
    raise CompileError(f"field {fieldname!r}: value type {type(value).__name__} is not supported")


def _simplify(node: Any) -> Any:
    """Flatten nested And/Or and merge OR-ed value leaves on the same field."""
    if isinstance(node, Not):
        inner = _simplify(node.arg)
        return inner.arg if isinstance(inner, Not) else Not(inner)
    if isinstance(node, (And, Or)):
        cls = type(node)
        flat: list[Any] = []
        for a in node.args:
            a = _simplify(a)
            if isinstance(a, cls):
                flat.extend(a.args)
            else:
                flat.append(a)
        if cls is Or:
            merged: list[Any] = []
            by_field: dict[str, Leaf] = {}
            for a in flat:
                if isinstance(a, Leaf) and a.kind == "value":
                    prev = by_field.get(a.field)
                    if prev is not None:
                        prev.atoms.extend(a.atoms)
                        continue
                    a = Leaf(a.field, a.kind, list(a.atoms))
                    by_field[a.field] = a
                merged.append(a)
            flat = merged
        if len(flat) == 1:
            return flat[0]
        return cls(flat)
    return node


def leaves(node: Any) -> list[Leaf]:
    out: list[Leaf] = []

    def walk(n: Any) -> None:
        if isinstance(n, Leaf):
            out.append(n)
        elif isinstance(n, Not):
            walk(n.arg)
        else:
            for a in n.args:
                walk(a)

    walk(node)
    return out


# --- DNF of positive constraints --------------------------------------------------------

Conjunct = dict[str, Any]  # field -> frozenset of plain values, or PRESENT


class _Present:
    """Marker: the conjunct needs the field to hold some non-null value (any value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PRESENT"


PRESENT = _Present()


def _positive(leaf: Leaf) -> Any:
    if leaf.field is None:
        return None
    if leaf.kind == "value":
        vals = leaf.eq_values()
        return vals if vals is not None else PRESENT
    if leaf.kind == "fieldref" or (leaf.kind == "exists" and leaf.atoms[0]):
        return PRESENT
    return None


def dnf(node: Any, limit: int = 64) -> list[Conjunct] | None:
    """Disjuncts of the positive constraints: plain equality sets or "present" (None if > ``limit``).

    Negations and other tests are treated as "true", so the result over-approximates the
    events the rule can match: safe for indexing and for audit-policy scopes. Two
    constraints on one field in a conjunct are not intersected (a list field such as
    ``user.groups`` can satisfy both with different elements); the smaller set is kept.
    """
    if isinstance(node, Leaf):
        c = _positive(node)
        return [{node.field: c}] if c is not None else [{}]
    if isinstance(node, Not):
        return [{}]
    if isinstance(node, Or):
        out: list[Conjunct] = []
        for a in node.args:
            d = dnf(a, limit)
            if d is None:
                return None
            out.extend(d)
            if len(out) > limit:
                return None
        return out
    acc: list[Conjunct] = [{}]
    for a in node.args:
        d = dnf(a, limit)
        if d is None:
            return None
        if len(acc) * len(d) > limit:
            return None
        nxt = []
        for c1 in acc:
            for c2 in d:
                c = dict(c1)
                for k, v in c2.items():
                    old = c.get(k)
                    if old is None or old is PRESENT or (v is not PRESENT and len(v) < len(old)):
                        c[k] = v
                nxt.append(c)
        acc = nxt
    return acc


# --- field access -------------------------------------------------------------------------

_HEAD_ATTR = {name: operator.attrgetter("head." + name) for name in TOP_FIELDS}


def _joins(parts: tuple[str, ...]) -> list[list[tuple[str, int]]]:
    """For each position i, the dotted keys parts[i:j] (longest first, j > i+1) and their j."""
    n = len(parts)
    return [[(".".join(parts[i:j]), j) for j in range(n, i + 1, -1)] for i in range(n)]


def make_resolver(parts: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    """:func:`kubehawk.event.resolve` for a fixed path, with the dotted keys joined once."""
    if not parts:
        return lambda v: v if type(v) is list else [v]
    joins = _joins(parts)
    n = len(parts)

    def walk(value: Any, i: int, out: list[Any]) -> None:
        while True:
            if i == n:
                if type(value) is list:
                    out.extend(value)
                else:
                    out.append(value)
                return
            t = type(value)
            if t is list:
                for item in value:
                    walk(item, i, out)
                return
            if t is not dict and not isinstance(value, Mapping):
                return
            for joined, j in joins[i]:
                if joined in value:
                    walk(value[joined], j, out)
                    return
            key = parts[i]
            if key not in value:
                return
            value = value[key]
            i += 1

    def resolve_path(value: Any) -> list[Any]:
        out: list[Any] = []
        walk(value, 0, out)
        return out

    return resolve_path


def _derived_keys_plain() -> bool:
    try:
        from kubehawk.enrich import DERIVED_LEVELS
    except ImportError:  # pragma: no cover - enrich is part of the package
        return False
    return not any("." in k for k in DERIVED_LEVELS)


def make_getter(path: str) -> Callable[[AuditEvent], Any]:
    """A function returning the value(s) at ``path``: a scalar, a list of values, or None.

    Specialised for the top-level fields of the typed head; bodies and ``x.*`` follow
    the semantics of :func:`kubehawk.event.resolve` (lists, dotted keys).
    """
    parts = split_path(path)
    top, rest = parts[0], parts[1:]
    if top in ("requestObject", "responseObject"):
        attr = "request_object" if top == "requestObject" else "response_object"
        body = operator.attrgetter(attr)
        if not rest:
            return body
        res = make_resolver(rest)

        def get_body(e: AuditEvent) -> Any:
            b = body(e)
            return None if b is None else res(b)

        return get_body
    if top == "x":
        if not rest:
            return lambda e: e.derived
        if _derived_keys_plain():
            # Derived keys have no dots: read the first one directly, walk the rest.
            first = rest[0]
            sub = make_resolver(rest[1:]) if len(rest) > 1 else None

            def get_derived_fast(e: AuditEvent) -> Any:
                v = e.derived_value(first)
                if v is None or sub is None:
                    return v
                return sub(v)

            return get_derived_fast
        res_x = make_resolver(rest)

        def get_derived(e: AuditEvent) -> Any:
            return res_x(e.derived)

        return get_derived
    if top in TOP_FIELDS:
        head = _HEAD_ATTR[top]
        if not rest:
            return head
        if len(rest) == 1:
            key = rest[0]
            res1 = make_resolver(rest)

            def get_one(e: AuditEvent) -> Any:
                d = head(e)
                if type(d) is dict:
                    return d.get(key)
                return None if d is None else res1(d)

            return get_one
        if top == "annotations":
            # Annotation values are strings, so only the whole dotted key can match.
            joined = ".".join(rest)

            def get_annotation(e: AuditEvent) -> Any:
                d = head(e)
                return d.get(joined) if type(d) is dict else None

            return get_annotation
        resn = make_resolver(rest)

        def get_path(e: AuditEvent) -> Any:
            d = head(e)
            return None if d is None else resn(d)

        return get_path

    def get_extra(e: AuditEvent) -> Any:
        return e.get(parts)

    return get_extra


def field_cost(path: str | None) -> int:
    """Relative cost of reading a field: head < bodies < derived < keyword text."""
    if path is None:
        return 4
    top = split_path(path)[0]
    if top in ("requestObject", "responseObject"):
        return 2
    if top == "x":
        return 3
    return 0 if top in TOP_FIELDS else 1


# --- value matchers -----------------------------------------------------------------------


def _scalar_str(v: Any) -> str | None:
    """The string form a string pattern is compared with (None for objects)."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return str(v)
    return None


def _number(v: Any) -> float | int | None:
    t = type(v)
    if t is int or t is float:
        return v
    if t is str:
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


_CMP = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


def _wildcard_regex(s: SigmaString) -> str:
    out = []
    for p in s.s:
        if isinstance(p, str):
            out.append(re.escape(p))
        elif p is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:  # pragma: no cover - placeholders are expanded before
            raise CompileError(f"unexpanded placeholder in {s}")
    return "".join(out)


class _StringSet:
    """Wildcard strings of one case mode, split into set/prefix/suffix/contains/regex."""

    def __init__(self, lower: bool):
        self.lower = lower
        self.exact: set[str] = set()
        self.prefix: list[str] = []
        self.suffix: list[str] = []
        self.contains: list[str] = []
        self.regex: list[str] = []
        self.anything = False

    def add(self, s: SigmaString) -> None:
        parts = s.s
        fold = (lambda x: x.lower()) if self.lower else (lambda x: x)
        star = SpecialChars.WILDCARD_MULTI
        if not s.contains_special():
            self.exact.add(fold(s.to_plain_regex()))
        elif all(p is star for p in parts):
            self.anything = True
        elif len(parts) == 2 and isinstance(parts[0], str) and parts[1] is star:
            self.prefix.append(fold(parts[0]))
        elif len(parts) == 2 and parts[0] is star and isinstance(parts[1], str):
            self.suffix.append(fold(parts[1]))
        elif len(parts) == 3 and parts[0] is star and isinstance(parts[1], str) and parts[2] is star:
            self.contains.append(fold(parts[1]))
        else:
            self.regex.append(_wildcard_regex(s))

    def pred(self) -> Pred:
        lower = self.lower
        exact = frozenset(self.exact)
        prefix = tuple(self.prefix)
        suffix = tuple(self.suffix)
        contains = tuple(self.contains)
        rx = None
        if self.regex:
            flags = re.DOTALL | (0 if lower else 0)
            rx = re.compile("(?:" + "|".join(self.regex) + r")\Z", flags).match
        if self.anything:
            return lambda v: True
        if not prefix and not suffix and not contains and rx is None:
            if lower:

                def eq_lower(v: Any) -> bool:
                    if type(v) is str:
                        return v.lower() in exact
                    s = _scalar_str(v)
                    return s is not None and s in exact

                return eq_lower

            def eq_cased(v: Any) -> bool:
                s = v if type(v) is str else _scalar_str(v)
                return s is not None and s in exact

            return eq_cased

        def match(v: Any) -> bool:
            s = v if type(v) is str else _scalar_str(v)
            if s is None:
                return False
            if lower:
                s = s.lower()
            if s in exact:
                return True
            if prefix and s.startswith(prefix):
                return True
            if suffix and s.endswith(suffix):
                return True
            for c in contains:
                if c in s:
                    return True
            return rx is not None and rx(s) is not None

        if len(contains) + len(self.regex) > 2:
            return _memo(match)
        return match


_RE2_OPTIONS: Any = None


def compile_regex(pattern: str, flags: set[Any]) -> Callable[[str], Any]:
    """Compile with RE2 (linear time, like pySigma's SafePolicy) when the pattern allows it,
    else with Python ``re`` (backreferences, lookarounds). Returns a ``search`` function."""
    global _RE2_OPTIONS
    prefix = "".join(
        c
        for f, c in (
            (SigmaRegularExpressionFlag.IGNORECASE, "i"),
            (SigmaRegularExpressionFlag.MULTILINE, "m"),
            (SigmaRegularExpressionFlag.DOTALL, "s"),
        )
        if f in flags
    )
    full = f"(?{prefix}){pattern}" if prefix else pattern
    try:
        import re2

        if _RE2_OPTIONS is None:
            opts = re2.Options()
            opts.log_errors = False
            _RE2_OPTIONS = opts
        return re2.compile(full, _RE2_OPTIONS).search
    except ImportError:  # pragma: no cover - google-re2 is a pySigma 2 dependency
        pass
    except Exception:  # noqa: BLE001 - re2 raises its own error type; fall back to re
        pass
    try:
        return re.compile(full).search
    except re.error as e:
        raise CompileError(f"invalid regular expression {pattern!r}: {e}") from None


_ip_cache: dict[str, Any] = {}


def _ip(v: Any) -> Any:
    """Parse an IP address (cached; invalid strings give None)."""
    ip = _ip_cache.get(v)
    if ip is None and v not in _ip_cache:
        try:
            ip = ipaddress.ip_address(v.strip())
        except (ValueError, AttributeError):
            ip = None
        if len(_ip_cache) > 50_000:
            _ip_cache.clear()
        _ip_cache[v] = ip
    return ip


def _timestamp_part(v: Any, part: TimestampPart) -> int | None:
    if type(v) is not str:
        return None
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    if part is TimestampPart.MINUTE:
        return t.minute
    if part is TimestampPart.HOUR:
        return t.hour
    if part is TimestampPart.DAY:
        return t.day
    if part is TimestampPart.WEEK:
        return t.isocalendar()[1]
    if part is TimestampPart.MONTH:
        return t.month
    return t.year


def value_pred(atoms: list[Any]) -> Pred:
    """One predicate over a single (non-null, non-list) value for OR-ed atoms."""
    ci = _StringSet(lower=True)
    cs = _StringSet(lower=False)
    others: list[Pred] = []
    for a in atoms:
        if isinstance(a, SigmaCasedString):
            cs.add(a)
        elif isinstance(a, SigmaString):
            ci.add(a)
        elif isinstance(a, SigmaTimestampPart):
            others.append(_ts_pred(a))
        elif isinstance(a, SigmaNumber):
            others.append(_num_pred(a.number))
        elif isinstance(a, SigmaBool):
            others.append(_bool_pred(a.boolean))
        elif isinstance(a, SigmaRegularExpression):
            others.append(_regex_pred(a))
        elif isinstance(a, SigmaCIDRExpression):
            others.append(_cidr_pred(a))
        elif isinstance(a, SigmaCompareExpression):
            others.append(_cmp_pred(a))
        else:  # pragma: no cover - to_ir filters the types
            raise CompileError(f"unsupported value {a!r}")
    preds = []
    for ss in (ci, cs):
        if ss.exact or ss.prefix or ss.suffix or ss.contains or ss.regex or ss.anything:
            preds.append(ss.pred())
    preds.extend(others)
    if len(preds) == 1:
        return preds[0]
    ptuple = tuple(preds)

    def any_pred(v: Any) -> bool:
        for p in ptuple:  # noqa: SIM110 - a plain loop is faster than any(<genexpr>)
            if p(v):
                return True
        return False

    return any_pred


def _ts_pred(a: SigmaTimestampPart) -> Pred:
    part, n = a.timestamp_part, a.number
    return lambda v: _timestamp_part(v, part) == n


def _num_pred(n: float) -> Pred:
    def p(v: Any) -> bool:
        x = _number(v)
        return x is not None and x == n

    return p


def _bool_pred(b: bool) -> Pred:
    text = "true" if b else "false"

    def p(v: Any) -> bool:
        if type(v) is bool:
            return v is b
        return type(v) is str and v.strip().lower() == text

    return p


def _regex_pred(a: SigmaRegularExpression) -> Pred:
    pattern = str(a.regexp)
    search = compile_regex(pattern, a.flags)
    lits = None if SigmaRegularExpressionFlag.IGNORECASE in a.flags else regex_literals(pattern)
    if lits is not None:
        # Every match contains one of these strings: most values (image names...) are ruled out
        # by a plain-literal search, far cheaper than a call into RE2.
        has_literal = re.compile("|".join(re.escape(x) for x in lits)).search

        def p(v: Any) -> bool:
            s = v if type(v) is str else _scalar_str(v)
            return s is not None and has_literal(s) is not None and search(s) is not None

        return _memo(p)

    def p(v: Any) -> bool:
        s = v if type(v) is str else _scalar_str(v)
        return s is not None and search(s) is not None

    return _memo(p)


def _regex_required(items: Any) -> set[str] | None:
    """Strings one of which every match of the parsed regex contains, or None when unknown."""
    from re import _constants as c  # type: ignore[attr-defined]

    candidates: list[set[str]] = []
    run: list[str] = []

    def close() -> None:
        if run:
            candidates.append({"".join(run)})
            run.clear()

    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        close()
        r: set[str] | None = None
        if op is c.SUBPATTERN:
            if av[1] or av[2]:  # inline flags change how the letters match
                return None
            r = _regex_required(av[3])
        elif op is c.BRANCH:
            alts = [_regex_required(a) for a in av[1]]
            r = None if any(a is None for a in alts) else set().union(*alts)  # type: ignore[arg-type]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
            r = _regex_required(av[2]) if av[0] >= 1 else None
        elif op is getattr(c, "ATOMIC_GROUP", None):
            r = _regex_required(av)
        if r:
            candidates.append(r)
    close()
    if not candidates:
        return None
    # the most selective requirement: the longest shortest literal, then the fewest alternatives
    return max(candidates, key=lambda s: (min(len(x) for x in s), -len(s)))


def regex_literals(pattern: str) -> list[str] | None:
    """Strings one of which every match of ``pattern`` (case-sensitive) contains, or None.

    Read from Python's parse of the pattern: only literal characters outside optional parts
    count, so a construct the two engines read differently can only lose a literal; a pattern
    Python cannot parse, or with inline flags (``(?i)``), gets None.
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern)
    except Exception:  # noqa: BLE001 - RE2-only syntax: no literals
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    found = _regex_required(list(parsed))
    return sorted(found) if found else None


MEMO_SIZE = 4096


def _memo(pred: Pred) -> Pred:
    """Remember results per string value: user agents, user names, images repeat a lot.

    Bounded: the memo is cleared when full, so high-cardinality fields cost one dict
    store per value and nothing more.
    """
    memo: dict[str, bool] = {}

    def memoized(v: Any) -> bool:
        if type(v) is not str:
            return pred(v)
        r = memo.get(v)
        if r is None:
            r = pred(v)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[v] = r
        return r

    return memoized


def _cidr_pred(a: SigmaCIDRExpression) -> Pred:
    net = a.network

    def p(v: Any) -> bool:
        if type(v) is not str:
            return False
        ip = _ip(v)
        return ip is not None and ip.version == net.version and ip in net

    return p


def _cmp_pred(a: SigmaCompareExpression) -> Pred:
    op = _CMP[a.op]
    n = a.number.number

    def p(v: Any) -> bool:
        x = _number(v)
        return x is not None and op(x, n)

    return p


# --- raw-body prefilters --------------------------------------------------------------------
#
# A positive test on a body field (``requestObject.*``, ``responseObject.*``, and the x.* fields
# read from the pod spec in a body) can only be true when the raw JSON of that body holds the
# field's last key; and the values it can see are among the values written after that key. So
# before a body is decoded (and x.pod_spec built) the raw bytes are asked first: is the key
# there at all (one substring search), and does any value written after ``"key":`` pass the
# test's own value predicate. These checks are necessary conditions, never sufficient: when
# one passes, the real test still decides. They answer "maybe" whenever the bytes could hide
# something: a backslash in the body (``\u0070rivileged`` is "privileged"; without backslashes
# every quote delimits a string, so the scan is exact), a value that is a list, a number or
# follows whitespace, the key also written as a string value, a dotted key ending in the key
# (Sigma paths match dotted keys), and, for x.* fields, a JSON-patch body (keys inside
# pointers such as ``/spec/containers/0/securityContext/privileged``: still found by the
# presence check, not by the value scan). What is asked of a body is remembered for the event,
# so rules sharing a key search once.

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Keys in (nearly) every pod or workload body: a presence check would pass anyway.
_COMMON_KEYS = frozenset({
    "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "uid", "spec", "template",
    "containers", "image", "ownerReferences", "controller", "volumes", "volumeMounts", "mountPath",
    "securityContext", "resources", "env", "value", "ports", "containerPort", "data", "type", "status",
})
_OBJECT: dict[str, Any] = {}  # stands for any object value: no value predicate looks inside one


class _Body:
    """The raw bytes of one body of the current event; what the checks ask is computed once."""

    __slots__ = ("raw", "memo", "_escaped")

    def __init__(self, raw: bytes):
        self.raw = raw
        self.memo: dict[Any, Any] = {}
        self._escaped: bool | None = None

    def escaped(self) -> bool:
        """Does the body hold any backslash (an escape could spell a key or value differently)?"""
        e = self._escaped
        if e is None:
            e = self._escaped = b"\\" in self.raw
        return e

    def has(self, key: bytes) -> bool:
        """Could the body hold the key (anywhere, also inside a JSON-patch pointer)?"""
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = key in self.raw or self.escaped()
        return hit

    def search(self, keys: tuple[bytes, ...], search: Callable[[bytes], Any]) -> Any:
        """The positions in ``keys`` of the keys :meth:`has` finds, by one ``search`` of the body
        (:func:`_key_searcher`); what it finds is remembered for ``has``."""
        memo = self.memo
        if self.escaped():
            for kb in keys:
                memo[kb] = True
            return range(len(keys))
        hits = search(self.raw)
        for i, kb in enumerate(keys):
            memo[kb] = i in hits
        return hits

    def values(self, key: bytes, dotted: bool, patch_matters: bool) -> list[Any] | None:
        """Every value written after ``"key":`` (strings, booleans; objects as ``{}``; nulls left
        out), or None when the bytes cannot tell (see above)."""
        mk = (key, dotted, patch_matters)
        memo = self.memo
        if mk in memo:
            return memo[mk]
        out = memo[mk] = self._scan(key, dotted, patch_matters)
        return out

    def _scan(self, key: bytes, dotted: bool, patch_matters: bool) -> list[Any] | None:
        raw = self.raw
        if self.escaped():
            return None
        if patch_matters and raw[:64].lstrip()[:1] == b"[":
            return None
        if dotted and b"." + key + b'"' in raw:
            return None
        if native.needles is not None:  # the loop below, in C
            return native.needles.written_values(raw, key, _OBJECT)
        q = b'"' + key + b'":'
        size = len(q)
        out: list[Any] = []
        n = 0
        i = raw.find(q)
        while i >= 0:
            n += 1
            j = i + size
            c = raw[j:j + 1]
            if c == b'"':
                k = raw.find(b'"', j + 1)
                if k < 0:
                    return None
                out.append(raw[j + 1:k].decode("utf-8", "surrogateescape"))
                j = k + 1
            elif c == b"t" and raw.startswith(b"true", j):
                out.append(True)
            elif c == b"f" and raw.startswith(b"false", j):
                out.append(False)
            elif c == b"{":
                out.append(_OBJECT)
            elif not (c == b"n" and raw.startswith(b"null", j)):
                return None  # a number, a list, whitespace: not read here
            i = raw.find(q, j)
        if raw.count(b'"' + key + b'"') != n:
            return None  # also written as a string value, or followed by whitespace
        return out


_UNSET_BODY: Any = object()
# [event, request body, response body, pod-spec body] of the last event asked about: held until
# the next event, so its identity cannot be reused meanwhile; a new event gets a new cell.
_body_cell: list[list[Any]] = [[None, _UNSET_BODY, _UNSET_BODY, _UNSET_BODY]]
_REQUEST, _RESPONSE, _SPEC = 1, 2, 3


def _body_of(raw: msgspec.Raw) -> _Body | None:
    n = len(raw)
    if n == 0:
        return None
    b = bytes(raw)
    if n == 4 and b == b"null":
        return None
    return _Body(b)


def _fill(cell: list[Any], slot: int, e: AuditEvent) -> _Body | None:
    """Body ``slot`` of the event: the request's, the response's, or the one x.pod_spec is read
    from (the request's when it has one, else the response's)."""
    if slot == _SPEC:
        b = _fill(cell, _REQUEST, e)
        if b is None:
            b = _fill(cell, _RESPONSE, e)
    else:
        b = cell[slot]
        if b is not _UNSET_BODY:
            return b
        b = _body_of(e.head.requestObject if slot == _REQUEST else e.head.responseObject)
    cell[slot] = b
    return b


def _body(e: AuditEvent, slot: int) -> _Body | None:
    cell = _body_cell[0]
    if cell[0] is not e:
        cell = _body_cell[0] = [e, _UNSET_BODY, _UNSET_BODY, _UNSET_BODY]
    b = cell[slot]
    return _fill(cell, slot, e) if b is _UNSET_BODY else b


def leaf_guard(leaf: Leaf) -> Test | None:
    """A cheap necessary condition for ``leaf`` to be true (see above), or None."""
    if leaf.kind == "keyword":
        a = leaf.atoms[0]
        if not isinstance(a, SigmaString):
            return None
        pieces = _plain_pieces(a)
        return _keyword_prefilter(max(pieces, key=len), not isinstance(a, SigmaCasedString)) if pieces else None
    if leaf.field is None:
        return None
    positive = leaf.kind == "value" or (leaf.kind == "exists" and leaf.atoms and leaf.atoms[0])
    if not positive:
        return None
    parts = split_path(leaf.field)
    top, rest = parts[0], parts[1:]
    if not rest:
        return None
    transform: Callable[[Any], Any] | None = None
    if top == "x":
        from kubehawk.enrich import SPEC_DERIVED, derived_possible

        possible = derived_possible(rest)
        if possible is not None:
            return _config_guard(possible)
        if rest[0] not in SPEC_DERIVED:
            return None
        slot, patch_matters = _SPEC, True
        key, transform = SPEC_DERIVED[rest[0]]
        dotted = key is None
        if len(rest) > 1:
            key, transform, dotted = rest[-1], None, True
        if key is None:
            return None
    elif top in ("requestObject", "responseObject"):
        slot = _REQUEST if top == "requestObject" else _RESPONSE
        key, dotted, patch_matters = rest[-1], len(rest) > 1, False
    else:
        return None
    if not key or not all(ch in _KEY_CHARS for ch in key):
        return None
    kb = key.encode()
    check_presence = key not in _COMMON_KEYS
    pred = value_pred(leaf.atoms) if leaf.kind == "value" else None
    if pred is None and not check_presence:
        return None

    def guard(e: AuditEvent) -> bool:
        cell = _body_cell[0]
        b = cell[slot] if cell[0] is e else _UNSET_BODY
        if b is _UNSET_BODY:
            b = _body(e, slot)
        if b is None:
            return False  # no body: the field is missing
        if check_presence:
            hit = b.memo.get(kb)
            if hit is None:
                hit = b.has(kb)
            if not hit:
                return False
        if pred is None:
            return True
        values = b.values(kb, dotted, patch_matters)
        if values is None:
            return True
        for v in values:
            if transform is not None and v.__class__ is str:
                v = transform(v)
            if pred(v):
                return True
        return False

    guard.cost = 1 if check_presence else 2  # type: ignore[attr-defined] # a scan costs more than a search
    # the screen's unit: the key alone when that is all the guard asks, else the guard itself
    guard.keys = frozenset({(slot, kb) if pred is None else guard})  # type: ignore[attr-defined]
    guard.presence = (slot, kb) if check_presence else None  # type: ignore[attr-defined]
    return guard


def presence_screen(entries: list[tuple[Any, Test | None]]) -> Callable[[AuditEvent], list[Any]] | None:
    """One pass over the body checks that the tests of ``entries`` (``(rule, test)``) start with,
    instead of each test making its own: ``screen(e)`` is the entries still worth testing.

    A test built with guards may say (its ``keys``) that it can only pass when one of some
    checks does: a key in a body (``has``), or a leaf guard on a key's written values. Pod and
    workload rules mostly do (``privileged``, ``hostPID``, the images...), and on an ordinary
    pod all of them fail: the screen makes each check once and drops those rules without
    calling them. None when fewer than two tests would be screened. The lists are remembered
    per set of checks passed.
    """
    masks: list[int] = []
    bits: dict[Any, int] = {}
    for _, test in entries:
        keys = _keys(test) if test is not None else None
        mask = 0
        for k in keys or ():
            mask |= bits.setdefault(k, 1 << len(bits))
        masks.append(mask)
    if sum(1 for m in masks if m) < 2:
        return None
    # key searches first, one pass per body; a guard is asked only when the key it searches
    # for first was found
    for k in list(bits):
        presence = getattr(k, "presence", None) if k.__class__ is not tuple else None
        if presence is not None:
            bits.setdefault(presence, 1 << len(bits))
    by_slot: dict[int, list[tuple[bytes, int]]] = {}
    for k, bit in bits.items():
        if k.__class__ is tuple:
            by_slot.setdefault(k[0], []).append((k[1], bit))
    searches = tuple((slot, tuple(kb for kb, _ in found), tuple(bit for _, bit in found),
                      _key_searcher(tuple(kb for kb, _ in found)))
                     for slot, found in by_slot.items())
    guards = tuple((bit, k, bits[k.presence] if getattr(k, "presence", None) is not None else 0)
                   for k, bit in bits.items() if k.__class__ is not tuple)
    pairs = tuple(zip(entries, masks, strict=True))
    kept: dict[int, list[Any]] = {}

    def screen(e: AuditEvent) -> list[Any]:
        found = 0
        for slot, keys, kbits, search in searches:
            b = _body(e, slot)
            if b is not None:
                for i in b.search(keys, search):
                    found |= kbits[i]
        for bit, guard, need in guards:
            if (not need or found & need) and guard(e):
                found |= bit
        out = kept.get(found)
        if out is None:
            out = [entry for entry, mask in pairs if not mask or mask & found]
            if len(kept) < 4096:
                kept[found] = out
        return out

    return screen


_searchers: dict[tuple[tuple[bytes, ...], bool], Callable[[bytes], Any]] = {}


def _key_searcher(keys: tuple[bytes, ...], fold: bool = False) -> Callable[[bytes], Any]:
    """``search(raw)``: the positions in ``keys`` of those found in ``raw`` (substrings, as
    :meth:`_Body.has` finds them), in one pass: the compiled needle search
    (:mod:`kubehawk.native`), else an RE2 set of literals (byte semantics), else one ``in`` per
    key. ``fold``: ASCII letters match either case (the keys are lower-case; ``raw`` is ASCII,
    which the caller checks)."""
    search = _searchers.get((keys, fold))
    if search is None and native.needles is not None and len(keys) <= 64:
        search = _searchers[(keys, fold)] = native.needles.Needles(keys, fold).search
    if search is None:
        try:
            import re2

            opts = re2.Options()
            opts.encoding = re2.Options.Encoding.LATIN1
            opts.case_sensitive = not fold
            opts.log_errors = False
            rs = re2.Set.SearchSet(opts)
            for kb in keys:
                rs.Add(re.escape(kb))
            rs.Compile()
            match = rs.Match

            def search(raw: bytes) -> Any:
                return match(raw) or ()
        except ImportError:
            def search(raw: bytes) -> Any:
                text = raw.lower() if fold else raw
                return [i for i, kb in enumerate(keys) if kb in text]
        search = _searchers[(keys, fold)] = search
    return search


def _config_guard(possible: Callable[[Any], bool]) -> Test:
    """A derived field that exists only under some configs: asked once per config."""
    last: list[Any] = [object(), False]

    def guard(e: AuditEvent) -> bool:
        cfg = e._ctx
        if cfg is not last[0]:
            last[0], last[1] = cfg, possible(cfg)
        return last[1]

    guard.cost = 0  # type: ignore[attr-defined]
    return guard


def _necessary(node: Any, covered: set[int], done: frozenset[int] | set[int] = frozenset()) -> Test | None:
    """A necessary condition of ``node`` made of leaf guards, or None; adds the leaves it checks
    to ``covered`` (their own tests need not check again). Leaves in ``done`` were checked by
    an enclosing node already."""
    t = type(node)
    if t is Leaf:
        g = _guard_of(node) if id(node) not in done else None
        if g is not None:
            covered.add(id(node))
        return g
    if t is Not:
        return None
    if t is And:
        found = [g for g in (_necessary(a, covered, done) for a in node.args) if g is not None]
        ts = tuple(sorted(found, key=_guard_cost))
        if not ts:
            return None
        if len(ts) == 1:
            return ts[0]

        def all_guards(e: AuditEvent) -> bool:
            for g in ts:  # noqa: SIM110 - hot path
                if not g(e):
                    return False
            return True

        # any part's checks will do: the cheapest (a guard that scans values on every body costs
        # more than several key searches, which the screen makes in one pass), then the fewest
        all_guards.keys = min((k for k in map(_keys, ts) if k), key=_screen_cost, default=None)  # type: ignore[attr-defined]
        return all_guards
    mine: set[int] = set()
    parts = [_necessary(a, mine, done) for a in node.args]
    if any(p is None for p in parts):
        return None
    covered |= mine
    words = [getattr(p, "keyword", None) for p in parts]
    if len(words) > 2 and all(w is not None for w in words):
        return _keywords_prefilter(words)  # type: ignore[arg-type]
    ors = tuple(parts)  # type: ignore[arg-type]

    def any_guard(e: AuditEvent) -> bool:
        for g in ors:  # noqa: SIM110 - hot path
            if g(e):
                return True
        return False

    any_guard.cost = max(_guard_cost(g) for g in ors)  # type: ignore[attr-defined]
    keys = [_keys(g) for g in ors]
    any_guard.keys = frozenset().union(*keys) if all(keys) else None  # type: ignore[attr-defined]
    return any_guard


def _keys(t: Test) -> frozenset[Any] | None:
    """What ``t`` needs one of to pass, or None (see :func:`presence_screen`): body keys
    ``(slot, key)`` present, or leaf guards (a key's written values) passing."""
    k = getattr(t, "keys", None)
    return k if k.__class__ is frozenset else None


def _screen_cost(keys: frozenset[Any]) -> tuple[int, int]:
    """(1 if a check scans a body's values whatever it holds, else 0; how many checks): a key
    search is one pass for all keys; a guard that needs a key found first is asked only then."""
    scans = any(k.__class__ is not tuple and getattr(k, "presence", None) is None for k in keys)
    return int(scans), len(keys)


def _guard_cost(g: Test) -> int:
    """How much a guard costs (config 0, key search 1, value scan 2): an And asks the cheap first."""
    return getattr(g, "cost", 1)


def _guard_of(leaf: Leaf) -> Test | None:
    g = leaf.guard
    if g is None:
        g = leaf.guard = leaf_guard(leaf) or _NO_GUARD
    return None if g is _NO_GUARD else g


def _no_guard(e: AuditEvent) -> bool:  # pragma: no cover - a marker, never called
    return True


_NO_GUARD: Test = _no_guard


# --- a body that was not logged ------------------------------------------------------------


def unknown_test(leaf: Leaf) -> Test | None:
    """For a leaf read from a body: ``unknown(e)``, true when that body was not logged (the
    leaf is then neither true nor false; see the module docstring), else None. The body
    itself (``requestObject|exists``) is known at every level: only paths into it are not."""
    if leaf.field is None or leaf.kind in ("const", "keyword"):
        return None
    parts = split_path(leaf.field)
    if len(parts) < 2:
        return None
    top = parts[0]
    if top in ("requestObject", "responseObject"):
        slot = _REQUEST if top == "requestObject" else _RESPONSE
        return lambda e: _body(e, slot) is None
    if top == "x":
        from kubehawk.enrich import DERIVED_UNKNOWN

        return DERIVED_UNKNOWN.get(parts[1])
    return None


def _reads_body(node: Any) -> bool:
    return any(unknown_test(lf) is not None for lf in leaves(node))


# --- building the predicate ---------------------------------------------------------------


def _any_value(getter: Callable[[AuditEvent], Any], pred: Pred) -> Test:
    def test(e: AuditEvent) -> bool:
        v = getter(e)
        if v is None:
            return False
        if type(v) is list:
            for x in v:  # noqa: SIM110 - hot path
                if x is not None and pred(x):
                    return True
            return False
        return pred(v)

    return test


def _values(v: Any) -> list[Any]:
    if v is None:
        return []
    if type(v) is list:
        return [x for x in v if x is not None]
    return [v]


_text_cache: list[Any] = [None, "", ""]


def event_text(e: AuditEvent) -> tuple[str, str]:
    """The event as JSON text and its lower-case form (cached for the current event)."""
    if _text_cache[0] is not e:
        text = msgspec.json.encode(e.to_dict()).decode()
        _text_cache[0], _text_cache[1], _text_cache[2] = e, text, text.lower()
    return _text_cache[1], _text_cache[2]


# [event, [the event as written: its line, else the head encoded with the raw bodies; whether it
# is ASCII; whether it holds a backslash-u escape; whether it holds an escaped slash; its
# lower-cased form, made when first asked]] of the last event a keyword asked about.
_line_cell: list[Any] = [(None, None)]
_STRUCTURAL = frozenset('"\\,:{}[]')


def _event_line(e: AuditEvent) -> list[Any]:
    cell = _line_cell[0]
    if cell[0] is e:
        return cell[1]
    raw = e._line
    if raw is not None and (b"\\" not in raw or _ANY_ESCAPE(raw) is None):  # a byte search first
        info = [raw, raw.isascii(), False, False, None]  # the line, and it holds neither escape
    else:
        # no line, or one that holds escapes (Go writes & < > as \u0026...): the head
        # re-encoded holds none, its bodies as they were written (an absent one as nothing)
        raw = msgspec.json.encode(e.head)
        esc = b"\\" in raw
        info = [raw, raw.isascii(), esc and _U_ESCAPE(raw) is not None, esc and _SLASH_ESCAPE(raw) is not None,
                None]
    _line_cell[0] = (e, info)
    return info


# Searches for two-byte needles: Python's `re` finds them about three times faster than `in`.
_ANY_ESCAPE = re.compile(rb"\\[u/]").search
_U_ESCAPE = re.compile(rb"\\u").search
_SLASH_ESCAPE = re.compile(rb"\\/").search


def _keyword_prefilter(lit: str, lower: bool) -> Test | None:
    """A necessary condition for the keyword text ``lit`` to be in :func:`event_text`, read from
    the event as written (no body decoded, nothing re-encoded), or None.

    The event as written is the line it was read from (the file reader keeps it) unless that
    holds an escape, else the head encoded with its bodies as they came. Every token of
    :func:`event_text` is in it: the line may hold more (fields kubehawk does not read), which
    can only say "maybe" more often. A literal without JSON punctuation, backslashes or
    control characters can only be found inside one token (a string's text, a number,
    true/false/null); a string's text differs between the two forms only where the written
    one used an escape (``\\uXXXX``: answer "maybe"; ``\\/``: "maybe" for literals with a
    slash), and numbers are re-written (``1e3`` -> ``1000.0``), so literals that could be part
    of a number are not checked. For a case-insensitive literal the text must be ASCII
    (Unicode lower-casing maps a few non-ASCII letters to ASCII ones).
    """
    if not lit or _numeric(lit) or any(c in _STRUCTURAL or ord(c) < 0x20 for c in lit):
        return None
    needle = (lit.lower() if lower else lit).encode()
    slash = b"/" in needle

    def prefilter(e: AuditEvent) -> bool:
        info = _event_line(e)
        if info[2] or (slash and info[3]):
            return True
        if lower:
            if not info[1]:
                return True
            low = info[4]
            if low is None:
                low = info[4] = info[0].lower()
            return needle in low
        return needle in info[0]

    prefilter.keyword = (needle, lower)  # type: ignore[attr-defined] # several merge into one search
    return prefilter


def _keywords_prefilter(words: list[tuple[bytes, bool]]) -> Test:
    """One pass for an Or of keyword prefilters (:func:`_keyword_prefilter`): one search for
    any of the words (a set of literals, :func:`_key_searcher`; the case-insensitive ones
    folded by the search, ASCII text only) instead of one substring search per word."""
    ci = tuple(sorted({w for w, lower in words if lower}))
    cs = tuple(sorted({w for w, lower in words if not lower}))
    any_ci = _key_searcher(ci, fold=True) if ci else None
    any_cs = _key_searcher(cs) if cs else None
    slash = any(b"/" in w for w, _ in words)

    def prefilter(e: AuditEvent) -> bool:
        raw, ascii_, escaped, slashed, _ = _event_line(e)
        if escaped or (slash and slashed) or (any_ci is not None and not ascii_):
            return True
        return bool((any_ci is not None and any_ci(raw)) or (any_cs is not None and any_cs(raw)))

    return prefilter


def _numeric(lit: str) -> bool:
    """Could ``lit`` be (part of) how a number is written (``1000.0``, ``1e+16``)?"""
    return all(c in "0123456789.+-eE" for c in lit)


def _keyword(a: Any) -> Test:
    if isinstance(a, SigmaRegularExpression):
        search = compile_regex(str(a.regexp), a.flags)
        return lambda e: search(event_text(e)[0]) is not None
    if isinstance(a, SigmaString):
        # Keywords are "contains" searches over the raw event.
        lower = not isinstance(a, SigmaCasedString)
        idx = 1 if lower else 0  # event_text: (text, lower-cased text)
        pieces = _plain_pieces(a)
        if pieces is not None and len(pieces) == 1:
            # a plain word: one substring search in the text (no second lower-casing of it)
            word = pieces[0].lower() if lower else pieces[0]
            full: Test = lambda e: word in event_text(e)[idx]  # noqa: E731
        else:
            parts = list(a.s)
            if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
                parts.insert(0, SpecialChars.WILDCARD_MULTI)
            if parts[-1] is not SpecialChars.WILDCARD_MULTI:
                parts.append(SpecialChars.WILDCARD_MULTI)
            s = SigmaString()
            s.s = parts
            ss = _StringSet(lower=lower)
            ss.add(s)
            pred = ss.pred()
            full = lambda e: pred(event_text(e)[idx])  # noqa: E731
        return full
    text = str(a.number if isinstance(a, SigmaNumber) else str(a.boolean).lower())
    return lambda e: text in event_text(e)[1]


def _plain_pieces(s: SigmaString) -> list[str] | None:
    """The text between the wildcards of ``s`` (None: it holds something else)."""
    pieces, run = [], []
    for p in s.s:
        if isinstance(p, str):
            run.append(p)
        elif p is SpecialChars.WILDCARD_MULTI or p is SpecialChars.WILDCARD_SINGLE:
            pieces.append("".join(run))
            run = []
        else:
            return None
    pieces.append("".join(run))
    return [x for x in pieces if x]


def leaf_test(leaf: Leaf) -> Test:
    """The compiled test of one leaf, without its guard (:func:`build` adds the guards itself)."""
    if leaf.kind == "const":
        value = bool(leaf.atoms[0])
        return lambda e: value
    if leaf.kind == "keyword":
        return _keyword(leaf.atoms[0])
    getter = make_getter(leaf.field)
    if leaf.kind == "value":
        return _any_value(getter, value_pred(leaf.atoms))
    if leaf.kind == "null":

        def is_null(e: AuditEvent) -> bool:
            v = getter(e)
            if v is None:
                return True
            if type(v) is list:
                return not v or None in v
            return False

        return is_null
    if leaf.kind == "exists":
        want = leaf.atoms[0]

        def exists(e: AuditEvent) -> bool:
            return bool(_values(getter(e))) is want

        return exists
    if leaf.kind == "fieldref":
        ref: SigmaFieldReference = leaf.atoms[0]
        other = make_getter(ref.field)
        sw, ew = ref.starts_with, ref.ends_with

        def fieldref(e: AuditEvent) -> bool:
            mine = [s.lower() for s in map(_scalar_str, _values(getter(e))) if s is not None]
            if not mine:
                return False
            for o in _values(other(e)):
                s = _scalar_str(o)
                if s is None:
                    continue
                s = s.lower()
                for m in mine:
                    if (sw and m.startswith(s)) or (ew and m.endswith(s)) or (not sw and not ew and m == s):
                        return True
            return False

        return fieldref
    raise CompileError(f"unknown leaf kind {leaf.kind}")  # pragma: no cover


def _cost(node: Any) -> int:
    if isinstance(node, Leaf):
        base = field_cost(node.field)
        if node.kind == "value" and any(isinstance(a, SigmaRegularExpression) for a in node.atoms):
            base += 1
        return base
    if isinstance(node, Not):
        return _cost(node.arg)
    return max((_cost(a) for a in node.args), default=0)


def build(node: Any, leaf: Callable[[Leaf], Test] | None = None, guards: bool = True,
          _covered: frozenset[int] | set[int] = frozenset(), negated: bool = False) -> Test:
    """Closures for the IR; cheap tests first inside And/Or (the tests are pure).

    ``leaf`` supplies the test of each leaf (default: :func:`leaf_test`); the rule index passes
    tests shared between rules. With ``guards``, a positive body test first checks the raw body,
    and an And checks the guards of all its body tests before any of them decodes a body
    (:func:`leaf_guard`). ``negated``: ``node`` stands under an odd number of ``not`` (a leaf on
    a body that was not logged is then true, so that the ``not`` makes it false).
    """
    if isinstance(node, Leaf):
        test = leaf(node) if leaf is not None else leaf_test(node)
        g = _guard_of(node) if guards and id(node) not in _covered else None
        if g is not None:
            plain = test
            test = lambda e: g(e) and plain(e)  # noqa: E731
            test.keys = _keys(g)  # type: ignore[attr-defined]
        unknown = unknown_test(node)
        if unknown is None or not (negated or node.kind == "null" or (node.kind == "exists" and not node.atoms[0])):
            return test  # a positive value test is false on a missing body already
        known = test
        return lambda e: negated if unknown(e) else known(e)
    if isinstance(node, Not):
        inner = build(node.arg, leaf, guards, _covered, not negated)
        return lambda e: not inner(e)
    pre = None
    if guards and not (negated and _reads_body(node)):  # leaf guards say "false" on a missing body
        covered = set(_covered)
        pre = _necessary(node, covered, _covered)
        if pre is not None:
            _covered = covered
    test = _build_nary(node, leaf, guards, _covered, negated)
    if pre is None:
        return test
    guarded = lambda e: pre(e) and test(e)  # noqa: E731
    guarded.keys = _keys(pre)  # type: ignore[attr-defined]
    return guarded


def _build_nary(node: Any, leaf: Callable[[Leaf], Test] | None, guards: bool, covered: Any,
                negated: bool = False) -> Test:
    args = sorted(node.args, key=_cost)
    tests = [build(a, leaf, guards, covered, negated) for a in args]
    if isinstance(node, And):
        if len(tests) == 2:
            a, b = tests
            return lambda e: a(e) and b(e)
        if len(tests) == 3:
            a, b, c = tests
            return lambda e: a(e) and b(e) and c(e)
        ts = tuple(tests)

        def all_of(e: AuditEvent) -> bool:
            for t in ts:  # noqa: SIM110 - hot path
                if not t(e):
                    return False
            return True

        return all_of
    if len(tests) == 2:
        a, b = tests
        return lambda e: a(e) or b(e)
    ts = tuple(tests)

    def any_of(e: AuditEvent) -> bool:
        for t in ts:  # noqa: SIM110 - hot path
            if t(e):
                return True
        return False

    return any_of
