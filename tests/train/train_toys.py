"""Tiny self-contained datasets, models and tasks for the training-engine tests (no audiozoo.data/models)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset


class ToyAudio(Dataset):
    """``n`` clips of ``length`` samples: a class-dependent sinusoid + noise; items as audiozoo.data yields.

    ``augment`` applies a random gain drawn from torch's global RNG in ``__getitem__`` so that exact
    resume must restore the RNG state (the kind of randomness a data pipeline brings).
    """

    def __init__(self, n: int = 40, length: int = 64, num_classes: int = 4, seed: int = 0, augment: bool = False):
        g = torch.Generator().manual_seed(seed)
        self.labels_ = torch.randint(0, num_classes, (n,), generator=g)
        t = torch.arange(length, dtype=torch.float32)
        base = torch.stack([torch.sin(2 * torch.pi * (k + 1) * t / 16) for k in range(num_classes)])
        self.audio = base[self.labels_] + 0.3 * torch.randn(n, length, generator=g)
        self.labels = [f"c{k}" for k in range(num_classes)]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels_)

    def __getitem__(self, i: int) -> dict:
        x = self.audio[i]
        if self.augment:
            x = x * (0.8 + 0.4 * torch.rand(()))
        return {"audio": x, "length": x.shape[0], "label": int(self.labels_[i])}


def collate(items: list[dict]) -> dict:
    return {
        "audio": torch.stack([it["audio"] for it in items]),
        "lengths": torch.tensor([it["length"] for it in items]),
        "label": torch.tensor([it["label"] for it in items]),
    }


class Framer(nn.Module):
    """Parameter-free frontend: (B, T) -> (B, F=8, L=T/8) non-overlapping frames."""

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        b, t = wav.shape
        return wav[:, : t - t % 8].reshape(b, -1, 8).transpose(1, 2)


@dataclass
class ToyConfig:
    num_classes: int = 4
    hidden: int = 16
    dropout: float = 0.0


class ToyClassifier(nn.Module):
    """``forward(features (B, 8, L), lengths) -> logits (B, C)`` with an optional dropout (RNG use)."""

    def __init__(self, config: ToyConfig | None = None, **kw) -> None:
        super().__init__()
        self.config = config or ToyConfig(**kw)
        self.num_classes = self.config.num_classes
        self.frontend = Framer()
        self.proj = nn.Conv1d(8, self.config.hidden, 3, padding=1)
        self.drop = nn.Dropout(self.config.dropout)
        self.head = nn.Linear(self.config.hidden, self.config.num_classes)
        self.seen_dtypes: list[torch.dtype] = []

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.proj(features))
        self.seen_dtypes.append(h.dtype)
        return self.head(self.drop(h.mean(-1)))


class ToyGenerator(nn.Module):
    """(B, 1, T) conditioning -> (B, 1, T) signal."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.LeakyReLU(0.1), nn.Conv1d(16, 1, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ToyDiscriminator(nn.Module):
    """Returns ``(logits, fmaps)`` of one sub-discriminator, HiFi-GAN style."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(1, 8, 5, stride=2, padding=2), nn.Conv1d(8, 8, 5, stride=2, padding=2)])
        self.out = nn.Conv1d(8, 1, 3, padding=1)

    def forward(self, x: torch.Tensor):
        fmaps = []
        for c in self.convs:
            x = torch.nn.functional.leaky_relu(c(x), 0.1)
            fmaps.append(x)
        x = self.out(x)
        fmaps.append(x)
        return x.flatten(1), fmaps


class ToySignals(Dataset):
    """GAN toy: input noise-like conditioning x, target y = a fixed smoothing filter of x, scaled."""

    def __init__(self, n: int = 64, length: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 1, length, generator=g)
        kernel = torch.tensor([[[0.25, 0.5, 0.25]]])
        self.y = 0.8 * torch.nn.functional.conv1d(self.x, kernel, padding=1)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"input": self.x[i], "target": self.y[i]}
