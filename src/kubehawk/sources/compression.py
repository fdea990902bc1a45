"""Compressed logs, told by their first bytes rather than their names (a rotated
``audit.log.1.gz``, a ``.log`` that is gzip inside): the formats kubehawk reads and the errors
reading one may raise (a truncated file, a corrupt block), which end that file with a warning."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from typing import IO

__all__ = ["READ_ERRORS", "decompressed", "is_compressed"]

_MAGIC: tuple[tuple[bytes, Callable[[IO[bytes]], IO[bytes]]], ...] = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", lambda f: bz2.BZ2File(f, "rb")),
    (b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f, "rb")),  # noqa: SIM115 - closed with the file
)


def is_compressed(head: bytes) -> bool:
    """Do these first bytes of a file say gzip, bzip2 or xz?"""
    return any(head.startswith(magic) for magic, _ in _MAGIC)


def decompressed(fh: io.BufferedReader) -> IO[bytes]:
    """The stream itself, or its decompressed view when the magic bytes say so."""
    head = fh.peek(6)[:6]
    if not head:  # at its end: a terminal's Ctrl-D is read once, so never read it again
        return io.BytesIO()
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            return opener(fh)
    return fh


READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)
