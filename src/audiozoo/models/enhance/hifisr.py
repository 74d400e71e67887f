"""HiFi-SR: speech super-resolution with a transformer encoder and a HiFi-GAN-style convolutional generator.

Paper: Shengkui Zhao, Kun Zhou, Zexu Pan, Yukun Ma, Chong Zhang, Bin Ma, "HiFi-SR: A Unified Generative
Transformer-Convolutional Adversarial Network for High-Fidelity Speech Super-Resolution", ICASSP 2025,
arXiv:2501.10045. Official code: https://github.com/modelscope/ClearerVoice-Studio (Apache-2.0), model
``MossFormer2_SR_48K``; read here from the ``clearvoice`` 0.1.2 wheel, ``clearvoice/models/mossformer2_sr/``
(``mossformer2.py`` ``MossFormer_MaskNet``, ``mossformer2_block.py``, ``fsmn.py``, ``conv_module.py``,
``generator.py`` ``Generator``, ``snake.py``) and ``config/inference/MossFormer2_SR_48K.json``.

Method (paper Sec. 2; official ``utils/decode.py`` + ``dataloader/meldataset.py``): the band-limited input is
first sinc-resampled to the output rate (48 kHz); its HiFi-GAN log-mel (80 Slaney mels, n_fft 1024, hop 256,
0-8000 Hz, ``ln(max(., 1e-5))``, uncentred frames = :class:`audiozoo.dsp.VocoderMel`) goes through

1. a MossFormer2 encoder (``MossFormer_MaskNet(80, 512, 80)``): GroupNorm -> 1x1 conv to 512 -> + scaled
   sinusoidal position embedding -> 24 x (FLASH-style gated attention layer, then a gated-FSMN block) ->
   LayerNorm -> GroupNorm + skip -> PReLU -> 1x1 conv -> tanh/sigmoid gate -> 1x1 conv to 80 -> ReLU;
2. a HiFi-GAN V1-shaped generator with **Snake** activations (``x + sin^2(a x) / a``, per channel, BigVGAN /
   DAC style) in place of every leaky ReLU: 1024 initial channels, upsampling 8-8-2-2 (kernels 16-16-4-4),
   ResBlock1 kernels 3-7-11 with dilations 1-3-5, tanh output. hop 256 = 8*8*2*2.

The FLASH layer (Hua et al. 2022, "Transformer Quality in Linear Time", as in MossFormer/MossFormer2): token
shift of half the channels, ``to_hidden`` / ``to_qk`` / ``to_out`` = ScaleNorm -> Linear -> SiLU -> residual
depthwise conv (k17) -> dropout; four per-dim offset/scales of one shared qk; rotary embedding (interleaved
pairs, first 32 dims, ``rotary_embedding_torch`` conventions); quadratic ``relu(q k^T / g)^2`` attention inside
chunks of ``group_size`` frames plus a global linear attention; output ``(att_u * v) * sigmoid(att_v * u)``.
The encoder's blocks are generic (:mod:`audiozoo.nn.mossformer`), as is Snake (:mod:`audiozoo.nn.activations`);
this module assembles them with the HiFi-GAN trunk.

Parameter count (canonical ``hifisr_48k``, measured on the meta device by instantiating the official classes
of the clearvoice 0.1.2 wheel with the training json): MossFormer encoder 54,497,026 trainable (+16 frozen
rotary frequencies, a buffer here), generator 55,150,402 counting weight-norm gains (55,130,177 without):
109,647,428 in total. This module has the same layers and shapes, so the same count.

Reconstruction notes (what is not the official code, and why):

- Layer names follow the official ones where it costs nothing; :func:`checkpoint_filter_fn` maps the rest
  (``mossformer.mdl.intra_mdl.mossformerM.*`` prefixes, FFConvM's ``mdl.{0,1,3}`` indices, the FSMN Conv2d
  ``(C, 1, 39, 1)`` stored here as a depthwise Conv1d ``(C, 1, 39)``, the flat resblock list, legacy weight
  norm). The released weights live on Hugging Face and could not be fetched offline: the converter was checked
  on randomly initialised official modules only (see ``docs/models/hifisr.md``).
- ``lengths`` is bookkeeping only (as HiFi-GAN here): output samples past ``lengths * hop`` are zeroed, but the
  encoder's GroupNorms, global linear attention and chunked attention see the padded frames (the official
  model has no lengths either).
- The official inference keeps the input's own band below its Nyquist ("bandwidth substitution", ``utils/
  bandwidth_sub.py``); that is post-processing, done in :mod:`audiozoo.pipelines.upsample`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...errors import AudioError, ConfigError
from ...nn.activations import Snake1d
from ...nn.mossformer import MossFormer2Encoder
from ...nn.resblocks import ResBlock1, ResBlock2
from ...nn.vocoder import HiFiGANTrunk, official_to_trunk_keys
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import WeightSet, register_model
from ..contracts import EnhancerModel

__all__ = ["HiFiSR", "HiFiSRConfig", "SnakeHiFiGAN", "checkpoint_filter_fn"]


@dataclass
class HiFiSRConfig:
    # output audio and the input mel (official MossFormer2_SR_48K.json)
    sample_rate: int = 48000
    n_mels: int = 80
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    # input rates the model was trained for (paper: 4-32 kHz; the training json samples 16/22.05/24/32 kHz)
    min_input_rate: int = 4000
    max_input_rate: int = 32000
    # MossFormer2 encoder (MossFormer_MaskNet(80, 512, 80), MossformerBlock_GFSMN defaults)
    enc_channels: int = 512
    enc_depth: int = 24
    group_size: int = 256
    query_key_dim: int = 128
    expansion_factor: float = 4.0
    rotary_dim: int = 32
    fsmn_channels: int = 256
    fsmn_lorder: int = 20
    conv_kernel: int = 17
    dropout: float = 0.1
    # Snake HiFi-GAN generator
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 1024
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))


# --------------------------------------------------------------------------- Snake HiFi-GAN generator
def _snake_resblock(block: nn.Module, x: Tensor) -> Tensor:
    """The official ResBlock1/2 forward with Snake in place of leaky ReLU (activations stored on the block)."""
    if isinstance(block, ResBlock1):
        for c1, c2, a1, a2 in zip(block.convs1, block.convs2, block.convs1_activates, block.convs2_activates):
            x = c2(a2(c1(a1(x)))) + x
        return x
    for c, a in zip(block.convs, block.convs_activates):
        x = c(a(x)) + x
    return x


class SnakeHiFiGAN(HiFiGANTrunk):
    """HiFi-SR's generator: :class:`~audiozoo.nn.vocoder.HiFiGANTrunk` with Snake activations,
    ``(B, n_mels, L) -> (B, L * hop)`` in [-1, 1].

    The trunk's convs and resblocks are reused as built; each stage gets ``snakes.{i}`` before its transposed
    conv, each resblock ``convs1_activates`` / ``convs2_activates`` (ResBlock2: ``convs_activates``), and the
    output ``snake_post`` -- the official names, so that only the flat resblock index needs renaming.
    """

    def __init__(self, c: HiFiSRConfig):
        super().__init__(c.n_mels, c.upsample_initial_channel, c.upsample_rates, c.upsample_kernel_sizes,
                         c.resblock, c.resblock_kernel_sizes, c.resblock_dilation_sizes)
        ch = c.upsample_initial_channel
        self.snakes = nn.ModuleList()
        for i, mrf in enumerate(self.mrfs):
            self.snakes.append(Snake1d(ch // 2 ** i))
            width = ch // 2 ** (i + 1)
            for block in mrf.resblocks:
                if isinstance(block, ResBlock1):
                    block.convs1_activates = nn.ModuleList(Snake1d(width) for _ in block.convs1)
                    block.convs2_activates = nn.ModuleList(Snake1d(width) for _ in block.convs2)
                else:
                    assert isinstance(block, ResBlock2)
                    block.convs_activates = nn.ModuleList(Snake1d(width) for _ in block.convs)
        self.snake_post = Snake1d(self.out_channels)
        self.conv_post = weight_norm(nn.Conv1d(self.out_channels, 1, 7, 1, padding=3))

    def trunk(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)
        for snake, up, mrf in zip(self.snakes, self.ups, self.mrfs):
            x = up(snake(x))
            xs = _snake_resblock(mrf.resblocks[0], x)
            for block in mrf.resblocks[1:]:
                xs = xs + _snake_resblock(block, x)
            x = xs / len(mrf.resblocks)
        return x

    def forward(self, mel: Tensor) -> Tensor:
        return torch.tanh(self.conv_post(self.snake_post(self.trunk(mel)))).squeeze(1)


# --------------------------------------------------------------------------- the model
class HiFiSR(EnhancerModel):
    """HiFi-SR: ``forward(mel (B, n_mels, L), lengths (B,) | None) -> (wav (B, L * hop), lengths)``.

    ``mel`` is :attr:`frontend`'s log-mel of the band-limited input *already resampled to*
    :attr:`sample_rate` (sinc/soxr), as the official inference does. Vocoder contract attributes:
    ``sample_rate`` (output rate), ``hop_length`` (256), ``n_mels``; also ``min_input_rate`` /
    ``max_input_rate``, the input rates it is meant for (:class:`audiozoo.pipelines.upsample.UpsamplePipeline`
    refuses others).
    """

    def __init__(self, config: HiFiSRConfig):
        super().__init__()
        c = config
        if not 0 < c.min_input_rate <= c.max_input_rate <= c.sample_rate:
            raise ConfigError(f"need 0 < min_input_rate <= max_input_rate <= sample_rate, got {c.min_input_rate}, "
                              f"{c.max_input_rate}, {c.sample_rate}")
        self.config = c
        self.encoder = MossFormer2Encoder(c.n_mels, c.enc_channels, c.enc_depth, c.group_size, c.query_key_dim,
                                          c.expansion_factor, c.rotary_dim, c.fsmn_channels, c.fsmn_lorder,
                                          c.conv_kernel, c.dropout)
        self.generator = SnakeHiFiGAN(c)
        self.sample_rate, self.n_mels, self.hop_length = c.sample_rate, c.n_mels, self.generator.upsample_factor
        self.min_input_rate, self.max_input_rate = c.min_input_rate, c.max_input_rate
        self.frontend = VocoderMel(c.sample_rate, c.n_fft, self.hop_length, c.win_length, c.n_mels, c.f_min, c.f_max)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"HiFiSR expects a log-mel (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        wav = self.generator(self.encoder(mel))
        if lengths is None:
            return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
        out_len = (lengths.to(wav.device).long() * self.hop_length).clamp(max=wav.shape[-1])
        keep = torch.arange(wav.shape[-1], device=wav.device)[None, :] < out_len[:, None]
        return wav * keep, out_len


# --------------------------------------------------------------------------- checkpoint converter
_ENC_RENAMES = (
    (r"^mdl\.intra_mdl\.mossformerM\.layers\.", "layers."),
    (r"^mdl\.intra_mdl\.mossformerM\.fsmn\.", "fsmn."),
    (r"^mdl\.intra_mdl\.norm\.", "intra_mdl_norm."),
    (r"^mdl\.intra_norm\.", "intra_norm."),
    (r"^pos_enc\.scale$", "pos_scale"),
    (r"^output\.0\.", "output."),
    (r"^output_gate\.0\.", "output_gate."),
    (r"\.qk_offset_scale\.", "."),
    (r"\.mdl\.0\.", ".norm."),
    (r"\.mdl\.1\.", ".linear."),
    (r"\.mdl\.3\.sequential\.1\.conv\.", ".dwconv."),
)
_ENC_DROP = re.compile(r"(rotary_pos_emb\.|pos_enc\.inv_freq)")


def checkpoint_filter_fn(state: dict[str, Any], model: HiFiSR) -> dict[str, Tensor]:
    """Official ``MossFormer2_SR_48K`` weights -> this layout.

    ``state`` holds the encoder (``Mossformer``, keys ``mossformer.*``) under ``model_m.`` and the generator
    (``Generator``) under ``model_g.`` (or ``{"model_m": {...}, "model_g": {...}}``; a ``module.`` DDP prefix
    is stripped). Renames are listed in ``_ENC_RENAMES``; the FSMN Conv2d kernels ``(C, 1, 39, 1)`` become
    Conv1d ``(C, 1, 39)``; the rotary frequencies / sinusoid buffers are recomputed, not loaded.
    """
    flat: dict[str, Tensor] = {}
    for key in ("model_m", "model_g"):
        if isinstance(state.get(key), dict):
            flat.update({f"{key}.{k}": v for k, v in state[key].items()})
    flat.update({k: v for k, v in state.items() if not isinstance(v, dict)})
    out: dict[str, Tensor] = {}
    gen: dict[str, Tensor] = {}
    for k, v in flat.items():
        k = k.replace("module.", "")
        if k.startswith("model_m."):
            k = k[len("model_m."):].removeprefix("mossformer.")
            if _ENC_DROP.search(k):
                continue
            for pat, rep in _ENC_RENAMES:
                k = re.sub(pat, rep, k)
            if k.endswith("fsmn.conv1.weight") and v.ndim == 4:
                v = v.squeeze(-1)
            out["encoder." + k] = v
        elif k.startswith("model_g."):
            gen[k[len("model_g."):]] = v
    gen = convert_legacy_weight_norm_keys(gen)
    gen = official_to_trunk_keys(gen, len(model.config.resblock_kernel_sizes))
    out.update({"generator." + k: v for k, v in gen.items()})
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="enhance",
    paper="HiFi-SR: A Unified Generative Transformer-Convolutional Adversarial Network for High-Fidelity Speech "
          "Super-Resolution (Zhao et al., ICASSP 2025)",
    arxiv="2501.10045",
    official_repo="https://github.com/modelscope/ClearerVoice-Studio",
    license="Apache-2.0",
    converter=checkpoint_filter_fn,
)


_TINY = dict(enc_channels=16, enc_depth=1, group_size=8, query_key_dim=8, rotary_dim=4, fsmn_channels=8,
             fsmn_lorder=3, conv_kernel=3, upsample_initial_channel=16, n_mels=20, upsample_rates=(4, 2),
             upsample_kernel_sizes=(8, 4), resblock_kernel_sizes=(3, 5),
             resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), n_fft=256, win_length=256, sample_rate=16000,
             min_input_rate=4000, max_input_rate=12000)
# The shipped CPU config: 16 kHz output from 6-12 kHz input (no real 48 kHz speech exists here).
_SMALL = dict(sample_rate=16000, min_input_rate=6000, max_input_rate=12000, enc_channels=64, enc_depth=2,
              group_size=64, query_key_dim=32, fsmn_channels=32, upsample_initial_channel=128, dropout=0.0)


def _hifisr(base: dict, overrides: dict) -> HiFiSR:
    return HiFiSR(build_config(HiFiSRConfig, base, **overrides))


@register_model(params=109_647_428,
                params_source="official clearvoice 0.1.2 MossFormer2_SR_48K classes (mossformer2_sr/generator.py "
                "Mossformer + Generator with config/inference/MossFormer2_SR_48K.json) instantiated on the meta "
                "device: encoder 54,497,026 trainable + generator 55,150,402 (weight-norm gains included; "
                "55,130,177 without); the 16 frozen rotary frequencies are a buffer here",
                verified="A", tiny=_TINY, **_PAPER)
def hifisr_48k(**overrides) -> HiFiSR:
    """HiFi-SR as released (``MossFormer2_SR_48K``): any 4-32 kHz input -> 48 kHz."""
    return _hifisr({}, overrides)


@register_model(params=1_042_452, params_source="computed from this config (encoder 64-d x 2 layers, generator "
                "V2-width 128 channels, Snake); a CPU-sized HiFi-SR, not a paper config",
                verified="ATU", tiny=_TINY,
                weights={"sisec_8k": WeightSet(
                    "6-12 kHz -> 16 kHz speech super-resolution trained 20 min on CPU on the 8 SiSec 2011 speakers; "
                    "beats sinc interpolation on log-spectral distance on held-out CMU ARCTIC + LibriSpeech "
                    "(docs/models/hifisr.md)",
                    sha256="02f4664cbd7da469688f267c4b087f444b8e2729efbd4beb677016c1d509164a",
                    recipe="recipes/superres/hifisr_small_16k.yaml", commit="0ac5a80", license="Apache-2.0",
                    metrics={"held_out": "CMU ARCTIC + LibriSpeech, LSD full band from 8 kHz input",
                             "lsd_8k": 1.375, "lsd_6k": 1.494, "lsd_12k": 1.051, "sinc_lsd_8k": 3.506})},
                **_PAPER)
def hifisr_small_16k(**overrides) -> HiFiSR:
    """CPU-sized HiFi-SR: 6-12 kHz input -> 16 kHz (the shipped ``hifisr_small_16k.sisec_8k``)."""
    return _hifisr(_SMALL, overrides)
