"""The verify stage: make each candidate's artifact, load it as ``shipyard.load`` would, check its
outputs.

A candidate that fails to convert, load or run is a result (``candidate.error``), not a crash of the
build: other candidates go on. A bug of Shipyard's own shows as such an error too, which is why
tests assert that the candidates they expect *passed*, never only that they exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.backends import get_backend
from shipyard.bench import rss_mb
from shipyard.errors import ShipyardError
from shipyard.records import Candidate, Timing
from shipyard.verify import run_batched, verify_outputs

if TYPE_CHECKING:
    from shipyard.backends.base import Session
    from shipyard.dataset import Dataset
    from shipyard.pipeline.build import Reporter
    from shipyard.workshop import Workshop


@dataclass
class Verifier:
    """Verifies candidates against the source's reference outputs; keeps the sessions it opened."""

    workshop: Workshop
    reference: dict
    evaluation: Dataset
    metric: str
    max_drop: float
    threads: int
    reporter: Reporter

    def __post_init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    def __call__(self, candidates: list[Candidate], first_pass: bool = False) -> dict[str, Session]:
        """Make, load and verify ``candidates``; returns the sessions of those that ran.

        In the ``first_pass`` (the planned candidates) the time budget skips reduced-precision
        candidates once it is spent; FP32 ones and the first are always made, so a build has an
        answer.
        """
        from shipyard.pipeline.build import report_progress

        opened: dict[str, Session] = {}
        deadline = self.workshop.deadline
        for index, candidate in enumerate(candidates, start=1):
            if first_pass and index > 1 and candidate.precision != "fp32" and deadline.spent():
                candidate.error = (
                    f"not tried: {deadline.spent_text()} before its turn (raise --time-budget)"
                )
                self.reporter.candidate(candidate)
                continue
            if len(candidates) > 1:
                report_progress(
                    self.reporter, "making and verifying candidates", index - 1, len(candidates)
                )
            self.reporter.stage(f"[{index}/{len(candidates)}] {candidate.key}: {candidate.recipe}")
            try:
                session = self._load(candidate)
                outputs = run_batched(session, self.evaluation)
                candidate.verification = verify_outputs(
                    self.metric, self.reference, outputs, self.evaluation.labels, self.max_drop
                )
                opened[candidate.key] = session
            except ShipyardError as exc:
                candidate.error = str(exc)
            except (
                Exception
            ) as exc:  # a runtime's own failure on this model is a result, not a crash
                candidate.error = f"{type(exc).__name__}: {str(exc)[:400]}"
            self.reporter.candidate(candidate)
        if len(candidates) > 1:
            report_progress(
                self.reporter, "making and verifying candidates", len(candidates), len(candidates)
            )
        self.sessions.update(opened)
        return opened

    def _load(self, candidate: Candidate) -> Session:
        """A session on the candidate's artifact, loaded from the file the package will ship."""
        start = time.perf_counter()
        candidate.artifact = self.workshop.make(candidate.recipe)
        made = time.perf_counter()  # making it (export, an INT8 search) is not loading it
        memory_before = rss_mb()
        session = get_backend(candidate.backend).load(
            candidate.artifact, self.threads, **candidate.runtime
        )
        memory_after = rss_mb()
        grown = max(0.0, memory_after - memory_before) if memory_before else None
        candidate.timing = Timing(
            0,
            0,
            0,
            0,
            0,
            load_ms=(time.perf_counter() - made) * 1000,
            peak_rss_mb=grown,
            size_mb=candidate.artifact.size_bytes() / 2**20,
            build_ms=(made - start) * 1000,
            threads=self.threads,
        )
        return session
