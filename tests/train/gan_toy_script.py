"""Toy GAN run for the DDP test: python gan_toy_script.py OUT BATCH [--ddp-sampler] (or under torchrun)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402
from train_toys import ToyDiscriminator, ToyGenerator, ToySignals  # noqa: E402

from audiozoo.train import GANTask, Trainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("batch", type=int)
    ap.add_argument("--ddp-sampler", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen, disc = ToyGenerator(), ToyDiscriminator()
    # SGD: linear in the gradient, so a wrongly averaged gradient would show. Adversarial terms switch on
    # after 4 generator-only steps, covering both phases.
    task = GANTask(optim={"name": "sgd", "lr": 1e-2}, d_optim={"name": "sgd", "lr": 1e-2}, warmup_adv_steps=4)
    ds = ToySignals(64)
    if a.ddp_sampler:
        loader = DataLoader(ds, batch_size=a.batch, sampler=DistributedSampler(ds, num_replicas=1, rank=0, seed=0))
    else:
        loader = DataLoader(ds, batch_size=a.batch, shuffle=True)
    Trainer(task, {"generator": gen, "discriminator": disc}, loader, None, max_steps=12, log_every=4,
            device="cpu", progress=False, out_dir=a.out, seed=0).fit()


if __name__ == "__main__":
    main()
