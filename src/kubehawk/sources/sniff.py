"""Tell from its first bytes that a stream is plainly not an audit log, so it is skipped with one line.

Without this a CSV, a picture or a zstd archive handed to ``detect`` gives a warning per line (or
one per megabyte of binary), and a user cannot tell "no attack" from "nothing read". The test is
deliberately narrow: an audit log is JSON (lines or a document) or a line format that carries JSON
after a prefix (a CloudWatch export's time stamp, an OpenShift node name), so a stream whose first
bytes hold no ``{`` at all, or that is binary, or that a known foreign magic number marks, is not
one. A log whose first line was cut by rotation still has JSON objects on the following lines and
is read as usual.
"""

from __future__ import annotations

from kubehawk.sources.compression import ZSTD_MAGIC

__all__ = ["SNIFF_BYTES", "not_audit_reason"]

# How much of a stream's start is looked at (peeked, not consumed).
SNIFF_BYTES = 1 << 16

_BOM = b"\xef\xbb\xbf"
_WS = b" \t\r\n"
_FOREIGN = (
    (ZSTD_MAGIC, "zstd-compressed, read with the zstandard package (pip install 'kubehawk[zstd]'), "
                 "which is not installed: install it, or decompress the file first (zstd -d)"),
    (b"\x04\x22\x4d\x18", "lz4-compressed, which kubehawk does not read: decompress it first (lz4 -d)"),
    (b"PK\x03\x04", "a zip archive: unpack it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive: unpack it first"),
)
_LEGACY = b' AUDIT: id="'
# Bytes that never appear in JSON text (control characters other than tab, line feed, return).
_BINARY = bytes(c for c in range(32) if c not in (9, 10, 13))


def not_audit_reason(head: bytes) -> str | None:
    """Why a stream that starts with ``head`` (decompressed) is plainly not an audit log, or None
    when it may be one (or is empty so far)."""
    for magic, what in _FOREIGN:
        if head.startswith(magic):
            return what
    text = head[len(_BOM):] if head.startswith(_BOM) else head
    # NUL bytes first: the hole a writer leaves when logrotate's copytruncate empties its file
    text = text.lstrip(_WS + b"\x00")
    if not text or text[:1] in (b"{", b"["):
        return None
    first, newline, _ = text.partition(b"\n")
    if _LEGACY in first[:300]:
        return "legacy text audit format (--audit-log-format=legacy), not supported: use --audit-log-format=json"
    sample = text[:512]
    if sample.translate(None, _BINARY) != sample:
        return "binary data, not JSON"
    if not newline or b"{" in first or _json_line_follows(text):
        # JSON after a prefix (CloudWatch export lines, OpenShift node logs), JSON lines whose first
        # line was cut, or one long line not seen to its end: the line readers decide. Braces
        # further down only (a README with a JSON example) do not make a log.
        return None
    shown = first[:40].decode("utf-8", "replace")
    return f"no JSON object in its first {len(head)} bytes (it starts with {shown!r})"


def _json_line_follows(text: bytes, lines: int = 3) -> bool:
    """Does one of the few lines after the first start a JSON object (a log whose first line was
    cut by rotation)?"""
    rest = text.partition(b"\n")[2]
    return any(line.lstrip(_WS)[:1] in (b"{", b"[") for line in rest.split(b"\n", lines)[:lines])
