"""``example:detector``: torchvision's SSDlite (MobileNetV3 backbone, 320×320) packaged with its
pre- and post-processing, so the package takes JPEG bytes and returns boxes.

Weights are random (seeded; no download) with the class head scaled so scores spread out, and the
model has 4 classes: background plus three shape names. ``raw_model`` is the part a runtime runs
(backbone + head: class logits and box regressions per anchor); torchvision's own ``SSD.forward``
(``reference_model``) — resize, normalise, decode, NMS, rescale — is the PyTorch pipeline the
package is verified against. The anchors are fixed for the 320×320 input and go into the
package's post-processing graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shipyard import machine
from shipyard.dataset import Dataset

SIZE = 320
LABELS = ("background", "square", "disc", "triangle")
POST = {"score_threshold": 0.3, "iou_threshold": 0.55, "max_detections": 20}
SEED = 0
CLASS_HEAD_SCALE = 0.7


def reference_model() -> Any:
    """torchvision's SSDlite with the settings the package's post-processing reproduces."""
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(SEED)
    model = ssdlite320_mobilenet_v3_large(
        weights=None,
        weights_backbone=None,
        num_classes=len(LABELS),
        score_thresh=POST["score_threshold"],
        nms_thresh=POST["iou_threshold"],
        detections_per_img=POST["max_detections"],
        topk_candidates=10_000,
    )
    _calibrate_batch_norm(model)
    with (
        torch.no_grad()
    ):  # random heads give near-uniform scores; spread them so a ranking means something
        for module in model.head.classification_head.modules():
            if isinstance(module, torch.nn.Conv2d) and module.out_channels % len(LABELS) == 0:
                module.weight.mul_(CLASS_HEAD_SCALE)
    return model.eval()


def _calibrate_batch_norm(model: Any) -> None:
    """Set BN statistics from a few shapes photos: with untouched random statistics the
    activations vanish through the backbone and every anchor scores the same."""
    import torch

    batch = example_data(4, seed=99).inputs["image"]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    network = raw_model(model).train()
    with torch.no_grad():
        for start in range(0, len(batch), 4):
            network(torch.from_numpy(batch[start : start + 4]))
    model.eval()


def raw_model(reference: Any) -> Any:
    """Backbone + head of ``reference``: normalised [batch, 3, 320, 320] → (class_logits,
    box_regression)."""
    import torch

    class RawSSD(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = reference.backbone
            self.head = reference.head

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = list(self.backbone(image).values())
            out = self.head(features)
            return out["cls_logits"], out["bbox_regression"]

    return RawSSD().eval()


def anchors(reference: Any) -> np.ndarray:
    """The reference model's anchors for a 320×320 input, [anchors, 4] as x1, y1, x2, y2."""
    import torch
    from torchvision.models.detection.image_list import ImageList

    image = torch.zeros(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        features = list(reference.backbone(image).values())
        boxes = reference.anchor_generator(ImageList(image, [(SIZE, SIZE)]), features)[0]
    return boxes.numpy().astype(np.float32)


def processing_config(folder: Path, reference: Any) -> Path:
    """Write the example's ``--preprocess`` config (and its anchors) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "anchors.npy", anchors(reference))
    config = {
        "image": {"resize": [SIZE, SIZE], "antialias": False, "mean": [0.5] * 3, "std": [0.5] * 3},
        "postprocess": {
            "kind": "detect",
            "labels": list(LABELS),
            "anchors": "anchors.npy",
            "logits": "class_logits",
            "boxes": "box_regression",
            **POST,
        },
    }
    path = folder / "processing.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def shapes_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Synthetic photos: noise with a few filled squares, discs and triangles, of varied sizes."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        height, width = rng.integers(200, 480, size=2)
        image = rng.integers(0, 80, size=(height, width, 3)).astype(np.uint8)
        yy, xx = np.mgrid[:height, :width]
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = (
                rng.integers(30, height - 30),
                rng.integers(30, width - 30),
                rng.integers(12, 30),
            )
            colour = rng.integers(120, 256, size=3)
            shape = rng.integers(3)
            mask = (
                (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
                if shape == 0
                else (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
                if shape == 1
                else (yy > cy - r) & (yy < cy + r) & (np.abs(xx - cx) < (yy - cy + r) / 2)
            )
            image[mask] = colour
        images.append(image)
    return images


def example_data(count: int = 8, seed: int = 0) -> Dataset:
    """The shapes photos, pre-processed as the package does it (the model's own input)."""
    from shipyard.processing.config import config_from_json
    from shipyard.processing.reference import torch_preprocess

    config = config_from_json(
        {"image": {"resize": [SIZE, SIZE], "antialias": False, "mean": [0.5] * 3, "std": [0.5] * 3}}
    ).image
    batch = np.concatenate(
        [torch_preprocess(p, config).numpy() for p in shapes_images(count, seed)]
    )
    return Dataset(
        {"image": batch}, description=f"{count} synthetic shapes photos, resized to {SIZE}×{SIZE}"
    )


def load():
    """The ``example:detector`` source, with its processing config attached for the package."""

    from shipyard.sources.base import Source, hash_state_dict
    from shipyard.sources.torch_module import InputHint, describe_module

    reference = reference_model()
    model = raw_model(reference)
    signature = describe_module(
        model, [InputHint("image", "float32", (3, SIZE, SIZE))], ["class_logits", "box_regression"]
    )
    content = hash_state_dict(model.state_dict(), extra="detector")
    cache = machine.examples_cache() / f"detector-{content}"
    return Source(
        name="detector",
        kind="torch",
        signature=signature,
        content_hash=content,
        module=model,
        example_data=example_data(),
        processing_config=processing_config(cache, reference),
    )


def reference_detections(reference: Any, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """torchvision's own pipeline (resize, normalise, decode, NMS, rescale) on decoded RGB
    images."""
    import torch

    tensors = [torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 for image in images]
    with torch.inference_mode():
        found = reference(tensors)
    return [{k: v.numpy() for k, v in d.items()} for d in found]


def match_rate(
    ours_boxes: np.ndarray,
    ours_classes: np.ndarray,
    theirs: dict[str, np.ndarray],
    min_iou: float = 0.9,
) -> float:
    """Share of the reference detections that ours reproduce (same class, IoU ≥ ``min_iou``).

    Order-free on purpose: scores that differ by float rounding between two runtimes may swap
    places in a ranking without either answer being wrong.
    """
    if len(theirs["boxes"]) == 0:
        return 1.0 if len(ours_boxes) == 0 else 0.0
    iou = _iou(theirs["boxes"], ours_boxes)
    same = theirs["labels"][:, None] == ours_classes[None, :]
    return float(np.mean(((iou >= min_iou) & same).any(axis=1)))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)
