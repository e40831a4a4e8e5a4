"""Numbers as the report prints them: units by size, "–" for what was not measured (never 0)."""

from __future__ import annotations

import html
import math
import re

DASH = "–"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def measured(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def num(value: float | None, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if measured(value) else DASH


def ms(value: float | None) -> str:
    """A latency in milliseconds with about three significant digits."""
    if not measured(value) or value <= 0:
        return DASH
    if value >= 100:
        return f"{value:,.0f}".replace(",", "\u2009")
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def duration(milliseconds: float | None) -> str:
    """A time a person waits for: ms, s, or min and s."""
    if not measured(milliseconds):
        return DASH
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def size(mebibytes: float | None) -> str:
    if not measured(mebibytes):
        return DASH
    if mebibytes < 1:
        return f"{mebibytes * 1024:.0f} KiB"
    return f"{mebibytes:.1f} MiB" if mebibytes < 100 else f"{mebibytes:.0f} MiB"


def rate(per_second: float | None) -> str:
    if not measured(per_second) or per_second <= 0:
        return DASH
    if per_second >= 1000:
        return f"{per_second:,.0f}".replace(",", "\u2009")
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:.0f}"


def short_key(key: str) -> str:
    """A key with its quantize options as values only: ``…+static-qdq·minmax·per_channel``."""

    def options(match: re.Match) -> str:
        values = []
        for part in match.group(1).split(", "):
            name, _, value = part.partition("=")
            if value == "True":
                values.append(name)
            elif value not in ("False", "None", ""):
                values.append(value)
        return "·".join(values)

    key = re.sub(r"qat\(epochs=(\d+)\)", r"qat(≤\1 epochs)", key)  # early stopping may train fewer
    return re.sub(r"quantize\(([^()]*)\)", options, key)


def points(value: float) -> str:
    return f"{value:g} point" + ("" if value == 1 else "s")
