"""The slots: the few cheap head fields whose values key the rule index's memo, and how they are read.

Takes the slots an index chose (a path and a mode: its value, whether a head field is present,
whether a body was logged) and gives generated code that reads them all from an event into one
tuple (:func:`make_extractor`), with the checks that make an equal tuple mean equal values
(:func:`_exact`). The line screen (:mod:`kubehawk.rules.linescreen`) reads the raw text of the
same keys.
"""

from collections.abc import Callable
from typing import Any

from kubehawk.event import TOP_FIELDS, AuditEvent
from kubehawk.event_schema import has_body
from kubehawk.fieldpath import split_path
from kubehawk.rules.fields import make_getter
from kubehawk.rules.index_keys import _PRESENT_FREQ, _USELESS
from kubehawk.rules.ir import Test
from kubehawk.rules.model import Rule
from kubehawk.xclaims import derived_gates

__all__ = ["PRESENT_BODY", "PRESENT_HEAD", "VALUE", "VALUE_FIELDS", "Plan", "inline_key", "make_extractor"]

# Head fields with few distinct values in a cluster's log: their values key the memo.
# (Names, UIDs, URIs, IPs and timestamps are left out: one memo entry per event is no memo.)
VALUE_FIELDS = frozenset({
    "verb", "stage", "level", "userAgent", "apiVersion", "kind",
    "objectRef.resource", "objectRef.subresource", "objectRef.apiGroup", "objectRef.apiVersion",
    "objectRef.namespace",
    "user.username", "user.groups", "impersonatedUser.username", "impersonatedUser.groups",
    "responseStatus.code", "responseStatus.status", "responseStatus.reason",
    "annotations.authorization.k8s.io/decision",
})
_BODIES = ("requestObject", "responseObject")
# Head fields the typed decoder guarantees to be a string or None.
_STR_FIELDS = frozenset({"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "userAgent",
                         "requestReceivedTimestamp", "stageTimestamp", "timestamp"}) & TOP_FIELDS
_DICT_HEAD = ("user", "impersonatedUser", "objectRef", "responseStatus", "annotations")

VALUE, PRESENT_HEAD, PRESENT_BODY = "value", "present", "body"


class _Unhashable(list):
    """Stands for a value that cannot key the memo (an object): the lookup raises TypeError."""

    __slots__ = ()


def _odd(v: Any) -> Any:
    """Memo key of a value that is not a list: strings and ints as they are, while 1, 1.0 and
    true stay apart; an object cannot key the memo."""
    t = v.__class__
    if t is str or t is int:
        return v
    if t is float or t is bool:
        return (t, v)
    return _Unhashable()


def _norm(v: Any) -> Any:
    """Memo key of any value: lists as tuples, the rest through :func:`_odd`."""
    return tuple(v) if v.__class__ is list else _odd(v)


# The type a dict-held slot usually has (default str): the extractor reads it as it comes.
_USUAL_TYPE = {"user.groups": "list", "impersonatedUser.groups": "list", "responseStatus.code": "int"}

# How a slot's value is checked before its key is remembered (see _exact):
_K_STR = 0  # read raw: must be a str or None (a value of any other type is never remembered)
_K_STRS = 1  # read raw, a list as a tuple: None, a str or a tuple of str
_K_NORM = 2  # normalised by _norm: a tuple in it (a list, or _odd's wrapper) must hold str only
_K_BOOL = 3  # a presence test: always a bool


def _exact(key: tuple[Any, ...], kinds: tuple[int, ...]) -> bool:
    """May this key be remembered? Only if a key equal to it can only come from equal values.

    Slots read raw hold a str or None in every remembered key: an event whose value compares
    equal must hold that very str (1, 1.0 and true equal no str), so it cannot share the
    plan of another type. A tuple (from a list) must hold strings only, since (1,), (1.0,)
    and (True,) are equal. A key that is not remembered never hits; its event is decided alone.
    """
    for x, k in zip(key, kinds, strict=True):
        c = x.__class__
        if c is tuple:
            if k in (_K_STR, _K_BOOL):
                return False
            for y in x:
                if y.__class__ is not str:
                    return False
        elif k in (_K_STR, _K_STRS) and x is not None and c is not str:
            return False
    return True


def _present(v: Any) -> bool:
    """Does the field hold a value (an explicit null, or a list of nulls, is absent)? Not
    ``|exists``, for which a field written as null is there: no slot settles that one."""
    if v is None:
        return False
    if v.__class__ is list:
        return any(x is not None for x in v)
    return True


class _Slots:
    """The slots of one index: which fields, read how, at which position of the key."""

    def __init__(self, config: Any):
        self.specs: list[tuple[str, str]] = []
        self.pos: dict[tuple[str, str], int] = {}
        self.gates = derived_gates(config)

    def slot(self, path: str, mode: str) -> int:
        k = (path, mode)
        i = self.pos.get(k)
        if i is None:
            i = self.pos[k] = len(self.specs)
            self.specs.append(k)
        return i

    def dep(self, d: str) -> int | None:
        """The slot of a derived field's dependency (``?path``: presence only), or None."""
        if d.startswith("?"):
            path = d[1:]
            if path in _BODIES:
                return self.slot(path, PRESENT_BODY)
            parts = split_path(path)
            return self.slot(path, PRESENT_HEAD) if parts[0] in TOP_FIELDS and _cheap(parts) else None
        return self.slot(d, VALUE) if d in VALUE_FIELDS else None

    def deps(self, ds: tuple[str, ...]) -> tuple[int, ...] | None:
        out = []
        for d in ds:
            i = self.dep(d)
            if i is None:
                return None
            out.append(i)
        return tuple(out)


def inline_key(parts: tuple[str, ...]) -> str | None:
    """The key the extractor reads inline in a head mapping for this path (``user.username``:
    ``username``; an annotation: its whole dotted name), or None when it is not read that way.
    The line screen (:mod:`kubehawk.rules.linescreen`) reads the raw text of the same keys."""
    top, rest = parts[0], parts[1:]
    if top in _DICT_HEAD and (len(rest) == 1 or (top == "annotations" and rest)):
        return ".".join(rest)
    return None


def _cheap(parts: tuple[str, ...]) -> bool:
    """A head field read inline by the extractor (a deeper path would cost every event a walk)."""
    return len(parts) == 1 or inline_key(parts) is not None


def _always_present(path: str) -> bool:
    """Fields every audit event has: a presence slot for them would settle nothing."""
    return _PRESENT_FREQ.get(path, 0.0) >= _USELESS


Plan = list[tuple[Rule, "Test | None"]]


def make_extractor(
    slots: list[tuple[str, str]],
    memo: dict[tuple[Any, ...], Plan] | None = None,
    miss: Callable[[tuple[Any, ...], AuditEvent], Plan] | None = None,
    odd: Callable[[tuple[Any, ...], AuditEvent, bool], Plan] | None = None,
) -> tuple[Callable[[AuditEvent], tuple[Any, ...]], tuple[int, ...], Callable[[AuditEvent], Plan] | None]:
    """Generated code reading every slot of an event: (``extract``, the slots' kinds, ``plan``).

    ``extract(e)`` is the memo key. ``plan(e)`` (when ``memo`` is given) is the same code
    followed by the lookup: ``memo[key]``, else ``miss(key, e)``, or ``odd(key, e, False)``
    when the key cannot be hashed (an object where a plain value was expected).

    Head fields are read inline, each head dict once (``d = h.objectRef``; absent: all its
    slots at once). Strings come as they are, unchecked: :func:`_exact` keeps any key with
    another type at such a slot out of the memo, so a hit is exact without a check per
    event. Lists become tuples where a list is usual (``user.groups``); ``responseStatus.code``
    goes through :func:`_norm` unless it is an int; anything else is read with the field
    getter of the compiler (same semantics as the rules) and normalised.
    """
    ns: dict[str, Any] = {"_norm": _norm, "_p": _present, "_hb": has_body, "_memo": memo, "_miss": miss,
                          "_odd_key": odd}
    kinds: list[int] = []
    body = ["    h = e.head"]
    groups: dict[str, list[str]] = {}  # head dict -> lines reading its slots
    absent: dict[str, list[str]] = {}  # head dict -> the slots' values when it is absent

    for i, (path, mode) in enumerate(slots):
        v = f"v{i}"
        parts = split_path(path)
        top, rest = parts[0], parts[1:]
        if mode == PRESENT_BODY:
            kinds.append(_K_BOOL)
            body.append(f"    {v} = h.{top}")
            body.append(f"    {v} = len({v}) > 4 or (len({v}) > 0 and _hb({v}))")  # a call only for tiny bodies
            continue
        key = inline_key(parts)
        if key is not None:
            typed = top == "annotations"  # values are str
            lines = groups.setdefault(top, [])
            absent.setdefault(top, []).append(f"{v} = {'False' if mode == PRESENT_HEAD else 'None'}")
            if mode == PRESENT_HEAD:
                kinds.append(_K_BOOL)
                if typed:
                    lines.append(f"{v} = {key!r} in d")
                else:
                    lines.append(f"{v} = d.get({key!r})")
                    lines.append(f"{v} = {v} is not None and ({v}.__class__ is not list or _p({v}))")
                continue
            usual = "str" if typed else _USUAL_TYPE.get(path, "str")
            lines.append(f"{v} = d.get({key!r})")
            if usual == "list":
                kinds.append(_K_STRS)
                lines.append(f"if {v}.__class__ is list: {v} = tuple({v})")
            elif usual == "int":
                kinds.append(_K_NORM)
                lines.append(f"if {v}.__class__ is not int and {v} is not None: {v} = _norm({v})")
            else:
                kinds.append(_K_STR)
            continue
        if top in TOP_FIELDS and not rest:
            read, typed = f"h.{top}", top in _STR_FIELDS
        else:
            ns[f"_g{i}"] = make_getter(path)
            read, typed = f"_g{i}(e)", False
        body.append(f"    {v} = {read}")
        if mode == PRESENT_HEAD:
            kinds.append(_K_BOOL)
            body.append(f"    {v} = {v} is not None" if typed else
                        f"    {v} = {v} is not None and ({v}.__class__ is not list or _p({v}))")
        elif typed:
            kinds.append(_K_STR)
        else:
            kinds.append(_K_NORM)
            body.append(f"    if {v}.__class__ is not str and {v} is not None: {v} = _norm({v})")
    for top, lines in groups.items():
        body.append(f"    d = h.{top}")
        body.append("    if not d:")
        body.append("        " + "; ".join(absent[top]))
        body.append("    else:")
        body += ["        " + ln for ln in lines]
    body.append("    key = (" + "".join(f"v{i}, " for i in range(len(slots))) + ")")
    code = ["def extract(e):", *body, "    return key"]
    if memo is not None:
        code += ["def plan(e):", *body,
                 "    try:",
                 "        return _memo[key]",
                 "    except KeyError:",
                 "        return _miss(key, e)",
                 "    except TypeError:",
                 "        return _odd_key(key, e, False)"]
    exec("\n".join(code), ns)  # noqa: S102 - code built from field names we chose above
    return ns["extract"], tuple(kinds), ns.get("plan")
