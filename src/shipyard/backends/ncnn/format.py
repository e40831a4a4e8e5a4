"""Reading and writing ncnn's two files: the ``.param`` graph (text) and the ``.bin`` weights.

The ``.bin`` file has no table of contents: each layer reads its weights in turn, in the order the
graph lists the layers, and how many bytes a layer reads follows from its type and parameters.
``split_weights`` walks the file that way for the layer types that carry weights, and fails when
the bytes it accounts for are not exactly the file, so a layer type it does not know can never
be silently misread. Weight blobs read "with a tag" start with a 4-byte word saying how they are
stored (0: float32, ``FP16_TAG``, ``INT8_TAG``); the others are raw float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import ConversionError

MAGIC = "7767517"
FP16_TAG = 0x01306B47
INT8_TAG = 0x000D4B38


@dataclass
class Layer:
    """One line of a ``.param`` file; ``params`` keeps the ``id=value`` strings as written."""

    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params[key]) if key in self.params else default

    def to_line(self) -> str:
        values = " ".join(f"{key}={value}" for key, value in self.params.items())
        return " ".join(
            [
                f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)}",
                *self.bottoms,
                *self.tops,
                values,
            ]
        ).rstrip()


@dataclass
class Graph:
    layers: list[Layer]
    blob_count: int

    def to_text(self) -> str:
        lines = [
            MAGIC,
            f"{len(self.layers)} {self.blob_count}",
            *(layer.to_line() for layer in self.layers),
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Blob:
    """One weight blob's bytes as stored (tag and padding included)."""

    data: bytes


def read_graph(path: Path) -> Graph:
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != [MAGIC] or len(lines[1]) != 2:
        raise ConversionError(
            f"{path.name} is not an ncnn .param file (expected the magic {MAGIC} "
            "and a 'layers blobs' line)"
        )
    layers = [_parse_layer(words, path) for words in lines[2:]]
    return Graph(layers, int(lines[1][1]))


def _parse_layer(words: list[str], path: Path) -> Layer:
    try:
        bottoms, tops = int(words[2]), int(words[3])
        names = words[4 : 4 + bottoms + tops]
        params = {}
        for item in words[4 + bottoms + tops :]:
            key, value = item.split("=", 1)
            params[int(key)] = value
    except (IndexError, ValueError) as exc:
        raise ConversionError(
            f"{path.name}: cannot read the layer line {' '.join(words)[:120]!r}"
        ) from exc
    return Layer(words[0], words[1], names[:bottoms], names[bottoms:], params)


def _tagged_size(data: bytes, offset: int, count: int) -> int:
    """Bytes a tagged blob of ``count`` values takes at ``offset``, padding included."""
    tag = int.from_bytes(data[offset : offset + 4], "little")
    width = {0: 4, FP16_TAG: 2, INT8_TAG: 1}.get(tag)
    if width is None:
        raise ConversionError(
            f"a weight blob at byte {offset} is stored in a way this reader does not know "
            f"(tag {tag:#x}); expected float32, float16 or int8"
        )
    return 4 + _aligned(count * width)


def _aligned(size: int) -> int:
    return (size + 3) // 4 * 4


def weight_layout(layer: Layer) -> list[tuple[int, bool]]:
    """(value count, tagged?) of each weight blob ``layer`` reads, in order; empty for weightless
    layers."""
    p = layer.int_param
    kind = layer.type
    if kind in (
        "Convolution",
        "ConvolutionDepthWise",
        "Convolution1D",
        "Convolution3D",
        "Deconvolution",
        "DeconvolutionDepthWise",
        "Deconvolution1D",
        "Deconvolution3D",
    ):
        if (kind.startswith("Convolution") and p(19)) or (
            kind.startswith("Deconvolution") and p(28)
        ):
            raise _unsupported(layer, "dynamic weights (a second input)")
        return [(p(6), True)] + ([(p(0), False)] if p(5) else []) + int8_scales_layout(layer)
    if kind == "InnerProduct":
        return [(p(2), True)] + ([(p(0), False)] if p(1) else []) + int8_scales_layout(layer)
    if kind == "BatchNorm":
        return [(p(0), False)] * 4
    if kind == "Scale":
        return [] if p(0) == -233 else [(p(0), False)] * (2 if p(1) else 1)
    if kind in ("PReLU", "Bias"):
        return [(p(0), False)]
    if kind == "MemoryData":
        count = 1
        for key in (0, 1, 11, 2):
            count *= max(p(key), 1)
        return [(count, False)]
    if kind in ("LayerNorm", "InstanceNorm"):
        return [(p(0), False)] * 2 if p(2, 1) else []
    if kind == "GroupNorm":
        return [(p(1), False)] * 2 if p(3, 1) else []
    if kind == "Embed":
        return [(p(3), True)] + ([(p(0), False)] if p(2) else [])
    return []


def int8_scales_layout(layer: Layer) -> list[tuple[int, bool]]:
    """The INT8 scales after a quantised layer's bias: weight scales, input scale, and an output
    scale when ``8=`` is over 100 (the layer hands INT8 on to the next)."""
    term = layer.int_param(8)
    if not term:
        return []
    if layer.type not in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
        raise _unsupported(layer, f"INT8 scales (8={term}) on a layer type that has none")
    per_group = layer.type == "ConvolutionDepthWise" and term % 100 == 1
    weight_scales = (
        layer.int_param(7, 1)
        if per_group
        else (1 if layer.type == "ConvolutionDepthWise" else layer.int_param(0))
    )
    return [(weight_scales, False), (1, False)] + ([(1, False)] if term > 100 else [])


def _unsupported(layer: Layer, why: str) -> ConversionError:
    return ConversionError(
        f"ncnn layer {layer.name!r} ({layer.type}) has {why}; this reader expects "
        "weights stored in the layer, as pnnx and ncnn2int8 write them"
    )


def split_weights(graph: Graph, weights: bytes) -> list[list[Blob]]:
    """Each layer's weight blobs, in graph order, cut from the ``.bin`` file's bytes."""
    offset = 0
    per_layer = []
    for layer in graph.layers:
        blobs = []
        for count, tagged in weight_layout(layer):
            size = _tagged_size(weights, offset, count) if tagged else _aligned(4 * count)
            blobs.append(Blob(weights[offset : offset + size]))
            offset += size
        per_layer.append(blobs)
    if offset != len(weights):
        kinds = sorted({layer.type for layer in graph.layers})
        raise ConversionError(
            f"the ncnn weights file is {len(weights)} bytes but the layers account for {offset}; "
            f"a layer type among {', '.join(kinds)} stores weights this reader does not know"
        )
    return per_layer
