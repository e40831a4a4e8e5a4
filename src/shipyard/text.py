"""Text in, tensors out: the tokenizer that travels inside text packages."""

from __future__ import annotations

import numpy as np

from shipyard.errors import DataError, SourceError
from shipyard.sources.base import TextFrontend

TEXT_INPUT = "text"
"""The name of the BYTES input a text package takes."""


class Tokenizer:
    """Wraps a ``tokenizers`` JSON tokenizer: truncation to ``max_length``, padding to the
    longest."""

    def __init__(self, frontend: TextFrontend) -> None:
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError as exc:
            raise SourceError("text packages need tokenizers: pip install tokenizers") from exc
        self.frontend = frontend
        self._tokenizer = HfTokenizer.from_file(str(frontend.tokenizer_file))
        self._tokenizer.enable_truncation(frontend.max_length)
        self._tokenizer.enable_padding()

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self._tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {
            name: np.asarray(columns[name], dtype=np.int64) for name in self.frontend.input_names
        }


BYTES_PER_TOKEN = 128
"""Texts are cut to ``max_length × BYTES_PER_TOKEN`` bytes before tokenising: the tokenizer would
read all of a 4 MB text only to keep its first ``max_length`` tokens (no word piece is that
long)."""


def decode_texts(values: np.ndarray, max_bytes: int | None = None) -> list[str]:
    """A 1-D BYTES (object or str) array → Python strings, each cut to ``max_bytes``; other shapes
    are an error."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(
            f"input {TEXT_INPUT!r} has shape {list(array.shape)}; expected [batch] texts"
        )
    texts = []
    for item in array.tolist():
        if isinstance(item, str):
            item = item.encode("utf-8", "surrogatepass")
        if isinstance(item, bytes):
            item = _utf8_prefix(item, max_bytes)
        if not isinstance(item, str):
            raise DataError(
                f"input {TEXT_INPUT!r} holds {type(item).__name__}; expected UTF-8 text"
            )
        texts.append(item)
    return texts


def _utf8_prefix(data: bytes, max_bytes: int | None) -> str:
    cut = data if max_bytes is None else data[:max_bytes]
    try:
        return cut.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(cut) < len(data) and exc.start >= len(cut) - 3:  # the cut split one character
            return _utf8_prefix(cut[: exc.start], None)
        raise DataError(f"input {TEXT_INPUT!r} holds bytes that are not UTF-8 text") from exc
