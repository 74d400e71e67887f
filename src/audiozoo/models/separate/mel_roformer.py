"""Mel-RoFormer: Mel-band projection + interleaved RoPE transformers over time and bands, complex STFT masking.

Papers: Ju-Chiang Wang, Wei-Tsung Lu, Minz Won, "Mel-Band RoFormer for Music Source Separation",
arXiv:2310.01809 (2023); Ju-Chiang Wang, Wei-Tsung Lu, Jitong Chen, "Mel-RoFormer for Vocal Separation and
Vocal Melody Transcription", ISMIR 2024, arXiv:2409.04702. It builds on BS-RoFormer (Lu, Wang, Kong, Hung,
"Music Source Separation with Band-Split RoPE Transformer", arXiv:2309.02612). No official code (ByteDance);
peer: the ``bs-roformer`` PyPI package (1.2.4, MIT, lucidrains), ``bs_roformer.MelBandRoformer``. Re-implemented
here from the papers and the facts of that package (never copied); the band split and mask estimator are
:mod:`audiozoo.nn.bandsplit`.

Network (arXiv:2310.01809 Section 2; 2409.04702 Section 2):

* complex STFT of every channel (Hann, ``n_fft``/``hop_length``; centred, reflect padding), computed in real
  arithmetic (:class:`~audiozoo.nn.bandsplit.ConvSTFT` / ``ConvISTFT``) so the model exports to ONNX;
* Mel-band projection: ``K`` overlapping bands from the Slaney mel filterbank (a bin belongs to every band whose
  triangle covers it; DC/Nyquist to the first/last band); band ``k``'s bins x channels x (re, im) ->
  ``RMSNorm -> Linear -> D``, giving tokens ``(B, L, K, D)``;
* ``depth`` RoFormer blocks, each a RoPE transformer along time (per band) then along bands (per frame):
  pre-RMSNorm multi-head attention with rotary positions, pre-RMSNorm GELU feed-forward, each residual; an
  RMSNorm closes every transformer;
* per source, per band ``MLP (tanh) -> GLU`` to complex mask values of the band's bins; where bands overlap the
  values are averaged; the mask multiplies the mixture STFT; inverse STFT to ``T`` samples.

Melody transcription (2409.04702 Section 3: the separator is fine-tuned for frame-level vocal pitch with an
"embedding projection" and an onset/frame objective). :class:`MelRoFormerMelody` keeps the separator's encoder
(STFT, band projection, RoFormer blocks; load a separator checkpoint with
:meth:`MelRoFormerMelody.load_separator`) and replaces the mask estimators by a head of this implementation's
design, as the paper's head sizes were not available: per token ``RMSNorm -> Linear(D, band_proj)``, the bands
concatenated, ``Linear -> GELU -> melody_dim``, then per frame an onset logit and, from the embedding and that
logit (onset-conditioned frames, as Onsets and Frames, without its stop-gradient), logits over ``1 +
pitch_bins`` classes: class 0 "no melody" (unvoiced), then ``bins_per_semitone`` bins per semitone from MIDI
``pitch_min``.
:func:`decode_melody` gives the f0 contour, :func:`melody_to_notes` note events (``(start, end, midi, amplitude,
None)``, the tuples ``audiozoo.data.midi.notes_to_midi_bytes`` writes).

Switches that are not in the papers (all off in the registered configs; ``head_gates`` exists to load
``bs-roformer`` weights, whose attention always has it): ``head_gates`` (a sigmoid gate per head on the attention
output, from the token). The package's other extras (value residuals, hyper-connection residual streams, a
linear-attention transformer before each block, PoPE) are not implemented; its weights load only with them
off (the converter refuses them by name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.bandsplit import (
    BandMaskEstimator,
    BandSplit,
    ConvISTFT,
    ConvSTFT,
    OverlapAverage,
    RMSNorm,
    band_indices,
    mel_band_assignment,
)
from ...nn.rope import RotaryEmbedding
from ...registry import WeightSet, register_model
from ..contracts import SeparatorModel, TranscriberModel

__all__ = ["MelRoFormer", "MelRoFormerConfig", "MelRoFormerMelody", "checkpoint_filter_fn", "decode_melody",
           "mel_roformer_melody", "mel_roformer_melody_small", "mel_roformer_small", "mel_roformer_vocals",
           "melody_to_notes"]


@dataclass
class MelRoFormerConfig:
    """Mel-RoFormer hyperparameters (defaults: the vocal model, 44.1 kHz stereo; see the registered factories)."""

    sources: tuple[str, ...] = ("vocals",)
    audio_channels: int = 2
    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 441  # 10 ms (BS-RoFormer; the peer cites it, its default is 512)
    win_length: int = 2048
    num_bands: int = 60  # K (Mel-Band RoFormer)
    dim: int = 384  # D (as recalled from BS-RoFormer; unconfirmed, see the card)
    depth: int = 6  # L RoFormer blocks (unconfirmed, see the card)
    time_depth: int = 1  # transformer layers along time per block
    freq_depth: int = 1  # transformer layers along bands per block
    heads: int = 8
    dim_head: int = 64
    ff_mult: float = 4.0
    mask_depth: int = 1  # hidden layers of each band's mask MLP (hidden width mask_mult * D)
    mask_mult: int = 4
    dropout: float = 0.0
    rope_base: float = 10000.0
    head_gates: bool = False  # not in the paper: per-head sigmoid output gates (the bs-roformer package's layout)
    # melody head (MelRoFormerMelody only)
    band_proj: int = 32
    melody_dim: int = 512
    pitch_min: int = 36  # MIDI number of the lowest pitch bin (C2)
    pitch_bins: int = 60  # 5 octaves, C2..B6
    bins_per_semitone: int = 1
    segment_seconds: float = 6.0  # training / chunked-inference segment (not architecture)

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"Mel-RoFormer needs distinct source names, got {self.sources}")
        if min(self.audio_channels, self.n_fft, self.hop_length, self.win_length, self.num_bands, self.dim,
               self.depth, self.heads, self.dim_head, self.pitch_bins, self.bins_per_semitone) < 1:
            raise ConfigError("Mel-RoFormer sizes (channels, n_fft, hop, win, bands, dim, depth, heads, dim_head, "
                              "pitch bins) must be >= 1")
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if self.dim_head % 2:
            raise ConfigError(f"dim_head must be even for rotary embeddings, got {self.dim_head}")
        if min(self.time_depth, self.freq_depth, self.mask_depth) < 0:
            raise ConfigError("time_depth, freq_depth and mask_depth must be >= 0")


# --------------------------------------------------------------------------- RoFormer blocks
def _rotate(x: Tensor, inv_freq: Tensor) -> Tensor:
    """RoPE on ``x`` ``(N, H, S, Dh)`` at positions ``0..S-1``, interleaved pairs ``(x[2i], x[2i+1])`` — the same
    rotation as :class:`audiozoo.nn.rope.RotaryEmbedding` (``interleaved=True``), written with positive dims and
    positions derived from ``x`` so the TorchScript ONNX exporter keeps ``S`` dynamic."""
    n, h, s, d = x.shape
    pos = torch.ones_like(x[0, 0, :, 0], dtype=torch.float32).cumsum(0) - 1.0  # (S,)
    ang = pos[:, None] * inv_freq.float()[None, :]  # (S, Dh/2)
    cos = torch.stack((ang.cos(), ang.cos()), dim=2).reshape(s, d).to(x.dtype)
    sin = torch.stack((ang.sin(), ang.sin()), dim=2).reshape(s, d).to(x.dtype)
    pairs = x.reshape(n, h, s, d // 2, 2)
    rot = torch.stack((-pairs.select(4, 1), pairs.select(4, 0)), dim=4).reshape(n, h, s, d)
    return x * cos + rot * sin


class RoPEAttention(nn.Module):
    """Pre-RMSNorm multi-head self-attention with rotary positions along the sequence: ``(N, S, D) -> (N, S, D)``
    (the residual is added by the caller)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, gates: bool = False,
                 rope_base: float = 10000.0):
        super().__init__()
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_gates = nn.Linear(dim, heads) if gates else None
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        # interleaved pairs, theta = 10000^(-2i/d) over the whole head (RoFormer; rotary_embedding_torch's layout)
        self.rope = RotaryEmbedding(dim_head, base=rope_base, interleaved=True)

    def forward(self, x: Tensor) -> Tensor:
        n, s, _ = x.shape
        h = self.norm(x)
        # q, k, v: (N, H, S, Dh); chunks on a positive dim (the TorchScript ONNX exporter misplaces unflattens)
        q, k, v = (t.reshape(n, s, self.heads, self.dim_head).transpose(1, 2) for t in self.to_qkv(h).chunk(3, 2))
        q, k = _rotate(q, self.rope.inv_freq), _rotate(k, self.rope.inv_freq)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        if self.to_gates is not None:
            out = out * self.to_gates(h).sigmoid().transpose(1, 2).unsqueeze(3)
        return self.to_out(out.transpose(1, 2).reshape(n, s, self.heads * self.dim_head))


class RoFormer(nn.Module):
    """``depth`` x (RoPE attention + GELU feed-forward, each pre-norm and residual), then an RMSNorm:
    ``(N, S, D) -> (N, S, D)``."""

    def __init__(self, cfg: MelRoFormerConfig, depth: int):
        super().__init__()
        d, hidden = cfg.dim, int(cfg.dim * cfg.ff_mult)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            layer = nn.Module()
            layer.attn = RoPEAttention(d, cfg.heads, cfg.dim_head, cfg.dropout, cfg.head_gates, cfg.rope_base)
            layer.ff = nn.Sequential(RMSNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(cfg.dropout),
                                     nn.Linear(hidden, d), nn.Dropout(cfg.dropout))
            self.layers.append(layer)
        self.norm = RMSNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = x + layer.attn(x)
            x = x + layer.ff(x)
        return self.norm(x)


class MelRoFormerEncoder(nn.Module):
    """STFT -> Mel-band projection -> interleaved time/band RoFormers.

    ``forward(mixture (B, C, T)) -> (tokens (B, L, K, D), (real, imag))``, the mixture's STFT as two real
    ``(B, F * C, L)`` tensors, bin-major with the channels interleaved per bin (``f * C + c``);
    ``L = T // hop_length + 1``. The STFT is :class:`~audiozoo.nn.bandsplit.ConvSTFT` (real arithmetic, so the
    model exports to ONNX).
    """

    def __init__(self, cfg: MelRoFormerConfig):
        super().__init__()
        self.cfg = cfg
        member = mel_band_assignment(cfg.sample_rate, cfg.n_fft, cfg.num_bands)  # (K, F)
        self.num_bins = member.shape[1]
        index = band_indices(member, cfg.audio_channels)
        self.register_buffer("index", index, persistent=False)
        self.overlap = OverlapAverage(index, self.num_bins * cfg.audio_channels)  # mean over overlapping bands
        self.stft = ConvSTFT(cfg.n_fft, cfg.hop_length, cfg.win_length)
        # 2 (re, im) x channels x bins of each band
        self.band_dims = tuple(2 * cfg.audio_channels * int(n) for n in member.sum(dim=1).tolist())
        self.band_split = BandSplit(self.band_dims, cfg.dim)
        self.blocks = nn.ModuleList()
        for _ in range(cfg.depth):
            block = nn.Module()
            block.time = RoFormer(cfg, cfg.time_depth)
            block.freq = RoFormer(cfg, cfg.freq_depth)
            self.blocks.append(block)

    def spectrogram(self, mixture: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, C, T) -> (real, imag)``, each ``(B, F * C, L)``, index ``f * C + c``."""
        c = mixture.shape[1]
        parts = self.stft(mixture.flatten(0, 1))  # (B*C, F, L) each
        # shapes from -1 and constants only: Python arithmetic on traced sizes would freeze them in an ONNX export
        return tuple(p.reshape(-1, c, p.shape[1], p.shape[2]).transpose(1, 2).flatten(1, 2)  # type: ignore[return-value]
                     for p in parts)

    def forward(self, mixture: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        real, imag = self.spectrogram(mixture)
        n_frames = real.shape[2]
        # (B, N, L, 2) -> (B, L, N * 2): each gathered (bin, channel) as (re, im), bands in order
        x = torch.stack((real.index_select(1, self.index), imag.index_select(1, self.index)), dim=3)
        x = x.transpose(1, 2).flatten(2)
        x = self.band_split(x)  # (B, L, K, D)
        k, d = self.cfg.num_bands, self.cfg.dim
        for block in self.blocks:
            x = block.time(x.transpose(1, 2).flatten(0, 1)).reshape(-1, k, n_frames, d).transpose(1, 2)
            x = block.freq(x.flatten(0, 1)).reshape(-1, n_frames, k, d)
        return x, (real, imag)


def _check_mixture(mixture: Tensor, channels: int, min_len: int, name: str) -> Tensor:
    if mixture.ndim == 2:  # (B, T): mono, copied to every channel (a mono clip through a stereo model)
        mixture = mixture[:, None].expand(-1, channels, -1)
    if mixture.ndim != 3 or mixture.shape[1] != channels:
        raise AudioError(f"{name} expects a mixture (B, {channels}, T) or (B, T), got {tuple(mixture.shape)}")
    if mixture.shape[-1] <= min_len:
        raise AudioError(f"{name} needs more than n_fft // 2 = {min_len} samples (reflect padding), "
                         f"got {mixture.shape[-1]}")
    return mixture


class MelRoFormer(SeparatorModel):
    """Mel-RoFormer separator: ``forward(mixture (B, C, T)) -> sources (B, S, C, T)`` (``(B, T)`` is copied to
    every channel). ``T`` must exceed ``n_fft // 2``."""

    def __init__(self, config: MelRoFormerConfig):
        super().__init__()
        self.config = cfg = config
        self.sources = list(cfg.sources)
        self.audio_channels, self.sample_rate = cfg.audio_channels, cfg.sample_rate
        self.encoder = MelRoFormerEncoder(cfg)
        self.mask_estimators = nn.ModuleList(
            BandMaskEstimator(cfg.dim, self.encoder.band_dims, cfg.mask_depth, cfg.mask_mult * cfg.dim)
            for _ in cfg.sources)
        self.istft = ConvISTFT(cfg.n_fft, cfg.hop_length, cfg.win_length)

    def masks(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Tokens ``(B, L, K, D)`` -> complex masks as ``(real, imag)``, each ``(B, S, F * C, L)``, averaged
        where bands overlap."""
        m = torch.stack([est(tokens) for est in self.mask_estimators], dim=1)  # (B, S, L, 2N)
        m = m.unflatten(-1, (-1, 2)).transpose(2, 3)  # (B, S, N, L, 2)
        return self.encoder.overlap(m[..., 0]), self.encoder.overlap(m[..., 1])

    def forward(self, mixture: Tensor) -> Tensor:
        cfg = self.config
        mixture = _check_mixture(mixture, self.audio_channels, cfg.n_fft // 2, "Mel-RoFormer")
        b, c, t = mixture.shape
        tokens, (sr, si) = self.encoder(mixture)
        mr, mi = self.masks(tokens)
        sr, si = sr[:, None], si[:, None]
        yr, yi = sr * mr - si * mi, sr * mi + si * mr  # complex product, (B, S, F*C, L)
        n_frames = yr.shape[-1]
        # (B, S, F, C, L) -> (B * S * C, F, L)
        yr, yi = (y.unflatten(2, (-1, c)).transpose(2, 3).reshape(-1, self.encoder.num_bins, n_frames)
                  for y in (yr, yi))
        return self.istft(yr, yi, t).view(b, len(self.sources), c, t)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        n = max(length * 64, self.config.n_fft)
        return (0.1 * torch.randn(batch, self.audio_channels, n, generator=g),), {}


# --------------------------------------------------------------------------- melody transcription
class MelRoFormerMelody(TranscriberModel):
    """Vocal melody transcription on the Mel-RoFormer encoder: ``forward(audio (B, T) or (B, C, T)) ->
    {"pitch": (B, L, 1 + pitch_bins), "onset": (B, L, 1)}`` logits, ``L = T // hop + 1``; pitch class 0 is
    "no melody"."""

    def __init__(self, config: MelRoFormerConfig):
        super().__init__()
        self.config = cfg = config
        self.sample_rate, self.hop_length, self.audio_channels = cfg.sample_rate, cfg.hop_length, cfg.audio_channels
        self.encoder = MelRoFormerEncoder(cfg)
        # "embedding projection" (2409.04702 Fig. 1); its sizes are this implementation's choice
        self.band_norm = RMSNorm(cfg.dim)
        self.band_proj = nn.Linear(cfg.dim, cfg.band_proj)
        self.embed = nn.Linear(cfg.num_bands * cfg.band_proj, cfg.melody_dim)
        self.onset_head = nn.Linear(cfg.melody_dim, 1)
        self.pitch_head = nn.Linear(cfg.melody_dim + 1, 1 + cfg.pitch_bins)

    @property
    def pitch_midi(self) -> Tensor:
        """MIDI pitch of each bin centre: ``(pitch_bins,)``."""
        c = self.config
        return c.pitch_min + torch.arange(c.pitch_bins, dtype=torch.float32) / c.bins_per_semitone

    def num_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1

    def load_separator(self, separator: MelRoFormer | dict[str, Tensor]) -> None:
        """Start from a trained separator's encoder (the paper's fine-tuning): copies every ``encoder.*``
        weight; raises :class:`CheckpointError` when the encoders differ."""
        state = separator.state_dict() if isinstance(separator, nn.Module) else separator
        enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        try:
            self.encoder.load_state_dict(enc)
        except RuntimeError as e:
            raise CheckpointError(f"separator encoder does not fit this melody model: {e}") from e

    def forward(self, audio: Tensor) -> dict[str, Tensor]:
        audio = _check_mixture(audio, self.audio_channels, self.config.n_fft // 2, "Mel-RoFormer melody")
        tokens, _ = self.encoder(audio)  # (B, L, K, D)
        e = F.gelu(self.embed(self.band_proj(self.band_norm(tokens)).flatten(2)))
        onset = self.onset_head(e)
        return {"pitch": self.pitch_head(torch.cat((e, onset), dim=-1)), "onset": onset}

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        n = max(length * self.hop_length, self.config.n_fft)
        return (0.1 * torch.randn(batch, n, generator=g),), {}


def decode_melody(out: dict[str, Tensor], pitch_midi: Tensor, hop_seconds: float,
                  voicing_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-level melody of the first item: ``(times (L,), f0_hz (L,) with 0 where unvoiced, onset prob (L,))``.

    A frame is voiced where ``1 - P(no melody) >= voicing_threshold``; its pitch is the probability-weighted mean
    of the bin centres within one bin of the most probable pitch bin (sub-bin resolution).
    """
    logits = out["pitch"][0] if out["pitch"].ndim == 3 else out["pitch"]  # (L, 1 + P)
    onset = torch.sigmoid(out["onset"].reshape(-1, logits.shape[0])[0])
    probs = logits.float().softmax(-1)
    voiced = 1.0 - probs[:, 0] >= voicing_threshold
    p = probs[:, 1:]
    top = p.argmax(-1)
    offs = torch.arange(-1, 2)
    idx = (top[:, None] + offs).clamp(0, p.shape[-1] - 1)
    w = p.gather(1, idx)
    midi = (w * pitch_midi.to(p)[idx]).sum(-1) / w.sum(-1).clamp_min(1e-12)
    f0 = torch.where(voiced, 440.0 * 2.0 ** ((midi - 69.0) / 12.0), torch.zeros_like(midi))
    times = np.arange(logits.shape[0]) * hop_seconds
    return times, f0.detach().cpu().numpy().astype(np.float64), onset.detach().cpu().numpy()


def melody_to_notes(times: np.ndarray, f0_hz: np.ndarray, onset: np.ndarray | None = None,
                    onset_threshold: float = 0.5, min_frames: int = 3,
                    amplitude: float = 0.8) -> list[tuple[float, float, int, float, None]]:
    """Voiced frames -> notes ``(start_s, end_s, midi, amplitude, None)``: a note runs while the frame is voiced
    and its rounded MIDI pitch stays the same; an onset peak (``onset >= threshold`` after a frame below it)
    starts a new note on the same pitch (repeated notes); notes shorter than ``min_frames`` are dropped."""
    hop = float(times[1] - times[0]) if len(times) > 1 else 0.0
    midi = np.where(f0_hz > 0, np.round(69.0 + 12.0 * np.log2(np.maximum(f0_hz, 1e-9) / 440.0)), -1).astype(int)
    hit = np.zeros(len(midi), bool) if onset is None else (onset >= onset_threshold)
    new = hit & ~np.concatenate(([False], hit[:-1]))
    notes, start = [], None
    for i in range(len(midi) + 1):
        boundary = i == len(midi) or midi[i] < 0 or (start is not None and (midi[i] != midi[start] or new[i]))
        if start is not None and boundary:
            if i - start >= min_frames:
                notes.append((float(times[start]), float(times[i - 1] + hop), int(midi[start]), amplitude, None))
            start = None
        if i < len(midi) and midi[i] >= 0 and start is None:
            start = i
    return notes


# --------------------------------------------------------------------------- bs-roformer checkpoints
_EXTRAS = {"learned_value_residual_mix": "add_value_residual=True", "static_beta": "num_residual_streams > 1",
           "dynamic_alpha": "num_residual_streams > 1", "pope": "use_pope=True", "temperature": "linear attention"}


def checkpoint_filter_fn(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """A ``bs_roformer.MelBandRoformer`` state dict -> this model's keys.

    Both of the package's layouts are read: 1.x (``layers.i.{0: linear, 1: time, 2: freq}`` transformers whose
    residual wrappers add ``.branch``) and the 0.x layout of the community checkpoints (``layers.i.{0: time,
    1: freq}``). The package's extras raise :class:`CheckpointError` (they are not implemented here).
    """
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("model."): v for k, v in state.items() if isinstance(v, Tensor)}
    if "band_split.to_features.0.1.weight" not in state:
        raise CheckpointError("not a bs-roformer MelBandRoformer state dict (no band_split.to_features.0.1.weight)")
    for key in state:
        for marker, what in _EXTRAS.items():
            if marker in key:
                raise CheckpointError(f"checkpoint uses the bs-roformer extra {what} ({key}); not implemented")
    branch = any(".branch." in k for k in state)
    slots = {"1": "time", "2": "freq"} if branch else {"0": "time", "1": "freq"}
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.endswith("rotary_embed.freqs") or k in ("freq_indices", "freqs_per_band", "num_freqs_per_band",
                                                      "num_bands_per_freq"):
            continue  # functions of the config
        if k.startswith("band_split."):
            out["encoder." + k] = v
            continue
        if k.startswith("mask_estimators."):
            out[k] = v
            continue
        m = re.fullmatch(r"layers\.(\d+)\.(\d+)\.(.*)", k)
        if m is None:
            raise CheckpointError(f"unexpected bs-roformer key {k!r}")
        layer, slot, rest = m.groups()
        if slot not in slots:
            raise CheckpointError(f"{k}: a linear-attention transformer (linear_transformer_depth > 0) is not "
                                  "part of Mel-RoFormer; convert with linear_transformer_depth=0")
        rest = rest.replace(".branch.", ".")
        rest = re.sub(r"^layers\.(\d+)\.0\.", r"layers.\1.attn.", rest)
        rest = re.sub(r"^layers\.(\d+)\.1\.", r"layers.\1.ff.", rest)
        rest = rest.replace("attn.to_out.0.", "attn.to_out.").replace("ff.net.", "ff.")
        out[f"encoder.blocks.{layer}.{slots[slot]}.{rest}"] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = "Mel-RoFormer for Vocal Separation and Vocal Melody Transcription (Wang, Lu, Chen, ISMIR 2024)"
_TINY = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, num_bands=8, dim=16, depth=1, heads=2,
             dim_head=8, band_proj=4, melody_dim=16, pitch_bins=12)
_REPO = "https://github.com/lucidrains/BS-RoFormer"
_SMALL = dict(audio_channels=1, sample_rate=16000, n_fft=1024, hop_length=256, win_length=1024, num_bands=32, dim=64,
              depth=2, heads=4, dim_head=16, band_proj=8, melody_dim=128)


@register_model(
    family="separate", paper=_PAPER, arxiv="2409.04702", params=86_515_908,
    params_source="bs-roformer 1.2.4 MelBandRoformer(dim=384, depth=6, stereo=True, num_stems=1, num_bands=60, "
                  "time/freq_transformer_depth=1, linear_transformer_depth=0, mask_estimator_depth=1, "
                  "stft_hop_length=441, add_value_residual=False, num_residual_streams=1) = 86,552,932, less its "
                  "per-head output gates (36,960, not in the paper) and its two rotary frequency vectors (64, "
                  "constants) = 86,515,908; the papers give no parameter count and L=6 is not confirmed (card)",
    verified="AP", tiny=_TINY, official_repo=_REPO, license="MIT (peer code)", converter=checkpoint_filter_fn,
)
def mel_roformer_vocals(**overrides: Any) -> MelRoFormer:
    """Mel-RoFormer vocal separator: 44.1 kHz stereo, STFT 2048/441, 60 Mel bands, D=384, L=6 blocks of one
    time + one band transformer (8 heads x 64), mask MLP hidden 4D. Untrained here."""
    return MelRoFormer(build_config(MelRoFormerConfig, {}, **overrides))


@register_model(
    family="separate", paper=_PAPER, arxiv="2409.04702", params=1_859_918,
    params_source="count of this implementation (a CPU-sized config, not in the paper)",
    verified="AP", tiny=_TINY, official_repo=_REPO, license="MIT (peer code)", converter=checkpoint_filter_fn,
)
def mel_roformer_small(**overrides: Any) -> MelRoFormer:
    """A CPU-sized Mel-RoFormer (not in the paper): 16 kHz mono, STFT 1024/256, 32 bands, D=64, L=2, 4 heads x 16,
    for recipes and tests that train here."""
    return MelRoFormer(build_config(MelRoFormerConfig, _SMALL, **overrides))


@register_model(
    family="transcribe", paper=_PAPER, arxiv="2409.04702", params=27_728_647,
    params_source="count of this implementation: the mel_roformer_vocals encoder (26,700,524) plus this "
                  "implementation's melody head (1,028,123); the paper's head sizes were not available",
    verified="A", tiny=_TINY, official_repo=_REPO, license="MIT (peer code)",
)
def mel_roformer_melody(**overrides: Any) -> MelRoFormerMelody:
    """Vocal melody transcription on the vocal separator's encoder (same sizes as :func:`mel_roformer_vocals`),
    pitch over MIDI 36..95 in semitones, voicing and onset. Fine-tune from a separator with ``load_separator``."""
    return MelRoFormerMelody(build_config(MelRoFormerConfig, {}, **overrides))


_MELODY_WEIGHTS = {
    "world_sung": WeightSet(
        "Vocal melody (frame f0 + onsets, MIDI 36-95) from 16 kHz mono mixtures, fine-tuned 815 steps of 4 x 2 s "
        "(30 min, one shared CPU thread) from a mel_roformer_small vocal separator (400 steps, 18 min) on music21 "
        "melodies sung by WORLD-resynthesised espeak-ng/flite speech over fluidsynth accompaniments. On 150 held-out "
        "4-s clips (38 pieces never trained on, 3 held-out voices, vocal -3..+3 dB over the accompaniment): raw pitch "
        "0.44, overall accuracy 0.45 (mir_eval.melody); on 48 of them librosa.pyin scores 0.16 / 0.19 on the mixture, "
        "0.38 / 0.39 on the separator's vocal and 0.93 / 0.91 on the clean vocal (docs/models/mel_roformer.md)",
        sha256="b90a9f569dd80f9aba31b3270d6920d557c36ea2189a5c66ed6aa9f0465de5f9",
        recipe="recipes/separate/mel_roformer_melody.py --stage separator --minutes 18, then --stage melody "
               "--minutes 30 (data: recipes/separate/prepare_melody.py; best valid overall accuracy, step 815)",
        commit="b3e5e20",
        license="weights: trained on project-made audio: music21 corpus scores (public-domain compositions), "
                "espeak-ng (GPL-3) / flite (BSD-like) speech re-synthesised with WORLD, fluidsynth + TimGM6mb "
                "(GPL-2) accompaniment",
        metrics={"held_out": "150 x 4 s test clips, 38 music21 pieces and 3 voices never trained on "
                             "(recipes/separate/mel_roformer_melody.py --stage eval)",
                 "raw_pitch_accuracy": 0.438, "overall_accuracy": 0.449, "raw_chroma_accuracy": 0.518,
                 "voicing_recall": 0.790, "voicing_false_alarm": 0.492, "note_f1": 0.231,
                 "pyin_mixture_raw_pitch_accuracy": 0.157, "pyin_mixture_overall_accuracy": 0.192,
                 "pyin_clean_vocal_raw_pitch_accuracy": 0.934, "voicing_threshold": 0.7,
                 "valid_overall_accuracy": 0.558}),
}


@register_model(
    family="transcribe", paper=_PAPER, arxiv="2409.04702", params=368_733,
    params_source="count of this implementation: the mel_roformer_small encoder (327,194) plus the melody head "
                  "(41,539; band_proj 8, melody_dim 128); a CPU-sized config, not in the paper",
    verified="AT", tiny=_TINY, official_repo=_REPO, license="MIT (peer code)", weights=_MELODY_WEIGHTS,
)
def mel_roformer_melody_small(**overrides: Any) -> MelRoFormerMelody:
    """Vocal melody transcription on the :func:`mel_roformer_small` encoder (16 kHz mono, D=64, L=2), pitch over
    MIDI 36..95 in semitones, voicing and onset; fine-tuned from a trained ``mel_roformer_small`` separator by
    ``recipes/separate/mel_roformer_melody.py``."""
    return MelRoFormerMelody(build_config(MelRoFormerConfig, _SMALL, **overrides))
