"""``report.html``: one offline page (inline CSS and SVG, no scripts) to decide from.

``page`` assembles it from ``facts`` (what the build knew: machine, versions, data, metric, budget,
rule, timing), ``plot`` (latency against quality; throughput against batch size), ``table`` (every
candidate, chosen first, details folded per row) and ``int8`` (why each quantised family missed).

Example::

    >>> from shipyard.package.report import render_report
    >>> html = render_report(result)                    # doctest: +SKIP
"""

from shipyard.package.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
