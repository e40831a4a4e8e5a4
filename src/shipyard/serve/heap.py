"""Python's garbage collector set for serving.

By default CPython collects its youngest generation whenever 700 more container objects have been
made than freed. The requests a busy server holds in flight keep that count rising and falling
across 700 (measured: about 100 collections a second at 32 clients, each finding almost nothing
to free, since a finished request frees its objects by reference counting), and every tenth of
those goes on to older generations, where a full collection walked every object the loaded
models left behind and stalled the event loop for about 30 ms. While serving, the youngest
generation is collected after :data:`GEN0_THRESHOLD` objects instead, and what was loaded before
serving is frozen out of the collector's walks (``gc.freeze``); cycles are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 10_000
"""Well above the objects a few hundred requests in flight hold, so their coming and going does
not set the collector off."""
__all__ = ["GEN0_THRESHOLD", "serving_collector"]


@contextmanager
def serving_collector() -> Iterator[None]:
    """The collector set for serving (module text) until the block ends, then as it was."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(GEN0_THRESHOLD, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
