"""Seeding and capture/restore of every global random number generator (for exact resume)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    # The legacy global NumPy RNG is what user and library code draws from, so it is the one to seed.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds all CUDA devices


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch ``epoch`` of a run seeded with ``seed`` (data order is a function of both).

    SeedSequence mixes the pair so nearby (seed, epoch) pairs give unrelated streams.
    """
    return int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1, dtype=np.uint64)[0] % 2**63)


def get_rng_state() -> dict[str, Any]:
    """States of the Python, NumPy, torch CPU and CUDA generators (tensors and JSON-able values)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` captured (as decoded from a checkpoint)."""
    py = state["python"]
    # JSON turns the inner tuple into a list; random.setstate wants tuples all the way.
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))  # noqa: NPY002
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.to(torch.uint8) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
