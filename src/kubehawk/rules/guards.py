r"""Guards: cheap necessary conditions that run before a leaf's real test.

Takes an IR leaf or subtree and gives a test that answers "no" only when the real test would.

A positive test on a body field (``requestObject.*``, ``responseObject.*``, and the x.* fields
read from the pod spec in a body) can only be true when the raw JSON of that body holds the
field's last key; and the values it can see are among the values written after that key. So
before a body is decoded (and x.pod_spec built) the raw bytes are asked first: is the key
there at all (one substring search), and does any value written after ``"key":`` pass the
test's own value predicate. These checks are necessary conditions, never sufficient: when
one passes, the real test still decides. They answer "maybe" whenever the bytes could hide
something: a backslash in the body (``\u0070rivileged`` is "privileged"; without backslashes
every quote delimits a string, so the scan is exact), a value that is a list, a number or
follows whitespace, the key also written as a string value, a dotted key ending in the key
(Sigma paths match dotted keys), and, for x.* fields, a JSON-patch body (keys inside
pointers such as ``/spec/containers/0/securityContext/privileged``: still found by the
presence check, not by the value scan). What is asked of a body is remembered for the event,
so rules sharing a key search once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sigma.types import (
    SigmaCasedString,
    SigmaString,
)

from kubehawk.event import AuditEvent
from kubehawk.fieldpath import split_path
from kubehawk.rules.body import _REQUEST, _RESPONSE, _SPEC, _UNSET_BODY, _body, _body_cell
from kubehawk.rules.ir import And, Leaf, Not, Test
from kubehawk.rules.keywords import _keyword_prefilter, _keywords_prefilter, _plain_pieces
from kubehawk.rules.matchers import value_pred
from kubehawk.rules.needles import _key_searcher

__all__ = ["leaf_guard", "presence_screen"]

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Keys in (nearly) every pod or workload body: a presence check would pass anyway.
_COMMON_KEYS = frozenset({
    "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "uid", "spec", "template",
    "containers", "image", "ownerReferences", "controller", "volumes", "volumeMounts", "mountPath",
    "securityContext", "resources", "env", "value", "ports", "containerPort", "data", "type", "status",
})


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
        from kubehawk.xclaims import SPEC_DERIVED, derived_possible

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
