"""The build's data: what ``--data`` names, fitted to the source, or a labelled stand-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shipyard.dataset import (
    Dataset,
    ImageOptions,
    load_image_folder,
    load_npz,
    load_texts,
    synthetic,
)
from shipyard.errors import DataError, UsageError
from shipyard.sources.base import Source
from shipyard.sources.torch_module import InputHint


def hints_from_npz(path: Path | None) -> list[InputHint]:
    """Input names, dtypes and sample shapes read from an .npz (everything but ``labels``)."""
    if path is None or path.suffix != ".npz" or not path.is_file():
        return []
    try:
        with np.load(str(path), allow_pickle=False) as archive:
            return [
                InputHint(k, str(archive[k].dtype), tuple(archive[k].shape[1:]))
                for k in archive.files
                if k != "labels"
            ]
    except Exception as exc:
        raise DataError(f"cannot read {path} as .npz ({type(exc).__name__}: {exc})") from exc


def parse_input_shape(text: str) -> InputHint:
    """``NAME:1x3x224x224[:dtype]`` → an input hint (the leading batch size is dropped)."""
    parts = text.split(":")
    try:
        name, dims = parts[0], [int(d) for d in parts[1].lower().split("x")]
        dtype = parts[2] if len(parts) > 2 else "float32"
        np.dtype(dtype)
    except (IndexError, ValueError, TypeError) as exc:
        raise UsageError(
            f"--input-shape {text!r}: expected NAME:1x3x224x224 or NAME:1x128:int64"
        ) from exc
    if not name or len(dims) < 1 or min(dims) < 1:
        raise UsageError(f"--input-shape {text!r}: expected a name and positive sizes, batch first")
    return InputHint(name, dtype, tuple(dims[1:]))


def load_build_data(path: Path | None, source: Source, image: ImageOptions) -> Dataset:
    """The data set for a build; without ``--data``, the example's own data or a synthetic set."""
    if path is None:
        dataset = next(
            (d for d in (source.example_data, _default_text_data(source)) if d is not None), None
        )
        dataset = dataset if dataset is not None else synthetic(source.signature)
    elif not path.exists():
        raise DataError(
            f"data path {str(path)!r} does not exist; expected an .npz, a .txt or a folder of "
            "images"
        )
    elif path.is_dir():
        dataset = load_image_folder(path, source.signature, image)
    elif path.suffix == ".npz":
        dataset = load_npz(path, source.signature)
    elif path.suffix == ".txt":
        if source.text is None:
            raise DataError(
                f"{path.name} is text, but {source.name} takes tensors "
                f"{source.signature.input_names}; pass an .npz"
            )
        texts = load_texts(path)
        dataset = Dataset({}, texts=texts, description=f"{len(texts)} texts from {path.name}")
    else:
        raise DataError(f"cannot read data {path.name}; expected .npz, .txt or a folder of images")
    return tokenize(dataset, source)


def _default_text_data(source: Source) -> Dataset | None:
    if source.text is None:
        return None
    from shipyard.sources.examples.minilm import SENTENCES

    texts = load_texts(SENTENCES)
    return Dataset(
        {},
        texts=texts,
        synthetic=True,
        description=f"{len(texts)} built-in English sentences (no --data given)",
    )


def tokenize(dataset: Dataset, source: Source) -> Dataset:
    if dataset.texts is None or dataset.inputs:
        return dataset
    if source.text is None:
        raise DataError(
            f"the data set is text, but {source.name} takes tensors {source.signature.input_names}"
        )
    from shipyard.text import Tokenizer

    dataset.inputs = Tokenizer(source.text)(dataset.texts)
    return dataset
