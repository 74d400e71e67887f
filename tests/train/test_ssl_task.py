"""The ``ssl`` task: masked-prediction pretraining of SSAST and TERA through the engine; the pretext loss falls."""

from __future__ import annotations

import json
import math
import types

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.train.engine import Trainer
from audiozoo.train.tasks import SSLTask, get_task_class

SR = 16000


class Chirps(Dataset):
    """Unlabelled structured audio: two harmonic tones (random pitch, onset and level) in light noise, 0.6 s."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(9600) / SR
        self.audio = torch.zeros(n, 9600)
        for i in range(n):
            for _ in range(2):
                f0 = 150 + 500 * float(torch.rand((), generator=g))
                on = int(torch.randint(0, 4800, (), generator=g))
                tone = sum(math.pow(0.6, k) * torch.sin(2 * math.pi * f0 * (k + 1) * t) for k in range(4))
                self.audio[i, on:on + 4800] += 0.2 * tone[on:on + 4800]
        self.audio += 0.003 * torch.randn(n, 9600, generator=g)

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.audio[i], "lengths": torch.tensor(9600)}


def _valid_metrics(model, loader, masking: dict) -> dict:
    """The validation metrics before training (eval mode: the model's fixed-seed masks, as the engine's pass)."""
    model.eval()
    sums: dict = {}
    with torch.no_grad():
        for batch in loader:
            feats, lengths = model.frontend(batch["audio"], batch["lengths"])
            for k, v in model(feats, lengths, **masking).items():
                sums[k] = sums.get(k, 0.0) + float(v) / len(loader)
    return sums


def _fit(name: str, out, overrides: dict, masking: dict | None = None, epochs: int = 4, lr: float = 3e-3):
    """Pretrain a tiny model on 32 clips; returns its validation metrics before training and after each epoch."""
    torch.manual_seed(0)
    model = audiozoo.create_model(name, **{**audiozoo.model_info(name).tiny, **overrides})
    task = SSLTask(masking=masking, optim={"name": "adamw", "lr": lr, "weight_decay": 0.01})
    train = DataLoader(Chirps(32, 0), batch_size=8, shuffle=True, drop_last=True)
    valid = DataLoader(Chirps(16, 1), batch_size=8)
    before = _valid_metrics(model, valid, task.masking)
    Trainer(task, {"model": model}, train, valid, epochs=epochs, out_dir=out, progress=False, device="cpu", seed=0,
            log_every=1).fit()
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return model, [before] + [r for r in recs if r.get("split") == "valid"]


def test_registered_and_options_checked():
    assert get_task_class("ssl") is SSLTask and not SSLTask.uses_labels
    model = audiozoo.create_model("tera_base", **audiozoo.model_info("tera_base").tiny)
    assert "time_proportion" in SSLTask.model_options(model) and "generator" not in SSLTask.model_options(model)
    task = SSLTask(masking={"strategy": "cluster"})  # an SSAST option given to TERA
    task.models = {"model": model}
    with pytest.raises(ConfigError, match="does not take"):
        task.setup(types.SimpleNamespace(device=torch.device("cpu")))
    task.models = {"model": torch.nn.Linear(2, 2)}
    with pytest.raises(ConfigError, match="'ssl' family"):
        task.setup(types.SimpleNamespace(device=torch.device("cpu")))
    with pytest.raises(ConfigError, match="mapping"):
        SSLTask(masking=["cluster"])


@pytest.mark.slow
def test_ssast_pretext_loss_falls(tmp_path):
    # 40 mels x 58 frames: 5 x 7 patches of 8x8, 25 masked (about the paper's 400/512); 16 steps
    _, valid = _fit("ssast_tiny_patch", tmp_path, {"n_mels": 40, "max_length": 60, "num_mask_patches": 25})
    first, last = valid[0], valid[-1]
    # measured: loss 5.48 -> 4.35, nce 3.22 (chance log 25 = 3.22) -> 2.88, mse 0.226 -> 0.148, acc 0.043 -> 0.088
    assert last["loss"] < 0.85 * first["loss"] and last["nce"] < first["nce"] - 0.15, valid
    assert last["acc"] > 1.5 * first["acc"], valid


@pytest.mark.slow
def test_ssast_frame_variant_with_a_masking_option(tmp_path):
    _, valid = _fit("ssast_tiny_frame", tmp_path, {"n_mels": 32, "max_length": 60, "num_mask_patches": 20},
                    masking={"strategy": "random", "separate_passes": False})
    assert valid[-1]["loss"] < 0.85 * valid[0]["loss"], valid  # measured 5.83 -> 4.35


@pytest.mark.slow
def test_tera_reconstruction_loss_falls(tmp_path):
    _, valid = _fit("tera_base", tmp_path, {"n_mels": 40, "embed_dim": 64, "num_heads": 4, "intermediate_size": 128,
                                            "dropout": 0.0, "attn_dropout": 0.0},
                    masking={"time_span": [5, 7], "noise_proportion": 0.0}, lr=2e-3)
    # measured: validation L1 on the altered positions 0.786 -> 0.697 (standardised log-mel; predicting the
    # utterance mean scores ~0.8, and the noise floor between the tones is unpredictable)
    assert valid[-1]["loss"] < 0.93 * valid[0]["loss"], valid
