"""Input conversion and validation shared by the metric modules (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiozoo.errors import AudioError

ArrayLike = Any  # torch.Tensor | np.ndarray | sequence of numbers


def to_numpy(x: ArrayLike, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Return ``x`` as a numpy array (detached, on CPU), raising a clear error for bad input."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double().numpy() if x.is_floating_point() else x.numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise AudioError(f"{name}: cannot be read as a numeric array ({e})") from e
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise AudioError(f"{name}: contains NaN or Inf values")
    return arr


def to_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """Return ``x`` as a floating torch tensor (float64 for numpy input, dtype kept for float tensors)."""
    if isinstance(x, torch.Tensor):
        t = x if x.is_floating_point() else x.double()
    else:
        t = torch.from_numpy(to_numpy(x, name))
    if not torch.isfinite(t).all():
        raise AudioError(f"{name}: contains NaN or Inf values")
    return t


def same_shape(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, names: str) -> None:
    """Raise :class:`AudioError` unless ``a`` and ``b`` have the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise AudioError(
            f"{names}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)}); trim or pad them to the same length first"
        )
