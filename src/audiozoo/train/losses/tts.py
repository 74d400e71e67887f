"""Losses of non-autoregressive acoustic models (FastSpeech / FastSpeech 2 and relatives).

FastSpeech 2 (Ren et al. 2021, arXiv:2006.04558, Section 2; ming024/FastSpeech2 ``model/loss.py``):

* mel: L1 (or MSE) between predicted and target log-mels over valid frames only, for the decoder output and
  for the post-net output (ming024 sums both);
* duration: MSE between the predicted ``ln(d + 1)`` and ``ln(d_target + 1)`` over valid tokens (Section 2.3:
  "predicts the length ... in the logarithmic domain");
* pitch / energy: MSE between predicted and target (normalised) values over valid frames (frame level) or
  tokens (phoneme level).

Autoregressive models (Transformer TTS, Li et al. 2019, arXiv:1809.08895):

* stop token: binary cross-entropy of the per-frame stop logit, target 1 at each utterance's last frame, with
  a weight on that positive frame (Section 3.7: "we impose a positive weight (5.0 ~ 8.0) on the tail positive
  stop token"; espnet's ``bce_pos_weight`` 5.0);
* guided attention (Tachibana et al. 2018, arXiv:1710.08969, Section 4.1; espnet's optional
  ``GuidedMultiHeadAttentionLoss`` for Transformer TTS): ``mean(A[n, t] * (1 - exp(-(n/N - t/T)^2 / 2g^2)))``
  over the valid part of encoder-decoder attention maps, pushing them towards the diagonal.

Every function takes explicit masks or lengths; padded positions never count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError, DataError

__all__ = ["duration_loss", "guided_attention_loss", "masked_mel_loss", "masked_value_loss", "sequence_mask",
           "stop_token_loss"]


def sequence_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True at *valid* positions."""
    return torch.arange(max_len, device=lengths.device)[None] < lengths[:, None]


def masked_mel_loss(pred: Tensor, target: Tensor, lengths: Tensor, kind: str = "l1") -> Tensor:
    """Mean L1 (``kind="l1"``) or squared error (``"mse"``) over the valid frames of ``(B, n_mels, L)`` mels.

    ``lengths (B,)`` valid frames; ``pred`` and ``target`` must have the same shape.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise DataError(f"mel loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} must be the "
                        "same (B, n_mels, L)")
    if kind not in ("l1", "mse"):
        raise ConfigError(f"mel loss kind must be 'l1' or 'mse', got {kind!r}")
    valid = sequence_mask(lengths.to(pred.device), pred.shape[-1])[:, None].to(pred.dtype)
    err = (pred.float() - target.float()).abs() if kind == "l1" else (pred.float() - target.float()).pow(2)
    return (err * valid).sum() / (valid.sum() * pred.shape[1]).clamp_min(1.0)


def masked_value_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """MSE of per-position values ``(B, N)`` over ``valid`` positions (bool ``(B, N)``)."""
    if pred.shape != target.shape or valid.shape != pred.shape:
        raise DataError(f"value loss: prediction {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
                        f"{tuple(valid.shape)} must agree")
    v = valid.to(torch.float32)
    return ((pred.float() - target.float()).pow(2) * v).sum() / v.sum().clamp_min(1.0)


def duration_loss(log_pred: Tensor, durations: Tensor, lengths: Tensor) -> Tensor:
    """FastSpeech 2's duration loss: MSE of ``log_pred (B, N)`` against ``ln(durations + 1)`` on valid tokens."""
    if log_pred.shape != durations.shape:
        raise DataError(f"duration loss: prediction {tuple(log_pred.shape)} and durations {tuple(durations.shape)} "
                        "differ")
    target = torch.log(durations.float() + 1.0)
    return masked_value_loss(log_pred, target, sequence_mask(lengths.to(log_pred.device), log_pred.shape[1]))


def stop_token_loss(logits: Tensor, lengths: Tensor, pos_weight: float = 5.0) -> Tensor:
    """Stop-token BCE over valid frames of ``logits (B, L)``: target 1 at frame ``lengths - 1``, 0 before it;
    the positive frame weighs ``pos_weight``. Mean over valid frames."""
    if logits.ndim != 2:
        raise DataError(f"stop logits must be (B, L), got {tuple(logits.shape)}")
    if pos_weight <= 0:
        raise ConfigError(f"pos_weight must be > 0, got {pos_weight}")
    lengths = lengths.to(logits.device).long()
    valid = sequence_mask(lengths, logits.shape[1])
    target = (torch.arange(logits.shape[1], device=logits.device)[None] == (lengths - 1)[:, None]).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), target, pos_weight=torch.tensor(float(pos_weight), device=logits.device), reduction="none")
    v = valid.float()
    return (loss * v).sum() / v.sum().clamp_min(1.0)


def guided_attention_loss(attn: Tensor, text_lengths: Tensor, frame_lengths: Tensor, sigma: float = 0.4,
                          durations: Tensor | None = None) -> Tensor:
    """Guided attention loss of attention maps ``attn (B, ..., L_frames, N_tokens)`` (any number of head / layer
    axes): mean of ``A * W`` over valid (frame, token) pairs.

    Without ``durations`` (Tachibana et al. 2018, espnet's default): the diagonal prior
    ``W = 1 - exp(-(t/N - f/L)^2 / (2 sigma^2))``. With ``durations (B, N)`` (frames per token, e.g. a corpus'
    own phoneme durations): the path of the durations, ``W = 1 - exp(-(t - k_f)^2 / (2 sigma^2))`` where
    ``k_f`` is the token that frame ``f`` belongs to and ``sigma`` is in tokens — an attention target where the
    diagonal is too loose for little data (not in Transformer TTS' paper; the model still aligns by itself at
    inference).
    """
    if attn.ndim < 3:
        raise DataError(f"attention must be (B, ..., L_frames, N_tokens), got {tuple(attn.shape)}")
    if sigma <= 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    b, big_l, big_n = attn.shape[0], attn.shape[-2], attn.shape[-1]
    dev = attn.device
    nl = text_lengths.to(dev).float()[:, None, None]
    fl = frame_lengths.to(dev).float()[:, None, None]
    f = torch.arange(big_l, device=dev, dtype=torch.float32)[None, :, None]
    t = torch.arange(big_n, device=dev, dtype=torch.float32)[None, None, :]
    if durations is None:
        w = 1.0 - torch.exp(-((t / nl - f / fl) ** 2) / (2.0 * sigma ** 2))  # (B, L, N)
    else:
        if durations.shape != (b, big_n):
            raise DataError(f"durations must be (B, N_tokens) = {(b, big_n)}, got {tuple(durations.shape)}")
        ends = durations.to(dev).long().cumsum(-1)  # (B, N): first frame after each token
        frames = torch.arange(big_l, device=dev)[None].expand(b, -1).contiguous()
        k = torch.searchsorted(ends, frames, right=True).clamp_max(big_n - 1).float()  # (B, L) token of frame f
        w = 1.0 - torch.exp(-((t - k[:, :, None]) ** 2) / (2.0 * sigma ** 2))
    valid = (f < fl) & (t < nl)
    w = (w * valid).view(b, *([1] * (attn.ndim - 3)), big_l, big_n)
    count = valid.float().sum() * (attn[0, ..., 0, 0].numel())
    return (attn.float() * w).sum() / count.clamp_min(1.0)
