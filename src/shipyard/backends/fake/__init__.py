"""A fake backend for fast tests of the batcher, server and search logic.

It computes ``output = input * scale + bias`` on the first input, summed over every axis but the
batch axis, with an optional delay per call, so behaviour under load can be tested in
milliseconds without a real runtime. It is never a build candidate.
"""

from __future__ import annotations

import json
import time

import numpy as np

from shipyard.backends.base import Runtime, Session
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


class FakeBackend(Runtime):
    name = "fake"
    formats = ("fake",)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def load(self, artifact: Artifact, threads: int, spin: bool = True) -> Session:
        return FakeSession(artifact)


BACKEND = FakeBackend()


def write_fake_package(
    folder,
    name: str = "fake",
    *,
    features: int = 4,
    scale: float = 1.0,
    delay_ms: float = 0.0,
    fail_on: float | None = None,
    version: int = 1,
    text: bool = False,
    max_batch_size: int = 64,
):
    """Write a package served by the fake backend (tests and benchmarks of the serving path).

    Numeric packages take ``x`` FP32 ``[-1, features]`` and answer ``y`` FP32 ``[-1, 1]`` (the
    row sum times ``scale``). With ``text=True`` the package takes ``text`` BYTES and tokenises it
    with a tiny word-level tokenizer (``hello`` = 2, ``world`` = 3, unknown words = 1) before
    the fake model sums the token ids, so padding never changes an answer.
    """
    from pathlib import Path

    folder = Path(folder)
    (folder / "model").mkdir(parents=True, exist_ok=True)
    config = {"scale": scale, "delay_ms": delay_ms, "fail_on": fail_on}
    (folder / "model" / "model.fake").write_text(json.dumps(config))
    output = {"name": "y", "dtype": "float32", "shape": [-1, 1], "dims": ["batch", 1]}
    if text:
        token = {"dtype": "int64", "shape": [-1, -1], "dims": ["batch", "sequence"]}
        model_inputs = [{"name": "input_ids", **token}, {"name": "attention_mask", **token}]
        inputs = [{"name": "text", "dtype": "bytes", "shape": [-1], "dims": ["batch"]}]
        _write_word_tokenizer(folder / "tokenizer.json")
    else:
        model_inputs = inputs = [
            {"name": "x", "dtype": "float32", "shape": [-1, features], "dims": ["batch", features]}
        ]
    manifest = {
        "format_version": 1,
        "name": name,
        "version": version,
        "backend": "fake",
        "artifact_format": "fake",
        "model_file": "model/model.fake",
        "inputs": inputs,
        "outputs": [output],
        "model_signature": {"inputs": model_inputs, "outputs": [output]},
        "text": {
            "tokenizer": "tokenizer.json",
            "max_length": 32,
            "input_names": ["input_ids", "attention_mask"],
        }
        if text
        else None,
        "threads": 1,
        "max_batch_size": max_batch_size,
    }
    from shipyard.digests import file_digests

    manifest.update(digests=file_digests(folder), carries_code=[])
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def _write_word_tokenizer(path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3, "ship": 4, "yard": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path))
