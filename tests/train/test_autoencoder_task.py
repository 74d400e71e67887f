"""The ``autoencoder`` task: autoencoder pretraining, codebook fitting, then the classifier on frozen encoders
(statistics embeddings), through the engine, resumable across the stage switch."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.train.engine import Trainer
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.autoencoder import AutoencoderTask

SR = 16000


class Tones(Dataset):
    """Two classes: a low (250-400 Hz) or high (2.5-4 kHz) tone in noise, random level, 0.25 s."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        low, high = 250 + 150 * torch.rand(n, generator=g), 2500 + 1500 * torch.rand(n, generator=g)
        f = torch.where(self.labels == 0, low, high)
        amp = 0.05 + 0.4 * torch.rand(n, 1, generator=g)
        t = torch.arange(4000) / SR
        self.audio = amp * torch.sin(2 * math.pi * f[:, None] * t) + 0.01 * torch.randn(n, 4000, generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.audio[i], "lengths": torch.tensor(4000), "label": self.labels[i]}


def _model():
    torch.manual_seed(0)
    return audiozoo.create_model("stats_embed", **{**audiozoo.model_info("stats_embed").tiny, "num_classes": 2})


def _trainer(model, out, epochs: int) -> Trainer:
    task = AutoencoderTask(pretrain_epochs=3, optim={"name": "adamw", "lr": 3e-2, "weight_decay": 1e-4})
    train = DataLoader(Tones(64, 0), batch_size=16, shuffle=True, drop_last=True)
    valid = DataLoader(Tones(32, 1), batch_size=16)
    return Trainer(task, {"model": model}, train, valid, epochs=epochs, out_dir=out, progress=False, device="cpu",
                   seed=0, log_every=1)


def test_registered_and_validated() -> None:
    assert get_task_class("autoencoder") is AutoencoderTask and AutoencoderTask.uses_labels
    with pytest.raises(ConfigError, match="pretrain_epochs"):
        AutoencoderTask(pretrain_epochs=-1)
    task = AutoencoderTask()
    task.models = {"model": torch.nn.Linear(2, 2)}
    with pytest.raises(ConfigError, match="reconstruct"):
        task._net()


def test_pretrains_fits_then_classifies_and_resumes_across_the_switch(tmp_path) -> None:
    model = _model()
    _trainer(model, tmp_path / "run", epochs=3).fit()  # stage 1 only, then the codebooks are fitted
    assert bool(model.codebooks_fitted) and float(model.feat_std.min()) > 0
    ae = {k: v.clone() for k, v in model.autoencoders.state_dict().items()}
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    recon = [r["recon"] for r in recs if r.get("split") == "valid"]
    # measured: validation reconstruction MSE 0.551 after epoch 1 -> 0.392 after epoch 3 (standardised units)
    assert len(recon) == 3 and recon[-1] < 0.85 * recon[0], recon

    model2 = _model()  # resumed from last/ (epoch 3) with a longer run: stage 2 only
    trainer = _trainer(model2, tmp_path / "run", epochs=6)
    trainer.fit(resume=True)
    assert all(torch.equal(v, ae[k]) for k, v in model2.autoencoders.state_dict().items())  # frozen encoders
    assert not any(p.requires_grad for p in model2.autoencoder_parameters())
    # measured: validation accuracy 1.0 after 3 classifier epochs (chance 0.5; 0.5 before them)
    assert trainer.last_metrics["accuracy"] >= 0.9, trainer.last_metrics
    assert (tmp_path / "run" / "best").is_dir()


def test_frozen_embedding_cache_gives_the_full_forward() -> None:
    model = _model()
    task = AutoencoderTask(pretrain_epochs=0)
    task.models, task.trainer = {"model": model}, type("T", (), {"state": type("S", (), {"epoch": 0})()})()
    model.eval()
    ds = Tones(8, 2)
    batch = {"audio": ds.audio, "lengths": torch.full((8,), 4000), "label": ds.labels,
             "audio_filepath": [f"clip{i}.wav" for i in range(8)], "crop_start": [0] * 8}
    _, want, _ = task.classification({k: v for k, v in batch.items() if k not in ("audio_filepath", "crop_start")})
    _, first, _ = task.classification(batch)
    assert len(task._cache) == 8
    with torch.no_grad():
        model.autoencoders["slice"].fc1.weight.add_(1.0)  # a cached embedding no longer depends on the encoders
    _, again, _ = task.classification(batch)
    torch.testing.assert_close(first, want)
    torch.testing.assert_close(again, want)
    task.cache_embeddings = False
    _, fresh, _ = task.classification(batch)
    assert not torch.allclose(fresh, want)
