"""Compressed logs, told by their first bytes rather than their names (a rotated
``audit.log.1.gz``, a ``.log`` that is gzip inside): the formats kubehawk reads and the errors
reading one may raise (a truncated file, a corrupt block), which end that file with a warning.
zstd is read when the ``zstandard`` package is installed (``pip install 'kubehawk[zstd]'``);
without it a zstd file is named and skipped (:mod:`kubehawk.sources.sniff`)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from importlib.util import find_spec
from typing import IO

__all__ = ["READ_ERRORS", "SUFFIXES", "decompressed", "is_compressed"]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD = find_spec("zstandard") is not None  # zstd is read when the package is installed


class _Zstd(io.RawIOBase):
    """A zstd stream's decompressed bytes (every frame, as ``zstd -d`` gives them), its errors
    raised as OSError so that they end the file with a warning like any other read error."""

    def __init__(self, fh: IO[bytes]) -> None:
        import zstandard  # imported when a zstd file is met: 10 ms off every other start

        self._error = zstandard.ZstdError
        self._reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True, closefd=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:
            return self._reader.readinto(buffer)
        except self._error as e:
            raise OSError(f"zstd: {e}") from e


def _zstd(fh: IO[bytes]) -> IO[bytes]:
    return io.BufferedReader(_Zstd(fh), 1 << 18)


_MAGIC: tuple[tuple[bytes, Callable[[IO[bytes]], IO[bytes]]], ...] = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", lambda f: bz2.BZ2File(f, "rb")),
    (b"\xfd7zXZ\x00", lambda f: lzma.LZMAFile(f, "rb")),  # noqa: SIM115 - closed with the file
    *(((ZSTD_MAGIC, _zstd),) if _ZSTD else ()),
)
# the usual file name suffixes of what _MAGIC reads (Hadoop's codecs go by them)
SUFFIXES = (".gz", ".bz2", ".xz", *((".zst",) if _ZSTD else ()))


def is_compressed(head: bytes) -> bool:
    """Do these first bytes of a file say a compression kubehawk reads (gzip, bzip2, xz, and
    zstd with the ``zstandard`` package)?"""
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
