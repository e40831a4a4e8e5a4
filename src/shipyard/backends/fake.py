"""A fake backend for fast tests of the batcher, server and search logic.

It computes ``output = input * scale + bias`` on the first input, summed over every axis but the
batch axis, with an optional delay per call, so behaviour under load can be tested in
milliseconds without a real runtime. It is never a build candidate.
"""

from __future__ import annotations

import json
import time

import numpy as np

from shipyard.backends.base import Session
from shipyard.records import Artifact


class FakeSession(Session):
    def __init__(self, artifact: Artifact) -> None:
        super().__init__(artifact.signature)
        config = json.loads(artifact.path.read_text())
        self.scale = float(config.get("scale", 1.0))
        self.delay_s = float(config.get("delay_ms", 0.0)) / 1000
        self.fail_on = config.get("fail_on")
        self.calls: list[int] = []

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        first = inputs[self.signature.inputs[0].name]
        self.calls.append(len(first))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_on is not None and np.any(first == self.fail_on):
            raise RuntimeError(f"fake failure: input contains {self.fail_on}")
        value = first.astype(np.float32) * self.scale
        out = value.reshape(len(value), -1).sum(axis=1, keepdims=True)
        return {self.signature.outputs[0].name: out}


class FakeBackend:
    name = "fake"
    formats = ("fake",)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def load(self, artifact: Artifact, threads: int) -> Session:
        return FakeSession(artifact)


BACKEND = FakeBackend()
