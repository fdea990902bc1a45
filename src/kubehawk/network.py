"""Where a request came from: the config's trusted and cluster networks, and an IOC list (issue 13).

``networks`` in kubehawk.yaml::

    networks:
      trusted: [10.0.0.0/8, 203.0.113.0/24]   # offices, VPN, CI: where people may call the API from
      cluster: [10.244.0.0/16, 192.168.49.0/24]  # pod and node networks: where ServiceAccount tokens live
      ioc_file: tor-exit-nodes.txt             # one IP or CIDR a line, # comments; relative to the config

Only the trusted source IP is classified (the last ``sourceIPs`` entry: the others are
client-controlled). The IOC file is read once when the config loads; nothing is fetched at run time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Networks", "parse_networks"]

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _contains(nets: tuple[Net, ...], ip: Any) -> bool:
    return any(ip.version == n.version and ip in n for n in nets)


@dataclass(frozen=True)
class Networks:
    trusted: tuple[Net, ...] = ()
    cluster: tuple[Net, ...] = ()
    ioc: tuple[Net, ...] = ()
    ioc_file: str | None = None
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def classify(self, ip: str | None) -> dict[str, bool] | None:
        """``x.source`` of an IP (None when there is none or it does not parse).

        ``public``: globally routable. ``cluster``: in ``networks.cluster`` (absent when none is
        configured). ``trusted``: loopback, or in ``networks.trusted`` or ``networks.cluster``
        (absent when neither is configured: without them nothing is known to be untrusted).
        ``ioc``: in the IOC list (absent without one).
        """
        if not ip:
            return None
        memo = self._memo
        if ip in memo:
            return memo[ip]
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            value = None
        else:
            value = {"public": addr.is_global}
            if self.cluster:
                value["cluster"] = _contains(self.cluster, addr)
            if self.trusted or self.cluster:
                value["trusted"] = addr.is_loopback or _contains(self.trusted, addr) or _contains(self.cluster, addr)
            if self.ioc_file is not None:
                value["ioc"] = _contains(self.ioc, addr)
        if len(memo) >= 65536:
            memo.clear()
        memo[ip] = value
        return value


def _cidrs(items: Any, key: str, fail: Any) -> tuple[Net, ...]:
    if not isinstance(items, list):
        fail(key, "expected a list of CIDRs such as 10.0.0.0/8")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            fail(f"{key}[{i}]", f"not an IP network: {item!r}")
    return tuple(out)


def _ioc_list(path: Path, key: str, fail: Any) -> tuple[Net, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(key, f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            fail(key, f"{path}:{n}: not an IP address or CIDR: {entry!r}")
    return tuple(out)


def parse_networks(data: Any, base: Path | None, fail: Any) -> Networks:
    """The ``networks`` section; ``fail(key, message)`` raises; ``base`` is the config's folder."""
    if not isinstance(data, dict):
        fail("networks", "expected a mapping with trusted, cluster, ioc_file")
    unknown = set(data) - {"trusted", "cluster", "ioc_file"}
    if unknown:
        fail(f"networks.{sorted(unknown)[0]}", "unknown key (expected one of: cluster, ioc_file, trusted)")
    trusted = _cidrs(data.get("trusted", []), "networks.trusted", fail)
    cluster = _cidrs(data.get("cluster", []), "networks.cluster", fail)
    ioc: tuple[Net, ...] = ()
    ioc_file = data.get("ioc_file")
    if ioc_file is not None:
        if not isinstance(ioc_file, str) or not ioc_file:
            fail("networks.ioc_file", "expected a file path")
        p = Path(ioc_file)
        if not p.is_absolute() and base is not None:
            p = base / p
        ioc = _ioc_list(p, "networks.ioc_file", fail)
        ioc_file = str(p)
    return Networks(trusted, cluster, ioc, ioc_file)
