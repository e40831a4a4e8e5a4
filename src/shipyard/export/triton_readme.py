"""``REPO/README.md`` of an exported Triton repository: what each model needs from Triton.

Written from the configs in the repository after every export, so a repository that several
packages were exported into describes all of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_NEEDS = {
    "python": "Triton's Python backend, and in the Python its stub runs (the first `python3` on "
    "Triton's "
    "`PATH`): numpy<2 (the stub of Triton 2.51 is built against numpy 1.x), `shipyard` and the "
    "package's runtime (e.g. `pip install 'numpy<2' onnxruntime tokenizers pillow` and "
    "`pip install --no-deps shipyard`)",
    "onnxruntime": "Triton's ONNX Runtime backend (`platform: onnxruntime_onnx`; in NGC's "
    "tritonserver images)",
    "openvino": "Triton's OpenVINO backend",
    "pytorch": "Triton's PyTorch (libtorch) backend",
    "tensorrt": "Triton's TensorRT backend and an NVIDIA GPU of the kind the plan was built on",
}
_BACKEND = re.compile(r'^backend: "([^"]+)"', re.MULTILINE)


def _alone(config: str) -> str:
    """A note for a model that takes batches but whose requests Triton must not join."""
    if "max_batch_size: 0" in config or "dynamic_batching" in config:
        return ""
    return (
        "; no `dynamic_batching`: its batched rows are not its samples' own answers (the "
        "export's batch probe), so Triton runs each request alone"
    )


def _runtime(model: Path) -> str:
    """Which runtime the Python backend's packages of ``model`` run on, from their manifests."""
    backends = set()
    for manifest in model.glob("*/package/manifest.json"):
        try:
            backends.add(json.loads(manifest.read_text())["backend"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if not backends:
        return ""
    return "; this package runs on " + ", ".join(f"`{b}`" for b in sorted(backends))


def write_readme(repo: Path) -> Path:
    """Write ``repo/README.md`` listing each model folder with its backend and what that needs."""
    rows = []
    for config in sorted(repo.glob("*/config.pbtxt")):
        match = _BACKEND.search(config.read_text())
        backend = match.group(1) if match else "?"
        needs = _NEEDS.get(backend, "a Triton backend of that name") + _runtime(config.parent)
        needs += _alone(config.read_text())
        rows.append(f"| `{config.parent.name}` | `{backend}` | {needs} |")
    text = "\n".join(
        [
            "# Triton model repository (written by `shipyard export triton`)",
            "",
            "    tritonserver --model-repository .",
            "",
            "| model | Triton backend | what it needs |",
            "|---|---|---|",
            *rows,
            "",
            "Python-backend models hold the Shipyard package in `<version>/package/`, a `model.py` "
            "that loads it",
            "with `shipyard.load` and joins each dynamic batch into one call, and `shipyard.json` "
            "naming the package.",
            "Clients send the package's own inputs (text packages: BYTES text; image packages: "
            "JPEG/PNG bytes).",
            "",
        ]
    )
    path = repo / "README.md"
    path.write_text(text)
    return path
