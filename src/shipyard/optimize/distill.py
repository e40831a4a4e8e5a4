"""``--distill-into student.py:make``: the user's smaller student, trained from the original.

The student must take the same inputs and give outputs of the same shapes as the original (its
signature must match), because it replaces the original for the rest of the road.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import SourceError, UsageError
from shipyard.records import Signature


def load_student(spec: str, signature: Signature) -> Any:
    """The untrained student module from ``FILE.py:FUNCTION``, checked against ``signature``."""
    import torch

    from shipyard.sources.torch_factory import find_factory

    file_part, _, function = spec.rpartition(":")
    if not file_part or not function:
        raise UsageError(
            f"--distill-into {spec!r}: expected FILE.py:FUNCTION returning an nn.Module"
        )
    factory = find_factory(Path(file_part), function)
    try:
        student = factory()
    except Exception as exc:
        raise SourceError(f"student factory {spec} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(student, torch.nn.Module):
        raise SourceError(
            f"student factory {spec} returned {type(student).__name__}; expected a torch.nn.Module"
        )
    check_student_signature(student, signature, spec)
    return student


def check_student_signature(student: Any, signature: Signature, spec: str) -> None:
    """Raise unless ``student`` maps the signature's example inputs to outputs of the same
    shapes."""
    from shipyard.sources.torch_module import InputHint, describe_module

    hints = [
        InputHint(s.name, s.dtype, tuple(d if isinstance(d, int) else 1 for d in s.shape[1:]))
        for s in signature.inputs
    ]
    try:
        found = describe_module(student, hints, signature.output_names)
    except Exception as exc:
        raise SourceError(
            f"student {spec} does not take the model's inputs "
            f"{[s.kserve_shape for s in signature.inputs]}: {exc}"
        ) from exc
    want = [s.kserve_shape[1:] for s in signature.outputs]
    got = [s.kserve_shape[1:] for s in found.outputs]
    if want != got:
        raise SourceError(
            f"student {spec} gives outputs of shapes {got} per sample; the model gives {want}, "
            f"and the student must match to replace it"
        )
    student.train()
