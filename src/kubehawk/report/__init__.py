"""``kubehawk report``: one self-contained HTML file an analyst opens first.

Built from a log (detection runs) or from alert JSON lines: a summary, a timeline of alerts
stacked by level with the steps of an intrusion clustered, the Threat Matrix as a heat map,
every alert in a sortable, filterable table (capped, aggregated beyond), and with a policy
what it blinds and what it leaks. Nothing is fetched when the file is viewed: the styles, the
script and the charts (SVG drawn here, :mod:`kubehawk.report.charts`) are all inline.
"""

from kubehawk.report.model import ReportData, build_data
from kubehawk.report.render import render_html

__all__ = ["ReportData", "build_data", "render_html"]
