"""PNG figures written by pipelines (spectrograms, piano rolls): one matplotlib helper, Agg backend."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import require

MAX_COLUMNS = 4096  # time columns drawn: ~3x the widest figure's pixels

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
    # The figure is at most 1,400 px wide: a long input's image (a 10-minute log-mel has 60,000 frames) is
    # max-pooled over time to MAX_COLUMNS first, so matplotlib's float64 / RGBA copies stay small; max keeps
    # short events (a note, a click) visible where subsampling would drop them.
    if frames > MAX_COLUMNS:
        k = -(-frames // MAX_COLUMNS)
        padded = np.pad(np.asarray(image, dtype=np.float32), [(0, 0)] * (image.ndim - 1) + [(0, -frames % k)],
                        mode="edge")
        image = padded.reshape(*image.shape[:-1], -1, k).max(-1)
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
