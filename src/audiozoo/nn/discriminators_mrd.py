"""Multi-resolution magnitude-spectrogram discriminator (MRD) of UnivNet, in the conditional form Vocos' first release,
WavTokenizer and Language-Codec train with.

Jang et al., "UnivNet", Interspeech 2021, arXiv:2106.07889, Section 2.3; the form read here is Language-Codec's
``languagecodec_decoder/discriminators.py`` (``MultiResolutionDiscriminator``, ``DiscriminatorR``; jishengpeng/
Languagecodec, MIT), which is Vocos' original one (the ``vocos`` 0.1.0 wheel has since replaced it by a band-split
version, :mod:`audiozoo.nn.discriminators_mbd`). For each ``(n_fft, hop, win)`` resolution (default (1024, 256, 1024),
(2048, 512, 2048), (512, 128, 512)) the magnitude of a centred STFT **with a rectangular window** (the official
``window=None``; its comment: "interestingly rectangular window kind of works here") ``(B, 1, bins, frames)`` goes
through five weight-normed Conv2d (1 -> 64 k(7, 5) s(2, 2); 64 -> 64 k(5, 3) s(2, 1); k(5, 3) s(2, 2); k3 s(2, 1);
k3 s(2, 2)), leaky ReLU 0.1, then a k3 output conv to one channel.

Conditioning (``num_embeddings``): an embedding per condition id (the codec's bandwidth id), zero-initialised, adds
the projection-discriminator term ``sum_c emb[id]_c h_c`` (Miyato & Koyama 2018) of the last hidden map ``h`` to the
logits. With ``cond_id=None`` (what :class:`audiozoo.train.tasks._gan.GANTask` passes) the term is left out, which is
the official discriminator at its zero initialisation.

Output format: as :mod:`audiozoo.nn.discriminators` (``(logits, fmaps)``, one entry per resolution; the feature maps
are the five activations and the output map, conditional term included as in the official code). Parameters with the
default resolutions and a 4-id condition: 600,966, as the official module (weight-norm ``g`` and ``v`` counted);
600,198 unconditional.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import AudioError, ConfigError

__all__ = ["DiscriminatorR", "MultiResolutionDiscriminator"]

RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512))
# (kernel, stride, padding) of the five hidden convs
_LAYERS = (((7, 5), (2, 2), (3, 2)), ((5, 3), (2, 1), (2, 1)), ((5, 3), (2, 2), (2, 1)), ((3, 3), (2, 1), (1, 1)),
           ((3, 3), (2, 2), (1, 1)))


class DiscriminatorR(nn.Module):
    """One MRD sub-discriminator on the rectangular-window STFT magnitude at ``resolution = (n_fft, hop, win)``:
    ``(B, T) | (B, 1, T) -> (logits (B, N), fmaps)``."""

    def __init__(self, resolution: Sequence[int], channels: int = 64, num_embeddings: int | None = None,
                 lrelu_slope: float = 0.1):
        super().__init__()
        n_fft, hop, win = (int(v) for v in resolution)
        if not (n_fft >= 2 and 1 <= hop and 1 <= win <= n_fft):
            raise ConfigError(f"DiscriminatorR resolution must be (n_fft, hop, win), win <= n_fft; got {resolution}")
        self.resolution, self.lrelu_slope = (n_fft, hop, win), lrelu_slope
        ins = (1,) + (channels,) * 4
        self.convs = nn.ModuleList(weight_norm(nn.Conv2d(cin, channels, k, s, padding=p))
                                   for cin, (k, s, p) in zip(ins, _LAYERS))
        self.emb = None
        if num_embeddings is not None:
            self.emb = nn.Embedding(num_embeddings, channels)
            nn.init.zeros_(self.emb.weight)
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def spectrogram(self, y: Tensor) -> Tensor:
        """``(B, T)`` -> ``(B, 1, n_fft / 2 + 1, frames)`` magnitudes (centred, reflect padding, rectangular window)."""
        n_fft, hop, win = self.resolution
        if y.shape[-1] <= n_fft // 2:
            raise AudioError(f"DiscriminatorR(n_fft={n_fft}) needs more than {n_fft // 2} samples, got {y.shape[-1]}")
        yf = y if y.dtype == torch.float64 else y.float()  # the STFT in at least float32 (autocast-safe)
        window = torch.ones(win, device=y.device, dtype=yf.dtype)
        spec = torch.stft(yf, n_fft, hop, win, window=window, center=True, return_complex=True)
        return spec.abs().to(y.dtype)[:, None]

    def forward(self, y: Tensor, cond_id: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        if y.ndim == 3 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 2:
            raise AudioError(f"discriminators take a mono waveform (B, T) or (B, 1, T), got shape {tuple(y.shape)}")
        x, fmap = self.spectrogram(y), []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.lrelu_slope)
            fmap.append(x)
        h = None
        if cond_id is not None:
            if self.emb is None:
                raise ConfigError("this DiscriminatorR is not conditional (num_embeddings=None); pass cond_id=None")
            e = self.emb(torch.as_tensor(cond_id, device=x.device).reshape(-1))  # (1 | B, C)
            h = (e[:, :, None, None] * x).sum(1, keepdim=True)
        x = self.conv_post(x)
        if h is not None:
            x = x + h  # the official adds it in place after appending x: its last feature map includes the term
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiResolutionDiscriminator(nn.Module):
    """MRD: one :class:`DiscriminatorR` per resolution. ``forward(y (B, T), cond_id=None) -> (logits, fmaps)``."""

    def __init__(self, resolutions: Sequence[Sequence[int]] = RESOLUTIONS, channels: int = 64,
                 num_embeddings: int | None = None):
        super().__init__()
        if not resolutions:
            raise ConfigError("MultiResolutionDiscriminator needs at least one resolution")
        self.discriminators = nn.ModuleList(DiscriminatorR(r, channels, num_embeddings) for r in resolutions)

    def forward(self, y: Tensor, cond_id: Tensor | None = None) -> tuple[list[Tensor], list[list[Tensor]]]:
        logits, fmaps = [], []
        for d in self.discriminators:
            logit, fmap = d(y, cond_id)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps
