"""Sink test fixtures (the helpers live in sinktools.py so both test folders can run together)."""

from sinktools import pki, receiver  # noqa: F401 - fixtures
