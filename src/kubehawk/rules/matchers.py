"""Value matchers: the test one Sigma leaf applies to a single value of its field.

Takes the OR-ed values of one leaf (strings with wildcards, cased strings, numbers, booleans,
regular expressions, CIDR networks, comparisons, timestamp parts) and gives one predicate over
one value, whatever its JSON type. Strings compare case-insensitively unless ``|cased``; plain
strings become set lookups and wildcard strings prefix/suffix/contains tests before any
regular expression is built; results over repeating strings are memoised.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import operator
import re
from typing import Any

from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from kubehawk.rules.ir import CompileError, Pred
from kubehawk.rules.regex import compile_regex, regex_literals

__all__ = ["MEMO_SIZE", "value_pred"]


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


# A JSON number, as the grammar writes it: what a string must hold to match a numeric value.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?").fullmatch


def _number(v: Any) -> float | int | None:
    """The number ``v`` holds: a JSON number (not a boolean), or a string written exactly as a
    JSON number (``"403"``, ``"403.0"``, ``"4.03e2"``; not ``" 403 "``, ``"0403"``, ``"1_000"``,
    ``"inf"``, ``"nan"``), else None."""
    t = type(v)
    if t is int or t is float:
        return v
    if t is str and len(v) < 64 and _JSON_NUMBER(v) is not None:
        return float(v) if ("." in v or "e" in v or "E" in v) else int(v)
    return None


_CMP = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


def _wildcard_regex(s: SigmaString, lower: bool = False) -> str:
    """The regex of a wildcard string; ``lower``: its text lower-cased, as the values it is
    matched with are (a case-insensitive ``CR?ATE`` is ``cr.ate``)."""
    out = []
    for p in s.s:
        if isinstance(p, str):
            out.append(re.escape(p.lower() if lower else p))
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
            self.regex.append(_wildcard_regex(s, self.lower))

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
        return type(v) is str and v.lower() == text

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
