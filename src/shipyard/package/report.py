"""``report.html``: written with the package; the page itself is ``shipyard.report``."""

from shipyard.report import render_report, write_report

__all__ = ["render_report", "write_report"]
