"""Server test fixtures (the helpers live in servetools.py so both test folders can run together)."""

from servetools import pki, rules_dir, serve  # noqa: F401 - fixtures
