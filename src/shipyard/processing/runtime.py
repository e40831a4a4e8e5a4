"""Running a package's processing around its model: decode → pre graph → model → post graph."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import DataError
from shipyard.processing.config import config_from_json
from shipyard.processing.package import (
    IMAGE_INPUT,
    config_json_of,
    signature_from_manifest,
)
from shipyard.records import Signature

if TYPE_CHECKING:
    from shipyard.backends.base import Session


class Processing:
    """The processing stages of one package. ``signature`` is the package's public signature."""

    def __init__(self, folder: Path, entry: dict[str, Any], model: Signature, threads: int) -> None:
        self.config = config_from_json(config_json_of(entry))
        self.model_input: str = entry["model_input"]
        self.model_output: str = entry["model_output"]
        self.signature = signature_from_manifest(model, entry)
        self._pre = _ort(folder / entry["pre"], threads) if entry.get("pre") else None
        self._post = _ort(folder / entry["post"], threads) if entry.get("post") else None
        self._labels = (
            np.array([s.encode() for s in self.config.post.labels], dtype=object)
            if self.config.post and self.config.post.labels
            else None
        )
        inputs = [i.name for i in self._post.get_inputs()] if self._post is not None else []
        self._detect_names = (inputs[0], inputs[1]) if len(inputs) == 3 else ("", "")

    def run(self, inputs: dict[str, np.ndarray], model: Session) -> dict[str, np.ndarray]:
        """Public inputs → public outputs, the model running in its own backend in between."""
        if self._pre is not None:
            from shipyard.processing.decode import image_sizes

            originals = image_sizes(
                self._images(inputs)
            )  # boxes are given in the sent image's pixels
            images = self.decode(inputs)
            feed = {self.model_input: self.pixels_to_tensor(images)}
            sizes = np.array([(h, w) for w, h in originals], np.float32)
        else:
            feed, sizes = inputs, None
        outputs = model.run(feed)
        return self.postprocess(outputs, sizes) if self._post is not None else outputs

    def decode(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        from shipyard.processing.decode import decode_images

        return decode_images(self._images(inputs), self._target_side())

    def check(self, inputs: dict[str, np.ndarray]) -> None:
        """Image headers and the request's pixel budget, without decoding (before batching)."""
        if self._pre is not None:
            from shipyard.processing.decode import image_sizes

            image_sizes(self._images(inputs))

    def _images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if set(inputs) != {IMAGE_INPUT}:
            raise DataError(
                f"inputs {sorted(inputs)} do not match the model: expected ['{IMAGE_INPUT}'] "
                f"(BYTES: encoded JPEG/PNG images)"
            )
        return inputs[IMAGE_INPUT]

    def _target_side(self) -> int | None:
        """The largest side the resize graph makes, so larger images may decode reduced; None = no
        resize."""
        image = self.config.image
        if image is None or image.resize is None:
            return None
        return max(image.resize)

    def pixels_to_tensor(self, images: list[np.ndarray]) -> np.ndarray:
        """Same-size images go through the graph as one batch; mixed sizes one by one."""
        if all(i.shape == images[0].shape for i in images):
            return self._pre.run(None, {"pixels": np.stack(images)})[0]
        return np.concatenate([self._pre.run(None, {"pixels": i[None]})[0] for i in images])

    def postprocess(
        self, outputs: dict[str, np.ndarray], sizes: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        post = self.config.post
        if post.kind == "detect":
            from shipyard.processing.detect import run_detect

            if sizes is None:
                raise DataError(
                    "detector post-processing needs image pre-processing (the original image sizes)"
                )
            return run_detect(self._post, outputs, sizes, post, self._labels, self._detect_names)
        raw = np.ascontiguousarray(outputs[self.model_output], dtype=np.float32)
        values = self._post.run(None, {self.model_output: raw})
        if post.kind == "embed":
            return {"embedding": values[0]}
        scores, indices = values
        return {"labels": self.label_names(indices), "scores": scores, "indices": indices}

    def label_names(self, indices: np.ndarray) -> np.ndarray:
        if self._labels is None:
            return np.vectorize(lambda i: f"class_{i}".encode(), otypes=[object])(indices)
        return self._labels[indices]


def load_processing(
    folder: Path, manifest: dict[str, Any], model: Signature, threads: int
) -> Processing | None:
    """The package's processing, or None when it has none."""
    entry = manifest.get("processing")
    return Processing(folder, entry, model, threads) if entry else None


def _ort(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
