"""The one way tortuner draws a figure: matplotlib's Agg backend (no display needed), saved atomically as PNG.

    with figure(out / "loss.png", figsize=(7, 4)) as (fig, ax):
        ax.plot(steps, losses)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tortuner.files import atomic_path


@contextlib.contextmanager
def figure(path: str | os.PathLike, nrows: int = 1, ncols: int = 1, dpi: int = 100, tight: bool = True,
           **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """Yield `(fig, axes)` from `plt.subplots(nrows, ncols, **subplots)`; on leaving the block, lay it out
    (`tight`: bounding box fitted to the drawing) and write it to `path`. The figure is closed either way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, **subplots)
    try:
        yield fig, axes
        if tight:
            fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
