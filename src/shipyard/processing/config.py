"""What a package does before and after the model, declared once at build time (``--preprocess``).

A small JSON file::

    {"image": {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
               "std": [0.229, 0.224, 0.225], "layout": "NCHW", "dtype": "float32"},
     "postprocess": {"kind": "classify", "top_k": 5, "labels": ["cat", "dog", ...]}}

``image.resize`` is the shorter side (one number, aspect kept) or ``[height, width]``;
``crop`` is a centre crop (one number or ``[height, width]``). ``postprocess.kind`` is
``classify`` (softmax, top-k, label names), ``detect`` (box decoding and NMS, see
``shipyard.processing.detect``) or ``embed`` (L2-normalised embeddings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import UsageError

LAYOUTS = ("NCHW", "NHWC")
KINDS = ("classify", "detect", "embed")


@dataclass(frozen=True)
class ImagePre:
    """Decoded RGB pixels → the model's image tensor."""

    resize: tuple[int, ...] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    scale: float = 1 / 255
    layout: str = "NCHW"
    dtype: str = "float32"
    antialias: bool = True
    input: str | None = None
    """The model input the image feeds (default: the model's first input)."""

    @property
    def output_size(self) -> tuple[int, int] | None:
        """The fixed height and width the model sees, or None when it depends on the image."""
        if self.crop is not None:
            return self.crop
        if self.resize is not None and len(self.resize) == 2:
            return (self.resize[0], self.resize[1])
        return None


@dataclass(frozen=True)
class PostProcess:
    """The model's raw output → answers: labels and scores, boxes, or unit-length embeddings."""

    kind: str = "classify"
    top_k: int = 5
    labels: tuple[str, ...] = ()
    output: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Kind-specific settings (detectors: thresholds, anchors file, box coder weights…)."""


@dataclass(frozen=True)
class ProcessingConfig:
    image: ImagePre | None = None
    post: PostProcess | None = None

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "image": asdict(self.image) if self.image else None,
            "postprocess": asdict(self.post) if self.post else None,
        }


def load_config(path: Path) -> ProcessingConfig:
    """Read and check a ``--preprocess`` JSON file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"--preprocess {path}: cannot read it as JSON ({exc}); expected a JSON object "
            f'like {{"image": {{"resize": 256, "crop": 224}}, "postprocess": {{"kind": '
            f'"classify"}}}}'
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(f"--preprocess {path}: expected a JSON object, got {type(data).__name__}")
    return config_from_json(data, base=Path(path).parent)


def config_from_json(data: dict[str, Any], base: Path | None = None) -> ProcessingConfig:
    unknown = set(data) - {"image", "postprocess"}
    if unknown:
        raise UsageError(
            f"processing config has unknown keys {sorted(unknown)}; expected image and postprocess"
        )
    image = _image(data["image"]) if data.get("image") else None
    post = _post(data["postprocess"], base) if data.get("postprocess") else None
    return ProcessingConfig(image, post)


def _pair(value: Any, what: str) -> tuple[int, ...]:
    values = (
        [value]
        if isinstance(value, int)
        else list(value)
        if isinstance(value, (list, tuple))
        else None
    )
    if not values or len(values) > 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise UsageError(
            f"image.{what} {value!r}: expected a positive whole number or [height, width]"
        )
    return tuple(values)


def _image(data: dict[str, Any]) -> ImagePre:
    known = set(ImagePre.__dataclass_fields__)
    if set(data) - known:
        raise UsageError(
            f"image has unknown keys {sorted(set(data) - known)}; expected some of {sorted(known)}"
        )
    crop = _pair(data["crop"], "crop") if data.get("crop") is not None else None
    image = ImagePre(
        resize=_pair(data["resize"], "resize") if data.get("resize") is not None else None,
        crop=(crop * 2 if len(crop) == 1 else crop) if crop else None,
        mean=tuple(float(v) for v in data.get("mean", ImagePre.mean)),
        std=tuple(float(v) for v in data.get("std", ImagePre.std)),
        scale=float(data.get("scale", 1 / 255)),
        layout=str(data.get("layout", "NCHW")).upper(),
        dtype=str(data.get("dtype", "float32")),
        antialias=bool(data.get("antialias", True)),
        input=data.get("input"),
    )  # None values are what ``to_json`` writes for "not set"
    if image.layout not in LAYOUTS:
        raise UsageError(f"image.layout {image.layout!r}: expected one of {', '.join(LAYOUTS)}")
    if image.dtype not in ("float32", "float16"):
        raise UsageError(f"image.dtype {image.dtype!r}: expected float32 or float16")
    if len(image.mean) != 3 or len(image.std) != 3 or min(image.std) <= 0:
        raise UsageError(
            f"image.mean {image.mean} / std {image.std}: expected three numbers each, std > 0"
        )
    if image.output_size is None:
        raise UsageError("image needs a fixed output size: give crop, or resize as [height, width]")
    return image


def _post(data: dict[str, Any], base: Path | None) -> PostProcess:
    kind = data.get("kind", "classify")
    if kind not in KINDS:
        raise UsageError(f"postprocess.kind {kind!r}: expected one of {', '.join(KINDS)}")
    labels = data.get("labels", ())
    if isinstance(labels, str):  # a file of label names, one a line, beside the config
        labels = (Path(base or ".") / labels).read_text().splitlines()
    top_k = int(data.get("top_k", 5))
    if top_k < 1:
        raise UsageError(f"postprocess.top_k {top_k}: expected a whole number ≥ 1")
    extra = {k: v for k, v in data.items() if k not in ("kind", "labels", "top_k", "output")}
    if isinstance(extra.get("anchors"), str) and base is not None:
        extra["anchors"] = str((base / extra["anchors"]).resolve())  # relative to the config file
    return PostProcess(kind, top_k, tuple(str(v) for v in labels), data.get("output"), extra)
