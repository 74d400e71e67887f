"""APNet: an all-frame-level vocoder that predicts amplitude and phase spectra directly.

Paper: Yang Ai, Zhen-Hua Ling, "APNet: An All-Frame-Level Neural Vocoder Incorporating Direct Prediction of
Amplitude and Phase Spectra", IEEE/ACM TASLP 2023, arXiv:2305.07952. Official code:
https://github.com/YangAi520/APNet (``models.py::Generator``, ``config.json``, ``dataset.py``; no LICENSE
file, so all rights are reserved by its authors: nothing is copied here, the architecture is re-implemented).

Architecture (official ``Generator``; everything runs at the frame rate, there is no upsampling):

- amplitude spectrum predictor (ASP): weight-normed ``Conv1d(n_mels, 512, 7)`` -> the mean of three HiFi-GAN
  ``ResBlock1`` (kernels 3/7/11, dilations 1/3/5) -> LeakyReLU(0.01) -> ``Conv1d(512, n_fft/2+1, 7)`` = the
  log-amplitude spectrum ``log|S|``;
- phase spectrum predictor (PSP): the same trunk, then two *parallel* ``Conv1d(512, n_fft/2+1, 7)`` giving
  pseudo real and imaginary parts ``R``, ``I`` and the phase ``atan2(I, R)`` (the paper's "parallel phase
  estimation architecture", which keeps the phase in (-pi, pi] by construction);
- ``S = exp(log|S|) * e^{j phase}`` -> inverse STFT (Hann window of ``win_length``, centred frames).

Canonical audio settings (official ``config.json``): 16 kHz, 80 mel bins 0-8 kHz (librosa Slaney filters),
``n_fft`` 1024, hop 80 (5 ms), window 320 (20 ms). The mel front-end (official ``dataset.mel_spectrogram``):
``torch.stft`` with reflect padding, magnitude ``sqrt(re^2 + im^2 + 1e-9)``, Slaney mel, ``log(clamp(., 1e-5))``.
It has no parameters and lives in ``model.frontend``.

Two details of the official code that the paper does not state, reproduced here: the activation before the
output convolutions is ``F.leaky_relu`` with PyTorch's default slope 0.01 (the resblocks use 0.1), and the
official ``init_weights`` runs after ``weight_norm`` so it has no effect (see :mod:`audiozoo.nn.resblocks`).

Output length: a mel of ``L`` frames (computed with centred frames from ``T = (L - 1) * hop`` samples) gives
``(L - 1) * hop_length`` samples, as the official ``torch.istft(center=True)`` call (no ``length``) does.

Departures (none for a single unpadded item):

- ``lengths``: padded frames are zeroed before every convolution and in the spectrum, and the iSTFT
  window-envelope normalisation counts only each item's own frames, so a padded batch item equals the same
  item run alone (up to float rounding); samples past ``wav_lengths`` are zero. The official model has
  no padding logic (training uses fixed 8000-sample segments).
- The iSTFT is an exact re-formulation of ``torch.istft`` as one transposed convolution (inverse real DFT,
  window and overlap-add folded into a constant ``(2F, 1, n_fft)`` kernel) so that the model exports to
  ONNX with the tracing exporter, which has no ``irfft``. Measured against ``torch.istft`` in the tests.

Losses (amplitude, anti-wrapping phase, STFT consistency, real/imaginary, mel) live in
:mod:`audiozoo.train.losses.phase`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...dsp.stft import OverlapAddISTFT
from ...errors import AudioError, ConfigError
from ...nn import MRF, convert_legacy_weight_norm_keys, get_padding
from ...nn import remove_weight_norm as _remove_weight_norm
from ...registry import WeightSet, register_model
from ..contracts import VocoderModel

__all__ = [
    "APNet", "APNetConfig", "APNetMelFrontend", "APNetOutput", "AmplitudeSpectrumPredictor",
    "PhaseSpectrumPredictor", "apnet", "checkpoint_filter_fn",
]


@dataclass
class APNetConfig:
    n_mels: int = 80
    # ASP: trunk channels, resblock kernels/dilations (HiFi-GAN ResBlock1, averaged), input/output kernels
    asp_channels: int = 512
    asp_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    asp_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    asp_input_kernel: int = 7
    asp_output_kernel: int = 7
    # PSP: same trunk; the R and I output convs share one kernel size (7 for both in the official config)
    psp_channels: int = 512
    psp_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    psp_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    psp_input_kernel: int = 7
    psp_output_kernel: int = 7
    # audio / STFT (official config.json)
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 80
    win_length: int = 320
    f_min: float = 0.0
    f_max: float | None = 8000.0
    # FreeV (Lv et al., Interspeech 2024, arXiv:2406.08196): "pinv" makes the ASP predict the log-amplitude
    # RESIDUAL over the pseudo-inverse-mel estimate max(|M^+ exp(mel)|, 1e-5), a signal-processing prior that
    # the paper reports speeds up convergence; "none" is APNet as published.
    amplitude_prior: str = "none"

    def __post_init__(self) -> None:
        for name in ("n_mels", "asp_channels", "psp_channels", "sample_rate", "n_fft", "hop_length", "win_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"APNetConfig.{name} must be a positive integer, got {v!r}")
        if self.amplitude_prior not in ("none", "pinv"):
            raise ConfigError(f"APNetConfig.amplitude_prior must be 'none' or 'pinv', got {self.amplitude_prior!r}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"APNetConfig: win_length={self.win_length} must be <= n_fft={self.n_fft}")
        if self.hop_length > self.win_length:
            # the window envelope would have gaps: samples between windows could not be reconstructed
            raise ConfigError(f"APNetConfig: hop_length={self.hop_length} must be <= win_length={self.win_length}")
        for name in ("asp_input_kernel", "asp_output_kernel", "psp_input_kernel", "psp_output_kernel"):
            k = getattr(self, name)
            if k < 1 or k % 2 == 0:
                raise ConfigError(f"APNetConfig.{name} must be odd (length-preserving), got {k}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


class APNetOutput(NamedTuple):
    """Everything the generator computes; spectra are ``(B, n_fft // 2 + 1, L)``."""

    wav: Tensor  # (B, (L - 1) * hop)
    wav_lengths: Tensor  # (B,)
    log_amplitude: Tensor  # ASP output, natural log of |S|
    phase: Tensor  # PSP output in (-pi, pi]
    real: Tensor  # exp(log_amplitude) * cos(phase) (zero on padded frames)
    imag: Tensor  # exp(log_amplitude) * sin(phase)


# --------------------------------------------------------------------------- front-end (no parameters)
class APNetMelFrontend(VocoderMel):
    """Waveform ``(B, T)`` -> natural-log mel magnitude ``(B, n_mels, T // hop + 1)`` and frame lengths ``(B,)``.

    Official ``dataset.mel_spectrogram``: centred ``torch.stft`` (reflect padding), Hann window of
    ``win_length`` zero-padded to ``n_fft``, magnitude ``sqrt(|X|^2 + 1e-9)``, librosa Slaney mel filters,
    ``log(clamp(mel, 1e-5))`` — :class:`audiozoo.dsp.VocoderMel` with ``center=True``, set from an
    :class:`APNetConfig`. ``mel_basis`` is its filterbank ``(n_mels, n_fft // 2 + 1)``.
    """

    config_class = APNetConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max")

    def __init__(self, config: APNetConfig):
        c = config
        super().__init__(c.sample_rate, c.n_fft, c.hop_length, c.win_length, c.n_mels, c.f_min, c.f_max,
                         center=True, pad_mode="reflect", mag_eps=1e-9, log="ln", amin=1e-5)
        self.config = config

    @property
    def mel_basis(self) -> Tensor:
        return self.fb


# --------------------------------------------------------------------------- iSTFT as a transposed conv
# --------------------------------------------------------------------------- paper blocks
def _wn_conv(cin: int, cout: int, kernel: int) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(cin, cout, kernel, 1, padding=get_padding(kernel, 1)))


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask


class AmplitudeSpectrumPredictor(nn.Module):
    """ASP: mel ``(B, n_mels, L)`` -> log-amplitude spectrum ``(B, n_fft // 2 + 1, L)`` (natural log)."""

    def __init__(self, n_mels: int, n_bins: int, channels: int, kernel_sizes, dilations, input_kernel: int,
                 output_kernel: int):
        super().__init__()
        self.input_conv = _wn_conv(n_mels, channels, input_kernel)
        self.resnet = MRF(channels, kernel_sizes, dilations, resblock="1")
        self.output_conv = _wn_conv(channels, n_bins, output_kernel)

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.resnet(self.input_conv(_masked(mel, mask)), mask)
        # official: F.leaky_relu with torch's default slope 0.01 (the resblocks use 0.1)
        return self.output_conv(F.leaky_relu(x))


class PhaseSpectrumPredictor(nn.Module):
    """PSP: mel ``(B, n_mels, L)`` -> wrapped phase ``(B, n_fft // 2 + 1, L)`` in (-pi, pi].

    Parallel phase estimation (paper Sec. III-B): two parallel linear convs give pseudo real and imaginary
    parts ``R``, ``I``; the phase is ``atan2(I, R)``, so it needs no wrapping and stays in range.
    """

    def __init__(self, n_mels: int, n_bins: int, channels: int, kernel_sizes, dilations, input_kernel: int,
                 output_kernel: int):
        super().__init__()
        self.input_conv = _wn_conv(n_mels, channels, input_kernel)
        self.resnet = MRF(channels, kernel_sizes, dilations, resblock="1")
        self.output_r_conv = _wn_conv(channels, n_bins, output_kernel)
        self.output_i_conv = _wn_conv(channels, n_bins, output_kernel)

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> Tensor:
        x = F.leaky_relu(self.resnet(self.input_conv(_masked(mel, mask)), mask))
        return torch.atan2(self.output_i_conv(x), self.output_r_conv(x))


# --------------------------------------------------------------------------- model
class APNet(VocoderModel):
    """APNet vocoder: ``forward(mel (B, n_mels, L), lengths (B,) | None) -> (wav (B, (L-1) hop), wav_lengths)``.

    ``mel`` is the natural-log mel magnitude of :attr:`frontend`. :meth:`forward_with_spectra` also returns
    the predicted log-amplitude, phase and real/imaginary spectra that APNet's training losses need.
    """

    def __init__(self, config: APNetConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_mels = c.sample_rate, c.hop_length, c.n_mels
        if len(c.asp_kernel_sizes) != len(c.asp_dilations) or len(c.psp_kernel_sizes) != len(c.psp_dilations):
            raise ConfigError("APNetConfig: give one dilation tuple per resblock kernel size (asp_*/psp_*)")
        self.frontend = APNetMelFrontend(c)
        self.asp = AmplitudeSpectrumPredictor(c.n_mels, c.n_bins, c.asp_channels, c.asp_kernel_sizes,
                                              c.asp_dilations, c.asp_input_kernel, c.asp_output_kernel)
        self.psp = PhaseSpectrumPredictor(c.n_mels, c.n_bins, c.psp_channels, c.psp_kernel_sizes,
                                          c.psp_dilations, c.psp_input_kernel, c.psp_output_kernel)
        self.istft = OverlapAddISTFT(c.n_fft, c.hop_length, c.win_length)
        if c.amplitude_prior == "pinv":
            pinv = torch.linalg.pinv(self.frontend.mel_basis.to(torch.float64)).float()
            self.register_buffer("mel_pinv", pinv, persistent=False)  # (n_bins, n_mels)
            with torch.no_grad():  # start close to the prior: a small residual (weight-norm gain x 0.01)
                self.asp.output_conv.parametrizations.weight.original0.mul_(0.01)

    def output_length(self, frames: Tensor | int) -> Tensor | int:
        """Centred iSTFT: ``(L - 1) * hop`` samples for ``L`` frames."""
        return (frames - 1).clamp(min=0) * self.hop_length if isinstance(frames, Tensor) else \
            max(int(frames) - 1, 0) * self.hop_length

    def amplitude_prior(self, mel: Tensor) -> Tensor:
        """FreeV's prior ``log(max(|M^+ exp(mel)|, 1e-5))`` ``(B, n_bins, L)`` for a log-mel ``(B, n_mels, L)``."""
        lin = torch.matmul(self.mel_pinv.to(mel.dtype), torch.exp(mel))
        return torch.log(torch.clamp(lin.abs(), min=1e-5))

    def forward_with_spectra(self, mel: Tensor, lengths: Tensor | None = None) -> APNetOutput:
        """All generator outputs (see :class:`APNetOutput`) for ``mel (B, n_mels, L)``, ``lengths (B,)`` frames."""
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"APNet expects a mel spectrogram (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        n_frames = mel.shape[-1]
        if n_frames < 2:
            raise AudioError(f"APNet needs at least 2 mel frames (output is (L - 1) * hop samples), got {n_frames}")
        mask = None
        if lengths is not None:
            if lengths.ndim != 1 or lengths.shape[0] != mel.shape[0]:
                raise AudioError(f"lengths must be (B,) = ({mel.shape[0]},), got shape {tuple(lengths.shape)}")
            lengths = lengths.to(mel.device).clamp(max=n_frames)
            mask = (torch.arange(n_frames, device=mel.device)[None, :] < lengths[:, None]).unsqueeze(1)
            mask = mask.to(mel.dtype)
        log_amp = self.asp(mel, mask)
        if self.config.amplitude_prior == "pinv":
            log_amp = log_amp + self.amplitude_prior(mel)
        phase = self.psp(mel, mask)
        amp = _masked(torch.exp(log_amp), mask)
        real, imag = amp * torch.cos(phase), amp * torch.sin(phase)
        wav = self.istft(real, imag, mask)
        if lengths is None:
            wav_lengths = torch.full((mel.shape[0],), wav.shape[-1], dtype=torch.long, device=mel.device)
        else:
            wav_lengths = (lengths.long() - 1).clamp(min=0) * self.hop_length
            keep = torch.arange(wav.shape[-1], device=wav.device)[None, :] < wav_lengths[:, None]
            wav = wav * keep.to(wav.dtype)
        return APNetOutput(wav, wav_lengths, log_amp, phase, real, imag)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = self.forward_with_spectra(mel, lengths)
        return out.wav, out.wav_lengths

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights for inference/export (outputs unchanged)."""
        _remove_weight_norm(self)


# --------------------------------------------------------------------------- official checkpoints
_OFFICIAL_PREFIXES = (
    ("ASP_input_conv.", "asp.input_conv."), ("ASP_ResNet.", "asp.resnet.resblocks."),
    ("ASP_output_conv.", "asp.output_conv."), ("PSP_input_conv.", "psp.input_conv."),
    ("PSP_ResNet.", "psp.resnet.resblocks."), ("PSP_output_R_conv.", "psp.output_r_conv."),
    ("PSP_output_I_conv.", "psp.output_i_conv."),
)


def checkpoint_filter_fn(state: dict[str, Tensor], model: APNet) -> dict[str, Tensor]:
    """Map an official APNet generator checkpoint (``g_XXXXXXXX``'s ``"generator"`` dict) to audiozoo keys.

    Official ``ASP_ResNet.{j}`` becomes ``asp.resnet.resblocks.{j}`` (the same ResBlock1 layout), the
    ``PSP_output_R/I_conv`` become ``psp.output_r/i_conv``, and legacy ``weight_g``/``weight_v`` become
    parametrization keys. Keys already in audiozoo's layout pass through.
    """
    if "generator" in state and isinstance(state["generator"], dict):
        state = state["generator"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        for old, new in _OFFICIAL_PREFIXES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return convert_legacy_weight_norm_keys(out)


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="vocoder",
    paper="APNet: An All-Frame-Level Neural Vocoder Incorporating Direct Prediction of Amplitude and Phase "
          "Spectra (Ai & Ling, IEEE/ACM TASLP 2023)",
    arxiv="2305.07952",
    official_repo="https://github.com/YangAi520/APNet",
    license="none stated (official repository has no LICENSE file)",
    converter=checkpoint_filter_fn,
)


_TINY = dict(asp_channels=16, psp_channels=16, asp_kernel_sizes=(3, 5), asp_dilations=((1, 3, 5), (1, 3, 5)),
             psp_kernel_sizes=(3, 5), psp_dilations=((1, 3, 5), (1, 3, 5)), n_fft=256, hop_length=64,
             win_length=256, n_mels=32)


@register_model(params=72_191_494, params_source="official models.Generator with config.json (16 kHz, n_fft "
                "1024, 512 channels) built from the official code and counted: ASP 35,175,938 + PSP "
                "37,015,556 (weight_g + weight_v + bias of every weight-normed conv)",
                verified="ATU", tiny=_TINY, **_PAPER,
                weights={"freev_speech16k": WeightSet(
                    "16 kHz speech, hop 256: 64-channel APNet with FreeV's pseudo-inverse amplitude prior, trained "
                    "~8 min on CPU on 68 s of real speech; use as 'apnet.freev_speech16k+griffinlim:32' (its phase "
                    "refined by 32 Griffin-Lim iterations), which beats Griffin-Lim on held-out speech; its own "
                    "phase alone does not (docs/models/apnet.md)",
                    sha256="a821893142317d242a26a88e462f1b56eb417c2d1f6ef86a8aedb1d8f327d276",
                    recipe="recipes/vocoder/apnet_freev_speech.yaml", commit="0ff2ad7", license="Apache-2.0",
                    metrics={"held_out": "9 utterances (6 CMU ARCTIC + 3 LibriSpeech), with 32 GL iterations",
                             "mrstft": 0.892, "pesq_wb": 2.831, "stoi": 0.959,
                             "griffinlim32": {"mrstft": 0.948, "pesq_wb": 2.518, "stoi": 0.944}})})
def apnet(**overrides) -> APNet:
    """Canonical APNet (official config.json: 16 kHz, 80 mels, n_fft 1024, hop 80, window 320, 512 channels)."""
    return APNet(build_config(APNetConfig, None, **overrides))
