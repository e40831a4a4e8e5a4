"""The record for what the user handed us."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.records import Signature, Step


@dataclass(frozen=True)
class TextFrontend:
    """How text becomes the model's tensors: a ``tokenizers`` JSON file and its limits."""

    tokenizer_file: Path
    max_length: int
    input_names: tuple[str, ...]
    """Which of ``input_ids``, ``attention_mask``, ``token_type_ids`` the model takes, in order."""


@dataclass(frozen=True)
class FrameworkReference:
    """The framework a converted model came from; it, not the converted ONNX, gives the reference
    outputs
    (``shipyard.frameworks.reference_session`` opens it)."""

    framework: str
    """``paddle``, ``tensorflow`` or ``caffe``."""
    description: str
    """How the reference runs, shown as the baseline's name (``Paddle Inference 3.3.1``)."""
    files: tuple[Path, ...]
    """What the framework loads: program + parameters (Paddle), the SavedModel folder (TensorFlow),
    the checked ONNX graph (Caffe)."""


@dataclass
class Source:
    """A loaded model.

    ``kind`` is ``torch`` (an ``nn.Module`` in ``module``), ``torchscript`` (a scripted module in
    ``module``, file in ``path``) or ``onnx`` (a file in ``path``).
    """

    name: str
    kind: str
    signature: Signature
    content_hash: str
    task: str = "generic"
    """``classification`` (logits first), ``embedding`` or ``generic``."""
    module: Any = None
    path: Path | None = None
    text: TextFrontend | None = None
    example_data: Any = None
    """A ``Dataset`` that comes with the model (built-in examples), used when ``--data`` is
    absent."""
    notes: list[str] = field(default_factory=list)
    steps: tuple[Step, ...] = ()
    """Model-level steps already applied to ``module`` (fold-bn, prune…); every recipe starts with
    them."""
    processing_config: Path | None = None
    """A ``--preprocess`` config that comes with the model (built-in examples), used when none is
    given."""
    reference: FrameworkReference | None = None
    """For models converted from another framework (kind ``onnx``, ``path`` the converted file)."""


def hash_files(*paths: Path, extra: str = "") -> str:
    """A short sha256 over file contents (folders walked in sorted order) and an extra string."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def hash_state_dict(state: dict[str, Any], extra: str = "") -> str:
    """A short sha256 over a torch state dict's names, shapes and values."""
    import torch

    digest = hashlib.sha256(extra.encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
