"""The names a user knows for the layers of an exported model: PyTorch module paths.

The torch.export-based ONNX exporter records each node's module scopes in its metadata
(``pkg.torch.onnx.name_scopes``: ``['', 'features', 'features.3', 'features.3.conv.0.0',
'conv2d']``); the TorchScript-based exporter writes them into the node name
(``/features/features.3/conv/conv.0/Conv`` for ``features.3.conv.0``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from shipyard.records import LayerCost

SCOPES = "pkg.torch.onnx.name_scopes"


def module_paths(onnx_path: Path) -> dict[str, str]:
    """``{node name: module path}`` for the nodes whose module is known."""
    import onnx

    paths = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        path = _from_metadata(node) or _from_name(node.name)
        if path:
            paths[node.name] = path
    return paths


def _from_metadata(node) -> str:
    for prop in node.metadata_props:
        if prop.key == SCOPES:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ""
            modules = [s for s in scopes[:-1] if s]  # the last scope is the operator itself
            return modules[-1] if modules else ""
    return ""


def _from_name(name: str) -> str:
    """``/features/features.3/conv/conv.0/Conv`` → ``features.3.conv.0``.

    Each scope is a module's name in its parent, and a container's child repeats the container's
    name (``features.3``, ``conv.0``), so the path grows by the child's own part only.
    """
    scopes = [p for p in name.split("/") if p][:-1]  # the last part is the operator itself
    if not name.startswith("/") or not scopes:
        return ""
    path, parent = scopes[0], scopes[0]
    for scope in scopes[1:]:
        own = scope[len(parent) + 1 :] if scope.startswith(parent + ".") else scope
        path, parent = f"{path}.{own}", scope
    return path


def layer_costs(layers, modules: dict[str, str], limit: int = 200) -> list[LayerCost]:
    """The search's worst ``limit`` layers (``LayerError`` rows, worst first) as records."""
    return [
        LayerCost(
            row.node,
            row.op_type,
            float(row.introduced),
            float(row.cosine),
            modules.get(row.node, ""),
        )
        for row in layers[:limit]
    ]
