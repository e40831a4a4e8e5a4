"""``file.py:function`` sources: a factory returning an ``nn.Module``, weights from a file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from shipyard.errors import SourceError
from shipyard.sources.base import Source, hash_files, hash_state_dict
from shipyard.sources.torch_module import InputHint, describe_module


def load_factory_source(
    spec: str, weights: Path | None, hints: list[InputHint], output_names: list[str] | None = None
) -> Source:
    file_part, _, function = spec.rpartition(":")
    path = Path(file_part)
    factory = find_factory(path, function)
    try:
        module = factory()
    except Exception as exc:
        raise SourceError(f"factory {spec} raised {type(exc).__name__}: {exc}") from exc
    if not _is_module(module):
        raise SourceError(
            f"factory {spec} returned {type(module).__name__}; expected a torch.nn.Module"
        )
    if weights is not None:
        load_weights(module, weights)
    if not hints:
        raise SourceError(
            f"cannot tell the inputs of {spec}: pass --data with an .npz of named "
            f"inputs, or --input-shape NAME:1x3x224x224"
        )
    module.eval()
    signature = describe_module(module, hints, output_names)
    content = hash_state_dict(module.state_dict(), extra=hash_files(path))
    return Source(
        name=path.stem,
        kind="torch",
        signature=signature,
        content_hash=content,
        task=guess_task(signature),
        module=module,
        path=path,
    )


def find_factory(path: Path, function: str) -> Any:
    if not path.is_file():
        raise SourceError(f"model file {str(path)!r} does not exist; expected file.py:function")
    module_name = f"shipyard_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SourceError(f"{path} is not a Python file; expected file.py:function")
    user_module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = user_module
    try:
        spec.loader.exec_module(user_module)
    except Exception as exc:
        raise SourceError(f"importing {path} raised {type(exc).__name__}: {exc}") from exc
    factory = getattr(user_module, function, None)
    if not callable(factory):
        found = [n for n, v in vars(user_module).items() if callable(v) and not n.startswith("_")]
        raise SourceError(
            f"{path} has no function {function!r}; callables there: {', '.join(found) or 'none'}"
        )
    return factory


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def read_state_dict(weights: Path) -> dict[str, Any]:
    """A state dict from safetensors, or from a torch file read with ``weights_only=True``."""
    import torch

    if not weights.is_file():
        raise SourceError(f"weights file {str(weights)!r} does not exist")
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights))
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SourceError(
            f"cannot read weights {weights}: {type(exc).__name__}: {exc}; expected a "
            f"safetensors file or a torch state dict"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SourceError(f"weights {weights} hold a {type(state).__name__}; expected a state dict")
    return state


def load_weights(module: Any, weights: Path) -> None:
    """Load a state dict into ``module``; a missing, unexpected or misshapen key is an error."""
    state = read_state_dict(weights)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k} {list(state[k].shape)} vs model {list(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if misshapen:
        problems.append(f"shape mismatch {_few(misshapen)}")
    if problems:
        raise SourceError(f"weights {weights} do not fit the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def _few(items: list[str], limit: int = 6) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def guess_task(signature) -> str:
    first = signature.outputs[0]
    if len(first.shape) == 2 and isinstance(first.shape[1], int) and first.shape[1] > 1:
        return "classification"
    return "generic"
