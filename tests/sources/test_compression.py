"""Compressed logs by their magic bytes: zstd (with the zstandard package, a dev dependency),
its several frames, its errors, and what is said of it where the package is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import zstandard

from kubehawk.sources.compression import SUFFIXES, ZSTD_MAGIC, is_compressed
from kubehawk.sources.files import ReadStats, read_paths
from kubehawk.sources.sniff import not_audit_reason

from helpers import audit


def _lines(*ids: str) -> bytes:
    return b"".join(json.dumps(audit(auditID=i)).encode() + b"\n" for i in ids)


def _read(path):
    stats, warnings = ReadStats(), []
    events = list(read_paths([str(path)], stats, on_warning=warnings.append))
    return [e.head.auditID for e in events], stats, warnings


def test_zstd_of_several_frames_reads_as_its_lines(tmp_path):
    """``zstd`` appending to an archive, or ``cat a.zst b.zst``, gives one stream of frames."""
    p = tmp_path / "audit-2026-11-23.log.zst"
    p.write_bytes(zstandard.compress(_lines("a", "b")) + zstandard.compress(_lines("c")))
    ids, stats, warnings = _read(p)
    assert ids == ["a", "b", "c"] and stats.bad == 0 and not warnings
    assert is_compressed(p.read_bytes()[:6]) and ".zst" in SUFFIXES


def test_a_corrupt_zstd_file_is_one_read_error_and_the_run_goes_on(tmp_path):
    bad = tmp_path / "a.log.zst"
    good = zstandard.compress(_lines(*[str(i) for i in range(50)]))
    bad.write_bytes(good[:40] + b"\x00" * 64 + good[104:])
    after = tmp_path / "b.log"
    after.write_bytes(_lines("after"))
    stats, warnings = ReadStats(), []
    ids = [e.head.auditID for e in read_paths([str(bad), str(after)], stats, on_warning=warnings.append)]
    assert ids[-1] == "after"
    assert any(f"{bad}:" in w and "read error" in w and "zstd" in w for w in warnings), warnings


def test_without_the_package_a_zstd_file_is_named_with_what_to_do(tmp_path):
    """A Python without zstandard skips the file with one line naming the extra to install."""
    why = not_audit_reason(ZSTD_MAGIC + b"\x00" * 20)
    assert "pip install 'kubehawk[zstd]'" in why and "zstd -d" in why
    p = tmp_path / "audit.log.zst"
    p.write_bytes(zstandard.compress(_lines("a")))
    code = ("import sys; sys.modules['zstandard'] = None\n"  # as if it were not installed
            "from kubehawk.sources.files import ReadStats, read_paths\n"
            f"s = ReadStats(); print(len(list(read_paths([{str(p)!r}], s, on_warning=print))), s.summary()['bad'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "kubehawk[zstd]" in out and out.strip().endswith("0 0")
