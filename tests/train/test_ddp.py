"""DDP on CPU (gloo) through torchrun: 2 processes x batch b must equal 1 process x batch 2b."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("train_toy_script.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# No dropout, mixup or augmentation: those draw from per-rank RNG streams by design (seed + rank).
# SGD (linear in the gradient) rather than AdamW (nearly invariant to its scale), so that a missing
# 1/world_size in the gradient average would show.
COMMON = ["--grad-accum", "1", "--dropout", "0", "--mixup", "0", "--optim", "sgd"]


@pytest.mark.slow
def test_two_process_ddp_equals_single_process_with_double_batch(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(SCRIPT), str(ddp), "--batch-size", "4", *COMMON], check=True, env=ENV, timeout=240)
    # One process reading the same order: a 1-replica DistributedSampler with the trainer's seed, so
    # its batch k is the union of the two ranks' batch k (rank r takes every 2nd index).
    subprocess.run([sys.executable, str(SCRIPT), str(single), "--ddp-sampler", "--batch-size", "8", *COMMON],
                   check=True, env=ENV, timeout=120)
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(str(ddp / "last" / name)), load_file(str(single / "last" / name))
        err = max(float((a[k] - b[k]).abs().max()) for k in a)
        # The all-reduce averages two per-rank means instead of one mean over 2b: the same sums in
        # another order, a few ulps per step (float32 ulp near 1 is 1.2e-7). 1e-6 allows for that
        # accumulation over 14 steps; a real mismatch (a wrong shard, a missing 1/world_size) moves
        # weights by ~1e-2.
        assert err < 1e-6, f"{name}: DDP vs single-process max abs diff {err}"
    state = json.loads((ddp / "last" / "trainer_state.json").read_text())["state"]
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # every rank's RNG state is checkpointed
    assert state["progress"]["step"] == 14
    # Only rank 0 logs: one train record per step.
    recs = [json.loads(line) for line in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["split"] == "train"] == list(range(1, 15))


@pytest.mark.slow
def test_gan_ddp_equals_single_process(tmp_path):
    """Two optimizers under DDP: one DDP wrapper per model, D stage then G stage, gradients averaged."""
    gan = SCRIPT.with_name("gan_toy_script.py")
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(gan), str(ddp), "8"], check=True, env=ENV, timeout=240)
    subprocess.run([sys.executable, str(gan), str(single), "16", "--ddp-sampler"], check=True, env=ENV, timeout=120)
    for name in ("model.safetensors", "discriminator.safetensors"):
        a, b = load_file(str(ddp / "last" / name)), load_file(str(single / "last" / name))
        err = max(float((a[k] - b[k]).abs().max()) for k in a)
        # Measured 1e-6 (generator: recon weight 45 makes its gradients large) and 4e-8 (discriminator);
        # feeding the single process different batches moves them by 0.14 and 1e-3.
        assert err < 1e-5, f"{name}: DDP vs single-process max abs diff {err}"
