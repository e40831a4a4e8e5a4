"""Running a package: ``shipyard.load(DIR).run({name: array}) -> {name: array}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import DataError
from shipyard.records import Artifact, Signature


class Predictor:
    """A loaded package. ``signature`` is what clients send and receive.

    Text packages take a ``text`` BYTES input and tokenise it with the tokenizer packaged beside
    the model; every other package passes its feed straight to the runtime after validation.
    """

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        threads: int | None = None,
        trust_code: bool = False,
        spin: bool = True,
    ) -> None:
        from shipyard.backends import get_backend
        from shipyard.package.manifest import public_signature
        from shipyard.package.trust import require_consent

        require_consent(
            folder, manifest, trust_code
        )  # before any runtime opens a file of the package
        self.folder = folder
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.version = str(manifest.get("version", 1))
        self.backend: str = manifest["backend"]
        self.threads = threads or int(manifest.get("threads", 1))
        model_signature = Signature.from_json(manifest.get("model_signature") or manifest)
        self.signature = public_signature(model_signature, manifest.get("text"))
        artifact = Artifact(
            folder / manifest["model_file"], manifest["artifact_format"], model_signature
        )
        self.session = get_backend(self.backend).load(
            artifact, self.threads, spin=spin, **(manifest.get("runtime") or {})
        )
        _check_cpu(folder, manifest)
        self._tokenizer = self._make_tokenizer(manifest.get("text"))
        from shipyard.processing.runtime import load_processing

        self._processing = load_processing(folder, manifest, model_signature, self.threads)
        if self._processing is not None:  # image bytes in, labels / boxes / unit embeddings out
            self.signature = self._processing.signature

    def _make_tokenizer(self, text: dict[str, Any] | None):
        if text is None:
            return None
        from shipyard.sources.base import TextFrontend
        from shipyard.text import Tokenizer

        return Tokenizer(
            TextFrontend(
                self.folder / text["tokenizer"], int(text["max_length"]), tuple(text["input_names"])
            )
        )

    @property
    def max_batch_size(self) -> int:
        return int(self.manifest.get("max_batch_size", 64))

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against the package's inputs and run the model."""
        if self._processing is not None:
            return self._processing.run(inputs, self.session)
        if self._tokenizer is None:
            return self.session.run(inputs)
        return self.session.run(self._tokenizer(self._texts(inputs)))

    def check(self, inputs: dict[str, np.ndarray]) -> None:
        """What can be checked without running the model: texts decode, image headers fit the pixel
        budget."""
        if self._processing is not None:
            self._processing.check(inputs)
        elif self._tokenizer is not None:
            self._texts(inputs)

    def _texts(self, inputs: dict[str, np.ndarray]) -> list[str]:
        from shipyard.text import BYTES_PER_TOKEN, TEXT_INPUT, decode_texts

        if set(inputs) != {TEXT_INPUT}:
            raise DataError(
                f"inputs {sorted(inputs)} do not match the model: expected ['{TEXT_INPUT}'] (BYTES)"
            )
        texts = decode_texts(
            inputs[TEXT_INPUT], self._tokenizer.frontend.max_length * BYTES_PER_TOKEN
        )
        if not texts:
            raise DataError(f"input {TEXT_INPUT!r} is empty; expected at least one text")
        return texts

    def close(self) -> None:
        self.session.close()


def _check_cpu(folder: Path, manifest: dict[str, Any]) -> None:
    """Warn once when this CPU lacks the features the package's precision was chosen for."""
    if not manifest.get("cpu_requirements"):
        return
    from shipyard import machine
    from shipyard.package.cpu_check import warn_if_missing

    warn_if_missing(str(folder.resolve()), manifest["cpu_requirements"], machine.cpu().flags)


def load(
    folder: str | Path, threads: int | None = None, trust_code: bool = False, spin: bool = True
) -> Predictor:
    """Load the package in ``folder``; ``threads`` defaults to the count the build timed with.

    ``spin=False`` keeps the runtime's idle threads from spin-waiting between calls (ONNX Runtime),
    for a process that needs the cores for other work too; ``shipyard serve`` loads so.

    The manifest is validated and every file checked against its digest first. A package that
    carries code (custom-op Python, pickled torch objects, compiled libraries) loads only with
    ``trust_code=True``; ``manifest["carries_code"]`` says what it carries.
    """
    from shipyard.package.manifest import read_manifest

    path = Path(folder)
    return Predictor(path, read_manifest(path), threads, trust_code, spin)
