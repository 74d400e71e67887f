"""Training tests use toy models: one intra-op thread is faster (no thread hand-off on tiny tensors)
and keeps CPU kernels deterministic."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
