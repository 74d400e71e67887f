"""Conv-TasNet: a learned-filterbank encoder, a TCN mask estimator and a transposed-conv decoder.

Paper: Yi Luo, Nima Mesgarani, "Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude Masking for Speech
Separation", IEEE/ACM TASLP 27(8) 2019, arXiv:1809.07454. No official code release; peers: asteroid's
``asteroid.models.ConvTasNet`` (0.7.0, MIT) and the music adaptation in Demucs v2
(facebookresearch/demucs ``7445cbd:demucs/tasnet.py``, MIT, after kaituoxu/Conv-TasNet), used by
"Music Source Separation in the Waveform Domain" (Défossez et al., arXiv:1911.13254, Section 3).
Re-implemented here; the TCN is :class:`audiozoo.nn.tcn.TemporalConvNet`.

Network (paper Section II, Fig. 1): ``w = H(Conv1d(x; N filters of L samples, stride L/2, no bias))`` with an
optional ReLU ``H``; masks ``m_s = TCN(w)`` for each source; ``y_s = ConvTranspose1d(w * m_s)`` (the decoder
basis, no bias), then padded / trimmed to the input length. Multichannel (stereo) audio, as in Demucs's music
model, is one encoder over all channels and a decoder back to all channels.

Variants:

* ``conv_tasnet_speech``: the paper's best non-causal configuration (Table II/III: N=512, L=16, B=128, H=512,
  Sc=128, P=3, X=8, R=3, gLN, sigmoid masks), 8 kHz mono, 2 speakers; asteroid's defaults, which are this
  configuration, with biases in the 1x1 convolutions and a PReLU before the mask convolution (asteroid's layout;
  the paper says neither way). With a skip path the last block's residual conv is unused (no gradient), so it
  is not built (asteroid keeps it: 65,664 of its 5,050,545 parameters). Parity: the same weights give
  asteroid's output (tests).
* ``conv_tasnet_music``: Demucs v2's ``tasnet.py`` for MUSDB (N=256, L=20, B=256, H=512, P=3, X=10, R=4, gLN in
  the blocks, cLN at the input, ReLU encoder and ReLU masks, no skip path, no biases, 4 stereo stems at 44.1 kHz;
  X=10 as the released ``tasnet`` model was trained, the code default is 8).

:func:`checkpoint_filter_fn` maps asteroid's key layout (``{"state_dict": ...}`` packages of its hub models) and
Demucs v2's ``tasnet.py`` layout (``tasnet-beb46fac.th``, ``tasnet_extra-df3777b2.th``) to this model's keys.
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
from ...nn.tcn import MASK_ACTIVATIONS, NORMS, TemporalConvNet
from ...registry import WeightSet, register_model
from ..contracts import SeparatorModel

__all__ = ["ConvTasNet", "ConvTasNetConfig", "checkpoint_filter_fn", "conv_tasnet_music", "conv_tasnet_speech"]


@dataclass
class ConvTasNetConfig:
    """Conv-TasNet hyperparameters (defaults: the paper's best configuration / asteroid's defaults)."""

    sources: tuple[str, ...] = ("s1", "s2")
    audio_channels: int = 1
    sample_rate: int = 8000
    n_filters: int = 512  # N
    kernel_size: int = 16  # L (samples)
    stride: int = 0  # encoder hop; 0 = L // 2 (50 % overlap)
    bn_chan: int = 128  # B
    hid_chan: int = 512  # H
    skip_chan: int = 128  # Sc (0: masks from the residual path)
    conv_kernel_size: int = 3  # P
    n_blocks: int = 8  # X
    n_repeats: int = 3  # R
    norm: str = "gLN"
    input_norm: str = ""  # norm before the bottleneck ("" = norm)
    mask_act: str = "sigmoid"
    encoder_relu: bool = False  # H(.) = ReLU on the encoder output
    causal: bool = False
    bias: bool = True  # biases of the TCN's convolutions (asteroid) or none (Demucs / kaituoxu)
    mask_prelu: bool = True  # PReLU before the mask conv (asteroid)
    segment_seconds: float = 4.0  # training / chunked inference segment (not architecture)

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"Conv-TasNet needs distinct source names, got {self.sources}")
        if min(self.audio_channels, self.n_filters, self.kernel_size) < 1 or self.stride < 0:
            raise ConfigError("Conv-TasNet needs audio_channels, n_filters, kernel_size >= 1 and stride >= 0")
        for name, v in (("norm", self.norm), ("input_norm", self.input_norm or self.norm)):
            if v not in NORMS:
                raise ConfigError(f"{name} must be one of {NORMS}, got {v!r}")
        if self.mask_act not in MASK_ACTIVATIONS:
            raise ConfigError(f"mask_act must be one of {MASK_ACTIVATIONS}, got {self.mask_act!r}")

    @property
    def hop(self) -> int:
        return self.stride or self.kernel_size // 2


class ConvTasNet(SeparatorModel):
    """Conv-TasNet: ``forward(mixture (B, C, T)) -> sources (B, S, C, T)`` (``(B, T)`` is taken as mono).

    ``T`` must be at least one filter (``kernel_size`` samples); samples after the last whole frame come back
    as zeros (the decoder covers ``(K - 1) * hop + L`` samples), as in both peers.
    """

    def __init__(self, config: ConvTasNetConfig):
        super().__init__()
        self.config = cfg = config
        self.sources = list(cfg.sources)
        self.audio_channels, self.sample_rate = cfg.audio_channels, cfg.sample_rate
        self.encoder = nn.Conv1d(cfg.audio_channels, cfg.n_filters, cfg.kernel_size, stride=cfg.hop, bias=False)
        self.masker = TemporalConvNet(
            cfg.n_filters, len(cfg.sources), bn_chan=cfg.bn_chan, hid_chan=cfg.hid_chan, skip_chan=cfg.skip_chan,
            kernel_size=cfg.conv_kernel_size, num_blocks=cfg.n_blocks, num_repeats=cfg.n_repeats, norm=cfg.norm,
            input_norm=cfg.input_norm or cfg.norm, mask_act=cfg.mask_act, causal=cfg.causal, bias=cfg.bias,
            mask_prelu=cfg.mask_prelu)
        self.decoder = nn.ConvTranspose1d(cfg.n_filters, cfg.audio_channels, cfg.kernel_size, stride=cfg.hop,
                                          bias=False)

    def encode(self, mixture: Tensor) -> Tensor:
        """``(B, C, T) -> w (B, N, K)``, ``K = (T - L) // hop + 1``."""
        w = self.encoder(mixture)
        return F.relu(w) if self.config.encoder_relu else w

    def forward(self, mixture: Tensor) -> Tensor:
        if mixture.ndim == 2 and self.audio_channels == 1:
            mixture = mixture[:, None]
        if mixture.ndim != 3 or mixture.shape[1] != self.audio_channels:
            raise AudioError(f"Conv-TasNet expects a mixture (B, {self.audio_channels}, T), got "
                             f"{tuple(mixture.shape)}")
        b, c, t = mixture.shape
        if t < self.config.kernel_size:
            raise AudioError(f"Conv-TasNet needs at least one filter length ({self.config.kernel_size} samples), "
                             f"got {t}")
        w = self.encode(mixture)
        masks = self.masker(w)  # (B, S, N, K)
        s = masks.shape[1]
        y = self.decoder((w[:, None] * masks).flatten(0, 1))  # (B*S, C, (K-1)*hop + L)
        y = F.pad(y, (0, t - y.shape[-1])) if y.shape[-1] < t else y[..., :t]
        return y.reshape(b, s, c, t)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, self.audio_channels, length * 64, generator=g),), {}


# --------------------------------------------------------------------------- peer checkpoints
_ASTEROID_BLOCK = {"0": "in_conv", "1": "act1", "2": "norm1", "3": "depth_conv", "4": "act2", "5": "norm2"}
# Demucs v2 tasnet.py: TemporalBlock.net = [conv1x1, prelu, norm, DepthwiseSeparableConv.net = [depthwise,
# (chomp,) prelu, norm, pointwise]]
_DEMUCS_DS = {"0": "depth_conv", "1": "act2", "2": "norm2", "3": "res_conv"}
_DEMUCS_DS_CAUSAL = {"0": "depth_conv", "2": "act2", "3": "norm2", "4": "res_conv"}


def _from_asteroid(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    out = {}
    blocks = getattr(getattr(model, "masker", None), "blocks", None)
    last = len(blocks) - 1 if blocks is not None else -1
    for k, v in state.items():
        if blocks is not None and k.startswith(f"masker.TCN.{last}.res_conv.") and blocks[last].res_conv is None:
            continue  # the last block's residual conv: unused with a skip path (no gradient), not kept here
        if k == "encoder.filterbank._filters":
            out["encoder.weight"] = v
        elif k == "decoder.filterbank._filters":
            out["decoder.weight"] = v
        elif k.startswith("masker.bottleneck.0."):
            out["masker.norm." + k.split(".", 3)[3]] = v
        elif k.startswith("masker.bottleneck.1."):
            out["masker.bottleneck." + k.split(".", 3)[3]] = v
        elif k.startswith("masker.mask_net.0."):
            out["masker.mask_prelu." + k.split(".", 3)[3]] = v
        elif k.startswith("masker.mask_net.1."):
            out["masker.mask_conv." + k.split(".", 3)[3]] = v
        elif (m := re.fullmatch(r"masker\.TCN\.(\d+)\.shared_block\.(\d)\.(?:0\.)?(\w+)", k)):
            out[f"masker.blocks.{m[1]}.{_ASTEROID_BLOCK[m[2]]}.{m[3]}"] = v
        elif (m := re.fullmatch(r"masker\.TCN\.(\d+)\.(res_conv|skip_conv)\.(\w+)", k)):
            out[f"masker.blocks.{m[1]}.{m[2]}.{m[3]}"] = v
        else:
            raise CheckpointError(f"unexpected asteroid ConvTasNet key {k!r}")
    return out


def _from_demucs(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    cfg = getattr(model, "config", None)
    blocks = int(getattr(cfg, "n_blocks", 8))
    ds = _DEMUCS_DS_CAUSAL if getattr(cfg, "causal", False) else _DEMUCS_DS
    out = {}
    for k, v in state.items():
        if k == "encoder.conv1d_U.weight":
            out["encoder.weight"] = v
        elif k == "decoder.basis_signals.weight":  # Linear(N, C * L): row a * L + l -> filter (n, a, l)
            c = int(getattr(model, "audio_channels", 1))
            out["decoder.weight"] = v.reshape(c, -1, v.shape[-1]).permute(2, 0, 1)
        elif k.startswith("separator.network.0."):
            out["masker.norm." + k.split(".")[-1]] = v.reshape(-1)
        elif k == "separator.network.1.weight":
            out["masker.bottleneck.weight"] = v
        elif k == "separator.network.3.weight":
            out["masker.mask_conv.weight"] = v
        elif (m := re.fullmatch(r"separator\.network\.2\.(\d+)\.(\d+)\.net\.(\d)\.(\w+)", k)):
            i = int(m[1]) * blocks + int(m[2])
            name = {"0": "in_conv", "1": "act1", "2": "norm1"}[m[3]]
            out[f"masker.blocks.{i}.{name}.{m[4]}"] = v.reshape(-1) if name == "norm1" else v
        elif (m := re.fullmatch(r"separator\.network\.2\.(\d+)\.(\d+)\.net\.3\.net\.(\d)\.(\w+)", k)):
            i = int(m[1]) * blocks + int(m[2])
            name = ds[m[3]]
            out[f"masker.blocks.{i}.{name}.{m[4]}"] = v.reshape(-1) if name == "norm2" else v
        else:
            raise CheckpointError(f"unexpected Demucs tasnet key {k!r}")
    return out


def checkpoint_filter_fn(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """A peer Conv-TasNet checkpoint -> this model's keys: asteroid (a ``{"state_dict": ...}`` package or its
    state dict: ``encoder.filterbank._filters``, ``masker.TCN.i.shared_block.j``...) or Demucs v2's
    ``tasnet.py`` (``encoder.conv1d_U``, ``separator.network...``, ``decoder.basis_signals``)."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if isinstance(state.get("state"), dict):
        state = state["state"]
    state = {k: v.float() for k, v in state.items() if isinstance(v, Tensor)}
    if "encoder.filterbank._filters" in state:
        return _from_asteroid(state, model)
    if "encoder.conv1d_U.weight" in state:
        return _from_demucs(state, model)
    raise CheckpointError("not an asteroid or Demucs Conv-TasNet state dict (no encoder.filterbank._filters or "
                          "encoder.conv1d_U.weight)")


# --------------------------------------------------------------------------- registered variants
_PAPER = ("Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude Masking for Speech Separation "
          "(Luo & Mesgarani, TASLP 2019)")
_TINY = dict(n_filters=16, kernel_size=8, bn_chan=8, hid_chan=16, skip_chan=8, n_blocks=2, n_repeats=1)


_VOICES_LICENSE = ("weights: trained on project-made speech (espeak-ng, flite, festival voices, Piper joe: see "
                   "docs/weights.md), FSDD (CC BY-SA 4.0) and the Kaldi yes/no corpus (no licence stated)")
_MIX_REAL = "mix_real: 100 x 2 s mixtures, 13 real speakers never trained on (recipes/separate/eval_real.py)"
_SPEECH_WEIGHTS = {
    "voices_8k": WeightSet(
        "2-speaker separator at 8 kHz (small config: N=128, L=32, B=64, H=128, Sc=64, X=6, R=2; 335,385 parameters) "
        "trained here for 3,000 steps of 8 x 1 s (~65 min, one shared CPU thread) on espeak-ng/flite, Piper joe, FSDD "
        "and yes/no voices, each speed-perturbed into new voices. On held-out REAL voices (100 2-s mixtures of SiSEC "
        "2011, CMU ARCTIC and LibriSpeech speakers, never trained on): SI-SDRi 0.53 dB, SDR 1.74 dB (mixture 0.29, "
        "oracle IRM 12.20) - it barely beats the mixture and misses the 6 dB goal (docs/models/conv_tasnet.md)",
        sha256="9572d2336ced97a51362a2b7e3dc6162772f26a5fb2054e65d67ee4141d3e497",
        recipe="recipes/separate/conv_tasnet_small_speech.yaml (data: recipes/separate/prepare_speech.py; "
               "EMA weights of the best validation step, 3000)",
        commit="c7bfbe0",  # the training code (the recipe and data script land with these weights)
        license="weights: trained on project-made speech (espeak-ng, flite, Piper joe: CC0 / research-licence "
                "base, see docs/weights.md), FSDD (CC BY-SA 4.0) and the Kaldi yes/no corpus (no licence stated)",
        metrics={"held_out": _MIX_REAL,
                 "si_sdri": 0.53, "sdr": 1.74, "mixture_sdr": 0.29, "oracle_irm_si_sdri": 11.34,
                 "oracle_irm_sdr": 12.20, "heldout_synth_si_sdri": 3.01, "valid_si_sdri": 3.52}),
    "voices_medium_8k": WeightSet(
        "2-speaker separator at 8 kHz (medium config: N=256, L=32, B=128, H=256, Sc=128, X=8, R=2; 1,696,801 "
        "parameters) trained here from scratch for 6,000 steps of 8 x 1 s (71 min on 2 CPU threads) on 207 training "
        "voice labels: espeak-ng/flite, Piper joe, 12 festival voices built from recordings of real people, FSDD and "
        "yes/no, speed-perturbed and WORLD re-voiced. On held-out REAL voices (the 100 mixtures of voices_8k's test, "
        "13 speakers never trained on): SI-SDRi 2.53 dB, SDR 3.49 dB (mixture 0.29, oracle IRM 12.20): the best "
        "shipped speech separator, still 3.5 dB short of the 6 dB goal, and Whisper does not understand its outputs "
        "better than the mixture; the WORLD voices it trained on are partly breathy (made at 8 kHz); weights "
        "float16 (docs/models/conv_tasnet.md)",
        sha256="27b4f323d5f8758f42ea7002a39baa10f1cfb252cc52b21c6a5d029cbc4c05fd",
        recipe="recipes/separate/conv_tasnet_medium_speech.yaml (data: recipes/separate/prepare_speech.py; EMA "
               "weights of the best validation step, 6000; eval: recipes/separate/eval_real.py)",
        commit="61403fb",  # the data script (festival + WORLD voices); the recipe lands with these weights
        license=_VOICES_LICENSE,
        metrics={"held_out": _MIX_REAL,
                 "si_sdri": 2.53, "sdr": 3.49, "mixture_sdr": 0.29, "oracle_irm_si_sdri": 11.34,
                 "oracle_irm_sdr": 12.20, "heldout_synth_si_sdri": 3.52, "valid_si_sdri": 4.98,
                 "whisper_wer_first20": 97.1, "mixture_whisper_wer_first20": 88.4, "dnsmos_ovrl_first20": 1.92,
                 "mixture_dnsmos_ovrl_first20": 2.23}),
    "voices_medium_s2_8k": WeightSet(
        "2-speaker separator at 8 kHz (medium config as voices_medium_8k; 1,696,801 parameters): voices_medium_8k "
        "trained on for 4,000 more steps of 8 x 1 s (stage 2: fresh cosine schedule from lr 5e-4, new mixing seed; "
        "73 min on one CPU thread; 10,000 steps in all) on the same 207 training voice labels. On held-out REAL "
        "voices (the 100 mixtures of voices_8k's test, 13 speakers never trained on): SI-SDRi 2.88 dB, SDR 3.80 dB "
        "(mixture 0.29, oracle IRM 12.20): the best shipped speech separator, 3.1 dB short of the 6 dB goal; "
        "Whisper understands its outputs no better than the mixture; weights float16 (docs/models/conv_tasnet.md)",
        sha256="24b01bdc7e7ab0cff49bc0c5c5fa407c63bfd72ff83bd72b22e93743b768d21f",
        recipe="recipes/separate/conv_tasnet_medium_speech_stage2.yaml (from conv_tasnet_speech.voices_medium_8k; "
               "data: recipes/separate/prepare_speech.py; EMA weights of the best validation step, 4000; eval: "
               "recipes/separate/eval_real.py)",
        commit="812dbc4",  # the data script and stage 1; the stage-2 recipe lands with these weights
        license=_VOICES_LICENSE,
        metrics={"held_out": _MIX_REAL,
                 "si_sdri": 2.88, "sdr": 3.80, "mixture_sdr": 0.29, "oracle_irm_si_sdri": 11.34,
                 "oracle_irm_sdr": 12.20, "heldout_synth_si_sdri": 4.18, "valid_si_sdri": 5.67,
                 "whisper_wer_first20": 90.1, "mixture_whisper_wer_first20": 88.4, "dnsmos_ovrl_first20": 1.96,
                 "mixture_dnsmos_ovrl_first20": 2.23}),
}


@register_model(
    family="separate", paper=_PAPER, arxiv="1809.07454", params=4_984_881,
    params_source="asteroid 0.7.0 ConvTasNet(n_src=2) with its defaults (the paper's N=512, L=16, B=128, H=512, "
                  "Sc=128, P=3, X=8, R=3) = 5,050,545, less its last block's residual 1x1 conv (65,664 parameters "
                  "whose output is never used) = 4,984,881; the paper's Table III gives 5.1 M",
    verified="APTU", tiny=_TINY, official_repo="https://github.com/asteroid-team/asteroid", license="MIT",
    converter=checkpoint_filter_fn, weights=_SPEECH_WEIGHTS,
)
def conv_tasnet_speech(**overrides: Any) -> ConvTasNet:
    """The paper's best non-causal Conv-TasNet (8 kHz mono, 2 speakers, sigmoid masks), asteroid's layout."""
    return ConvTasNet(build_config(ConvTasNetConfig, {}, **overrides))


_MUSIC = dict(sources=("drums", "bass", "other", "vocals"), audio_channels=2, sample_rate=44100, n_filters=256,
              kernel_size=20, bn_chan=256, hid_chan=512, skip_chan=0, conv_kernel_size=3, n_blocks=10, n_repeats=4,
              norm="gLN", input_norm="cLN", mask_act="relu", encoder_relu=True, bias=False, mask_prelu=False,
              segment_seconds=8.0)


_MUSIC_WEIGHTS = {
    "music4": WeightSet(
        "4-stem music separator (drums, bass, other, vocals) at 16 kHz mono (small config: N=128, L=32, B=64, H=128, "
        "X=6, R=2; 256,792 parameters), trained here for 2,000 steps of 8 x 2 s (49 min, one shared CPU thread) on "
        "the rendered music21 pieces of demucs_small.music4 with the same L1 loss and augmentations. On 144 clips of "
        "31 held-out pieces sung by 3 held-out voices it beats the mixture on every stem: SI-SDR drums 5.29 / bass "
        "0.62 / other -1.58 / vocals 2.44 dB (mixture -4.63 / -6.77 / -5.61 / -4.34); below demucs_small.music4 on "
        "drums and bass, above it on vocals; weights float16 (docs/models/conv_tasnet.md)",
        sha256="17b6da571a460bf2b3d80025ea73ae50585dd93ac39d9f28911af8640376cad8",
        recipe="recipes/separate/conv_tasnet_small_music4.yaml (data: recipes/separate/prepare_music4.py; EMA "
               "weights of the best validation step, 2000; eval: recipes/separate/eval_music4.py)",
        commit="c58bdfc",  # the recipe (unchanged since) and the data script
        license="weights: trained on project-made audio (music21 corpus scores, TimGM6mb soundfont renderings, "
                "WORLD re-synthesis of espeak-ng / flite speech)",
        metrics={"held_out": "cache/music4 test split: 144 x 4 s clips, 31 pieces, voices espeak-ng en-us+m7, "
                             "en-gb+f5, flite kal16 (never trained or tuned on)",
                 "si_sdr": {"drums": 5.29, "bass": 0.62, "other": -1.58, "vocals": 2.44},
                 "mixture_si_sdr": {"drums": -4.63, "bass": -6.77, "other": -5.61, "vocals": -4.34},
                 "sdr": {"drums": 7.53, "bass": 2.51, "other": -0.62, "vocals": 4.28},
                 "mixture_sdr": {"drums": -4.46, "bass": -6.01, "other": -5.10, "vocals": -4.12},
                 "valid_si_sdri": 6.27}),
}


@register_model(
    family="separate", paper="Music Source Separation in the Waveform Domain (Défossez et al.): Conv-TasNet for music",
    arxiv="1809.07454", params=10_977_872,
    params_source="Demucs v2 tasnet.py with N=256, L=20, B=256, H=512, P=3, X=10, R=4, 4 stereo sources, no biases "
                  "= 10,977,872 (counted from tasnet.py's layers with X=10, the README's training command)",
    verified="ATU", tiny={**_TINY, "skip_chan": 0, "kernel_size": 8},
    official_repo="https://github.com/facebookresearch/demucs/tree/v2", license="MIT",
    converter=checkpoint_filter_fn, weights=_MUSIC_WEIGHTS,
)
def conv_tasnet_music(**overrides: Any) -> ConvTasNet:
    """Demucs v2's Conv-TasNet for 4-stem stereo music at 44.1 kHz (X=10, the released model). Weights:
    ``conv_tasnet_music.music4`` (a 16 kHz mono small config trained here on rendered 4-stem music)."""
    return ConvTasNet(build_config(ConvTasNetConfig, _MUSIC, **overrides))
