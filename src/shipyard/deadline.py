"""The build's ``--time-budget``: one clock that every stage asks before optional work.

What always runs, so a build has an answer: loading, the reference outputs, the first candidate and
every FP32 candidate, timing and packaging. What the budget stops: further reduced-precision
candidates (each is marked "not tried" with the reason), the accuracy-aware search, NNCF's
accuracy control (interrupted between validations), QAT (its training time is capped) and extra
timing rounds. ``None`` seconds means no limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

DEFAULT_TIME_BUDGET = 300.0
"""Seconds a build may spend by default: a real pretrained CNN's whole road on 2 cores fits."""


class TimeBudgetSpent(Exception):
    """Raised inside long third-party loops (NNCF's accuracy control) to stop them in time."""


@dataclass
class Deadline:
    seconds: float | None
    started: float = field(default_factory=time.monotonic)
    reserved: float = 0.0
    """Seconds at the end of the budget kept for the stages that always run (timing, packaging)."""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left (infinity without a budget, never below 0)."""
        if self.seconds is None:
            return math.inf
        return max(0.0, self.seconds - self.reserved - self.elapsed())

    def spent(self) -> bool:
        return self.seconds is not None and self.remaining() <= 0.0

    def keeping(self, seconds: float) -> Deadline:
        """The same clock, spent ``seconds`` earlier: optional work stops in time for what must
        follow it."""
        return Deadline(self.seconds, self.started, self.reserved + max(0.0, seconds))

    def check(self, what: str) -> None:
        """Raise ``TimeBudgetSpent`` naming ``what`` was stopped, once the budget is spent."""
        if self.spent():
            raise TimeBudgetSpent(
                f"{what} stopped: {self.spent_text()} (raise --time-budget to let it finish)"
            )

    def spent_text(self) -> str:
        kept = f" (less {self.reserved:.0f} s kept for timing and packaging)"
        return f"the time budget of {self.seconds:g} s was spent{kept if self.reserved else ''}"

    def describe(self) -> str:
        return (
            "no time budget"
            if self.seconds is None
            else f"{self.remaining():.0f} s of {self.seconds:g} s left"
        )


NO_DEADLINE = Deadline(None)
