"""Shared fixtures: the real recordings in ../shared/data, seeding, tiny audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker: `-n auto` already uses every core; more threads oversubscribe them
    torch.set_num_threads(1)


def shared_data_dir() -> Path | None:
    env = os.environ.get("AUDIOZOO_SHARED_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data (or $AUDIOZOO_SHARED_DATA); skips the test when absent."""
    p = shared_data_dir()
    if p is None:
        pytest.skip("real recordings not found: ../shared/data is absent (set AUDIOZOO_SHARED_DATA)")
    return p


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - legacy global RNG seeded for tests that use it
    yield


@pytest.fixture
def speechlike() -> np.ndarray:
    """1.3 s of a deterministic speech-like test signal at 16 kHz (harmonics + noise), float32."""
    sr = 16000
    t = np.arange(int(1.3 * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = x + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def pytest_collection_modifyitems(config, items):
    """Tests that use the ``shared_data`` fixture get the ``shared_data`` marker (``-m "not shared_data"``)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
