"""TorchScript archive sources (``file.pt`` made by ``torch.jit.save``)."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import SourceError
from shipyard.sources.base import Source, hash_files
from shipyard.sources.torch_factory import guess_task
from shipyard.sources.torch_module import InputHint, describe_module


def load_torchscript_source(
    path: Path, hints: list[InputHint], output_names: list[str] | None = None
) -> Source:
    import torch

    if not path.is_file():
        raise SourceError(f"TorchScript file {str(path)!r} does not exist")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise SourceError(
            f"{path} is not a TorchScript archive ({type(exc).__name__}); a state dict "
            f"goes with a factory: shipyard build model.py:make --weights {path}"
        ) from exc
    if not hints:
        raise SourceError(
            f"cannot tell the inputs of {path}: pass --data with an .npz of named inputs, "
            f"or --input-shape NAME:1x3x224x224"
        )
    signature = describe_module(module, hints, output_names)
    return Source(
        name=path.stem,
        kind="torchscript",
        signature=signature,
        content_hash=hash_files(path),
        task=guess_task(signature),
        module=module,
        path=path,
    )
