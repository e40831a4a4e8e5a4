"""ncnn's layers and blobs, for the layer-by-layer comparison (``shipyard.quantize.layerwise``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shipyard.quantize.layerwise import Graph


def ncnn_graph(param: Path) -> Graph:
    """The graph of an ncnn model: layers by name, blobs as tensors."""
    from shipyard.backends.ncnn.format import read_graph

    graph = Graph()
    for layer in read_graph(param).layers:
        graph.inputs[layer.name] = list(layer.bottoms)
        graph.ops[layer.name] = layer.type
        for top in layer.tops:
            graph.producer[top] = (layer.name, layer.type)
        for bottom in layer.bottoms:
            graph.consumers.setdefault(bottom, []).append(layer.name)
    return graph


def ncnn_intermediates(
    artifact, feed: dict[str, np.ndarray], threads: int = 1
) -> dict[str, np.ndarray]:
    """Every blob of an ncnn model on ``feed`` as float values, sample by sample, stacked on a
    batch axis."""
    from shipyard.backends.ncnn.int8 import int8_outputs
    from shipyard.backends.ncnn.session import NcnnSession

    session = NcnnSession(artifact, threads)
    blobs = sorted(ncnn_graph(artifact.path).producer)
    count = len(next(iter(feed.values())))
    rows = [
        session.extract({name: value[i] for name, value in feed.items()}, blobs)
        for i in range(count)
    ]
    scales = int8_outputs(artifact.path)  # ncnn extracts a requantised blob as its INT8 steps
    return {blob: np.stack([row[blob] for row in rows]) / scales.get(blob, 1.0) for blob in blobs}
