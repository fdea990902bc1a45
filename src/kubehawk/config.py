"""``kubehawk.yaml``: the business context that turns generic rules into this cluster's rules.

Working hours, who may deploy (GitOps), honeytokens, allowlists. Every mistake in the
file is a :class:`ConfigError` naming the key, so a typo never silently disables a
detection. Every list also feeds Sigma ``|expand`` placeholders (:attr:`Config.vars`).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AllowEntry", "BusinessHours", "Config", "ConfigError"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALLOW_KEYS = ("user", "namespace", "serviceaccount", "image")

# Keys other parts of kubehawk validate themselves (outputs by the sinks, server by serve).
_PASSTHROUGH = {"outputs": list, "server": dict, "baseline": dict, "rules": dict}
_KNOWN = {"timezone", "business_hours", "gitops", "honeytokens", "allowlists", "vars", "bootstrap", "networks",
          *_PASSTHROUGH}


class ConfigError(ValueError):
    """A problem in the config file; the message names the file and the key."""


@dataclass(frozen=True)
class BusinessHours:
    days: frozenset[int] = frozenset(range(5))  # Monday=0
    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(19, 0)

    def contains(self, when: dt.datetime) -> bool:
        if when.weekday() not in self.days:
            return False
        t = when.time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # a night shift across midnight


class _Glob:
    """A case-sensitive ``*`` glob, compiled once."""

    __slots__ = ("pattern", "_rx")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self._rx = None if not any(c in pattern for c in "*?[") else re.compile(fnmatch.translate(pattern))

    def match(self, value: str | None) -> bool:
        if value is None:
            return False
        return value == self.pattern if self._rx is None else bool(self._rx.match(value))


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist entry: every key it names must match (absent keys match anything)."""

    user: _Glob | None = None
    namespace: _Glob | None = None
    serviceaccount: _Glob | None = None
    image: _Glob | None = None

    def matches(self, *, user: str | None, namespace: str | None, serviceaccount: tuple[str, str] | None,
                images: list[str]) -> bool:
        """``serviceaccount`` is (namespace, name); an entry may name ``name`` or ``namespace/name``."""
        if self.user and not self.user.match(user):
            return False
        if self.namespace and not self.namespace.match(namespace):
            return False
        if self.serviceaccount:
            if serviceaccount is None:
                return False
            ns, name = serviceaccount
            wanted = f"{ns}/{name}" if "/" in self.serviceaccount.pattern else name
            if not self.serviceaccount.match(wanted):
                return False
        # Every image must be allowed: one trusted sidecar must not excuse an untrusted container.
        return not (self.image and (not images or not all(self.image.match(i) for i in images)))


@dataclass
class Config:
    timezone: dt.tzinfo = dt.UTC
    business_hours: BusinessHours = field(default_factory=BusinessHours)
    gitops_identities: frozenset[str] = frozenset()
    gitops_namespaces: frozenset[str] = frozenset()
    honeytoken_serviceaccounts: frozenset[str] = frozenset()  # "namespace/name"
    honeytoken_secrets: frozenset[str] = frozenset()  # "namespace/name"
    allowlists: dict[str, tuple[AllowEntry, ...]] = field(default_factory=dict)
    user_vars: dict[str, list[str]] = field(default_factory=dict)
    # issue 13: cluster start-up recognition (x.bootstrap), in-cluster controllers in GitOps
    # namespaces (x.gitops.controller; kubehawk.identity), networks and IOCs (kubehawk.network)
    bootstrap: bool = True
    gitops_controllers: tuple[Any, ...] = ()
    networks: Any = None
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return list(self.raw.get("outputs") or [])

    @property
    def server(self) -> dict[str, Any]:
        return dict(self.raw.get("server") or {})

    @property
    def vars(self) -> dict[str, list[str]]:
        """Values for Sigma ``%placeholder%`` expansion."""
        v: dict[str, list[str]] = {
            "gitops_identities": sorted(self.gitops_identities),
            "gitops_namespaces": sorted(self.gitops_namespaces),
            "honeytoken_serviceaccounts": sorted(self.honeytoken_serviceaccounts),
            "honeytoken_secrets": sorted(self.honeytoken_secrets),
            "honeytoken_serviceaccount_users": sorted(
                "system:serviceaccount:" + s.replace("/", ":", 1) for s in self.honeytoken_serviceaccounts
            ),
        }
        for name, entries in self.allowlists.items():
            for key in ALLOW_KEYS:
                vals = sorted({getattr(e, key).pattern for e in entries if getattr(e, key)})
                if vals:
                    v[f"allowlist_{name}_{key}"] = vals
        v.update(self.user_vars)
        return v

    def allowed(self, name: str, **facts: Any) -> bool:
        return any(e.matches(**facts) for e in self.allowlists.get(name, ()))

    # --- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Config:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config: {e.strerror or e}") from None
        import yaml  # here, not at the top: a run without a config file never needs it (start-up time)

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark else str(p)
            raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
        return cls.from_dict(data if data is not None else {}, source=str(p))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>") -> Config:
        r = _Reader(source)
        if not isinstance(data, dict):
            r.fail("", f"expected a mapping at the top level, got {_tname(data)}")
        r.unknown(data, _KNOWN, "")
        cfg = cls(raw=dict(data), source=source)
        if "timezone" in data:
            name = r.string(data["timezone"], "timezone")
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                cfg.timezone = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                r.fail("timezone", f"unknown time zone {name!r} (use an IANA name such as Europe/Moscow)")
        if "business_hours" in data:
            cfg.business_hours = _business_hours(r, data["business_hours"])
        if "gitops" in data:
            g = r.mapping(data["gitops"], "gitops")
            r.unknown(g, {"identities", "namespaces", "controllers"}, "gitops")
            cfg.gitops_identities = frozenset(r.strings(g.get("identities", []), "gitops.identities"))
            cfg.gitops_namespaces = frozenset(r.strings(g.get("namespaces", []), "gitops.namespaces"))
            if "controllers" in g:
                from kubehawk.identity import parse_controllers

                cfg.gitops_controllers = parse_controllers(g["controllers"], "gitops.controllers", r.fail)
        if "bootstrap" in data:
            b = r.mapping(data["bootstrap"], "bootstrap")
            r.unknown(b, {"enabled"}, "bootstrap")
            if not isinstance(b.get("enabled", True), bool):
                r.fail("bootstrap.enabled", f"expected true or false, got {_tname(b['enabled'])}")
            cfg.bootstrap = b.get("enabled", True)
        if "networks" in data:
            from kubehawk.network import parse_networks

            base = Path(source).parent if source not in ("<config>", "<defaults>") else None
            cfg.networks = parse_networks(data["networks"], base, r.fail)
        if "honeytokens" in data:
            h = r.mapping(data["honeytokens"], "honeytokens")
            r.unknown(h, {"serviceaccounts", "secrets"}, "honeytokens")
            for key in ("serviceaccounts", "secrets"):
                items = r.strings(h.get(key, []), f"honeytokens.{key}")
                for i, item in enumerate(items):
                    if item.count("/") != 1 or not all(item.split("/")):
                        r.fail(f"honeytokens.{key}[{i}]", f"expected namespace/name, got {item!r}")
                setattr(cfg, f"honeytoken_{key}", frozenset(items))
        if "allowlists" in data:
            a = r.mapping(data["allowlists"], "allowlists")
            for name, entries in a.items():
                key = f"allowlists.{name}"
                cfg.allowlists[str(name)] = tuple(
                    _allow_entry(r, e, f"{key}[{i}]") for i, e in enumerate(r.list(entries, key))
                )
        if "vars" in data:
            v = r.mapping(data["vars"], "vars")
            cfg.user_vars = {str(k): r.strings(val if isinstance(val, list) else [val], f"vars.{k}")
                             for k, val in v.items()}
        for key, typ in _PASSTHROUGH.items():
            if key in data and data[key] is not None and not isinstance(data[key], typ):
                r.fail(key, f"expected a {'list' if typ is list else 'mapping'}, got {_tname(data[key])}")
        return cfg


def _tname(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str) -> None:
        raise ConfigError(f"{self.source}: {key + ': ' if key else ''}{msg}")

    def unknown(self, d: dict, allowed: set[str], prefix: str) -> None:
        for k in d:
            if k not in allowed:
                where = f"{prefix}.{k}" if prefix else str(k)
                self.fail(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def mapping(self, v: Any, key: str) -> dict:
        if not isinstance(v, dict):
            self.fail(key, f"expected a mapping, got {_tname(v)}")
        return v

    def list(self, v: Any, key: str) -> list:
        if not isinstance(v, list):
            self.fail(key, f"expected a list, got {_tname(v)}")
        return v

    def string(self, v: Any, key: str) -> str:
        if not isinstance(v, str) or not v:
            self.fail(key, f"expected a non-empty string, got {_tname(v)}")
        return v

    def strings(self, v: Any, key: str) -> list[str]:
        return [self.string(x, f"{key}[{i}]") for i, x in enumerate(self.list(v, key))]


def _time(r: _Reader, v: Any, key: str) -> dt.time:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 24 * 60:
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal number 540.
        return dt.time(v // 60, v % 60)
    s = r.string(v, key) if not isinstance(v, int) else ""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", s)
    if not m or int(m[1]) > 24 or int(m[2]) > 59 or (int(m[1]) == 24 and int(m[2])):
        r.fail(key, f"expected a time such as \"09:00\", got {v!r}")
    h, mi = int(m[1]), int(m[2])
    return dt.time.max if h == 24 else dt.time(h, mi)


def _business_hours(r: _Reader, v: Any) -> BusinessHours:
    b = r.mapping(v, "business_hours")
    r.unknown(b, {"days", "start", "end"}, "business_hours")
    days = BusinessHours.days
    if "days" in b:
        names = r.strings(b["days"], "business_hours.days")
        idx = []
        for i, d in enumerate(names):
            d3 = d.strip().lower()[:3]
            if d3 not in DAYS:
                r.fail(f"business_hours.days[{i}]", f"unknown day {d!r} (use mon, tue, wed, thu, fri, sat, sun)")
            idx.append(DAYS.index(d3))
        days = frozenset(idx)
    start = _time(r, b["start"], "business_hours.start") if "start" in b else BusinessHours.start
    end = _time(r, b["end"], "business_hours.end") if "end" in b else BusinessHours.end
    return BusinessHours(days, start, end)


def _allow_entry(r: _Reader, v: Any, key: str) -> AllowEntry:
    e = r.mapping(v, key)
    if not e:
        r.fail(key, "an empty entry would allow everything; name at least one of " + ", ".join(ALLOW_KEYS))
    r.unknown(e, set(ALLOW_KEYS), key)
    return AllowEntry(**{k: _Glob(r.string(val, f"{key}.{k}")) for k, val in e.items()})
