"""RAVE v1: a realtime variational autoencoder for waveform synthesis, on PQMF sub-bands.

Paper: Antoine Caillon, Philippe Esling, "RAVE: A variational autoencoder for fast and high-quality neural audio
synthesis", arXiv:2111.05011 (2021). Official code: https://github.com/acids-ircam/RAVE (CC BY-NC 4.0; PyPI
``acids-rave`` 2.3.1), ``rave/blocks.py`` (``Encoder``, ``VariationalEncoder``, ``Generator``, ``ResidualStack``,
``UpsampleLayer``, ``NoiseGenerator``), ``rave/core.py`` (``mod_sigmoid``, ``amp_to_impulse_response``,
``fft_convolve``), ``rave/model.py`` (``RAVE``: encode / decode / latent PCA), ``rave/configs/v1.gin``.
This file was written from the paper and from reading that code (layer shapes, constants); none is copied.

Architecture (v1.gin: 44.1 kHz in the repository, 48 kHz in the paper; CAPACITY 64, N_BAND 16, LATENT_SIZE 128,
RATIOS 4-4-4-2; every convolution of the encoder, decoder and noise synthesiser has **no bias**: the gin config
sets ``cc.Conv1d.bias = False`` and ``cc.ConvTranspose1d.bias = False``):

- PQMF (:class:`audiozoo.dsp.pqmf.PQMF`, 16 bands, 100 dB): waveform (B, T) -> bands (B, 16, T/16).
- Encoder: conv k7 (16 -> 64), then per ratio r: BatchNorm, LeakyReLU(0.2), conv k(2r+1) stride r doubling the
  channels (64 -> 128 -> 256 -> 512 -> 1024), then LeakyReLU and a conv k5 with 2 groups to ``2 x 128``
  channels: the posterior mean and a pre-softplus scale (std = softplus(scale) + 1e-4). No weight norm.
  Compression 16 x 4 x 4 x 4 x 2 = 2048 samples per latent frame (21.5 Hz at 44.1 kHz).
- Decoder (weight norm everywhere except the noise synthesiser): conv k7 (128 -> 1024); per ratio: LeakyReLU +
  transposed conv (kernel 2r, stride r, padding r/2) halving the channels, then a residual stack (kernel 3,
  dilations (1,1), (3,1), (5,1): LeakyReLU-conv-LeakyReLU-conv + skip). Three heads on the last 64 channels:
  ``wave`` conv k7 -> 16 bands, ``loudness`` conv k3 -> 1, and the noise synthesiser (3 convs k3 stride 4 ->
  16 x 5 filter amplitudes per 64 band samples; uniform noise filtered per frame). Output bands:
  ``tanh(wave) * mod_sigmoid(loudness)`` (+ filtered noise once the model is "warmed up", i.e. in the
  adversarial stage 2, as the official ``Generator``), then PQMF synthesis.
- Latent analysis (paper Sec. 3.3): PCA of the posterior means, the cumulative explained variance
  (``fidelity``), and cropping / re-projecting latents to the dimensions that hold a chosen variance fraction.

Parameter count (``rave_v1``): 17,612,369 = encoder 4,834,176 + decoder 12,778,193, counted as
``sum(p.numel())`` over the official ``encoder`` and ``decoder`` modules built from v1.gin (what the official
generator optimiser trains): weight norm's ``g`` and ``v`` both counted (legacy ``torch.nn.utils.weight_norm``
makes both parameters); BatchNorm affine weights counted, running statistics not. Measured here by building the
official ``blocks.VariationalEncoder`` / ``blocks.Generator`` from the acids-rave 2.3.1 wheel (plus cached_conv
2.5.0) with gin v1.gin, and by this implementation on the meta device: both 17,612,369 (see docs/models/rave.md).
Not counted: the PQMF (the official ``CachedPQMF`` holds its fixed filters in two conv weights, 16 x 1 x 513 +
16 x 16 x 33, never optimised) and the discriminator (training only; see :mod:`audiozoo.train.tasks.rave`).

Departures: ``forward`` in eval mode decodes the posterior mean (the official one always samples);
``encode``/``forward`` zero-pad the waveform to a multiple of the compression ratio (the official
model expects it); ``decode`` returns (B, T) instead of (B, 1, T); the PQMF synthesis has zero delay (the
official streaming ``CachedPQMF`` adds one frame of M samples; its non-streaming ``PQMF`` has none).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import build_config
from ...dsp.pqmf import PQMF
from ...errors import AudioError, ConfigError
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ..contracts import CodecModel

__all__ = ["RAVE", "RAVEConfig", "RAVEOutput", "mod_sigmoid"]


@dataclass
class RAVEConfig:
    sample_rate: int = 44100
    n_band: int = 16
    pqmf_attenuation: float = 100.0
    capacity: int = 64
    latent_size: int = 128
    ratios: tuple[int, ...] = (4, 4, 4, 2)
    residual_kernel_sizes: tuple[int, ...] = (3,)
    residual_dilations: tuple[tuple[int, ...], ...] = ((1, 1), (3, 1), (5, 1))
    loud_stride: int = 1
    use_noise: bool = True
    noise_ratios: tuple[int, ...] = (4, 4, 4)
    noise_bands: int = 5
    bias: bool = False  # v1.gin: cc.Conv1d.bias = False, cc.ConvTranspose1d.bias = False
    lrelu_slope: float = 0.2


def mod_sigmoid(x: Tensor) -> Tensor:
    """RAVE's positive gain ``2 sigmoid(x)^2.3 + 1e-7`` (DDSP's exp_sigmoid shape; official ``core.mod_sigmoid``)."""
    return 2 * torch.sigmoid(x).pow(2.3) + 1e-7


def _conv(cin: int, cout: int, k: int, *, stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool,
          wn: bool) -> nn.Module:
    """'Same' conv (RAVE's centred padding ``((k-1)d + 1) // 2`` each side for odd receptive fields)."""
    conv = nn.Conv1d(cin, cout, k, stride=stride, dilation=dilation, groups=groups, bias=bias,
                     padding=((k - 1) * dilation) // 2)
    return weight_norm(conv) if wn else conv


class ResidualStack(nn.Module):
    """Sum over kernel sizes of a chain of residual layers ``x + conv(lrelu(conv(lrelu(x))))`` (one per
    dilation pair). ``(B, C, L) -> (B, C, L)``."""

    def __init__(self, dim: int, kernel_sizes: tuple[int, ...], dilations: tuple[tuple[int, ...], ...],
                 bias: bool, slope: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                nn.Sequential(*[m for d in pair for m in (nn.LeakyReLU(slope),
                                                          _conv(dim, dim, k, dilation=d, bias=bias, wn=True))])
                for pair in dilations)
            for k in kernel_sizes)

    def forward(self, x: Tensor) -> Tensor:
        out = 0
        for block in self.blocks:
            y = x
            for layer in block:
                y = y + layer(y)
            out = out + y
        return out


class NoiseGenerator(nn.Module):
    """Filtered-noise synthesiser (DDSP-style, official ``blocks.NoiseGenerator``).

    Strided convs (no weight norm) map features ``(B, C, L)`` at the band rate to ``noise_bands`` linear-frequency
    filter amplitudes per PQMF band and per frame of ``prod(ratios)`` band samples; each frame of uniform noise
    in [-1, 1) is filtered by the zero-phase, Hann-windowed impulse response of those amplitudes (a causal
    linear convolution truncated to the frame, as ``core.fft_convolve``). Returns noise bands ``(B, M, L)``.
    """

    def __init__(self, in_size: int, n_band: int, ratios: tuple[int, ...], noise_bands: int, bias: bool,
                 slope: float) -> None:
        super().__init__()
        chans = [in_size] * len(ratios) + [n_band * noise_bands]
        layers: list[nn.Module] = []
        for i, r in enumerate(ratios):
            layers.append(nn.Conv1d(chans[i], chans[i + 1], 3, stride=r, padding=1, bias=bias))
            if i != len(ratios) - 1:
                layers.append(nn.LeakyReLU(slope))
        self.net = nn.Sequential(*layers)
        self.n_band, self.noise_bands = n_band, noise_bands
        self.frame = int(math.prod(ratios))

    def forward(self, x: Tensor) -> Tensor:
        amp = mod_sigmoid(self.net(x) - 5)  # (B, M * nb, F); the -5 starts the noise almost silent
        b, _, frames = amp.shape
        amp = amp.transpose(1, 2).reshape(b, frames, self.n_band, self.noise_bands)
        ir = torch.fft.irfft(amp.to(torch.float32))  # zero-phase response, 2 (nb - 1) taps centred on 0
        size = ir.shape[-1]
        ir = torch.roll(ir, size // 2, -1) * torch.hann_window(size, dtype=ir.dtype, device=ir.device)
        ir = torch.roll(F.pad(ir, (0, self.frame - size)), -(size // 2), -1)
        noise = torch.rand_like(ir) * 2 - 1
        n = 2 * self.frame
        out = torch.fft.irfft(torch.fft.rfft(noise, n) * torch.fft.rfft(ir, n), n)[..., : self.frame]
        return out.to(x.dtype).permute(0, 2, 1, 3).reshape(b, self.n_band, frames * self.frame)


class Encoder(nn.Module):
    """Bands ``(B, M, T/M)`` -> ``(mean, scale)`` halves ``(B, 2 latent, T / compression)`` (official ``Encoder``
    with ``n_out=2``; module indices of ``net`` follow the official ``CachedSequential``)."""

    def __init__(self, c: RAVEConfig) -> None:
        super().__init__()
        cap, s = c.capacity, c.lrelu_slope
        layers: list[nn.Module] = [_conv(c.n_band, cap, 7, bias=c.bias, wn=False)]
        for i, r in enumerate(c.ratios):
            cin, cout = 2**i * cap, 2 ** (i + 1) * cap
            layers += [nn.BatchNorm1d(cin), nn.LeakyReLU(s), _conv(cin, cout, 2 * r + 1, stride=r, bias=c.bias,
                                                                  wn=False)]
        layers += [nn.LeakyReLU(s), _conv(2 ** len(c.ratios) * cap, 2 * c.latent_size, 5, groups=2, bias=c.bias,
                                          wn=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, bands: Tensor) -> Tensor:
        return self.net(bands)


class Generator(nn.Module):
    """Latent ``(B, latent, L)`` -> bands ``(B, M, L * prod(ratios))`` (official v1 ``Generator``)."""

    def __init__(self, c: RAVEConfig) -> None:
        super().__init__()
        n, cap, s = len(c.ratios), c.capacity, c.lrelu_slope
        layers: list[nn.Module] = [_conv(c.latent_size, 2**n * cap, 7, bias=c.bias, wn=True)]
        for i, r in enumerate(c.ratios):
            cin, cout = 2 ** (n - i) * cap, 2 ** (n - i - 1) * cap
            if r > 1:
                up = weight_norm(nn.ConvTranspose1d(cin, cout, 2 * r, stride=r, padding=r // 2, bias=c.bias))
            else:
                up = _conv(cin, cout, 3, bias=c.bias, wn=True)
            layers += [nn.Sequential(nn.LeakyReLU(s), up),
                       ResidualStack(cout, c.residual_kernel_sizes, c.residual_dilations, c.bias, s)]
        self.net = nn.Sequential(*layers)
        out = cap
        self.wave = _conv(out, c.n_band, 7, bias=c.bias, wn=True)
        k = 2 * c.loud_stride + 1
        self.loudness = weight_norm(nn.Conv1d(out, 1, k, stride=c.loud_stride, padding=k // 2, bias=c.bias))
        self.noise = (NoiseGenerator(out, c.n_band, c.noise_ratios, c.noise_bands, c.bias, s)
                      if c.use_noise else None)
        self.loud_stride = c.loud_stride

    def forward(self, z: Tensor, add_noise: bool = False) -> Tensor:
        x = self.net(z)
        loud = self.loudness(x)
        if self.loud_stride != 1:
            loud = loud.repeat_interleave(self.loud_stride, dim=-1)
        bands = torch.tanh(self.wave(x)) * mod_sigmoid(loud)
        if add_noise and self.noise is not None:
            bands = bands + self.noise(x)
        return bands


class RAVEOutput(NamedTuple):
    """What :meth:`RAVE.forward` returns (a tuple: ``wav`` first)."""

    wav: Tensor  # (B, T) reconstruction
    bands: Tensor  # (B, M, T / M) reconstructed PQMF bands
    target_bands: Tensor  # (B, M, T / M) PQMF bands of the (padded) input
    z: Tensor  # (B, latent, L) sampled latent
    mean: Tensor  # (B, latent, L) posterior mean
    std: Tensor  # (B, latent, L) posterior standard deviation (the KL term is the training task's)


class RAVE(CodecModel):
    """RAVE v1 autoencoder (family ``codec``: continuous latent, ``num_codebooks = 0``).

    - ``encode(wav (B, T)) -> z (B, latent_size, ceil(T / hop_length))``: the posterior mean (``sample=True``:
      a sample).
    - ``decode(z (B, latent_size, L)) -> wav (B, L * hop_length)``.
    - ``forward(wav (B, T)) -> RAVEOutput`` (reconstruction cropped to T, bands, latent, posterior mean and std;
      the KL term is computed by the training task); in training mode from a reparameterised sample, in eval
      mode from the posterior mean.

    Attributes: ``sample_rate``, ``hop_length`` (compression ratio, 2048 in v1), ``frame_rate``,
    ``num_codebooks`` (0). Buffer ``warmed_up`` (0/1): stage 2 of the training (adversarial fine-tuning),
    where the encoder output is detached (encoder frozen) and the noise synthesiser is added, as the official
    model. Buffers ``latent_mean``, ``latent_pca``, ``fidelity``: the latent PCA (:meth:`fit_latent_pca`).
    """

    def __init__(self, config: RAVEConfig) -> None:
        super().__init__()
        c = config
        if not c.ratios or any(int(r) < 1 for r in c.ratios):
            raise ConfigError(f"RAVE ratios must be positive integers, got {c.ratios}")
        if c.use_noise and (math.prod(c.ratios) % math.prod(c.noise_ratios)):
            raise ConfigError(f"RAVE noise_ratios {c.noise_ratios} must divide the decoder's upsampling "
                              f"{math.prod(c.ratios)} (one noise frame per prod(noise_ratios) band samples)")
        if c.noise_bands < 2:
            raise ConfigError("RAVE noise_bands must be >= 2 (an impulse response of 2 (noise_bands - 1) taps)")
        if c.loud_stride < 1 or math.prod(c.ratios) % c.loud_stride:
            raise ConfigError(f"RAVE loud_stride {c.loud_stride} must divide prod(ratios) {math.prod(c.ratios)}")
        self.config = c
        self.pqmf = PQMF(c.pqmf_attenuation, c.n_band)
        self.encoder = Encoder(c)
        self.decoder = Generator(c)
        self.sample_rate = c.sample_rate
        self.latent_size = c.latent_size
        self.hop_length = c.n_band * int(math.prod(c.ratios))
        self.frame_rate = c.sample_rate / self.hop_length
        self.num_codebooks = 0
        self.register_buffer("warmed_up", torch.tensor(0))
        self.register_buffer("latent_mean", torch.zeros(c.latent_size))
        self.register_buffer("latent_pca", torch.eye(c.latent_size))
        self.register_buffer("fidelity", torch.zeros(c.latent_size))

    # ---- stages ---------------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """1 (representation learning) or 2 (adversarial fine-tuning, encoder frozen)."""
        return 2 if int(self.warmed_up) else 1

    def set_warmed_up(self, state: bool) -> None:
        """Switch to stage 2 (``True``): encoder detached and its parameters frozen, noise synthesiser on."""
        self.warmed_up.fill_(int(bool(state)))
        for p in self.encoder.parameters():
            p.requires_grad_(not state)

    # ---- core -----------------------------------------------------------------------------------
    def _as_bt(self, wav: Tensor) -> tuple[Tensor, int]:
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.ndim != 2:
            raise AudioError(f"RAVE takes a mono waveform (B, T) or (B, 1, T), got shape {tuple(wav.shape)}")
        t = wav.shape[-1]
        if t < 1:
            raise AudioError("RAVE got an empty waveform")
        pad = (-t) % self.hop_length
        return (F.pad(wav, (0, pad)) if pad else wav), t

    def posterior(self, wav: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``wav (B, T)`` -> ``(mean, std, bands)``: posterior ``(B, latent, L)`` and the input's PQMF bands."""
        wav, _ = self._as_bt(wav)
        bands = self.pqmf(wav)
        h = self.encoder(bands)
        if int(self.warmed_up):  # stage 2: the encoder is frozen (official VariationalEncoder.forward)
            h = h.detach()
        mean, scale = h.chunk(2, dim=1)
        return mean, F.softplus(scale) + 1e-4, bands

    def encode(self, wav: Tensor, sample: bool = False) -> Tensor:
        """Latent ``(B, latent_size, ceil(T / hop_length))``: the posterior mean, or a sample."""
        mean, std, _ = self.posterior(wav)
        return mean + std * torch.randn_like(mean) if sample else mean

    def decode(self, z: Tensor) -> Tensor:
        """Latent ``(B, latent_size, L)`` -> waveform ``(B, L * hop_length)``."""
        if z.ndim != 3 or z.shape[1] != self.latent_size:
            raise AudioError(f"RAVE.decode expects a latent (B, {self.latent_size}, L), got {tuple(z.shape)}")
        return self.pqmf.inverse(self.decoder(z, add_noise=bool(int(self.warmed_up))))

    def forward(self, wav: Tensor) -> RAVEOutput:
        mean, std, target_bands = self.posterior(wav)
        _, t = self._as_bt(wav)
        # training: a reparameterised sample; eval: the posterior mean (deterministic; the official forward
        # always samples)
        z = mean + std * torch.randn_like(mean) if self.training else mean
        bands = self.decoder(z, add_noise=bool(int(self.warmed_up)))
        out = self.pqmf.inverse(bands)[:, :t]
        return RAVEOutput(out, bands, target_bands, z, mean, std)

    # ---- latent analysis (paper Sec. 3.3) -------------------------------------------------------
    @torch.no_grad()
    def fit_latent_pca(self, latents: Tensor | list[Tensor]) -> Tensor:
        """PCA of posterior means ``(B, latent, L)`` (or a list of them): sets ``latent_mean``, ``latent_pca``
        (rows = principal directions, by decreasing variance) and ``fidelity`` (cumulative explained variance
        ratio, ``fidelity[i]`` = share held by the first ``i + 1`` directions). Returns ``fidelity``.

        An SVD of the centred latent frames, as the official model's sklearn PCA on the validation set.
        """
        zs = latents if isinstance(latents, (list, tuple)) else [latents]
        z = torch.cat([x.detach().transpose(1, 2).reshape(-1, x.shape[1]) for x in zs]).double()
        if z.shape[1] != self.latent_size:
            raise AudioError(f"fit_latent_pca expects latents with {self.latent_size} channels, got {z.shape[1]}")
        if z.shape[0] < 2:
            raise AudioError("fit_latent_pca needs at least 2 latent frames")
        mean = z.mean(0)
        _, s, vh = torch.linalg.svd(z - mean, full_matrices=True)
        var = torch.zeros(self.latent_size, dtype=z.dtype)
        var[: s.numel()] = s.square()
        cum = torch.cumsum(var, 0) / var.sum().clamp_min(1e-30)
        self.latent_mean.copy_(mean.to(self.latent_mean))
        self.latent_pca.copy_(vh.to(self.latent_pca))
        self.fidelity.copy_(cum.to(self.fidelity))
        return self.fidelity.clone()

    def fidelity_dims(self, fraction: float) -> int:
        """Number of principal dimensions that hold at least ``fraction`` of the latent variance (>= 1).

        (The official export keeps ``max(argmax(fidelity > f), 1)`` dimensions rounded up to a power of two;
        ``argmax`` there is one fewer than the count that reaches ``f``.)
        """
        if not 0 < fraction <= 1:
            raise ConfigError(f"fidelity fraction must be in (0, 1], got {fraction}")
        if float(self.fidelity[-1]) <= 0:
            raise ConfigError("the latent PCA is not fitted yet (call fit_latent_pca)")
        reached = (self.fidelity >= fraction - 1e-7).nonzero()
        return int(reached[0]) + 1 if reached.numel() else self.latent_size

    def project_latent(self, z: Tensor) -> Tensor:
        """``z (B, latent, L)`` -> principal coordinates ``(B, latent, L)`` (centred, rotated)."""
        return torch.einsum("dc,bcl->bdl", self.latent_pca.to(z.dtype), z - self.latent_mean.to(z)[:, None])

    def unproject_latent(self, p: Tensor) -> Tensor:
        """Inverse of :meth:`project_latent`."""
        return torch.einsum("dc,bdl->bcl", self.latent_pca.to(p.dtype), p) + self.latent_mean.to(p)[:, None]

    def crop_latent(self, z: Tensor, n_dims: int, fill: str = "zero", generator: torch.Generator | None = None
                    ) -> Tensor:
        """Keep the first ``n_dims`` principal coordinates of ``z`` and re-project to the latent space.

        ``fill``: ``"zero"`` (the mean: the discarded dimensions at their average) or ``"noise"`` (samples of
        N(0, 1), what the official export feeds the decoder for the dimensions it drops).
        """
        if not 1 <= n_dims <= self.latent_size:
            raise ConfigError(f"n_dims must be in [1, {self.latent_size}], got {n_dims}")
        if fill not in ("zero", "noise"):
            raise ConfigError(f"fill must be 'zero' or 'noise', got {fill!r}")
        p = self.project_latent(z)
        rest = p[:, n_dims:]
        if fill == "zero":
            rest = torch.zeros_like(rest)
        else:
            rest = torch.randn(rest.shape, generator=generator, dtype=rest.dtype).to(rest.device)
        return self.unproject_latent(torch.cat([p[:, :n_dims], rest], dim=1))


# --------------------------------------------------------------------------- checkpoint converter
_OFFICIAL_KEYS = (
    (re.compile(r"^encoder\.encoder\.net\."), "encoder.net."),
    (re.compile(r"^decoder\.net\.(\d+)\.net\.1\."), r"decoder.net.\1.1."),
    (re.compile(r"^decoder\.net\.(\d+)\.net\.branches\.(\d+)\.net\.(\d+)\.net\.aligned\.branches\.0\.(\d+)\."),
     r"decoder.net.\1.blocks.\2.\3.\4."),
    (re.compile(r"^decoder\.synth\.branches\.0\."), "decoder.wave."),
    (re.compile(r"^decoder\.synth\.branches\.1\."), "decoder.loudness."),
    (re.compile(r"^decoder\.synth\.branches\.2\.net\."), "decoder.noise.net."),
)
_OFFICIAL_DROP = re.compile(r"^(pqmf\.|discriminator\.|audio_distance\.|multiband_audio_distance\.|receptive_field$|"
                            r"encoder\.warmed_up$|decoder\.synth\.branches\.2\.target_size$)")


def checkpoint_filter_fn(state: dict[str, Any], model: RAVE) -> dict[str, Tensor]:
    """Official acids-rave state dict (a Lightning ``.ckpt``'s ``state_dict``, v1 model) -> this layout.

    Renames the nested ``CachedSequential`` / ``AlignBranches`` paths, turns legacy ``weight_g``/``weight_v`` into
    parametrization keys, takes ``warmed_up`` from ``decoder.warmed_up``, and drops the PQMF filters (recomputed),
    the discriminator and the loss modules. (TorchScript exports ``.ts`` are not state dicts: not supported.)
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if _OFFICIAL_DROP.match(k):
            continue
        if k == "decoder.warmed_up":
            out["warmed_up"] = v
            continue
        for pat, rep in _OFFICIAL_KEYS:
            if pat.match(k):
                k = pat.sub(rep, k)
                break
        out[k] = v
    for k in ("warmed_up", "latent_mean", "latent_pca", "fidelity"):  # absent from bare encoder/decoder dicts
        out.setdefault(k, getattr(model, k).detach().clone())
    return convert_legacy_weight_norm_keys(out)


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="codec",
    paper="RAVE: A variational autoencoder for fast and high-quality neural audio synthesis "
          "(Caillon & Esling, 2021)",
    arxiv="2111.05011",
    official_repo="https://github.com/acids-ircam/RAVE",
    license="CC BY-NC 4.0 (official code; this reimplementation: the project's license)",
    converter=checkpoint_filter_fn,
)


_TINY = dict(n_band=2, capacity=4, latent_size=4, ratios=(2, 2), residual_dilations=((1, 1), (3, 1)),
             use_noise=False, sample_rate=16000)


@register_model(params=17_612_369,
                params_source="official acids-rave 2.3.1 v1.gin: sum(p.numel()) of the built encoder "
                "(VariationalEncoder, 4,834,176) + decoder (Generator, 12,778,193), weight-norm g and v both "
                "counted, no conv biases (v1.gin), BatchNorm affine counted; PQMF filters and discriminator "
                "excluded; measured on the official modules (wheel + cached_conv 2.5.0) and here on meta",
                verified="AT", tiny=_TINY, **_PAPER)
def rave_v1(**overrides) -> RAVE:
    """RAVE v1 (v1.gin: 44.1 kHz, capacity 64, 16 PQMF bands, latent 128, ratios 4-4-4-2, noise 5 bands)."""
    return RAVE(build_config(RAVEConfig, {}, **overrides))
