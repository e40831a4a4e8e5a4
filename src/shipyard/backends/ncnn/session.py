"""ncnn (Tencent) on the CPU, from a pnnx-converted ``.param`` graph + ``.bin`` weights.

ncnn has no batch axis: a session runs the samples of a batch one by one, each with a fresh
extractor, and stacks the results. Inputs and outputs are matched to the signature by position
(pnnx names them ``in0, in1…`` and ``out0, out1…``).
"""

from __future__ import annotations

import numpy as np

from shipyard.backends.base import Session
from shipyard.errors import BackendUnavailable, DataError
from shipyard.records import Artifact


class NcnnSession(Session):
    def __init__(self, artifact: Artifact, threads: int, fp16: bool = False) -> None:
        super().__init__(artifact.signature)
        import ncnn

        self._ncnn = ncnn
        self._net = ncnn.Net()
        options = self._net.opt
        options.num_threads = threads
        # ncnn's OpenMP workers otherwise spin 20 ms after each call and starve whatever runs next.
        options.openmp_blocktime = 0
        # FP32 artifacts stay FP32: ncnn would otherwise store and compute in fp16/bf16 where it
        # can.
        for flag in (
            "use_fp16_packed",
            "use_fp16_storage",
            "use_fp16_arithmetic",
            "use_bf16_storage",
        ):
            setattr(options, flag, fp16 and flag != "use_bf16_storage")
        options.use_int8_inference = True  # layers whose weights ncnn-int8 quantised run in INT8
        weights = artifact.path.with_suffix(".bin")
        if self._net.load_param(str(artifact.path)) != 0 or self._net.load_model(str(weights)) != 0:
            raise BackendUnavailable(
                f"ncnn could not read {artifact.path.name} / {weights.name}; "
                "expected a .param graph and its .bin weights side by side"
            )
        self._inputs = list(zip(artifact.signature.input_names, self._net.input_names()))
        self._outputs = list(zip(artifact.signature.output_names, self._net.output_names()))

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) != 1:
            raise DataError(
                f"inputs have different batch sizes {sorted(sizes)}; expected one batch size"
            )
        rows = [self._run_one({n: inputs[n][i] for n in inputs}) for i in range(sizes.pop())]
        return {name: np.stack([row[name] for row in rows]) for name, _ in self._outputs}

    def _run_one(self, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blobs = self.extract(sample, [blob for _, blob in self._outputs])
        return {name: blobs[blob] for name, blob in self._outputs}

    def extract(self, sample: dict[str, np.ndarray], blobs: list[str]) -> dict[str, np.ndarray]:
        """Blobs of the graph by ncnn name (outputs or intermediates) for one sample without a
        batch axis."""
        ncnn = self._ncnn
        extractor = self._net.create_extractor()
        extractor.set_light_mode(
            len(blobs) == 1
        )  # light mode frees intermediates that a later blob may need
        for name, blob in self._inputs:
            extractor.input(blob, ncnn.Mat(np.ascontiguousarray(sample[name], dtype=np.float32)))
        result = {}
        for blob in blobs:
            status, mat = extractor.extract(blob)
            if status != 0:
                raise DataError(f"ncnn could not compute blob {blob!r} (status {status})")
            result[blob] = np.array(mat, copy=True)
        return result
