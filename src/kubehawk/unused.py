"""Settings that do nothing, said out loud: a typo in an allowlist name or a key the command
does not read must not look like it took effect (issue 15). Each is one warning line naming
the file and key; nothing here stops a run."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubehawk.config import Config
    from kubehawk.rules import RuleSet

__all__ = ["IGNORED_BY", "allowlists_read", "unused_settings"]

# top-level config keys a command does not read, and where they are read instead
IGNORED_BY = {
    "detect": {
        "server": "read by `kubehawk serve` only",
        "outputs": "read by `kubehawk serve` only; detect writes alerts to stdout or --output",
    },
}
_PLACEHOLDER = re.compile(r"%allowlist_([A-Za-z0-9_]+?)_(?:user|namespace|serviceaccount|image)%")


def allowlists_read(ruleset: RuleSet) -> set[str]:
    """Names of the allowlists some loaded rule reads (``x.allowlisted.NAME`` or a placeholder)."""
    names = {f.split(".")[2] for r in ruleset.rules for f in r.fields
             if f.startswith("x.allowlisted.") and f.count(".") >= 2}
    for _, text in ruleset.sources:
        names.update(_PLACEHOLDER.findall(text))
    return names


def _hint(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def unused_settings(config: Config | None, ruleset: RuleSet, command: str | None = None) -> list[str]:
    """One line per setting of ``config`` that changes nothing for ``command`` with ``ruleset``."""
    from kubehawk.rules.tuning import Tuning

    if config is None:
        return []
    out: list[str] = []
    src = config.source
    read = allowlists_read(ruleset)
    for name in config.allowlists:
        if name not in read:
            out.append(f"{src}: allowlists.{name}: no loaded rule reads this allowlist, it does nothing"
                       + _hint(name, read))
    for key, where in IGNORED_BY.get(command or "", {}).items():
        if config.raw.get(key):
            out.append(f"{src}: {key}: ignored by `kubehawk {command}` ({where})")
    out.extend(Tuning.from_config(config).unknown(ruleset))
    return out
