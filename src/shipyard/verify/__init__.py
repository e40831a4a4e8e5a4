"""Verification: how far a candidate's answers are from the source model's."""

from shipyard.verify.metrics import METRICS, choose_metric, verify_outputs
from shipyard.verify.reference import reference_outputs, run_batched, trim_padding

__all__ = [
    "METRICS",
    "choose_metric",
    "reference_outputs",
    "run_batched",
    "trim_padding",
    "verify_outputs",
]
