"""Training run used by the resume (SIGKILL) and DDP tests; run as a script or under torchrun.

  python train_toy_script.py OUT [--pause-after N] [--resume] [--batch-size B] [--dropout P] [--augment]
         [--max-steps S] [--ddp-sampler]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402
from train_toys import ToyAudio, ToyClassifier, collate  # noqa: E402

from audiozoo.train import ClassificationTask, Trainer  # noqa: E402


class PausingTask(ClassificationTask):
    """Signals (a marker file) and hangs after step ``pause_after`` so the test can SIGKILL it there."""

    def __init__(self, pause_after: int | None, marker: Path, **kw) -> None:
        super().__init__(**kw)
        self.pause_after, self.marker = pause_after, marker

    def on_train_step_end(self, step, logs) -> None:
        if self.pause_after is not None and step == self.pause_after:
            self.marker.write_text(str(step))
            time.sleep(600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--pause-after", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--mixup", type=float, default=0.4)
    ap.add_argument("--augment", action="store_true")
    ap.add_argument("--max-steps", type=int, default=14)
    ap.add_argument("--optim", default="adamw", choices=("adamw", "sgd"))
    ap.add_argument("--ddp-sampler", action="store_true", help="single process with a 1-replica DistributedSampler")
    a = ap.parse_args()
    torch.set_num_threads(1)  # bitwise reproducibility of CPU kernels
    torch.manual_seed(1234)
    model = ToyClassifier(dropout=a.dropout)
    train = ToyAudio(40, augment=a.augment)
    if a.ddp_sampler:
        sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=7)
        loader = DataLoader(train, batch_size=a.batch_size, sampler=sampler, collate_fn=collate)
    else:
        loader = DataLoader(train, batch_size=a.batch_size, shuffle=True, collate_fn=collate)
    valid = DataLoader(ToyAudio(12, seed=1), batch_size=6, collate_fn=collate)
    task = PausingTask(a.pause_after, Path(a.out) / "paused.marker", mixup=a.mixup, label_smoothing=0.1,
                       optim={"name": "adamw", "lr": 3e-3, "weight_decay": 0.01} if a.optim == "adamw"
                       else {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                       schedule={"name": "cosine", "warmup_steps": 3})
    trainer = Trainer(task, model, loader, valid, max_steps=a.max_steps, grad_accum=a.grad_accum, clip_grad_norm=1.0,
                      ema_decay=0.9, log_every=1, eval_every=3, save_every=4, out_dir=a.out, seed=7,
                      device="cpu", progress=False)
    trainer.fit(resume=a.resume)


if __name__ == "__main__":
    main()
