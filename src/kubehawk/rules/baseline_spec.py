"""The ``baseline:`` attribute of a first-seen rule: what a baseline is kept per, and of what.

Takes a loaded :class:`Rule` and gives its :class:`BaselineSpec` (or a load error naming the
key), with the readers that turn an event into the key and the value (networks, user-agent
products, lower-cased strings).
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubehawk.rules.model import RuleLoadError

if TYPE_CHECKING:
    from kubehawk.event import AuditEvent
    from kubehawk.rules.model import Rule

__all__ = ["SPEC_KEYS", "TRANSFORMS", "BaselineSpec", "spec_of"]

SPEC_KEYS = ("key", "value", "network", "network6", "transform", "learn_days", "per_key")
TRANSFORMS = ("none", "product", "lower")
_SEP = "\x1f"  # joins key parts; never in a username, namespace or IP


@dataclass(frozen=True)
class BaselineSpec:
    key: tuple[str, ...]
    value: str
    network: int | None = None
    network6: int | None = None
    transform: str = "none"
    learn_days: float | None = None
    per_key: bool = False

    def key_of(self, event: AuditEvent) -> str | None:
        return self.key_from([_read(event, path) for path in self.key])

    def value_of(self, event: AuditEvent) -> str | None:
        return self.value_from(_read(event, self.value))

    def key_from(self, values: Iterable[Any]) -> str | None:
        """The key for the values read at ``key`` (None: the event has no key)."""
        parts = []
        for v in values:
            if v is None or v == "":
                return None
            parts.append(str(v))
        return _SEP.join(parts)

    def value_from(self, v: Any) -> str | None:
        """The value compared with the baseline for the one read at ``value`` (None: no value)."""
        if v is None or v == "" or isinstance(v, (dict, list)):
            return None
        s = str(v)
        if self.network is not None or self.network6 is not None:
            k = (s, self.network, self.network6)
            s = _network_memo.get(k) or _remember_network(k)
        if self.transform == "product":
            s = _product(s)
        elif self.transform == "lower":
            s = s.lower()
        return s


# The head fields baseline keys and values use most, read without the general path resolver.
_FAST: dict[str, Any] = {
    "user.username": operator.attrgetter("username"),  # C getters: no Python frame of their own
    "x.source_ip": operator.attrgetter("source_ip"),
    "userAgent": operator.attrgetter("head.userAgent"),
    "objectRef.namespace": lambda e: e.ref("namespace"),
}


def _read(event: AuditEvent, path: str) -> Any:
    fast = _FAST.get(path)
    return fast(event) if fast is not None else event.first(path)


def _reader(path: str) -> Callable[[AuditEvent], Any]:
    """:func:`_read` for a fixed path."""
    fast = _FAST.get(path)
    if fast is not None:
        return fast
    return lambda event: event.first(path)


_MISSING: Any = object()


def _utc_day(t: float) -> str:
    """``YYYY-MM-DDT`` of the UTC day holding epoch second ``t`` (how event timestamps start)."""
    try:
        return time.strftime("%Y-%m-%dT", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return "?"  # matches no timestamp


_network_memo: dict[tuple[str, int | None, int | None], str] = {}


def _remember_network(k: tuple[str, int | None, int | None]) -> str:
    """Memoised :func:`_network` (pod IPs repeat); the memo is dropped whole when it grows too big."""
    if len(_network_memo) >= 65536:
        _network_memo.clear()
    net = _network_memo[k] = _network(*k)
    return net


def _network(s: str, v4: int | None, v6: int | None) -> str:
    parts = s.split(".")
    if len(parts) == 4 and all(x.isdigit() and len(x) <= 3 for x in parts):
        # IPv4, the common case, without the ipaddress module (it dominated the cost of a baseline rule).
        n = 0
        for x in parts:
            o = int(x)
            if o > 255:
                return s
            n = n << 8 | o
        prefix = v4 if v4 is not None else 32
        n &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{prefix}"
    return _network_slow(s, v4, v6)


@functools.lru_cache(maxsize=4096)
def _network_slow(s: str, v4: int | None, v6: int | None) -> str:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return s  # not an IP (a hostname from a converter): compare as written
    prefix = (v4 if v4 is not None else 32) if ip.version == 4 else (v6 if v6 is not None else 48)
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _product(ua: str) -> str:
    """``kubectl/v1.30.2 (darwin/arm64) kubernetes/3968350`` -> ``kubectl``: versions change, products rarely."""
    head = ua.strip().split(" ", 1)[0]
    return head.split("/", 1)[0].lower() or ua


def spec_of(rule: Rule) -> BaselineSpec | None:
    """The rule's ``baseline`` attribute, validated; None for an ordinary rule."""
    raw = rule.custom.get("baseline") if rule.custom else None
    if raw is None:
        return None

    def fail(key: str, msg: str) -> None:
        where = f"baseline.{key}" if key else "baseline"
        raise RuleLoadError(f"{rule.source}: {rule.title!r}: {where}: {msg}", rule.source)

    if rule.kind != "event":
        fail("", "only event rules can have a baseline (not correlations)")
    if not isinstance(raw, Mapping):
        fail("", "expected a mapping with key and value")
    for k in raw:
        if k not in SPEC_KEYS:
            fail(str(k), f"unknown key (expected one of: {', '.join(SPEC_KEYS)})")
    key = raw.get("key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
        fail("key", "expected a field path or a list of field paths")
    value = raw.get("value")
    if not isinstance(value, str) or not value:
        fail("value", "expected a field path")
    ints: dict[str, int | None] = {}
    for name, top in (("network", 32), ("network6", 128)):
        v = raw.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top):
            fail(name, f"expected a prefix length 0..{top}, got {v!r}")
        ints[name] = v
    transform = raw.get("transform", "none")
    if transform not in TRANSFORMS:
        fail("transform", f"expected one of {', '.join(TRANSFORMS)}, got {transform!r}")
    per_key = raw.get("per_key", False)
    if not isinstance(per_key, bool):
        fail("per_key", f"expected true or false, got {per_key!r}")
    days = raw.get("learn_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0):
        fail("learn_days", f"expected a number of days >= 0, got {days!r}")
    return BaselineSpec(key=tuple(key), value=value, network=ints["network"], network6=ints["network6"],
                        transform=transform, learn_days=None if days is None else float(days),
                        per_key=per_key)
