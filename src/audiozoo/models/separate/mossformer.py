"""MossFormer and MossFormer2: a learned-filterbank encoder, a gated single-head transformer mask net and a
transposed-conv decoder for monaural speech separation.

Papers: Shengkui Zhao, Bin Ma, "MossFormer: Pushing the Performance Limit of Monaural Speech Separation using
Gated Single-Head Transformer with Convolution-Augmented Joint Self-Attentions", ICASSP 2023, arXiv:2302.11824;
Shengkui Zhao, Yukun Ma, Chongjia Ni, Chong Zhang, Hao Wang, Trung Hieu Nguyen, Kun Zhou, Jiaqi Yip, Dianwen Ng,
Bin Ma, "MossFormer2: Combining Transformer and RNN-Free Recurrent Network for Enhanced Time-Domain Monaural Speech
Separation", ICASSP 2024, arXiv:2312.11825. Official code (Apache-2.0): v1 in ModelScope
(``modelscope/models/audio/separation/mossformer.py``, ``mossformer_block.py``; alibabasglab/MossFormer is a README),
v2 in modelscope/ClearerVoice-Studio, read here from the ``clearvoice`` 0.1.2 wheel
(``clearvoice/models/mossformer2_ss/``). Re-implemented here; the mask net is :class:`audiozoo.nn.mossformer.
MossFormerMaskNet` (shared with HiFi-SR's encoder).

Network (v1 paper Section 2, Fig. 1; v2 Section 2):

* encoder ``w = ReLU(Conv1d(x; N filters of K samples, stride K/2, no bias))``;
* mask net: GroupNorm -> 1x1 conv to ``D`` -> + scaled sinusoidal positions -> ``depth`` MossFormer layers (the
  FLASH-style gated attention unit: token shift, ScaleNorm -> Linear -> SiLU -> depthwise conv branches, one
  shared query/key with four offset/scales and rotary positions, quadratic ``relu^2`` attention inside chunks of
  ``group_size`` frames plus a global linear attention, output ``(att_u * v) * sigmoid(att_v * u)``) -- in
  MossFormer2 each followed by a gated FSMN block with dilated dense memory convs -> LayerNorm -> GroupNorm +
  skip -> PReLU -> 1x1 conv to ``S * D`` -> per source tanh x sigmoid gate -> 1x1 conv to ``N`` -> ReLU masks;
* decoder ``y_s = ConvTranspose1d(w * m_s)`` (``N -> 1``, stride K/2, no bias), padded / trimmed to the input.

Variants:

* ``mossformer_wsj0``: MossFormer (L), N=D=512, K=16, 24 layers, group 256, query/key 128, expansion 4, 8 kHz,
  2 speakers. The layer count is not in the paper's text we could read; 24 gives 42,101,834 parameters against
  the paper's 42.1 M (the ModelScope ``MossFormer`` class sizes, its hub config was not seen).
* ``mossformer2_ss``: MossFormer2 as ClearerVoice's ``MossFormer2_SS_16K`` (its inference yaml: N=D=512, K=16, 24
  layers, 2 speakers, 16 kHz; the paper's WSJ0-2mix model is 8 kHz with the same sizes), 55,735,394 trainable
  parameters (paper 55.7 M).
* ``mossformer_small``: a CPU-sized MossFormer (not in the paper) for the recipe.

:func:`checkpoint_filter_fn` maps ClearerVoice's ``MossFormer`` state dict (``{"model": ...}``, ``module.``
prefixes allowed) and ModelScope's v1 layout (``encoder.``/``decoder.``/``mask_net.`` of its ``MossFormer``, or the
three files ``encoder.bin``/``decoder.bin``/``masknet.bin`` as a dict of dicts) to this model's keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.mossformer import FSMN_KINDS, MossFormerMaskNet
from ...registry import register_model
from ..contracts import SeparatorModel

__all__ = ["MossFormer", "MossFormerConfig", "checkpoint_filter_fn", "mossformer2_ss", "mossformer_small",
           "mossformer_wsj0"]


@dataclass
class MossFormerConfig:
    """MossFormer / MossFormer2 hyperparameters (defaults: MossFormer (L) for WSJ0-2mix at 8 kHz)."""

    sources: tuple[str, ...] = ("s1", "s2")
    sample_rate: int = 8000
    n_filters: int = 512  # N: encoder filters (official in_channels / encoder_embedding_dim)
    kernel_size: int = 16  # K samples, stride K // 2
    dim: int = 512  # D: sequence width of the MossFormer layers (out_channels / mossformer_sequence_dim)
    depth: int = 24  # MossFormer layers (num_blocks)
    group_size: int = 256  # chunk of the quadratic attention
    query_key_dim: int = 128
    expansion_factor: float = 4.0
    rotary_dim: int = 32  # min(32, query_key_dim) in the official code
    fsmn: str = "none"  # "none" (MossFormer) or "dilated" (MossFormer2 separation) gated-FSMN after each layer
    fsmn_channels: int = 256
    fsmn_lorder: int = 20
    conv_kernel: int = 17  # depthwise conv of every FFConvM branch
    dropout: float = 0.1  # attention / FFConvM dropout
    segment_seconds: float = 4.0  # training / chunked inference segment (not architecture)

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"MossFormer needs distinct source names, got {self.sources}")
        if self.kernel_size < 2 or min(self.n_filters, self.dim, self.depth, self.group_size) < 1:
            raise ConfigError("MossFormer needs kernel_size >= 2 and n_filters, dim, depth, group_size >= 1")
        if self.fsmn not in FSMN_KINDS:
            raise ConfigError(f"fsmn must be one of {FSMN_KINDS}, got {self.fsmn!r}")

    @property
    def hop(self) -> int:
        return self.kernel_size // 2


class MossFormer(SeparatorModel):
    """MossFormer / MossFormer2: ``forward(mixture (B, 1, T) or (B, T)) -> sources (B, S, 1, T)``.

    ``T`` must be at least one filter (``kernel_size`` samples); samples after the last whole frame come back as
    zeros, as in the official code.
    """

    audio_channels = 1

    def __init__(self, config: MossFormerConfig):
        super().__init__()
        self.config = c = config
        self.sources = list(c.sources)
        self.sample_rate = c.sample_rate
        self.encoder = nn.Conv1d(1, c.n_filters, c.kernel_size, stride=c.hop, bias=False)
        self.mask_net = MossFormerMaskNet(
            c.n_filters, c.dim, c.depth, c.group_size, c.query_key_dim, c.expansion_factor, c.rotary_dim,
            c.fsmn_channels, c.fsmn_lorder, c.conv_kernel, c.dropout, num_spks=len(c.sources), fsmn=c.fsmn)
        self.decoder = nn.ConvTranspose1d(c.n_filters, 1, c.kernel_size, stride=c.hop, bias=False)

    def encode(self, mixture: Tensor) -> Tensor:
        """``(B, 1, T) -> w (B, N, L)``, ``L = (T - K) // (K / 2) + 1``, non-negative."""
        return F.relu(self.encoder(mixture))

    def forward(self, mixture: Tensor) -> Tensor:
        if mixture.ndim == 2:
            mixture = mixture[:, None]
        if mixture.ndim != 3 or mixture.shape[1] != 1:
            raise AudioError(f"MossFormer expects a mono mixture (B, 1, T) or (B, T), got {tuple(mixture.shape)}")
        b, _, t = mixture.shape
        if t < self.config.kernel_size:
            raise AudioError(f"MossFormer needs at least one filter length ({self.config.kernel_size} samples), "
                             f"got {t}")
        w = self.encode(mixture)
        masks = self.mask_net(w)  # (B, S, N, L)
        s = masks.shape[1]
        y = self.decoder((w[:, None] * masks).flatten(0, 1))  # (B*S, 1, (L-1)*hop + K)
        y = F.pad(y, (0, t - y.shape[-1])) if y.shape[-1] < t else y[..., :t]
        return y.reshape(b, s, 1, t)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, 1, length * 64, generator=g),), {}


# --------------------------------------------------------------------------- official checkpoints
def _ffconvm(k: str) -> str:
    """Official ``FFConvM.mdl`` Sequential indices -> this layout (norm, linear, dwconv)."""
    k = re.sub(r"\.mdl\.0\.", ".norm.", k)
    k = re.sub(r"\.mdl\.1\.", ".linear.", k)
    return re.sub(r"\.mdl\.3\.sequential\.1\.conv\.", ".dwconv.", k)


def _mask_net_key(k: str, v: Tensor) -> tuple[str, Tensor] | None:
    """One official mask-net key (without its ``mask_net.`` prefix) -> this layout; None = a constant."""
    if k.endswith(("rotary_pos_emb.freqs", "pos_enc.inv_freq")):
        return None  # rotary / sinusoid frequencies: constants rebuilt here
    k = re.sub(r"^mdl\.(?:intra_mdl|att_mdl)\.mossformerM\.", "", k)
    k = re.sub(r"^mdl\.(?:intra_mdl|att_mdl)\.norm\.", "intra_mdl_norm.", k)
    k = re.sub(r"^mdl\.(?:intra_norm|att_norm)\.", "intra_norm.", k)
    k = {"pos_enc.scale": "pos_scale"}.get(k, k)
    k = re.sub(r"^(output|output_gate)\.0\.", r"\1.", k)
    k = re.sub(r"\.qk_offset_scale\.(gamma|beta)$", r".\1", k)
    k = _ffconvm(k)
    m = re.fullmatch(r"(fsmn\.\d+\.gated_fsmn\.fsmn)\.conv\.(conv|norm|prelu)(\d+)\.(\w+)", k)
    if m:  # DilatedDenseNet's conv{i}/norm{i}/prelu{i} (1-based; 2-D convs over (T, 1))
        k = f"{m[1]}.{m[2]}s.{int(m[3]) - 1}.{m[4]}"
        v = v.squeeze(-1) if m[2] == "conv" else v
    elif k.endswith("gated_fsmn.fsmn.conv1.weight"):
        v = v.squeeze(-1)
    return k, v


def checkpoint_filter_fn(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """An official MossFormer / MossFormer2 checkpoint -> this model's keys.

    Accepts ClearerVoice's ``MossFormer`` (``enc.conv1d.weight``, ``mask_net....``, ``dec.weight``; a ``{"model":
    ...}`` package, ``module.`` prefixes allowed) and ModelScope's v1 ``MossFormer`` (``encoder.conv1d.weight``,
    ``mask_net....``, ``decoder.weight``, or ``{"encoder": ..., "decoder": ..., "masknet": ...}`` from its three
    ``.bin`` files).
    """
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if {"encoder", "decoder", "masknet"} <= state.keys() and all(isinstance(state[k], dict) for k in
                                                                 ("encoder", "decoder", "masknet")):
        state = {**{f"encoder.{k}": v for k, v in state["encoder"].items()},
                 **{f"decoder.{k}": v for k, v in state["decoder"].items()},
                 **{f"mask_net.{k}": v for k, v in state["masknet"].items()}}
    state = {k.removeprefix("module."): v.float() for k, v in state.items() if isinstance(v, Tensor)}
    if not any(k in state for k in ("enc.conv1d.weight", "encoder.conv1d.weight")):
        raise CheckpointError("not a MossFormer checkpoint (no enc.conv1d.weight or encoder.conv1d.weight)")
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k in ("enc.conv1d.weight", "encoder.conv1d.weight"):
            out["encoder.weight"] = v
        elif k in ("dec.weight", "decoder.weight"):
            out["decoder.weight"] = v
        elif k.startswith("mask_net."):
            kv = _mask_net_key(k[len("mask_net."):], v)
            if kv is not None:
                out["mask_net." + kv[0]] = kv[1]
        else:
            raise CheckpointError(f"unexpected MossFormer key {k!r}")
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = ("MossFormer: Pushing the Performance Limit of Monaural Speech Separation using Gated Single-Head "
          "Transformer with Convolution-Augmented Joint Self-Attentions (Zhao & Ma, ICASSP 2023)")
_PAPER2 = ("MossFormer2: Combining Transformer and RNN-Free Recurrent Network for Enhanced Time-Domain Monaural "
           "Speech Separation (Zhao et al., ICASSP 2024)")
_TINY = dict(n_filters=16, kernel_size=8, dim=16, depth=1, group_size=8, query_key_dim=8, rotary_dim=4,
             fsmn_channels=8, fsmn_lorder=3, conv_kernel=3, dropout=0.0)


@register_model(
    family="separate", paper=_PAPER, arxiv="2302.11824", params=42_101_834,
    params_source="this implementation of ModelScope's MossFormer with N=D=512, K=16, 24 layers, group 256, "
                  "query/key 128, expansion 4 (the clearvoice 0.1.2 MossformerBlock, i.e. v1's MossFormerModule, "
                  "with its MaskNet, gives the same count); the paper's MossFormer (L) is 42.1 M (24 layers "
                  "inferred from that count)",
    verified="AP", tiny=_TINY, official_repo="https://github.com/modelscope/modelscope", license="Apache-2.0",
    converter=checkpoint_filter_fn,
)
def mossformer_wsj0(**overrides: Any) -> MossFormer:
    """MossFormer (L) for 2-speaker separation at 8 kHz (WSJ0-2mix): N=D=512, K=16, 24 MossFormer layers."""
    return MossFormer(build_config(MossFormerConfig, {}, **overrides))


@register_model(
    family="separate", paper=_PAPER2, arxiv="2312.11825", params=55_735_394,
    params_source="clearvoice 0.1.2 MossFormer2_SS_16K (MossFormer(512, 512, 24 blocks, kernel 16, 2 speakers)) = "
                  "55,735,410, less its 16 frozen rotary frequencies; the paper gives 55.7 M",
    verified="AP", tiny={**_TINY, "fsmn": "dilated"},
    official_repo="https://github.com/modelscope/ClearerVoice-Studio", license="Apache-2.0",
    converter=checkpoint_filter_fn,
)
def mossformer2_ss(**overrides: Any) -> MossFormer:
    """MossFormer2 2-speaker separator as ClearerVoice's ``MossFormer2_SS_16K`` (16 kHz; dilated gated FSMN)."""
    base = dict(sample_rate=16000, fsmn="dilated")
    return MossFormer(build_config(MossFormerConfig, base, **overrides))


@register_model(
    family="separate", paper=_PAPER, arxiv="2302.11824", params=582_414,
    params_source="count of this implementation (a CPU-sized config, not in the paper)",
    verified="AP", tiny=_TINY, official_repo="https://github.com/modelscope/modelscope", license="Apache-2.0",
    converter=checkpoint_filter_fn,
)
def mossformer_small(**overrides: Any) -> MossFormer:
    """A CPU-sized MossFormer (not in the paper): 8 kHz, N=D=128, K=16, 4 layers, chunks of 64 frames, query/key
    64, for the recipe and tests that train here."""
    base = dict(n_filters=128, dim=128, depth=4, group_size=64, query_key_dim=64, segment_seconds=2.0)
    return MossFormer(build_config(MossFormerConfig, base, **overrides))
