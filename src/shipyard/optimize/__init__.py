"""Model-level optimisation on the PyTorch side, before export.

``apply_model_transforms`` is the one entry point the build calls: it returns the source the
candidates are made from. The reference outputs always come from the untouched source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.build.pipeline import BuildOptions, Reporter
    from shipyard.dataset import Split
    from shipyard.sources.base import Source


def apply_model_transforms(source: Source, options: BuildOptions, data: Split, reporter: Reporter) -> Source:
    """The source after the transforms ``options`` ask for (none yet: the source itself)."""
    return source
