"""iSTFTNet: HiFi-GAN with its output-side upsampling stages replaced by an inverse STFT.

Paper: Takuhiro Kaneko, Kou Tanaka, Hirokazu Kameoka, Shogo Seki, "iSTFTNet: Fast and Lightweight
Mel-Spectrogram Vocoder Incorporating Inverse Short-Time Fourier Transform", ICASSP 2022, arXiv:2203.02395.
The authors' code is not public; the common reference is rishikksh20/iSTFTNet-pytorch (Apache-2.0, ``models.py``
``Generator`` + ``stft.py`` ``TorchSTFT``, ``config_v1.json``), which implements C8C8I on HiFi-GAN V1.

Naming (paper): ``C<r>`` is one HiFi-GAN stage (transposed conv x r + MRF), ``I`` the iSTFT. After the conv
stages the network predicts, per frame, ``n_fft / 2 + 1`` log-magnitudes and as many phases, and an iSTFT with
``hop = 256 / prod(rates)`` makes the waveform, so the total upsampling stays 256 (the mel hop).

Head (reference ``Generator.forward``): ``leaky_relu`` (default slope 0.01) -> ``ReflectionPad1d((1, 0))`` (one
extra frame, so the centred iSTFT of ``L * prod(rates) + 1`` frames has exactly ``L * 256`` samples) ->
``conv_post`` k7 to ``n_fft + 2`` channels -> magnitude ``exp(x[:n_fft/2+1])``, phase ``sin(x[n_fft/2+1:])``
(the sine is the reference's choice: it bounds the phase to [-1, 1] rad) -> ``iSTFT(mag * e^{i phase})`` with a
periodic Hann window of ``n_fft`` samples, centred frames (``torch.istft`` defaults, as ``TorchSTFT.inverse``).
The iSTFT is :class:`audiozoo.dsp.OverlapAddISTFT` (no FFT, so it exports to ONNX; tested equal to ``torch.istft``).

Variants registered (all on HiFi-GAN V1: 512 channels, ResBlock1 kernels 3/7/11, dilations 1/3/5, 22.05 kHz):

==============  ==========  =========  ==============  ===================================================
name            rates       kernels    iSTFT n_fft/hop  source
==============  ==========  =========  ==============  ===================================================
C8C8I           8, 8        16, 16     16 / 4          rishikksh20 config_v1.json (verified)
C8C8C2I         8, 8, 2     16, 16, 4  8 / 2           derived: n_fft = 4 hop as C8C8I [unverified]
C8C1I           8, 1        16, 3      128 / 32        derived; the "C1" kernel 3 is our choice [unverified]
C8I             8           16         128 / 32        derived [unverified]
==============  ==========  =========  ==============  ===================================================

Departures: ``lengths`` as in :mod:`audiozoo.models.vocoder.hifigan` (samples past ``lengths * hop`` zeroed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...dsp.stft import OverlapAddISTFT
from ...errors import AudioError, ConfigError
from ...nn.vocoder import HiFiGANTrunk, official_to_trunk_keys
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ..contracts import VocoderModel


@dataclass
class ISTFTNetConfig:
    n_mels: int = 80
    sample_rate: int = 22050
    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 8)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    istft_n_fft: int = 16
    istft_hop: int = 4
    # front-end (model.frontend): HiFi-GAN's meldataset settings
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0


class ISTFTNet(HiFiGANTrunk, VocoderModel):
    """iSTFTNet generator: ``forward(mel (B, n_mels, L), lengths) -> (wav (B, L * hop), lengths)``.

    ``hop_length = prod(upsample_rates) * istft_hop``. :meth:`forward_spectrum` returns the predicted magnitude
    and phase ``(B, istft_n_fft // 2 + 1, L * prod(upsample_rates) + 1)`` each.
    """

    def __init__(self, config: ISTFTNetConfig):
        c = config
        if c.istft_hop < 1 or c.istft_n_fft < c.istft_hop or c.istft_n_fft % 2:
            raise ConfigError(f"iSTFT needs an even n_fft >= hop >= 1, got n_fft={c.istft_n_fft}, hop={c.istft_hop}")
        if len(c.resblock_kernel_sizes) != len(c.resblock_dilation_sizes):
            raise ConfigError("ISTFTNetConfig needs one dilation tuple per resblock kernel size")
        super().__init__(c.n_mels, c.upsample_initial_channel, c.upsample_rates, c.upsample_kernel_sizes,
                         c.resblock, c.resblock_kernel_sizes, c.resblock_dilation_sizes, c.lrelu_slope)
        self.config = c
        self.sample_rate, self.n_mels = c.sample_rate, c.n_mels
        self.hop_length = self.upsample_factor * c.istft_hop
        self.n_bins = c.istft_n_fft // 2 + 1
        self.conv_post = weight_norm(nn.Conv1d(self.out_channels, c.istft_n_fft + 2, 7, 1, padding=3))
        self.istft = OverlapAddISTFT(c.istft_n_fft, c.istft_hop, c.istft_n_fft)
        self.frontend = VocoderMel(c.sample_rate, c.n_fft, self.hop_length, c.win_length, c.n_mels, c.f_min,
                                   c.f_max, center=False)

    def forward_spectrum(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, n_mels, L)`` -> ``(magnitude, phase)``, each ``(B, n_fft // 2 + 1, L * prod(rates) + 1)``."""
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"ISTFTNet expects a log-mel (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        x = F.leaky_relu(self.trunk(mel))  # default slope 0.01, as the reference
        x = self.conv_post(F.pad(x, (1, 0), mode="reflect"))
        return torch.exp(x[:, : self.n_bins]), torch.sin(x[:, self.n_bins:])

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mag, phase = self.forward_spectrum(mel)
        # (frames - 1) * istft_hop = L * hop samples, as torch.istft(..., length=L * hop) gives
        wav = self.istft(mag * torch.cos(phase), mag * torch.sin(phase))
        return _with_lengths(wav, lengths, self.hop_length)


def _with_lengths(wav: Tensor, lengths: Tensor | None, hop: int) -> tuple[Tensor, Tensor]:
    if lengths is None:
        return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
    out_len = (lengths.to(wav.device).long() * hop).clamp(max=wav.shape[-1])
    mask = torch.arange(wav.shape[-1], device=wav.device)[None, :] < out_len[:, None]
    return wav * mask, out_len


def checkpoint_filter_fn(state: dict, model: ISTFTNet) -> dict[str, Tensor]:
    """rishikksh20/iSTFTNet-pytorch generator checkpoint (``{"generator": ...}``, legacy weight-norm keys, flat
    ``resblocks.{i * n + j}``) -> audiozoo layout."""
    if "generator" in state and isinstance(state["generator"], dict):
        state = state["generator"]
    state = convert_legacy_weight_norm_keys({k.removeprefix("module."): v for k, v in state.items()})
    return official_to_trunk_keys(state, len(model.config.resblock_kernel_sizes))


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="vocoder",
    paper="iSTFTNet: Fast and Lightweight Mel-Spectrogram Vocoder Incorporating Inverse Short-Time Fourier "
          "Transform (Kaneko, Tanaka, Kameoka & Seki, ICASSP 2022)",
    arxiv="2203.02395",
    official_repo="https://github.com/rishikksh20/iSTFTNet-pytorch (unofficial; the authors' code is not public)",
    license="Apache-2.0",
    converter=checkpoint_filter_fn,
)


_COUNT = ("computed from the config (weights + biases, weight-norm gains g excluded as for HiFi-GAN; they add "
          "{g:,}); {src}. The paper gives no exact counts; C8C8I matches the 13.25M computed in the project's "
          "reference notes")

_TINY = dict(upsample_initial_channel=16, n_mels=20, upsample_rates=(4,), upsample_kernel_sizes=(8,),
             resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), istft_n_fft=8,
             istft_hop=2, n_fft=256, win_length=256)


def _istftnet(base: dict, overrides: dict) -> ISTFTNet:
    return ISTFTNet(build_config(ISTFTNetConfig, base, **overrides))


@register_model(params=13_254_034, params_source=_COUNT.format(g=8_210, src="config = rishikksh20 config_v1.json"),
                verified="AT", tiny=_TINY, **_PAPER)
def istftnet_c8c8i(**overrides) -> ISTFTNet:
    """iSTFTNet V1-C8C8I: two x8 stages, then iSTFT (n_fft 16, hop 4)."""
    return _istftnet(dict(), overrides)


@register_model(params=13_792_458, params_source=_COUNT.format(g=9_482, src="config derived (n_fft = 4 x hop)"),
                verified="A", tiny=_TINY, **_PAPER)
def istftnet_c8c8c2i(**overrides) -> ISTFTNet:
    """iSTFTNet V1-C8C8C2I: x8, x8, x2 stages, then iSTFT (n_fft 8, hop 2)."""
    return _istftnet(dict(upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4), istft_n_fft=8,
                          istft_hop=2), overrides)


@register_model(params=12_928_514, params_source=_COUNT.format(g=8_322, src="config derived; C1 = stride-1 kernel-3 "
                "transposed conv (our choice)"), verified="A", tiny=_TINY, **_PAPER)
def istftnet_c8c1i(**overrides) -> ISTFTNet:
    """iSTFTNet V1-C8C1I: one x8 stage, one stage without upsampling, then iSTFT (n_fft 128, hop 32)."""
    return _istftnet(dict(upsample_rates=(8, 1), upsample_kernel_sizes=(16, 3), istft_n_fft=128, istft_hop=32),
                     overrides)


@register_model(params=10_879_874, params_source=_COUNT.format(g=5_762, src="config derived (n_fft = 4 x hop)"),
                verified="A", tiny=_TINY, **_PAPER)
def istftnet_c8i(**overrides) -> ISTFTNet:
    """iSTFTNet V1-C8I: one x8 stage, then iSTFT (n_fft 128, hop 32)."""
    return _istftnet(dict(upsample_rates=(8,), upsample_kernel_sizes=(16,), istft_n_fft=128, istft_hop=32),
                     overrides)
