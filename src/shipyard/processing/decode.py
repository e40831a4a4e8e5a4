"""Image bytes → RGB pixels: the one step that runs in Python (PIL), not in the runtime's graph.

A few kilobytes can claim a huge image (a PNG of one colour, a JPEG bomb), so the work is bounded
before any pixel is decoded: every image's header is read first and the *request's* pixels are
summed against ``MAX_REQUEST_PIXELS``. When the model resizes to ``target`` pixels anyway, a JPEG is
decoded at a reduced DCT scale (``draft``) and any image larger than ``REDUCE_ABOVE`` × the target
is
reduced by an integer box filter in ``uint8`` before the antialiased resize graph sees it, so the
float copy the graph makes stays small.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from shipyard.errors import DataError

MAX_IMAGE_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000
MAX_REQUEST_PIXELS = 40_000_000
"""Bounds on what a request may make us decode (a small file can claim a huge image)."""
REDUCE_ABOVE = 4
"""Images whose shorter side is over this many times the model's target are reduced first."""


def decode_image(data: bytes, target: int | None = None) -> np.ndarray:
    """Decode one JPEG/PNG/… image into an RGB ``uint8`` array of shape [height, width, 3].

    ``target`` (the shorter side the model resizes to) lets a large image decode at reduced size.
    """
    from PIL import Image

    with _open(data) as image:
        _check_pixels(image.width, image.height)
        try:
            if target is not None and image.format == "JPEG":
                image.draft("RGB", _scaled(image.size, REDUCE_ABOVE * target))
            rgb = image.convert("RGB")
            return np.asarray(_reduce(rgb, target) if target is not None else rgb, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"cannot decode an image of {len(data)} bytes ({exc}); expected JPEG, PNG, BMP or "
                f"WebP bytes"
            ) from exc


def _open(data: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(
            f"an image must be bytes (an encoded JPEG or PNG); got {type(data).__name__}"
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(
            f"an image of {len(data)} bytes is larger than the limit of {MAX_IMAGE_BYTES} bytes"
        )
    try:
        return Image.open(io.BytesIO(bytes(data)))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot decode an image of {len(data)} bytes ({exc}); expected JPEG, PNG, BMP or "
            f"WebP bytes"
        ) from exc


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise DataError(
            f"an image of {width}×{height} pixels is larger than the limit of {MAX_PIXELS} pixels"
        )


def _scaled(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    factor = max(1.0, min(size) / shorter)
    return (max(1, int(size[0] / factor)), max(1, int(size[1] / factor)))


def _reduce(image: Any, target: int) -> Any:
    factor = min(image.size) // (REDUCE_ABOVE * target)
    return image.reduce(factor) if factor >= 2 else image


def image_sizes(values: np.ndarray) -> list[tuple[int, int]]:
    """Every image's (width, height) from its header alone; refuses a request over the pixel
    budget."""
    sizes = []
    for item in _items(values):
        with _open(item) as image:
            _check_pixels(image.width, image.height)
            sizes.append(image.size)
    total = sum(w * h for w, h in sizes)
    if total > MAX_REQUEST_PIXELS:
        raise DataError(
            f"the request's {len(sizes)} images hold {total} pixels; expected at most "
            f"{MAX_REQUEST_PIXELS} per request (send fewer or smaller images)"
        )
    return sizes


def _items(values: np.ndarray) -> list[Any]:
    items = list(np.asarray(values, dtype=object).reshape(-1))
    if not items:
        raise DataError("no image in the request; expected at least one encoded image (BYTES)")
    return [item.encode("latin-1") if isinstance(item, str) else item for item in items]


def decode_images(values: np.ndarray, target: int | None = None) -> list[np.ndarray]:
    """Decode a BYTES tensor of images (any shape; read in order) into pixel arrays, within the
    budget."""
    image_sizes(values)
    return [decode_image(item, target) for item in _items(values)]


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """RGB ``uint8`` pixels → JPEG bytes (for tests, examples and clients)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
