"""Running a split artifact: ONNX parts in ONNX Runtime, unknown ops in PyTorch, in plan order.

Values pass between parts as numpy arrays (``torch.from_numpy`` shares memory, so handing a
tensor across costs no copy).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact
from shipyard.split.artifact import ensure_ops_registered, read_plan


class SplitSession(Session):
    def __init__(self, artifact: Artifact, threads: int) -> None:
        super().__init__(artifact.signature)
        import torch

        torch.set_num_threads(threads)
        self._torch = torch
        with zipfile.ZipFile(artifact.path) as archive, tempfile.TemporaryDirectory() as scratch:
            self.plan = read_plan(archive)
            ensure_ops_registered(archive, self.plan, Path(scratch))
            self._runners = [self._load_step(archive, step, threads) for step in self.plan["steps"]]

    def _load_step(self, archive: zipfile.ZipFile, step: dict[str, Any], threads: int):
        data = archive.read(step["file"])
        if step["kind"] == "torch":
            module = self._torch.export.load(io.BytesIO(data)).module()
            return lambda values: self._run_torch(module, values)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # PyTorch runs between the parts: ORT's workers must sleep, not spin, when a part ends
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        names = step["inputs"]
        return lambda values: session.run(None, dict(zip(names, values)))

    def _run_torch(self, module: Any, values: list[np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            result = module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in values])
        return [r.numpy() for r in (result if isinstance(result, (tuple, list)) else (result,))]

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = dict(inputs)
        for step, runner in zip(self.plan["steps"], self._runners):
            results = runner([values[n] for n in step["inputs"]])
            values.update(zip(step["outputs"], results))
        return {
            spec.name: values[name]
            for spec, name in zip(self.signature.outputs, self.plan["outputs"])
        }
