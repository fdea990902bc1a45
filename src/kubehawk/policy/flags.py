"""kube-apiserver flags from a static-pod manifest (or a plain list of arguments).

The compliance checks (CIS 1.2.16-1.2.19, STIG, NSA/CISA, PCI) look at whether a flag
is *present on the command line*, not at the binary's default, so only what is
written counts.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml


class ManifestError(ValueError):
    """The manifest cannot be read; the message names the file."""


@dataclass
class ApiserverFlags:
    flags: dict[str, str]
    source: str = ""
    # Container paths that come from a hostPath volume (STIG V-242465).
    host_mounts: list[str] = field(default_factory=list)
    static_pod: bool = False

    def get(self, name: str) -> str | None:
        return self.flags.get(name)

    def has(self, name: str) -> bool:
        return name in self.flags

    def int_flag(self, name: str) -> int | None:
        value = self.flags.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    def feature_gates(self) -> dict[str, str]:
        out = {}
        for item in (self.flags.get("feature-gates") or "").split(","):
            key, _, value = item.partition("=")
            if key.strip():
                out[key.strip()] = value.strip()
        return out

    def host_mounted(self, path: str) -> bool:
        p = PurePosixPath(path)
        return any(p == PurePosixPath(m) or PurePosixPath(m) in p.parents for m in self.host_mounts)

    @classmethod
    def from_args(cls, args: list[str], source: str = "") -> ApiserverFlags:
        return cls(parse_args(args), source)

    @classmethod
    def load(cls, path: str | Path) -> ApiserverFlags:
        src = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"{src}: cannot read the apiserver manifest: {e}") from None
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError:
            docs = []
        for doc in docs:
            if isinstance(doc, Mapping) and doc.get("kind") == "Pod":
                return _from_pod(doc, src)
        # Not a Pod: treat the file as the process arguments (one or many per line).
        args = []
        for line in text.splitlines():
            line = line.strip().rstrip("\\").strip()
            if line and not line.startswith("#"):
                try:
                    args.extend(shlex.split(line))
                except ValueError:
                    args.extend(line.split())
        if not any(a.startswith("--") for a in args):
            raise ManifestError(f"{src}: neither a kube-apiserver static Pod manifest nor a list of --flags")
        return cls(parse_args(args), src)


def parse_args(args: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name value``; a bare ``--name`` is "true"; the last one wins."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = str(args[i])
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 < len(args) and not str(args[i + 1]).startswith("-"):
                    value = str(args[i + 1])
                    i += 1
                else:
                    value = "true"
            flags[name] = value
        i += 1
    return flags


def _from_pod(doc: Mapping[str, Any], src: str) -> ApiserverFlags:
    spec = doc.get("spec") or {}
    containers = spec.get("containers") or []
    chosen = None
    for c in containers:
        if not isinstance(c, Mapping):
            continue
        cmd = [str(x) for x in (c.get("command") or [])]
        if c.get("name") == "kube-apiserver" or any("kube-apiserver" in x for x in cmd[:1]):
            chosen = c
            break
    if chosen is None:
        raise ManifestError(f"{src}: the Pod has no kube-apiserver container")
    args = [str(x) for x in (chosen.get("command") or [])] + [str(x) for x in (chosen.get("args") or [])]
    host_volumes = {
        v.get("name")
        for v in spec.get("volumes") or []
        if isinstance(v, Mapping) and isinstance(v.get("hostPath"), Mapping)
    }
    mounts = [
        str(m.get("mountPath"))
        for m in chosen.get("volumeMounts") or []
        if isinstance(m, Mapping) and m.get("name") in host_volumes and m.get("mountPath")
    ]
    return ApiserverFlags(parse_args(args), src, mounts, static_pod=True)
