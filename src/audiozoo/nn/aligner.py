"""An unsupervised text-to-speech forced aligner: RAD-TTS / "One TTS Alignment To Rule Them All".

Badlani, Łańcucki, Shih, Valle, Ping, Catanzaro (ICASSP 2022, arXiv:2108.10447):

- §2.1: a small convolutional **key** encoder over the token embeddings and a **query** encoder over the mel
  frames; the soft alignment of frame ``j`` to token ``i`` is the softmax over tokens of
  ``-temperature * ||q_j - k_i||^2``;
- §2.2: a static **beta-binomial prior** that favours the diagonal, multiplied into the soft alignment
  (:func:`beta_binomial_prior`);
- §2.1 eq. (3): trained with the **forward-sum** (CTC-like) likelihood of all monotonic alignments
  (:func:`audiozoo.train.losses.alignment.forward_sum_loss`);
- §2.3: the hard alignment is the most likely monotonic path (Glow-TTS's MAS,
  :func:`audiozoo.nn.alignment.monotonic_alignment_search`), and durations are its frames per token.

Built here to give FastSpeech-style models durations on corpora that have none (issue #16); measured against the
Piper voice's own durations by ``recipes/tts/eval_aligner_boundaries.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .alignment import durations_from_alignment, monotonic_alignment_search


def beta_binomial_prior(n_tokens: int, n_frames: int, scaling: float = 1.0) -> Tensor:
    """The static alignment prior of Badlani et al. §2.2: ``P(token i | frame j)`` ``(n_frames, n_tokens)``.

    Frame ``j`` (1-based ``j = 1..T``) gets a beta-binomial distribution over ``i = 0..N-1`` with
    ``alpha = scaling * j`` and ``beta = scaling * (T - j + 1)``, so its mode moves along the diagonal. Rows sum to 1.
    """
    if n_tokens < 1 or n_frames < 1:
        raise ConfigError(f"need at least one token and one frame, got {n_tokens} x {n_frames}")
    if scaling <= 0:
        raise ConfigError(f"scaling must be positive, got {scaling}")
    k = torch.arange(n_tokens, dtype=torch.float64)  # (N,)
    n = n_tokens - 1
    j = torch.arange(1, n_frames + 1, dtype=torch.float64)[:, None]  # (T, 1)
    a, b = scaling * j, scaling * (n_frames - j + 1)

    def lbeta(x: Tensor, y: Tensor) -> Tensor:
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_comb = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)  # (N,)
    log_p = log_comb + lbeta(k + a, n - k + b) - lbeta(a, b)  # (T, N)
    return torch.softmax(log_p, dim=-1).float()  # exact pmf up to rounding; renormalised


def batch_prior(token_lengths: Tensor, frame_lengths: Tensor, n_tokens: int, n_frames: int,
                scaling: float = 1.0) -> Tensor:
    """Per-item :func:`beta_binomial_prior` padded to ``(B, n_frames, n_tokens)`` (zeros outside each item)."""
    out = torch.zeros(len(token_lengths), n_frames, n_tokens)
    for b, (n, t) in enumerate(zip(token_lengths.tolist(), frame_lengths.tolist())):
        out[b, :t, :n] = beta_binomial_prior(int(n), int(t), scaling)
    return out


class _MaskedConvStack(nn.Module):
    """Conv1d layers ``(B, C_in, L) -> (B, C_out, L)`` with ReLU between them; padded positions re-zeroed after
    every layer so an item's output does not depend on the padding of its batch."""

    def __init__(self, channels: list[int], kernels: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ci, co, k, padding=k // 2)
                                   for ci, co, k in zip(channels[:-1], channels[1:], kernels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask[:, None].to(x.dtype)  # (B, 1, L)
        for i, conv in enumerate(self.convs):
            x = conv(x * m)
            if i < len(self.convs) - 1:
                x = torch.relu(x)
        return x * m


class ConvAligner(nn.Module):
    """Tokens ``(B, N)`` + log-mel ``(B, n_mels, T)`` -> log soft alignment ``(B, T, N)`` (Badlani et al. §2.1).

    Args:
        vocab_size: token ids ``0..vocab_size-1``.
        n_mels: mel bands of the input.
        channels: width of the key (text) and query (mel) encoders.
        att_dim: dimension of the keys and queries compared by squared distance.
        text_kernels: kernel of each text-side convolution (the last layer is the projection).
        mel_kernels: kernel of each mel-side convolution.
        temperature: the distance scale (RAD-TTS: 0.0005 on its un-normalised features; here the mel is
            standardised per band, see :meth:`set_mel_stats`, and 1 / att_dim is the default).
    """

    def __init__(self, vocab_size: int, n_mels: int = 80, channels: int = 256, att_dim: int = 80,
                 text_kernels: tuple[int, ...] = (5, 5, 5, 1), mel_kernels: tuple[int, ...] = (3, 3, 1),
                 temperature: float | None = None):
        super().__init__()
        if vocab_size < 1 or n_mels < 1 or channels < 1 or att_dim < 1:
            raise ConfigError("vocab_size, n_mels, channels and att_dim must be positive")
        self.vocab_size, self.n_mels, self.att_dim = vocab_size, n_mels, att_dim
        self.temperature = float(temperature) if temperature is not None else 1.0 / att_dim
        self.embed = nn.Embedding(vocab_size, channels)
        tk, mk = list(text_kernels), list(mel_kernels)
        self.key = _MaskedConvStack([channels] * len(tk) + [att_dim], tk)
        self.query = _MaskedConvStack([n_mels] + [channels] * (len(mk) - 1) + [att_dim], mk)
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))

    def set_mel_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per-band standardisation of the input log-mel (computed on the training set)."""
        self.mel_mean.copy_(mean.reshape(-1))
        self.mel_std.copy_(std.reshape(-1).clamp_min(1e-3))

    def forward(self, tokens: Tensor, token_lengths: Tensor, mel: Tensor, frame_lengths: Tensor,
                prior: Tensor | None = None) -> Tensor:
        """``log P(token i | frame j)`` ``(B, T, N)``: log-softmax over the valid tokens of ``-temperature *
        distance``, plus ``log prior`` when a ``(B, T, N)`` prior is given (not renormalised, as in RAD-TTS);
        invalid tokens hold -1e4 (finite, so a CTC over them stays finite)."""
        if tokens.ndim != 2 or mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise ConfigError(f"tokens must be (B, N) and mel (B, {self.n_mels}, T); got {tuple(tokens.shape)}, "
                              f"{tuple(mel.shape)}")
        n, t = tokens.shape[1], mel.shape[2]
        tmask = torch.arange(n, device=tokens.device)[None] < token_lengths[:, None]  # (B, N)
        fmask = torch.arange(t, device=mel.device)[None] < frame_lengths[:, None]  # (B, T)
        keys = self.key(self.embed(tokens).transpose(1, 2), tmask)  # (B, A, N)
        x = (mel - self.mel_mean[None, :, None]) / self.mel_std[None, :, None]
        queries = self.query(x, fmask)  # (B, A, T)
        q, k = queries.transpose(1, 2), keys.transpose(1, 2)  # (B, T, A), (B, N, A)
        # ||q - k||^2 = |q|^2 + |k|^2 - 2 q.k: one batched GEMM instead of a (B, T, N, A) difference tensor
        dist = (q.pow(2).sum(-1)[:, :, None] + k.pow(2).sum(-1)[:, None, :] - 2 * q @ k.transpose(1, 2)).clamp_min(0)
        logits = (-self.temperature * dist).masked_fill(~tmask[:, None, :], -1e4)  # (B, T, N)
        log_attn = torch.log_softmax(logits, dim=-1)
        if prior is not None:
            log_attn = log_attn + torch.log(prior + 1e-8)
        return log_attn.masked_fill(~tmask[:, None, :], -1e4)

    @torch.no_grad()
    def align(self, tokens: Tensor, token_lengths: Tensor, mel: Tensor, frame_lengths: Tensor,
              prior_scaling: float | None = 1.0) -> Tensor:
        """Durations ``(B, N)`` long (frames per token, >= 1 for valid tokens, summing to each item's frames):
        MAS over the log soft alignment (with the beta-binomial prior unless ``prior_scaling`` is None)."""
        if (frame_lengths < token_lengths).any():
            raise ConfigError("every item needs at least as many frames as tokens")
        prior = None
        if prior_scaling is not None:
            prior = batch_prior(token_lengths, frame_lengths, tokens.shape[1], mel.shape[2], prior_scaling)
        log_attn = self(tokens, token_lengths, mel, frame_lengths, prior.to(mel.device) if prior is not None else None)
        path = monotonic_alignment_search(log_attn.transpose(1, 2), token_lengths, frame_lengths)  # (B, N, T)
        return durations_from_alignment(path)
