"""Regular expressions of ``|re`` values and keywords: compiling them, and the literals they need.

Takes a Sigma regular expression and its flags and gives a ``search`` function, with RE2 (linear
time); a pattern RE2 cannot run is refused, never handed to Python's backtracking engine. :func:`regex_literals` reads the plain strings that every
match must contain, so a value can be ruled out by a substring search before the regex runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sigma.types import (
    SigmaRegularExpressionFlag,
)

from kubehawk.rules.ir import CompileError

__all__ = ["compile_regex", "regex_literals"]

_RE2_OPTIONS: Any = None


def compile_regex(pattern: str, flags: set[Any]) -> Callable[[str], Any]:
    """Compile with RE2 (linear time, like pySigma's SafePolicy). Returns a ``search`` function.

    A pattern RE2 cannot run is refused (:class:`CompileError`), never handed to Python ``re``:
    a backreference or a lookaround there can take exponential time on one crafted value (a
    user agent), and would hold the whole run. The message names the feature RE2 lacks."""
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
    except Exception as e:  # noqa: BLE001 - re2 raises its own error type
        raise CompileError(_re2_refusal(pattern, full, e)) from None
    try:  # pragma: no cover - without RE2 (see above)
        return re.compile(full).search
    except re.error as e:  # pragma: no cover
        raise CompileError(f"invalid regular expression {pattern!r}: {e}") from None


# What Python's parser calls the constructs RE2 does not have (it runs in linear time without them).
_NOT_IN_RE2 = {"GROUPREF": "a backreference", "GROUPREF_EXISTS": "a conditional group",
               "ASSERT": "a lookahead or lookbehind", "ASSERT_NOT": "a negative lookahead or lookbehind",
               "ATOMIC_GROUP": "an atomic group", "POSSESSIVE_REPEAT": "a possessive quantifier"}


def _re2_refusal(pattern: str, full: str, err: Exception) -> str:
    """Why RE2 refuses ``pattern``: the construct it lacks (by Python's parse), else the syntax error."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(full)
    except Exception as e:  # noqa: BLE001 - not a regular expression for Python either
        return f"invalid regular expression {pattern!r}: {e}"
    found: list[str] = []

    def walk(items: Any) -> None:
        for op, av in items:
            what = _NOT_IN_RE2.get(str(op))
            if what is not None and what not in found:
                found.append(what)
            for sub in av if isinstance(av, (tuple, list)) else ():
                if isinstance(sub, _parser.SubPattern):
                    walk(sub)
                elif isinstance(sub, list):
                    for x in sub:
                        if isinstance(x, _parser.SubPattern):
                            walk(x)

    walk(parsed)
    if found:
        return (f"regular expression {pattern!r} uses {' and '.join(found)}, which RE2 does not support; "
                "refused: Python's engine could take exponential time on a crafted value")
    return f"regular expression {pattern!r} is not supported by RE2: {err}"


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
