"""A cache of loaded rules, so a command starts without parsing YAML and Sigma conditions again.

Loading the built-in pack costs about a quarter of a second (PyYAML, pySigma and its pyparsing
condition grammar, our IR); restoring the result from a pickle costs a few milliseconds and
does not import pySigma's parser at all. What is stored is what :mod:`kubehawk.rules.loader`
built, minus its closures (they do not pickle): every :class:`Rule` with its condition IR (a
restored rule compiles its predicate from the IR on first call, a leaf its guard on first use)
and the collected load errors.

An entry is keyed on everything the result depends on: the path and exact text of every rule
file, the ``variables`` (``|expand`` placeholders), ``collect_errors``, the source of
kubehawk.rules and the modules it reads (event, fieldpath, enrich, xclaims, the package version), the pySigma and
PyYAML distributions and the Python version.
A missing, stale, corrupt or untrusted entry is ignored and the rules are loaded from source;
nothing here ever raises.

Where: ``$KUBEHAWK_CACHE_DIR``, else ``$XDG_CACHE_HOME/kubehawk``, else ``~/.cache/kubehawk``.
``KUBEHAWK_NO_CACHE=1`` turns it off. A pickle is code: an entry is read only from a directory
and a file that belong to the current user and that nobody else can write; entries are written
0600 in a 0700 directory, atomically (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import copyreg
import importlib.machinery
import os
import pickle
import stat
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubehawk.rules.ir import Leaf

try:  # hashlib loads OpenSSL (~4 ms of every start-up); its blake2b is this very type
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another Python implementation
    from hashlib import blake2b
from kubehawk.rules.model import Rule

__all__ = ["cache_dir", "enabled", "entry_key", "load", "store"]

# Bumped when the layout of an entry changes.
FORMAT = 1
KEEP = 8  # entries kept (newest first): one per set of rule files, variables and versions in use

_PKG = Path(__file__).resolve().parents[1]
# The code that decides what a load produces (kubehawk's version does not change in a checkout):
# every module of kubehawk.rules, plus these.
_CODE = ("__init__.py", "event.py", "fieldpath.py", "enrich.py", "xclaims.py")
_fingerprint: bytes | None = None


def enabled() -> bool:
    return os.environ.get("KUBEHAWK_NO_CACHE", "") in ("", "0") and hasattr(os, "geteuid")


def cache_dir() -> Path:
    d = os.environ.get("KUBEHAWK_CACHE_DIR")
    if d:
        return Path(d)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "kubehawk"


def entry_key(sources: list[tuple[str, str]], variables: Mapping[str, Any], collect: bool) -> str | None:
    """The key of a load, or None when the cache is off or the inputs cannot be keyed."""
    if not enabled():
        return None
    try:
        h = blake2b(_environment(), digest_size=32)
        h.update(b"collect=1" if collect else b"collect=0")
        v = repr(sorted((str(k), repr(val)) for k, val in variables.items())).encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(v) + v)
        for path, text in sources:
            p = path.encode("utf-8", "surrogatepass")
            t = text.encode("utf-8", "surrogatepass")
            h.update(b"\0%d:" % len(p) + p + b"%d:" % len(t))
            h.update(t)
        return h.hexdigest()
    except Exception:  # noqa: BLE001 - an odd input is simply not cached
        return None


def _environment() -> bytes:
    """What every key shares: kubehawk's code, pySigma, PyYAML and Python (computed once)."""
    global _fingerprint
    if _fingerprint is None:
        h = blake2b(b"kubehawk-rules-cache %d\0%s\0%s\0" % (
            FORMAT, sys.version.encode(), str(sys.implementation.cache_tag).encode()))
        try:
            rules = sorted(f"rules/{n}" for n in os.listdir(_PKG / "rules") if n.endswith(".py"))
        except OSError:
            rules = []
        for name in (*_CODE, *rules):
            try:
                h.update(name.encode() + b"\0" + (_PKG / name).read_bytes() + b"\0")
            except OSError:
                h.update(name.encode() + b"\0missing\0")
        for module, dist in (("sigma", "pysigma"), ("yaml", "pyyaml")):
            h.update(_distribution(module, dist))
        _fingerprint = h.digest()
    return _fingerprint


def _distribution(module: str, dist: str) -> bytes:
    """The installed version of ``dist`` (its dist-info name) and the size and time of the package's
    modules (an edited development install), found without importing it (importlib.metadata
    alone costs ~40 ms)."""
    out = [module, dist]
    spec = importlib.machinery.PathFinder.find_spec(module)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        site = os.path.dirname(loc)
        try:
            names = os.listdir(site)
        except OSError:
            continue
        out += sorted(n for n in names if n.lower().replace("_", "-").startswith(dist + "-")
                      and n.endswith((".dist-info", ".egg-info")))
        for sub in ("", "rule"):
            try:
                with os.scandir(os.path.join(loc, sub)) as it:
                    entries = sorted((e.name, e.stat()) for e in it if e.name.endswith((".py", ".so")))
            except OSError:
                continue
            out += [f"{sub}/{n}:{st.st_size}:{st.st_mtime_ns}" for n, st in entries]
    return "\0".join(out).encode("utf-8", "surrogatepass") + b"\0"


def _path(key: str) -> Path:
    return cache_dir() / f"rules-{key[:40]}.pickle"


def _trusted(st: os.stat_result, kind: int) -> bool:
    """Owned by us and writable by nobody else (a pickle is code)."""
    return (stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def load(key: str | None) -> tuple[list[Rule], list[tuple[str, str | None]]] | None:
    """The rules and errors stored under ``key`` (predicates not built), or None."""
    if key is None:
        return None
    try:
        path = _path(key)
        if not _trusted(os.stat(path.parent), stat.S_IFDIR):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            if not _trusted(os.fstat(fh.fileno()), stat.S_IFREG):
                return None
            data = fh.read()
        fmt, stored_key, rules, errors = pickle.loads(data)
        if fmt != FORMAT or stored_key != key or not isinstance(rules, list) or not isinstance(errors, list):
            return None
        if not all(type(r) is Rule for r in rules):
            return None
        if not all(isinstance(m, str) and (p is None or isinstance(p, str)) for m, p in errors):
            return None
        return rules, errors
    except Exception:  # noqa: BLE001 - missing, truncated, corrupt, foreign, stale: load from source
        return None


def _rule_state(r: Rule) -> tuple[Any, ...]:
    # Rule.__getstate__ leaves out the IR (alerts pickle rules); the cache needs it, minus the closure.
    state = dict(r.__dict__)
    state["predicate"] = None
    return copyreg.__newobj__, (Rule,), state


def _leaf_state(lf: Leaf) -> tuple[Any, ...]:
    state = dict(lf.__dict__)
    state["guard"] = None  # a closure, computed again on first use
    return copyreg.__newobj__, (Leaf,), state


def _dumps(payload: Any) -> bytes:
    import io

    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    p.dispatch_table = {**copyreg.dispatch_table, Rule: _rule_state, Leaf: _leaf_state}
    p.dump(payload)
    return buf.getvalue()


def store(key: str | None, rules: list[Rule], errors: list[tuple[str, str | None]]) -> None:
    """Write an entry (best effort: a read-only home or a full disk only costs the next start-up)."""
    if key is None:
        return
    import tempfile

    tmp = None
    try:
        data = _dumps((FORMAT, key, rules, errors))
        path = _path(key)
        d = path.parent
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(os.stat(d), stat.S_IFDIR):
            return
        fd, tmp = tempfile.mkstemp(prefix=".rules-", suffix=".tmp", dir=d)  # 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        tmp = None
        _prune(d)
    except Exception:  # noqa: BLE001 - best effort
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _prune(d: Path) -> None:
    """Keep the newest entries; drop temporary files a killed process left behind."""
    entries = []
    now = time.time()
    with os.scandir(d) as it:
        for e in it:
            try:
                if e.name.startswith("rules-") and e.name.endswith(".pickle"):
                    entries.append((e.stat().st_mtime, e.path))
                elif e.name.startswith(".rules-") and e.name.endswith(".tmp") and now - e.stat().st_mtime > 3600:
                    os.unlink(e.path)
            except OSError:
                continue
    entries.sort(reverse=True)
    for _, p in entries[KEEP:]:
        with contextlib.suppress(OSError):
            os.unlink(p)
