"""Family contracts (DESIGN.md): one small Protocol per model family, plus test-input builders.

Model files import this module to state which contract they fulfil; the registry-parametrised tests use
:func:`example_inputs` to drive every registered model the same way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Classifier(Protocol):
    """``forward(features (B, F, L), lengths (B,) | None) -> logits (B, num_classes)``."""

    num_classes: int

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor: ...
    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor: ...
    def reset_classifier(self, num_classes: int) -> None: ...


@runtime_checkable
class SSLModel(Protocol):
    def extract_features(
        self, x: Tensor, lengths: Tensor | None = None, layers: list[int] | None = None
    ) -> list[Tensor]: ...
    def pretrain_loss(self, batch: dict) -> Tensor: ...


@runtime_checkable
class Vocoder(Protocol):
    """``forward(mel (B, n_mels, L), lengths) -> (wav (B, T), lengths)``."""

    sample_rate: int
    hop_length: int
    n_mels: int

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class Codec(Protocol):
    sample_rate: int
    frame_rate: float
    num_codebooks: int

    def encode(self, wav: Tensor) -> Tensor: ...
    def decode(self, codes: Tensor) -> Tensor: ...


@runtime_checkable
class Separator(Protocol):
    """``forward(mixture (B, C, T)) -> (B, S, C, T)``."""

    sources: list[str]

    def forward(self, mixture: Tensor) -> Tensor: ...


@runtime_checkable
class Generator(Protocol):
    def generate(self, conditions, steps: int, guidance: float, seed: int): ...


@runtime_checkable
class Transcriber(Protocol):
    def forward(self, audio: Tensor) -> dict[str, Tensor]: ...


def example_inputs(
    family: str, model: torch.nn.Module, length: int, batch: int = 2, seed: int = 0
) -> tuple[tuple, dict]:
    """Random inputs of ``length`` frames/samples for a model of ``family`` (used by the model tests).

    The last batch item is shorter than ``length`` so that the ``lengths`` path is exercised.
    """
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([length] + [max(1, length - 3 * (i + 1)) for i in range(batch - 1)])
    if family == "classify":
        n_feat = getattr(model, "feature_dim", None) or model.config.n_mels
        x = torch.randn(batch, n_feat, length, generator=g)
        return (x,), {"lengths": lengths}
    if family == "transcribe":
        # A waveform of ``length`` frames (``length * hop_length`` samples) at the model's sample rate,
        # so the front-end (and its learned parameters) is exercised too.
        x = 0.1 * torch.randn(batch, length * model.hop_length, generator=g)
        return (x,), {}
    if family == "vocoder":
        # A mel spectrogram of ``length`` frames; the vocoder returns ``wav_lengths`` samples per item
        # (HiFi-GAN: ``frames * hop_length``; iSTFT vocoders with a centred STFT: ``(frames - 1) * hop_length``).
        mel = torch.randn(batch, model.n_mels, length, generator=g)
        return (mel,), {"lengths": lengths}
    if family == "codec":
        # A waveform of ``length`` codec frames: ``length * hop_length`` samples (hop_length = samples per frame).
        x = 0.1 * torch.randn(batch, length * model.hop_length, generator=g)
        return (x,), {}
    raise NotImplementedError(f"no example inputs for family {family!r} yet")
