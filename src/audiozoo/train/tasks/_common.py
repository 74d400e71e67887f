"""Helpers shared by several task modules (task modules never import each other; they import these).

- :func:`model_inputs`: a batch's audio through the model's parameter-free front end, outside autocast
  (``features (B, F, L)``, frame lengths ``(B,)``), as classifiers and students consume it;
- :func:`feature_lengths`: frame counts after a front end that does not return them;
- :func:`crop_to_hop`, :func:`random_gain`, :func:`check_gain_db`: waveform crops of generator tasks;
- :func:`single_labels`, :func:`label_metrics`: class-index targets, accuracy and macro F1;
- :func:`trim_to_longest`: drop all-padding frames of a batch.
- :func:`code_histogram`, :func:`codebook_perplexity`: codebook usage of codec tasks.
- :func:`frozen_model`: a trained helper model (teacher, tagger, tokenizer) resolved by name, frozen, in eval mode.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ...eval.classification import macro_f1
from .base import unwrap

__all__ = ["check_gain_db", "crop_to_hop", "feature_lengths", "label_metrics", "model_inputs", "random_gain",
           "single_labels", "takes_lengths", "trim_to_longest"]
__all__ += ["code_histogram", "codebook_perplexity"]  # codec and specvqgan tasks
__all__ += ["frozen_model"]  # distill, separation (USS queries), ssl (tokenizers / teachers)


# ---- front-end inputs ------------------------------------------------------------------------------
def takes_lengths(frontend: Any) -> bool:
    """Whether ``frontend.forward`` accepts ``lengths``."""
    try:
        return "lengths" in inspect.signature(frontend.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def feature_lengths(frontend: Any, lengths: Tensor | None, num_samples: int, num_frames: int) -> Tensor | None:
    """Frame counts of each item after ``frontend``.

    Uses ``frontend.output_lengths(lengths)`` when the frontend provides it; otherwise maps sample
    counts proportionally onto the ``num_frames`` frames of the padded batch (exact for frontends
    whose frames are evenly spaced, up to one frame at the edges).
    """
    if lengths is None:
        return None
    fn = getattr(frontend, "output_lengths", None)
    if callable(fn):
        return fn(lengths).clamp(max=num_frames)
    scaled = torch.div(lengths.to(torch.float64) * num_frames, max(1, num_samples)).ceil().long()
    return scaled.clamp(1, num_frames)


def model_inputs(model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor | None]:
    """Model inputs ``(features (B, F, L), lengths (B,) | None)`` of a batch.

    ``batch["features"]`` (precomputed) is used as is; else ``batch["audio"]`` goes through the model's
    parameter-free ``frontend`` in float32 outside autocast (a log-mel in bf16 would lose ~3 significant
    digits) — ``frontend(wav) -> (B, F, L)`` or ``frontend(wav, lengths) -> (features, frame lengths)``. A model
    without a front end gets the audio itself.
    """
    if "features" in batch:
        return batch["features"], batch.get("feature_lengths", batch.get("lengths"))
    if "audio" not in batch:
        raise DataError(f"a batch needs 'audio' or 'features'; got keys {sorted(batch)}")
    audio, lengths = batch["audio"], batch.get("lengths")
    frontend = getattr(unwrap(model), "frontend", None)
    if frontend is None:
        return audio, lengths
    with torch.autocast(audio.device.type, enabled=False):
        if lengths is not None and takes_lengths(frontend):
            out = frontend(audio.float(), lengths)
        else:
            out = frontend(audio.float())
    if isinstance(out, (tuple, list)):  # (features, frame lengths), e.g. AST's front-end
        return out[0], out[1]
    return out, feature_lengths(frontend, lengths, audio.shape[-1], out.shape[-1])


# ---- waveform crops --------------------------------------------------------------------------------
def crop_to_hop(wav: Tensor, hop: int, min_hops: int, who: str) -> Tensor:
    """``(B, T)`` or ``(B, 1, T)`` -> float ``(B, T')``, ``T'`` the largest multiple of ``hop`` <= T.

    Raises :class:`DataError` naming ``who`` when fewer than ``min_hops`` hops remain.
    """
    if wav.ndim == 3 and wav.shape[1] == 1:
        wav = wav[:, 0]
    if wav.ndim != 2:
        raise DataError(f"{who}: 'audio' must be (B, T) or (B, 1, T), got {tuple(wav.shape)}")
    hop = int(hop)
    n = wav.shape[-1] // hop * hop
    if n < min_hops * hop:
        what = "one hop" if min_hops == 1 else f"{min_hops} hops"
        raise DataError(f"{who}: crops of {wav.shape[-1]} samples are shorter than {what} ({min_hops * hop})")
    return wav[..., :n].float()


def check_gain_db(gain_db: Sequence[float] | None) -> tuple[float, float] | None:
    """``[low, high]`` dB (low <= high) as floats, or ``None``; raises :class:`ConfigError`."""
    if gain_db is None:
        return None
    if len(gain_db) != 2 or float(gain_db[0]) > float(gain_db[1]):
        raise ConfigError(f"gain_db must be [low, high] in dB with low <= high, got {gain_db}")
    return float(gain_db[0]), float(gain_db[1])


def random_gain(wav: Tensor, gain_db: tuple[float, float]) -> Tensor:
    """Random gain per item of ``(B, T)``, uniform in ``gain_db`` dB, capped so that no item exceeds a 0.99 peak.

    A log-mel vocoder sees loudness as an offset of its input; trained at one recording level, it fails on
    louder or quieter speech (our first vocoder run: trained at -41 dBFS, tested at -21 dBFS).
    """
    lo, hi = gain_db
    db = torch.rand(wav.shape[0], 1, device=wav.device) * (hi - lo) + lo
    peak = wav.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
    return wav * torch.minimum(torch.pow(10.0, db / 20.0), 0.99 / peak)


def trim_to_longest(features: Tensor, lengths: Tensor | None) -> Tensor:
    """Drop the frames past the batch's longest item (all padding): ``(B, F, L) -> (B, F, max(lengths))``.

    With length-bucketed batches most of a fixed-length crop can be padding; those frames are masked anyway
    and cost compute (the Wav2Small distillation ran ~2x faster on FSDD digits with this).
    """
    if lengths is None or lengths.numel() == 0:
        return features
    return features[..., : max(1, int(lengths.max()))]


# ---- labels and metrics ----------------------------------------------------------------------------
def single_labels(batch: Mapping[str, Any], num_classes: int, device: torch.device | str) -> Tensor:
    """``batch["label"]`` as ``(B,)`` long class indices in ``[0, num_classes)``; raises :class:`DataError`."""
    if "label" not in batch:
        raise DataError(f"this task needs a 'label' in each batch; got keys {sorted(batch)}")
    y = batch["label"]
    if not isinstance(y, Tensor):
        y = torch.as_tensor(y, device=device)
    if y.ndim != 1:
        raise DataError(f"single-label targets must be (B,) class indices, got shape {tuple(y.shape)}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"label {int(y.max())} is out of range for a model with {num_classes} classes")
    return y.long()


def label_metrics(scores: Tensor, labels: Tensor) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}`` of single-label scores ``(N, C)`` against class indices ``(N,)``."""
    pred = scores.argmax(-1)
    return {"accuracy": float((pred == labels).double().mean()), "macro_f1": macro_f1(pred, labels)}


# ---- codebook usage (codec tasks) ------------------------------------------------------------------
def code_histogram(codes: Tensor, codebook_size: int) -> Tensor:
    """Counts ``(Q, K)`` of each code per codebook in ``codes (B, Q, L)``."""
    if codes.ndim != 3:
        raise ConfigError(f"codes must be (B, Q, L), got {tuple(codes.shape)}")
    q = codes.shape[1]
    flat = codes.transpose(0, 1).reshape(q, -1).long()
    return torch.zeros(q, codebook_size, device=codes.device).scatter_add_(1, flat, torch.ones_like(flat,
                                                                                                     dtype=torch.float))


def codebook_perplexity(counts: Tensor) -> tuple[Tensor, Tensor]:
    """``(perplexity, usage)`` averaged over codebooks from counts ``(Q, K)``: ``exp(-sum p log p)`` (K when every
    code is equally used, 1 when one code takes all) and the fraction of codes used."""
    p = counts / counts.sum(-1, keepdim=True).clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum(-1)
    return entropy.exp().mean(), (counts > 0).float().mean()


# ---- frozen helper models ---------------------------------------------------------------------------
def frozen_model(spec: Any, device: torch.device | str, trained: bool = True) -> nn.Module:
    """A helper model of a task (distillation teacher, USS query tagger, BEATs tokenizer, MERT teacher), frozen.

    ``spec`` is a resolver spec (weight set ``NAME.TAG``, checkpoint folder or file: :func:`audiozoo.resolve.
    resolve_model`, with ``trained`` weights required) or an ``nn.Module`` used as is. Its parameters stop
    requiring gradients and it is moved to ``device`` in eval mode (dropout and batch-norm statistics fixed).
    """
    if isinstance(spec, nn.Module):
        model = spec
    else:
        from ...resolve import resolve_model  # lazy: the resolver imports every model family

        model = resolve_model(spec, trained=trained)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device).eval()
