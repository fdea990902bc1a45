"""The report as one HTML string: Jinja2 templates shipped in the package, styles and script
inlined, a Content-Security-Policy that forbids any fetch, so the file opens air-gapped."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from kubehawk.report.charts import matrix_cells, timeline_svg
from kubehawk.report.model import ReportData

__all__ = ["render_html", "render_page"]

# Everything the page needs is inline; the browser refuses any other source (no CDN, font, image).
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("kubehawk.report", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else "-"
    return env


def _asset(name: str) -> str:
    return resources.files("kubehawk.report").joinpath("templates", name).read_text(encoding="utf-8")


def render_page(template: str, **context: Any) -> str:
    """Any page of ours: the template with the report's CSS inlined and the same CSP."""
    from markupsafe import Markup

    return _env().get_template(template).render(csp=CSP, css=Markup(_asset("report.css")), **context)


def render_html(data: ReportData, coverage: dict[str, Any]) -> str:
    """``coverage``: the Threat Matrix coverage of the loaded rules (``Coverage.to_dict()``)."""
    from markupsafe import Markup

    columns = matrix_cells(data, coverage)
    rules_of = sorted({r.rule_title for r in data.rows})
    return _env().get_template("report.html.j2").render(
        d=data, csp=CSP, css=Markup(_asset("report.css")), js=Markup(_asset("report.js")),
        timeline=Markup(timeline_svg(data)), matrix=columns, matrix_counts=coverage["coverage"],
        rule_names=rules_of, users=sorted({r.user for r in data.rows}),
        namespaces=sorted({r.namespace for r in data.rows}), levels=[lvl for lvl in data.by_level],
    )
