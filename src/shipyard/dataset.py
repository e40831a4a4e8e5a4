"""Data sets: named input arrays (first axis = samples), optional labels, or texts.

Loaders for ``.npz``, ``.txt`` and image folders, a synthetic set for when no data is given, and
the deterministic split into calibration and evaluation subsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shipyard.errors import DataError
from shipyard.records import Signature, numpy_dtype

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Dataset:
    """Samples for calibration and evaluation.

    ``inputs`` maps each model input to an array whose first axis is the sample; ``texts`` holds
    the raw strings of a text data set (tokenised into ``inputs`` by the text frontend).
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    texts: list[str] | None = None
    synthetic: bool = False
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        first = next(iter(self.inputs.values()), None)
        return 0 if first is None else len(first)

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(
            {k: v[index] for k, v in self.inputs.items()},
            None if self.labels is None else self.labels[index],
            None if self.texts is None else [self.texts[i] for i in index],
            self.synthetic,
            self.description,
            list(self.notes),
        )

    def batches(self, size: int):
        """Yield feeds of at most ``size`` samples, in order."""
        for start in range(0, len(self), size):
            yield {k: v[start : start + size] for k, v in self.inputs.items()}


@dataclass(frozen=True)
class ImageOptions:
    """How a folder of images becomes tensors: resize, scale to [0, 1], normalise, NCHW."""

    size: tuple[int, int] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def load_npz(path: Path, signature: Signature) -> Dataset:
    """One array per input name, first axis = samples, optional ``labels``."""
    try:
        archive = np.load(str(path), allow_pickle=False)
        arrays = {k: archive[k] for k in archive.files}
    except Exception as exc:
        raise DataError(
            f"cannot read {path} as .npz ({type(exc).__name__}: {exc}); expected "
            f"numpy.savez output with one array per input"
        ) from exc
    labels = arrays.pop("labels", None)
    inputs = {}
    for spec in signature.inputs:
        if spec.name not in arrays:
            raise DataError(
                f"{path.name} has arrays {sorted(arrays)}; expected one named {spec.name!r} "
                f"for each model input {signature.input_names} (plus optional 'labels')"
            )
        inputs[spec.name] = _fit_to_spec(arrays.pop(spec.name), spec, path.name)
    if arrays:
        raise DataError(
            f"{path.name} has arrays {sorted(arrays)} that are not model inputs "
            f"{signature.input_names} nor 'labels'"
        )
    return _checked(Dataset(inputs, _labels(labels, inputs, path.name), description=f"{path.name}"))


def _fit_to_spec(array: np.ndarray, spec, filename: str) -> np.ndarray:
    if array.ndim != len(spec.shape):
        raise DataError(
            f"{filename}: array {spec.name!r} has shape {list(array.shape)}; expected "
            f"{len(spec.shape)} dimensions, samples first, like {spec.kserve_shape}"
        )
    for axis, (got, want) in enumerate(zip(array.shape[1:], spec.shape[1:]), start=1):
        if isinstance(want, int) and got != want:
            raise DataError(
                f"{filename}: array {spec.name!r} has shape {list(array.shape)}; the model "
                f"expects {spec.kserve_shape} (size {want} on axis {axis})"
            )
    want = numpy_dtype(spec.dtype)
    if array.dtype.kind == "f" and want.kind in "iu":
        raise DataError(
            f"{filename}: array {spec.name!r} holds {array.dtype}; the model expects {spec.dtype}"
        )
    return array.astype(want, copy=False)


def _labels(
    labels: np.ndarray | None, inputs: dict[str, np.ndarray], filename: str
) -> np.ndarray | None:
    if labels is None:
        return None
    count = len(next(iter(inputs.values())))
    if labels.ndim != 1 or len(labels) != count or labels.dtype.kind not in "iu":
        raise DataError(
            f"{filename}: 'labels' has shape {list(labels.shape)} and dtype {labels.dtype}; "
            f"expected {count} integer class indices"
        )
    return labels.astype(np.int64)


def _checked(dataset: Dataset) -> Dataset:
    counts = {k: len(v) for k, v in dataset.inputs.items()}
    if len(set(counts.values())) > 1:
        raise DataError(
            f"inputs have different sample counts {counts}; expected the same first axis"
        )
    if len(dataset) == 0:
        raise DataError(f"{dataset.description} has no samples; expected at least one")
    return dataset


def load_texts(path: Path) -> list[str]:
    """One text per non-empty line."""
    try:
        texts = [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read {path} as UTF-8 text ({exc}); expected one text per line"
        ) from exc
    if not texts:
        raise DataError(f"{path} has no text lines; expected one text per line")
    return texts


def load_image_folder(folder: Path, signature: Signature, options: ImageOptions) -> Dataset:
    """Every image in ``folder`` (sorted), resized to the model's input size and normalised.

    Sub-folders are classes (their sorted names give label indices) when every image lives in one.
    """
    from PIL import Image

    spec = signature.inputs[0]
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    size = options.size or _spatial_size(spec)
    channels = spec.shape[1] if isinstance(spec.shape[1], int) else 3
    arrays = [_image_array(Image.open(f), size, channels, options) for f in files]
    classes = sorted({f.parent.name for f in files})
    nested = all(f.parent != folder for f in files)
    labels = (
        np.array([classes.index(f.parent.name) for f in files])
        if nested and len(classes) > 1
        else None
    )
    dataset = Dataset(
        {spec.name: np.stack(arrays).astype(numpy_dtype(spec.dtype))},
        labels,
        description=f"{len(files)} images from {folder}",
    )
    dataset.notes.append(
        f"images resized to {size[0]}x{size[1]}, scaled to [0,1], normalised with "
        f"mean {options.mean} std {options.std}"
    )
    return dataset


def _spatial_size(spec) -> tuple[int, int]:
    height, width = spec.shape[-2], spec.shape[-1]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise DataError(
            f"input {spec.name!r} has dynamic spatial size {spec.kserve_shape}; pass --image-size "
            "HxW"
        )
    return height, width


def _image_array(image, size: tuple[int, int], channels: int, options: ImageOptions) -> np.ndarray:
    image = image.convert("L" if channels == 1 else "RGB").resize((size[1], size[0]))
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[:, :, None] if array.ndim == 2 else array
    mean = np.array(options.mean[:channels], dtype=np.float32)
    std = np.array(options.std[:channels], dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)


def synthetic(signature: Signature, samples: int = 64, seed: int = 0) -> Dataset:
    """Random inputs of the right names, dtypes and shapes: for speed and fidelity only."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in signature.inputs:
        shape = [samples] + [d if isinstance(d, int) else 16 for d in spec.shape[1:]]
        if np.dtype(numpy_dtype(spec.dtype)).kind in "iu":
            inputs[spec.name] = rng.integers(0, 100, size=shape).astype(spec.dtype)
        else:
            inputs[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return Dataset(
        inputs,
        synthetic=True,
        description=f"{samples} synthetic random samples (no --data: speed and fidelity only)",
    )


@dataclass
class Split:
    calibration: Dataset
    evaluation: Dataset


def split(dataset: Dataset, eval_fraction: float = 0.5, seed: int = 0) -> Split:
    """A seeded shuffle cut into calibration and evaluation subsets (both at least one sample)."""
    count = len(dataset)
    if count < 2:
        return Split(dataset, dataset)
    order = np.random.default_rng(seed).permutation(count)
    n_eval = min(count - 1, max(1, round(count * eval_fraction)))
    return Split(dataset.take(np.sort(order[n_eval:])), dataset.take(np.sort(order[:n_eval])))
