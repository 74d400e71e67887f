"""Statistics embeddings: bags of k-means codes of feed-forward autoencoder bottlenecks, with an MLP head.

Paper: Prateek Verma, "Attention is All You Need? Good Embeddings with Statistics are Enough",
arXiv:2110.03183 (2021). No official code was found; this is a reconstruction from the paper's
description (docs/models/stats_embed.md says what is and is not known).

The method has no convolution, recurrence or attention anywhere:

1. *Views* of the log-mel spectrogram, each a set of vectors ("tokens"): spectral envelopes (each frame,
   averaged over groups of ``envelope_pool`` mel bins), spectral patches (``patch_freq x patch_time``),
   slices (all bins x ``slice_width`` frames) and multi-resolution spectra (the spectrogram averaged over
   ``r x r`` blocks, then sliced, for each ``r`` in ``multires``).
2. One feed-forward autoencoder per view (``in -> ae_hidden -> bottleneck``, ReLU) trained to
   reconstruct its tokens (:meth:`StatsEmbed.reconstruct`; the ``autoencoder`` training task,
   :mod:`audiozoo.train.tasks.autoencoder`, runs the stages).
3. k-means codebooks on the bottleneck codes, at two levels (:meth:`StatsEmbed.fit_codebooks`): *micro*
   (every token) and *macro* (the mean code of each ``macro_frames``-frame segment of the clip).
4. Per clip, a histogram (bag of words) of code assignments per view and level, concatenated.
5. An MLP classifier on the histograms.

Design decisions (departures, each for a stated reason):

- **Soft histograms.** The paper counts hard assignments. Here the assignment of a code ``z`` is
  ``softmax(-||z - c_k||^2 / (temperature * dim))`` over centroids ``c_k`` and the histogram is its mean
  over the clip's tokens: a kernel codebook (van Gemert et al. 2008) that tends to hard counts as the
  temperature goes to 0. It keeps the encoders differentiable through the features, so they can be
  fine-tuned with the head and every parameter takes part in the classifier (the classify contract).
  :meth:`StatsEmbed.histograms` with ``hard=True`` gives the paper's hard counts.
- **Tied-weight decoders** (``x_hat = W1^T relu(W2^T z)``, no decoder biases; Vincent et al. 2010): the
  decoder owns no parameters that the classifier does not use, and the AE has half the weights. Inputs
  are standardised per mel bin (buffers set by :meth:`StatsEmbed.fit_normalization`), so the missing
  output bias costs little.
- **Multi-resolution spectra** are block averages of the input log-mel (coarser time and frequency
  resolution) rather than STFTs with other window sizes, so ``forward`` takes one feature tensor as the
  classify contract requires.

Codebooks, normalisation statistics and the fitted flag are buffers: ``save_pretrained`` /
``from_pretrained`` round-trip them. A freshly built model has random codebooks (for the auto-tests);
fit them before use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import FeatureExtractor, LogMelSpectrogram, stft_lengths
from ...errors import AudioError, ConfigError, DataError
from ...registry import register_model
from ..contracts import ClassifierModel


@dataclass
class StatsEmbedConfig:
    num_classes: int = 200
    n_mels: int = 64
    envelope_pool: int = 4  # envelope = frame averaged over groups of this many mel bins
    patch_freq: int = 8
    patch_time: int = 4
    slice_width: int = 4  # frames per slice (full band)
    multires: tuple[int, ...] = (2, 4)  # block-average factors of the multi-resolution views
    ae_hidden: int = 128
    bottleneck: int = 16
    k_micro: int = 64
    k_macro: int = 16
    macro_frames: int = 32  # segment length (frames) of the macro-level codes
    temperature: float = 0.1
    head_hidden: int = 256
    head_layers: int = 2  # hidden layers of the MLP head
    dropout: float = 0.2
    # front-end
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160


def kmeans(x: Tensor, k: int, iters: int = 50, seed: int = 0) -> tuple[Tensor, Tensor, float]:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007), in torch.

    Args:
        x: points ``(N, D)``; needs ``N >= k``.
    Returns:
        centroids ``(k, D)``, assignments ``(N,)`` (long) and the inertia (mean squared distance to the
        assigned centroid). An emptied cluster is moved to the point farthest from its centroid.
    """
    if x.ndim != 2 or x.shape[0] < k:
        raise DataError(f"kmeans needs points (N, D) with N >= k={k}, got shape {tuple(x.shape)}")
    x = x.detach().float()
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = x.shape[0]
    centroids = x[torch.randint(n, (1,), generator=g)]
    d2 = torch.cdist(x, centroids).pow(2).squeeze(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        idx = torch.multinomial(probs.cpu(), 1, generator=g).to(x.device)
        centroids = torch.cat([centroids, x[idx]])
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(1))
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for it in range(iters):
        dist = torch.cdist(x, centroids).pow(2)
        new_assign = dist.argmin(1)
        if it > 0 and torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        empty = counts == 0
        centroids = torch.where(empty[:, None], centroids, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            far = dist.gather(1, assign[:, None]).squeeze(1).topk(int(empty.sum())).indices
            centroids[empty] = x[far]
    inertia = torch.cdist(x, centroids).pow(2).min(1).values.mean()
    return centroids, assign, float(inertia)


class TiedAutoencoder(nn.Module):
    """Feed-forward AE ``(.., D) -> (.., bottleneck)`` with a tied-weight decoder (no decoder parameters)."""

    def __init__(self, dim: int, hidden: int, bottleneck: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, bottleneck)

    def encode(self, x: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(x)))

    def decode(self, z: Tensor) -> Tensor:
        return F.relu(z @ self.fc2.weight) @ self.fc1.weight


class StatsEmbedFrontend(FeatureExtractor):
    """Waveform ``(B, T)`` -> ln log-mel ``(B, n_mels, L)`` (25 ms / 10 ms at 16 kHz, centred zero-padded
    frames: ``L = T // hop + 1``) and frame lengths."""

    config_class = StatsEmbedConfig
    config_fields = ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels")

    def __init__(self, config: StatsEmbedConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_features = c.sample_rate, c.hop_length, c.n_mels
        self.mel = LogMelSpectrogram(c.sample_rate, n_fft=c.n_fft, win_length=c.win_length,
                                     hop_length=c.hop_length, n_mels=c.n_mels, log="ln")

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return stft_lengths(n_samples, self.config.n_fft, self.config.hop_length, center=True)

    def compute(self, wav: Tensor) -> Tensor:
        return self.mel(wav)


class StatsEmbed(ClassifierModel):
    """Bag-of-codes classifier: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, C)``."""

    def __init__(self, config: StatsEmbedConfig):
        super().__init__()
        c = self.config = config
        f = c.n_mels
        if f % c.envelope_pool or f % c.patch_freq or any(f % r for r in c.multires):
            raise ConfigError(f"envelope_pool, patch_freq and every multires factor must divide n_mels={f}")
        self.num_classes = c.num_classes
        self.frontend = StatsEmbedFrontend(c)
        # view name -> token dimension
        self.view_dims = {"envelope": f // c.envelope_pool, "patch": c.patch_freq * c.patch_time,
                          "slice": f * c.slice_width}
        self.view_dims.update({f"multires{r}": f // r * c.slice_width for r in c.multires})
        self.autoencoders = nn.ModuleDict(
            {v: TiedAutoencoder(d, c.ae_hidden, c.bottleneck) for v, d in self.view_dims.items()}
        )
        for v in self.view_dims:
            self.register_buffer(f"codebook_micro_{v}", torch.randn(c.k_micro, c.bottleneck))
            self.register_buffer(f"codebook_macro_{v}", torch.randn(c.k_macro, c.bottleneck))
        self.register_buffer("feat_mean", torch.zeros(f))
        self.register_buffer("feat_std", torch.ones(f))
        self.register_buffer("codebooks_fitted", torch.zeros((), dtype=torch.bool))
        self.embed_dim = len(self.view_dims) * (c.k_micro + c.k_macro)
        layers: list[nn.Module] = []
        d = self.embed_dim
        for _ in range(c.head_layers):
            layers += [nn.Linear(d, c.head_hidden), nn.ReLU(), nn.Dropout(c.dropout)]
            d = c.head_hidden
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(d, c.num_classes)

    # ----------------------------------------------------------------------------- views
    def _check(self, features: Tensor) -> None:
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise AudioError(f"StatsEmbed expects features (B, {self.config.n_mels}, L), got {tuple(features.shape)}")

    def views(self, features: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """Standardised ``(B, n_mels, L)`` -> ``{view: (tokens (B, N, D), first frame of each token (N,))}``."""
        c = self.config
        b, f, length = features.shape
        x = (features - self.feat_mean[:, None]) / self.feat_std[:, None]
        dev = x.device
        out = {}
        env = F.avg_pool1d(x.transpose(1, 2).reshape(b * length, 1, f), c.envelope_pool)
        out["envelope"] = (env.reshape(b, length, -1), torch.arange(length, device=dev))

        def slices(s: Tensor, width: int, scale: int) -> tuple[Tensor, Tensor]:
            # full-band slices of ``width`` frames: (B, F', L') -> (B, S, F' * width)
            steps = -(-s.shape[-1] // width)
            s = F.pad(s, (0, steps * width - s.shape[-1]))
            tok = s.reshape(b, s.shape[1], steps, width).permute(0, 2, 1, 3).reshape(b, steps, -1)
            return tok, torch.arange(steps, device=dev) * width * scale

        steps = -(-length // c.patch_time)
        p = F.pad(x, (0, steps * c.patch_time - length))
        bands = f // c.patch_freq
        p = p.reshape(b, bands, c.patch_freq, steps, c.patch_time).permute(0, 3, 1, 2, 4)
        starts = (torch.arange(steps, device=dev) * c.patch_time).repeat_interleave(bands)
        out["patch"] = (p.reshape(b, steps * bands, -1), starts)
        out["slice"] = slices(x, c.slice_width, 1)
        for r in c.multires:
            coarse = F.avg_pool2d(x.unsqueeze(1), r, ceil_mode=True).squeeze(1)  # (B, F/r, ceil(L/r))
            out[f"multires{r}"] = slices(coarse, c.slice_width, r)
        return out

    def codes(self, features: Tensor, lengths: Tensor | None = None) -> dict[str, dict[str, Tensor]]:
        """Bottleneck codes per view: ``{view: {"micro": (B, N, z), "micro_mask": (B, N), "macro": (B, G, z),
        "macro_mask": (B, G)}}``; masks are True for valid (non-padding) tokens/segments."""
        self._check(features)
        b, _, length = features.shape
        lengths = (torch.full((b,), length, device=features.device) if lengths is None
                   else lengths.to(features.device))
        out = {}
        for v, (tok, starts) in self.views(features).items():
            z = self.autoencoders[v].encode(tok)
            valid = starts[None, :] < lengths[:, None]  # (B, N)
            seg = starts // self.config.macro_frames
            onehot = F.one_hot(seg, int(seg.max()) + 1).to(z.dtype)  # (N, G)
            w = onehot[None] * valid[..., None].to(z.dtype)  # (B, N, G)
            count = w.sum(1)  # (B, G)
            macro = torch.einsum("bng,bnz->bgz", w, z) / count.clamp(min=1)[..., None]
            out[v] = {"micro": z, "micro_mask": valid, "macro": macro, "macro_mask": count > 0}
        return out

    def _assign(self, z: Tensor, codebook: Tensor, hard: bool) -> Tensor:
        d2 = (z.unsqueeze(-2) - codebook.to(z.dtype)).pow(2).sum(-1)  # (B, N, K)
        if hard:
            return F.one_hot(d2.argmin(-1), codebook.shape[0]).to(z.dtype)
        return torch.softmax(-d2 / (self.config.temperature * z.shape[-1]), dim=-1)

    def histograms(self, features: Tensor, lengths: Tensor | None = None, hard: bool = False) -> Tensor:
        """Bag-of-codes embedding ``(B, embed_dim)``: per view, micro then macro histograms (each sums to 1)."""
        hists = []
        for v, cd in self.codes(features, lengths).items():
            for level in ("micro", "macro"):
                p = self._assign(cd[level], getattr(self, f"codebook_{level}_{v}"), hard)
                m = cd[f"{level}_mask"].to(p.dtype)[..., None]
                hists.append((p * m).sum(1) / m.sum(1).clamp(min=1))
        return torch.cat(hists, dim=-1)

    # ----------------------------------------------------------------------------- classify contract
    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> clip embedding ``(B, head_hidden)`` (the MLP's last hidden layer)."""
        return self.mlp(self.histograms(features, lengths))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.forward_features(features, lengths))

    def embedding(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """What the unsupervised stages produce: the bag-of-codes histograms ``(B, embed_dim)``. Fixed once the
        encoders and codebooks are (a training task may cache it per clip)."""
        return self.histograms(features, lengths)

    def classify_embedding(self, embedding: Tensor) -> Tensor:
        """Logits ``(B, C)`` of :meth:`embedding`'s output (``forward = classify_embedding(embedding(...))``)."""
        return self.head(self.mlp(embedding))

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.head = nn.Linear(self.head.in_features, num_classes).to(self.head.weight.device)

    # ----------------------------------------------------------------------------- non-gradient stages
    def reconstruct(self, features: Tensor, lengths: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        """Each view's tokens through its autoencoder (the AE pretraining stage; the loss is the training task's).

        ``features (B, n_mels, L)`` -> ``{view: (tokens (B, N, D), reconstruction (B, N, D), valid (B, N) bool)}``;
        ``valid`` marks tokens that start inside the clip's ``lengths`` (padding is excluded from the loss).
        """
        self._check(features)
        b, _, length = features.shape
        lengths = (torch.full((b,), length, device=features.device) if lengths is None
                   else lengths.to(features.device))
        out = {}
        for v, (tok, starts) in self.views(features).items():
            ae = self.autoencoders[v]
            out[v] = (tok, ae.decode(ae.encode(tok)), starts[None, :] < lengths[:, None])
        return out

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by reconstruction (the autoencoders); the rest form the classifier."""
        return list(self.autoencoders.parameters())

    @torch.no_grad()
    def fit_normalization(self, features: Tensor, lengths: Tensor | None = None) -> None:
        """Set the per-mel-bin mean/std buffers from ``features (N, n_mels, L)`` (valid frames only)."""
        self._check(features)
        n, f, length = features.shape
        valid = torch.ones(n, length, dtype=torch.bool, device=features.device) if lengths is None else (
            torch.arange(length, device=features.device)[None] < lengths.to(features.device)[:, None])
        frames = features.transpose(1, 2)[valid]  # (M, F)
        self.feat_mean.copy_(frames.mean(0))
        self.feat_std.copy_(frames.std(0).clamp(min=1e-5))

    @torch.no_grad()
    def fit_codebooks(self, features: Tensor, lengths: Tensor | None = None, iters: int = 50, seed: int = 0,
                      max_points: int = 50_000, batch_size: int = 256) -> dict[str, float]:
        """k-means on the autoencoders' codes of ``features (N, n_mels, L)``; fills the codebook buffers.

        Up to ``max_points`` codes per view and level are sampled (seeded). Returns the k-means inertia of
        each ``{level}_{view}``.
        """
        self._check(features)
        c = self.config
        collected: dict[str, list[Tensor]] = {}
        for i in range(0, features.shape[0], batch_size):
            lb = None if lengths is None else lengths[i:i + batch_size]
            for v, cd in self.codes(features[i:i + batch_size], lb).items():
                for level in ("micro", "macro"):
                    collected.setdefault(f"{level}_{v}", []).append(cd[level][cd[f"{level}_mask"]])
        g = torch.Generator().manual_seed(seed)
        inertia = {}
        for key, chunks in collected.items():
            pts = torch.cat(chunks)
            if pts.shape[0] > max_points:
                pts = pts[torch.randperm(pts.shape[0], generator=g)[:max_points].to(pts.device)]
            k = c.k_micro if key.startswith("micro") else c.k_macro
            if pts.shape[0] < k:
                raise DataError(f"fit_codebooks: {pts.shape[0]} {key} codes for {k} centroids; give more clips")
            cent, _, inertia[key] = kmeans(pts, k, iters=iters, seed=seed)
            getattr(self, f"codebook_{key}").copy_(cent)
        self.codebooks_fitted.fill_(True)
        return inertia


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="Attention is All You Need? Good Embeddings with Statistics are Enough (Verma, 2021)",
    arxiv="2110.03183",
    official_repo="",
    license="",
)
_TINY = dict(n_mels=16, envelope_pool=4, patch_freq=4, patch_time=2, slice_width=2, multires=(2,), ae_hidden=8,
             bottleneck=4, k_micro=6, k_macro=3, macro_frames=8, head_hidden=16, num_classes=5)


def _se(base: dict, overrides: dict) -> StatsEmbed:
    return StatsEmbed(build_config(StatsEmbedConfig, base, **overrides))


@register_model(params=294_296, params_source="computed from this config (the paper publishes no layer sizes): "
                "5 tied AEs in->128->16 (envelope 16, patch 32, slice 256, multires2 128, multires4 64 dims) = "
                "74,448; MLP on 5x(64+16)=400 histogram bins, 400->256->256 = 168,448; 200-class head 51,400",
                verified="AT", tiny=_TINY, **_PAPER)
def stats_embed(**overrides) -> StatsEmbed:
    """Canonical statistics-embedding classifier (64 log-mels, 5 views, 64 micro + 16 macro codes each)."""
    return _se({}, overrides)
