"""Image bytes → RGB pixels: the one step that runs in Python (PIL), not in the runtime's graph."""

from __future__ import annotations

import io

import numpy as np

from shipyard.errors import DataError

MAX_IMAGE_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000
"""Bounds on what a request may make us decode (a small file can claim a huge image)."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode one JPEG/PNG/… image into an RGB ``uint8`` array of shape [height, width, 3]."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"an image must be bytes (an encoded JPEG or PNG); got {type(data).__name__}")
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(f"an image of {len(data)} bytes is larger than the limit of {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            if image.width * image.height > MAX_PIXELS:
                raise DataError(f"an image of {image.width}×{image.height} pixels is larger than the limit "
                                f"of {MAX_PIXELS} pixels")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot decode an image of {len(data)} bytes ({exc}); expected JPEG, PNG, BMP or WebP bytes") from exc


def decode_images(values: np.ndarray) -> list[np.ndarray]:
    """Decode a BYTES tensor of images (any shape; read in order) into pixel arrays."""
    items = list(np.asarray(values, dtype=object).reshape(-1))
    if not items:
        raise DataError("no image in the request; expected at least one encoded image (BYTES)")
    return [decode_image(item.encode("latin-1") if isinstance(item, str) else item) for item in items]


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """RGB ``uint8`` pixels → JPEG bytes (for tests, examples and clients)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
