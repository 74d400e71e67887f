"""USS: query-conditioned universal source separation (a FiLM-conditioned ResUNet over STFT magnitude and phase).

Paper: Qiuqiang Kong, Ke Chen, Haohe Liu, Xingjian Du, Taylor Berg-Kirkpatrick, Shlomo Dubnov, Mark D. Plumbley,
"Universal Source Separation with Weakly Labelled Data", arXiv:2305.07447 (2023). Official code:
https://github.com/bytedance/uss (Apache-2.0), PyPI ``uss`` 0.0.4 (``uss.models.resunet.ResUNet30``,
``uss.models.film``, ``uss.models.query_nets``). Re-implemented here from the paper and the facts of that code
(never copied); the blocks are :mod:`audiozoo.nn.resunet`.

Network (paper Section 3.3, Fig. 3; ``ResUNet30``):

* per channel a centred, reflect-padded Hann STFT (``n_fft`` 2048, hop 320 at 32 kHz): magnitude ``|X|`` and
  phase ``cos/sin X``; a BatchNorm over frequency bins; time padded to a multiple of the time down-sampling
  (32), the Nyquist bin dropped (1025 -> 1024 bins);
* ``1x1`` conv to 32 channels, six encoder blocks (a pre-activation residual block, average pooling by 2x2, the
  last by 1x2 in frequency) to 32, 64, 128, 256, 384, 384 channels, a residual centre block, six decoder blocks
  (transposed conv up, concat skip, residual block) back to 32 channels, a ``1x1`` conv to ``3 C`` maps;
* every BatchNorm inside the blocks is followed by a FiLM shift ``beta = Linear(condition)`` (no scale), the
  condition being the query embedding (``condition_dim``: 527 AudioSet probabilities of a PANNs tagger,
  "at_soft", or its 2048-d embedding);
* the output maps give a magnitude mask ``sigmoid(m)`` and a phase rotation ``angle(tanh(r) + j tanh(i))``:
  ``Y = relu(|X| sigmoid(m)) e^{j(angle X + angle M)}``, inverse STFT to the input length.

The official decoder blocks each hold a BatchNorm ``bn2`` and a FiLM layer for it that the forward pass never
uses ("do not delete the dummy self.bn2", ``resunet.py``): they are not built here (no gradient, no effect) and
:func:`checkpoint_filter_fn` drops them; the registered counts say so.

The query net (a frozen sound-event tagger: :func:`audiozoo.models` ``panns_cnn14`` in the paper) is a separate
model: pipelines and the ``separation`` training task compose it by name (``config.query_model``); this model
takes the condition vector. ``config.query_type`` says what the condition is: ``"probabilities"`` (the tagger's
clip-level probabilities, the paper's at_soft), ``"embedding"`` (its clip embedding) or ``"onehot"`` (a one-hot
label, the paper's oracle-label baseline; no tagger needed). ``config.labels`` names the condition dimensions of
``probabilities`` / ``onehot`` queries, so a label query is possible.
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
from ...nn.bandsplit import ConvISTFT, ConvSTFT
from ...nn.resunet import FiLM, ResConvBlock2d, ResUNetDecoderBlock, ResUNetEncoderBlock
from ...registry import register_model
from ..contracts import SeparatorModel

__all__ = ["QUERY_TYPES", "USS", "USSConfig", "checkpoint_filter_fn", "uss_resunet30", "uss_resunet30_emb",
           "uss_small"]

QUERY_TYPES = ("probabilities", "embedding", "onehot")


@dataclass
class USSConfig:
    """USS hyperparameters (defaults: ``ResUNet30`` of the official config, 32 kHz mono, at_soft queries)."""

    sample_rate: int = 32000
    audio_channels: int = 1
    n_fft: int = 2048
    hop_length: int = 320
    channels: tuple[int, ...] = (32, 64, 128, 256, 384, 384)  # encoder block widths (the centre keeps the last)
    strides: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2), (2, 2), (2, 2), (1, 2))  # (time, freq) pooling
    kernel_size: int = 3
    bn_momentum: float = 0.01
    condition_dim: int = 527
    query_type: str = "probabilities"  # one of QUERY_TYPES
    labels: tuple[str, ...] | None = None  # names of the condition dimensions (probabilities / onehot)
    query_model: str | None = None  # resolver spec of the tagger whose outputs are the conditions
    segment_seconds: float = 2.0  # training / chunked-inference segment (the paper's anchor length)

    def __post_init__(self) -> None:
        if self.query_type not in QUERY_TYPES:
            raise ConfigError(f"query_type must be one of {QUERY_TYPES}, got {self.query_type!r}")
        if min(self.sample_rate, self.audio_channels, self.n_fft, self.hop_length, self.condition_dim,
               self.kernel_size) < 1 or not self.channels or min(self.channels) < 1:
            raise ConfigError("USS sizes (rate, channels, n_fft, hop, condition_dim, kernel, widths) must be >= 1")
        if len(self.strides) != len(self.channels) or any(len(s) != 2 or min(s) < 1 for s in self.strides):
            raise ConfigError(f"strides must give one (time, freq) pair >= 1 per encoder block, got {self.strides}")
        f_down = 1
        for s in self.strides:
            f_down *= s[1]
        if (self.n_fft // 2) % f_down:
            raise ConfigError(f"n_fft // 2 = {self.n_fft // 2} bins must divide by the frequency pooling {f_down}")
        if self.labels is not None and len(self.labels) != self.condition_dim:
            raise ConfigError(f"{len(self.labels)} labels for a {self.condition_dim}-d condition")


def _init_weights(module: nn.Module) -> None:
    """Xavier-uniform convolutions and linears with zero biases (the official init; BatchNorms keep torch's unit
    weights and zero biases, as the official ``init_bn``)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias) if m.bias is not None else None


class USS(SeparatorModel):
    """Query-conditioned separator: ``forward(mixture (B, C, T) or (B, T), condition (B, condition_dim)) ->
    target (B, 1, C, T)`` (``sources == ["target"]``). ``T`` must exceed ``n_fft // 2``."""

    def __init__(self, config: USSConfig):
        super().__init__()
        self.config = cfg = config
        self.sources = ["target"]
        self.audio_channels, self.sample_rate = cfg.audio_channels, cfg.sample_rate
        self.labels = list(cfg.labels) if cfg.labels is not None else None
        self.condition_dim = cfg.condition_dim  # marks a query-conditioned separator (pipelines, tasks)
        self.stft = ConvSTFT(cfg.n_fft, cfg.hop_length)
        self.istft = ConvISTFT(cfg.n_fft, cfg.hop_length, cfg.n_fft)
        k, mom, ch = (cfg.kernel_size,) * 2, cfg.bn_momentum, list(cfg.channels)
        self.bn0 = nn.BatchNorm2d(cfg.n_fft // 2 + 1, momentum=mom)
        self.pre_conv = nn.Conv2d(cfg.audio_channels, ch[0], 1)
        ins = [ch[0]] + ch[:-1]
        self.encoders = nn.ModuleList(ResUNetEncoderBlock(i, o, tuple(s), k, mom)
                                      for i, o, s in zip(ins, ch, cfg.strides))
        self.center = ResConvBlock2d(ch[-1], ch[-1], k, mom)
        self.decoders = nn.ModuleList(ResUNetDecoderBlock(cin, cout, tuple(s), k, mom) for cin, cout, s in
                                      zip([ch[-1]] + ch[::-1][:-1], ch[::-1], cfg.strides[::-1]))
        self.after_conv = nn.Conv2d(ch[0], cfg.audio_channels * 3, 1)
        sizes = [n for e in self.encoders for n in e.film_sizes] + list(self.center.film_sizes)
        sizes += [n for d in self.decoders for n in d.film_sizes]
        self.film = FiLM(cfg.condition_dim, sizes)
        self.time_down = 1
        for s in cfg.strides:
            self.time_down *= s[0]
        _init_weights(self)

    # ---- spectrogram --------------------------------------------------------------------------------
    def spectrogram(self, mixture: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, C, T)`` -> magnitude, cos and sin of the phase, each ``(B, C, L, F)``."""
        b, c, t = mixture.shape
        re_, im = self.stft(mixture.reshape(b * c, t))  # (B*C, F, L)
        mag = (re_ ** 2 + im ** 2).clamp(min=1e-10).sqrt()
        out = [x.transpose(1, 2).reshape(b, c, x.shape[2], x.shape[1]) for x in (mag, re_ / mag, im / mag)]
        return out[0], out[1], out[2]

    def masks(self, mag: Tensor, condition: Tensor) -> Tensor:
        """The U-Net: magnitude ``(B, C, L, F)`` and condition -> output maps ``(B, 3C, L, F)``."""
        betas = iter(self.film(condition))
        x = self.bn0(mag.transpose(1, 3)).transpose(1, 3)
        n = x.shape[2]
        x = F.pad(x, (0, 0, 0, -n % self.time_down))[..., :-1]  # time to a multiple of the pooling; drop Nyquist
        x = self.pre_conv(x)
        skips = []
        for enc in self.encoders:
            x, skip = enc(x, next(betas), next(betas))
            skips.append(skip)
        x = self.center(x, next(betas), next(betas))
        for dec, skip in zip(self.decoders, reversed(skips)):
            x = dec(x, skip, next(betas), next(betas), next(betas))
        x = F.pad(self.after_conv(x), (0, 1))  # the Nyquist bin back (mask logits 0)
        return x[:, :, :n]

    def forward(self, mixture: Tensor, condition: Tensor) -> Tensor:
        cfg = self.config
        if mixture.ndim == 2:
            mixture = mixture[:, None].expand(-1, cfg.audio_channels, -1)
        if mixture.ndim != 3 or mixture.shape[1] != cfg.audio_channels:
            raise AudioError(f"USS expects a mixture (B, {cfg.audio_channels}, T) or (B, T), got "
                             f"{tuple(mixture.shape)}")
        if mixture.shape[-1] <= cfg.n_fft // 2:
            raise AudioError(f"USS needs more than n_fft // 2 = {cfg.n_fft // 2} samples, got {mixture.shape[-1]}")
        if not isinstance(condition, Tensor) or condition.shape != (mixture.shape[0], cfg.condition_dim):
            got = tuple(condition.shape) if isinstance(condition, Tensor) else type(condition).__name__
            raise ConfigError(f"USS needs a condition (B={mixture.shape[0]}, {cfg.condition_dim}) (the query "
                              f"embedding), got {got}")
        b, c, t = mixture.shape
        mag, cos_x, sin_x = self.spectrogram(mixture)
        x = self.masks(mag, condition.to(mag.dtype)).unflatten(1, (c, 3))  # (B, C, 3, L, F)
        m_re, m_im = torch.tanh(x[:, :, 1]), torch.tanh(x[:, :, 2])
        m_abs = (m_re ** 2 + m_im ** 2).sqrt().clamp(min=1e-10)
        m_cos, m_sin = m_re / m_abs, m_im / m_abs
        out_mag = F.relu(mag * torch.sigmoid(x[:, :, 0]))
        y_re = out_mag * (cos_x * m_cos - sin_x * m_sin)
        y_im = out_mag * (sin_x * m_cos + cos_x * m_sin)
        n_frames, n_bins = y_re.shape[2], y_re.shape[3]
        y_re, y_im = (y.reshape(b * c, n_frames, n_bins).transpose(1, 2) for y in (y_re, y_im))
        return self.istft(y_re, y_im, t).view(b, 1, c, t)

    # ---- contract -----------------------------------------------------------------------------------
    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        n = max(length * 64, self.config.n_fft)
        mix = 0.1 * torch.randn(batch, self.audio_channels, n, generator=g)
        return (mix,), {"condition": torch.rand(batch, self.config.condition_dim, generator=g)}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "audio") -> dict[str, Any]:
        """``mixture (B, C, T), condition (B, D) -> target (B, 1, C, T)``, dynamic batch and samples."""
        if on != "audio":
            raise ConfigError(f"USS exports on audio, got on={on!r}")
        mix = 0.1 * torch.randn(batch, self.audio_channels, int(length or 4 * self.config.n_fft))
        cond = torch.rand(batch, self.config.condition_dim)
        return {"example_inputs": (mix, cond), "input_names": ["mixture", "condition"], "output_names": ["sources"],
                "dynamic_axes": {"mixture": {0: "batch", 2: "samples"}, "condition": {0: "batch"},
                                 "sources": {0: "batch", 3: "samples"}}}


# --------------------------------------------------------------------------- official checkpoints
def _official_film_names(n_enc: int) -> list[str]:
    """The official FiLM layer names (``film.<name>.weight``) in this model's FiLM order (dummies left out)."""
    names = [f"encoder_block{i}->conv_block1->beta{j}" for i in range(1, n_enc + 1) for j in (1, 2)]
    names += [f"conv_block7a->conv_block1->beta{j}" for j in (1, 2)]
    for i in range(1, n_enc + 1):
        names += [f"decoder_block{i}->beta1", f"decoder_block{i}->conv_block2->beta1",
                  f"decoder_block{i}->conv_block2->beta2"]
    return names


def checkpoint_filter_fn(state: dict[str, Any], model: USS) -> dict[str, Tensor]:
    """An official ``ResUNet30`` state dict (or the Lightning checkpoint of ``uss``, whose separator is under
    ``ss_model.`` and whose query net, ``query_net.``, is a separate model here) -> this model's keys.

    The unused decoder ``bn2`` layers and their FiLM layers are dropped; the per-layer FiLM linears are stacked
    into one."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("ss_model."): v for k, v in state.items()
             if isinstance(v, Tensor) and not k.startswith("query_net.")}
    if "base.pre_conv.weight" not in state:
        raise CheckpointError("not a uss ResUNet30 state dict (no base.pre_conv.weight)")
    n_enc = len(model.encoders)
    out: dict[str, Tensor] = {}
    try:
        names = _official_film_names(n_enc)
        out["film.proj.weight"] = torch.cat([state[f"film.{n}.weight"] for n in names])
        out["film.proj.bias"] = torch.cat([state[f"film.{n}.bias"] for n in names])
    except KeyError as e:
        raise CheckpointError(f"uss checkpoint lacks the FiLM layer {e}") from e
    for k, v in state.items():
        if k.startswith("film."):
            continue
        k = k.removeprefix("base.")
        if re.fullmatch(r"decoder_block\d+\.bn2\..*", k) or k.startswith(("stft.", "istft.")):
            continue  # the official dummy BatchNorm (never used); torchlibrosa's DFT kernels (constants here)
        k = re.sub(r"^encoder_block(\d+)\.conv_block1\.",
                   lambda m: f"encoders.{int(m.group(1)) - 1}.block.", k)
        k = k.replace("conv_block7a.conv_block1.", "center.")
        k = re.sub(r"^decoder_block(\d+)\.", lambda m: f"decoders.{int(m.group(1)) - 1}.", k)
        k = re.sub(r"^(decoders\.\d+\.)conv1\.", r"\1up.", k).replace(".conv_block2.", ".block.")
        out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = "Universal Source Separation with Weakly Labelled Data (Kong et al., 2023)"
_REPO = "https://github.com/bytedance/uss"
_TINY = dict(sample_rate=8000, n_fft=256, hop_length=64, channels=(4, 8, 8), strides=((2, 2), (2, 2), (1, 2)),
             condition_dim=6)
_DUMMY = ("of which 12,587,008 are torchlibrosa's frozen STFT/ISTFT kernels (constant buffers here), less the "
          "decoder blocks' unused bn2 BatchNorms (3,200) and their FiLM layers ({film:,}), which the official "
          "forward never uses")


_COMMON = dict(family="separate", paper=_PAPER, arxiv="2305.07447", verified="AP", tiny=_TINY, official_repo=_REPO,
               license="Apache-2.0 (official code)", converter=checkpoint_filter_fn)


@register_model(
    params=25_747_781, **_COMMON,
    params_source="uss 0.0.4 ResUNet30(input_channels=1, output_channels=1, condition_size=527) = 39,182,789, "
                  + _DUMMY.format(film=844_800) + " = 25,747,781 trainable; the paper gives no count")
def uss_resunet30(**overrides: Any) -> USS:
    """USS ResUNet30 conditioned on 527 AudioSet probabilities of a frozen PANNs Cnn14 (``at_soft``, the
    paper's main system): 32 kHz mono, STFT 2048/320. Untrained here (the official weights are a download)."""
    return USS(build_config(USSConfig, dict(query_model="panns_cnn14"), **overrides))


@register_model(
    params=38_305_157, **_COMMON,
    params_source="uss 0.0.4 ResUNet30(input_channels=1, output_channels=1, condition_size=2048) = 54,173,765, "
                  + _DUMMY.format(film=3_278_400) + " = 38,305,157 trainable; the paper gives no count")
def uss_resunet30_emb(**overrides: Any) -> USS:
    """USS ResUNet30 conditioned on the 2048-d PANNs Cnn14 embedding (the paper's ``embedding`` query)."""
    return USS(build_config(USSConfig, dict(condition_dim=2048, query_type="embedding", query_model="panns_cnn14"),
                            **overrides))


@register_model(params=1_327_109, params_source="count of this implementation (a CPU-sized config, not in the "
                "paper)", **_COMMON)
def uss_small(**overrides: Any) -> USS:
    """A CPU-sized USS (not in the paper): 16 kHz mono, STFT 512/128, four blocks of 16-128 channels, conditioned
    on the 8 class probabilities of the project tagger ``melception_small.project8``."""
    base = dict(sample_rate=16000, n_fft=512, hop_length=128, channels=(16, 32, 64, 128),
                strides=((2, 2), (2, 2), (2, 2), (1, 2)), condition_dim=8,
                query_model="melception_small.project8")
    return USS(build_config(USSConfig, base, **overrides))
