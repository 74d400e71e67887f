"""HiFiNet: the 48 kHz vocoder of DelightfulTTS, driven by a 16 kHz-band mel spectrogram.

Paper: Yanqing Liu, Zhihang Xu, Gang Wang, Kuan Chen, Bohan Li, Xu Tan, Jinzhu Li, Lei He, Sheng Zhao,
"DelightfulTTS: The Microsoft Speech Synthesis System for Blizzard Challenge 2021", arXiv:2110.12612.
No official code and no released weights. What the paper's abstract states, and what this module keeps: the
acoustic model predicts a mel spectrogram of **16 kHz** audio and the vocoder HiFiNet generates the **48 kHz**
waveform directly from it (the trade-off it argues: a 16 kHz mel is easier for the acoustic model to predict
and the vocoder learns the band above 8 kHz). Microsoft's Azure blog posts ("Azure Neural TTS upgraded with
HiFiNet", 2020; "... 48kHz with HiFiNet2", 2022) describe it only as a GAN vocoder of the HiFi-GAN kind.

**Reconstruction** (every architectural number below is ours, not the paper's; the full paper text with the
HiFiNet section was not available offline):

* Mel: 16 kHz, n_fft 1024, window 800 (50 ms), hop 200 (12.5 ms), 80 Slaney mels over 0-8 kHz, HiFi-GAN's
  ``meldataset`` convention (uncentred frames after ``(n_fft - hop) / 2`` reflect padding, ``L = T16 // 200``,
  ``ln(max(mel, 1e-5))``). 50 ms / 12.5 ms are the Tacotron-era frame settings Microsoft's FastSpeech line
  uses at 16 kHz; 80 mels up to 8 kHz are HiFi-GAN's.
* Generator: the HiFi-GAN V1 body (Kong et al. 2020, arXiv:2010.05646; :class:`audiozoo.nn.vocoder.
  HiFiGANTrunk`: ``conv_pre`` k7, 512 channels halved per stage, MRF resblocks 3/7/11 x dilations 1/3/5,
  weight norm) whose total upsampling is **3 x 200 = 600** samples of 48 kHz audio per mel frame: rates
  (10, 5, 4, 3). Each transposed-conv kernel is a multiple of its stride (2u for even u as HiFi-GAN, 3u for
  odd u, so that ``kernel - rate`` stays even and the output exactly ``rate`` times longer) - a kernel that
  is a multiple of the stride overlaps uniformly (Odena et al. 2016, "Deconvolution and checkerboard
  artifacts"). Output head as HiFi-GAN: ``leaky_relu(0.01) -> conv_post k7 -> tanh``.
* Front-end (:class:`BandLimitedMel`, no parameters): a 48 kHz waveform is low-passed and decimated by 3 to
  16 kHz with a linear-phase Kaiser-windowed sinc FIR (pass band to 7.8 kHz, stop band from 8 kHz, 90 dB; 1,373 taps),
  then the 16 kHz mel is taken. Without the low-pass, content at 8-24 kHz would alias into the mel band
  (a 12 kHz tone to 4 kHz). A 16 kHz waveform (``sample_rate=16000``) skips the decimation, which is how a
  TTS acoustic model's 16 kHz targets are made.

So a 16 kHz signal of ``T16`` samples gives ``L = T16 // 200`` frames and HiFiNet returns ``600 L`` samples at
48 kHz: 3 x the 16 kHz sample count when ``T16`` is a multiple of the hop.

Discriminators and losses are not part of this module (training: :mod:`audiozoo.train.tasks.vocoder`; MPD /
MSD: :mod:`audiozoo.nn.discriminators`). Parameter counting as HiFi-GAN's registered counts: weights + biases,
each weight-normed weight once (weight-norm gains ``g`` excluded; the trainable model holds them too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.features import FeatureExtractor
from ...dsp.mel import VocoderMel
from ...errors import AudioError, ConfigError
from ...nn.vocoder import HiFiGANTrunk
from ...registry import register_model
from ..contracts import VocoderModel

__all__ = ["BandLimitedMel", "HiFiNet", "HiFiNetConfig", "kaiser_lowpass"]


@dataclass
class HiFiNetConfig:
    n_mels: int = 80
    sample_rate: int = 48000  # output rate
    mel_sample_rate: int = 16000  # rate of the audio the mel describes
    mel_hop_length: int = 200  # hop at mel_sample_rate (12.5 ms)
    n_fft: int = 1024
    win_length: int = 800
    f_min: float = 0.0
    f_max: float = 8000.0
    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (10, 5, 4, 3)
    upsample_kernel_sizes: tuple[int, ...] = (20, 15, 8, 9)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    # decimation low-pass of the front-end (Hz at sample_rate): pass band edge, stop band edge, attenuation
    lowpass_pass_hz: float = 7800.0
    lowpass_stop_hz: float = 8000.0
    lowpass_atten_db: float = 90.0


def kaiser_lowpass(sample_rate: int, pass_hz: float, stop_hz: float, atten_db: float = 90.0) -> Tensor:
    """Linear-phase low-pass FIR ``(N,)`` (N odd, unit DC gain), float64, by the Kaiser window method.

    Cut-off at the middle of the transition band; length and beta from Kaiser's formulas
    (``N - 1 = (A - 7.95) / (2.285 * dw)``, ``beta = 0.1102 (A - 8.7)`` for ``A > 50`` dB; Oppenheim & Schafer,
    Discrete-Time Signal Processing, Sec. 7.6).
    """
    if not 0 < pass_hz < stop_hz <= sample_rate / 2:
        raise ConfigError(f"low-pass needs 0 < pass ({pass_hz}) < stop ({stop_hz}) <= Nyquist ({sample_rate / 2})")
    if atten_db <= 21:
        raise ConfigError(f"low-pass attenuation must exceed 21 dB, got {atten_db}")
    dw = 2 * math.pi * (stop_hz - pass_hz) / sample_rate
    half = math.ceil((atten_db - 7.95) / (2.285 * dw) / 2)
    if atten_db > 50:
        beta = 0.1102 * (atten_db - 8.7)
    else:
        beta = 0.5842 * (atten_db - 21) ** 0.4 + 0.07886 * (atten_db - 21)
    fc = (pass_hz + stop_hz) / 2 / sample_rate  # cycles per sample
    n = torch.arange(-half, half + 1, dtype=torch.float64)
    h = 2 * fc * torch.sinc(2 * fc * n) * torch.kaiser_window(2 * half + 1, periodic=False, beta=beta,
                                                              dtype=torch.float64)
    return h / h.sum()


class BandLimitedMel(FeatureExtractor):
    """Waveform at ``sample_rate`` (or at ``mel_sample_rate``) -> log-mel of its ``mel_sample_rate`` band.

    ``forward(wav (B, T), lengths (B,) | None, sample_rate=None) -> (log-mel (B, n_mels, L), frames (B,))``.
    At ``sample_rate`` (default) the input is low-passed and decimated by ``sample_rate // mel_sample_rate``
    (zero padding of half the filter at both ends, so ``T16 = ceil(T / factor)`` and sample ``k`` of the
    16 kHz signal is sample ``factor * k`` of the input, the alignment of soxr and librosa); at
    ``mel_sample_rate`` the input is used as is. Then :class:`~audiozoo.dsp.VocoderMel` (:attr:`mel`).
    ``hop_length``, ``min_samples`` and :meth:`num_frames` count samples at ``sample_rate``; ``sample_rate=
    mel_sample_rate`` input goes through :attr:`mel` and its own interface.
    """

    config_class = HiFiNetConfig
    config_fields = ("sample_rate", "mel_sample_rate", "mel_hop_length", "n_fft", "win_length", "n_mels", "f_min",
                     "f_max", "lowpass_pass_hz", "lowpass_stop_hz", "lowpass_atten_db")

    def __init__(self, config: HiFiNetConfig):
        super().__init__()
        c = self.config = config
        if c.sample_rate % c.mel_sample_rate:
            raise ConfigError(f"output rate {c.sample_rate} must be an integer multiple of the mel rate "
                              f"{c.mel_sample_rate}")
        self.sample_rate, self.mel_sample_rate = c.sample_rate, c.mel_sample_rate
        self.factor = c.sample_rate // c.mel_sample_rate
        if self.factor > 1 and c.lowpass_stop_hz > c.mel_sample_rate / 2:
            raise ConfigError(f"the decimation low-pass must stop by the mel rate's Nyquist "
                              f"({c.mel_sample_rate / 2} Hz), got stop {c.lowpass_stop_hz} Hz")
        if self.factor > 1:
            self.register_constant("lowpass", kaiser_lowpass(c.sample_rate, c.lowpass_pass_hz, c.lowpass_stop_hz,
                                                             c.lowpass_atten_db).view(1, 1, -1))
        self.mel = VocoderMel(c.mel_sample_rate, c.n_fft, c.mel_hop_length, c.win_length, c.n_mels, c.f_min,
                              c.f_max, center=False)
        self.hop_length, self.n_features = self.factor * c.mel_hop_length, c.n_mels
        # ceil(T / factor) decimated samples must reach the mel's own minimum
        self.min_samples = self.factor * (self.mel.min_samples - 1) + 1
        self.min_samples_reason = (f"the mel needs {self.mel.min_samples} samples at {c.mel_sample_rate} Hz after "
                                   "decimation")

    def decimate(self, wav: Tensor) -> Tensor:
        """``(B, T)`` at ``sample_rate`` -> ``(B, ceil(T / factor))`` at ``mel_sample_rate`` (band-limited)."""
        if self.factor == 1:
            return wav
        h = self.lowpass.to(wav.dtype)
        pad = (h.shape[-1] - 1) // 2
        return F.conv1d(F.pad(wav.unsqueeze(1), (pad, pad)), h, stride=self.factor).squeeze(1)

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return self.mel.num_frames((n_samples + self.factor - 1) // self.factor)

    def compute(self, wav: Tensor) -> Tensor:
        return self.mel.compute(self.decimate(wav))

    def check_sample_rate(self, sample_rate: int | None) -> None:
        if sample_rate is not None and int(sample_rate) not in (self.sample_rate, self.mel_sample_rate):
            raise AudioError(f"{type(self).__name__} (HiFiNet's front-end) takes {self.sample_rate} Hz or "
                             f"{self.mel_sample_rate} Hz audio, got {sample_rate} Hz; resample first")

    def forward(self, wav: Tensor, lengths: Tensor | None = None,
                sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
        self.check_sample_rate(sample_rate)
        if sample_rate is not None and int(sample_rate) != self.sample_rate:  # already at the mel's rate
            return self.mel(wav, lengths, sample_rate=sample_rate)
        return super().forward(wav, lengths, sample_rate)


class HiFiNet(HiFiGANTrunk, VocoderModel):
    """HiFiNet generator: ``forward(mel (B, n_mels, L), lengths (B,) | None) -> (wav (B, 600 L), lengths)``.

    ``mel`` is the 16 kHz-band log-mel of :attr:`frontend`. Vocoder contract: ``sample_rate`` (48,000, the
    output's), ``hop_length`` (output samples per mel frame, ``= 3 * mel_hop_length``), ``n_mels``; also
    ``mel_sample_rate`` / ``mel_hop_length`` (the mel's own).
    """

    def __init__(self, config: HiFiNetConfig):
        c = config
        if len(c.resblock_kernel_sizes) != len(c.resblock_dilation_sizes):
            raise ConfigError("HiFiNetConfig needs one dilation tuple per resblock kernel size")
        super().__init__(c.n_mels, c.upsample_initial_channel, c.upsample_rates, c.upsample_kernel_sizes,
                         c.resblock, c.resblock_kernel_sizes, c.resblock_dilation_sizes, c.lrelu_slope)
        if c.sample_rate % c.mel_sample_rate:
            raise ConfigError(f"output rate {c.sample_rate} must be a multiple of the mel rate {c.mel_sample_rate}")
        want = c.sample_rate // c.mel_sample_rate * c.mel_hop_length
        if self.upsample_factor != want:
            raise ConfigError(f"upsampling rates {tuple(c.upsample_rates)} multiply to {self.upsample_factor}; "
                              f"{c.sample_rate} Hz output from a mel of hop {c.mel_hop_length} at "
                              f"{c.mel_sample_rate} Hz needs {want}")
        self.config = c
        self.sample_rate, self.n_mels, self.hop_length = c.sample_rate, c.n_mels, self.upsample_factor
        self.mel_sample_rate, self.mel_hop_length = c.mel_sample_rate, c.mel_hop_length
        self.conv_post = weight_norm(nn.Conv1d(self.out_channels, 1, 7, 1, padding=3))
        self.frontend = BandLimitedMel(c)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"HiFiNet expects a 16 kHz log-mel (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        x = self.trunk(mel)
        # PyTorch's default slope (0.01) before conv_post, as HiFi-GAN's official Generator.
        wav = torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)
        if lengths is None:
            return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
        # Bookkeeping only: zero the samples past each item's frames (padding frames still feed the valid
        # samples near the end through the receptive field, as in HiFi-GAN).
        out_len = (lengths.to(wav.device).long() * self.hop_length).clamp(max=wav.shape[-1])
        keep = torch.arange(wav.shape[-1], device=wav.device)[None, :] < out_len[:, None]
        return wav * keep, out_len


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="vocoder",
    paper="DelightfulTTS: The Microsoft Speech Synthesis System for Blizzard Challenge 2021 (Liu et al., 2021): "
          "HiFiNet vocoder, 16 kHz mel -> 48 kHz waveform",
    arxiv="2110.12612",
    official_repo="none (no official code; architecture reconstructed on HiFi-GAN V1, see the module docstring)",
    license="n/a (reconstruction)",
)


_TINY = dict(upsample_initial_channel=16, n_mels=20, upsample_rates=(10, 5, 12), upsample_kernel_sizes=(20, 15, 24),
             resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), n_fft=256,
             win_length=256)


@register_model(params=14_460_545,
                params_source="reconstruction (no official code): HiFi-GAN V1 body with rates (10, 5, 4, 3), "
                "kernels (20, 15, 8, 9), 80 mels; weights + biases, each weight-normed weight counted once "
                "(weight-norm gains g excluded, they add 10,113); computed here on the meta device. The paper "
                "gives no parameter count for HiFiNet",
                verified="A", tiny=_TINY, **_PAPER)
def hifinet(**overrides) -> HiFiNet:
    """HiFiNet as reconstructed: 16 kHz-band 80-mel (hop 200) -> 48 kHz waveform, HiFi-GAN V1 width."""
    return HiFiNet(build_config(HiFiNetConfig, {}, **overrides))
