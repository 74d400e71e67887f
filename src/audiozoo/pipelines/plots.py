"""PNG figures written by pipelines (spectrograms, piano rolls): one matplotlib helper, Agg backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import require


def save_image_png(image: np.ndarray, path: str | os.PathLike, *, extent: tuple[float, float, float, float],
                   ylabel: str, title: str = "", cmap: str = "magma", height: float = 3.2,
                   colorbar: dict[str, Any] | None = None, draw: Callable[[Any], None] | None = None,
                   **imshow_kw: Any) -> None:
    """Write ``image`` (rows = y, columns = time) with a time axis in seconds and a colour bar.

    ``draw(ax)`` may add overlays (e.g. note rectangles) before the figure is saved.
    """
    mpl = require("matplotlib", "writing PNG figures", "plot")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    frames = image.shape[-1]
    fig, ax = plt.subplots(figsize=(min(14, 3 + frames / 60), height), dpi=100)
    im = ax.imshow(image, origin="lower", aspect="auto", cmap=cmap, extent=extent, **imshow_kw)
    if draw is not None:
        draw(ax)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, **(colorbar or {}))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
