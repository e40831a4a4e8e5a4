"""Axis arithmetic for the report's SVG plots: nice ticks, log ticks, labels that never overlap."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Data ``lo..hi`` onto pixels ``start..end`` (``end`` < ``start`` for a y axis), or log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        v, lo, hi = (
            (math.log10(value), math.log10(self.lo), math.log10(self.hi))
            if self.log
            else (value, self.lo, self.hi)
        )
        return self.start + (v - lo) / ((hi - lo) or 1.0) * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering ``lo..hi``, about ``count`` of them."""
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + 1e-9 * span:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between ``lo`` and ``hi`` (both > 0); just each decade's 1 when many."""
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if lo <= value <= hi:
                ticks.append(value)
    if len(ticks) > 9:
        ticks = [t for t in ticks if round(t / 10 ** math.floor(math.log10(t)), 6) == 1]
    if len(ticks) < 2:
        ticks = sorted({lo, hi})
    return ticks


def log_range(values: list[float], pad: float = 0.08) -> tuple[float, float]:
    lo, hi = math.log10(min(values)), math.log10(max(values))
    span = max(hi - lo, 0.3)
    middle = (lo + hi) / 2
    return 10 ** (middle - span / 2 - pad * span), 10 ** (middle + span / 2 + pad * span)


def tick_label(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}".replace(",", "\u2009")
    if value >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


def spread_labels(wanted: list[float], gap: float, top: float, bottom: float) -> list[float]:
    """Positions as close to ``wanted`` as possible, at least ``gap`` apart, inside ``top..bottom``.

    ``wanted`` must be sorted. Pushes down, then back up from the bottom: the result never overlaps
    when ``(len(wanted) - 1) * gap <= bottom - top``; callers size the plot so that it holds.
    """
    placed: list[float] = []
    for value in wanted:
        placed.append(max(value, top, placed[-1] + gap if placed else top))
    limit = bottom
    for index in range(len(placed) - 1, -1, -1):
        placed[index] = min(placed[index], limit)
        limit = placed[index] - gap
    return placed
