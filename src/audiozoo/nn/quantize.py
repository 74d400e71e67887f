"""Vector quantisers for neural audio codecs and discrete-token models.

* :class:`VectorQuantizer` — VQ-VAE codebook (van den Oord et al. 2017, arXiv:1711.00937, Section 3.1)
  with the refinements SoundStream / EnCodec use (Zeghidour et al. 2021, arXiv:2107.03312, Section 3.3;
  Défossez et al. 2022, arXiv:2210.13438, Section 3.2): exponential-moving-average codebook updates
  (van den Oord et al. App. A.1: decay 0.99, Laplace smoothing of the cluster sizes), k-means
  initialisation on the first training batch, replacement of codes whose EMA usage falls below a threshold
  by random vectors of the current batch, and the straight-through estimator. Optional low-dimensional
  code space (input/output projections) and L2-normalised lookup, as DAC (Kumar et al. 2023,
  arXiv:2306.06546, Section 3.2); ``ema=False`` learns the codebook by gradient (needs the codebook loss).
* :class:`ResidualVQ` — residual vector quantisation (SoundStream Algorithm 1) with quantizer dropout
  (SoundStream Section 3.3: per example ``n_q ~ U{1..N_q}`` in training; DAC applies it to a fraction of
  the batch).
* :class:`MaskedChannelRVQ` — Language-Codec's masked channel RVQ (Ji et al. 2024, arXiv:2402.12208, Section 3):
  the first three quantizers each code one third of the channels, in parallel; the rest are RVQ on the residual.
* :class:`FSQ` — finite scalar quantisation (Mentzer et al. 2023, arXiv:2309.15505, Section 3 and App. A.1):
  each channel is bounded and rounded to one of ``L_i`` levels; the implicit codebook has ``prod L_i`` codes.

Layout: features are channels-first ``(B, D, T)`` (as codec encoders emit them). Losses (commitment,
codebook) live in ``audiozoo.train.losses.quantize``: the quantisers return what they need — per codebook,
the vectors it quantised (``inputs``) and the code vectors it chose (``codewords``).

Distributed training: EMA statistics are updated from each process's own batch; with DDP's default buffer
broadcast rank 0's codebook is the one kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["FSQ", "MaskedChannelRVQ", "NormEMAVectorQuantizer", "ResidualVQ", "VQOutput", "VectorQuantizer", "kmeans",
           "spherical_kmeans"]


class VQOutput(NamedTuple):
    """Result of a quantiser's forward.

    ``quantized (B, D, T)``: straight-through output (its gradient flows to the input); ``codes``: ``(B, T)``
    for one codebook, ``(B, Q, T)`` for a residual stack; ``inputs`` / ``codewords``: one ``(B, d, T)`` per
    codebook (``d`` the code dimension) — the vectors quantised and the chosen code vectors, for the losses;
    ``active``: ``(B, Q)`` bool, the codebooks used per item (quantizer dropout), None when all are.
    """

    quantized: Tensor
    codes: Tensor
    inputs: list[Tensor]
    codewords: list[Tensor]
    active: Tensor | None = None


def _sample_rows(x: Tensor, n: int) -> Tensor:
    """``n`` rows of ``x (N, d)`` drawn at random (without replacement when ``N >= n``)."""
    if x.shape[0] >= n:
        return x[torch.randperm(x.shape[0], device=x.device)[:n]]
    return x[torch.randint(0, x.shape[0], (n,), device=x.device)]


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``(N, K)`` between rows of ``a (N, d)`` and ``b (K, d)``."""
    return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.t() + b.pow(2).sum(1)[None]).clamp(min=0)


def _kmeans_pp(samples: Tensor, k: int) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre drawn with probability ~ D(x)^2."""
    n = samples.shape[0]
    if n <= k:
        return _sample_rows(samples, k)
    centres = samples.new_empty(k, samples.shape[1])
    centres[0] = samples[torch.randint(0, n, (1,), device=samples.device)]
    d2 = _sq_dist(samples, centres[:1])[:, 0]
    for i in range(1, k):
        total = d2.sum()
        idx = torch.multinomial(d2 / total, 1) if total > 0 else torch.randint(0, n, (1,), device=samples.device)
        centres[i] = samples[idx]
        d2 = torch.minimum(d2, _sq_dist(samples, centres[i:i + 1])[:, 0])
    return centres


def kmeans(samples: Tensor, k: int, iters: int = 10) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on ``samples (N, d)``: ``(centroids (k, d), cluster sizes (k,))``.

    Seeded by k-means++ (plain random seeds, as EnCodec's, often leave two centres in one cluster); with
    fewer samples than ``k`` the centres are samples drawn with replacement. An empty cluster keeps its
    previous centroid.
    """
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ConfigError(f"kmeans expects samples (N, d) with N >= 1, got {tuple(samples.shape)}")
    means = _kmeans_pp(samples, k)
    counts = torch.zeros(k, device=samples.device, dtype=samples.dtype)
    for _ in range(max(1, iters)):
        assign = _sq_dist(samples, means).argmin(-1)
        counts = torch.bincount(assign, minlength=k).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assign, samples)
        means = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], means)
    return means, counts


def spherical_kmeans(samples: Tensor, k: int, iters: int = 10) -> tuple[Tensor, Tensor]:
    """k-means on the unit sphere (cosine similarity) of unit rows ``samples (N, d)``: ``(unit centroids (k, d),
    cluster sizes (k,))`` of the last assignment. Seeded by ``k`` rows drawn at random (with replacement when
    ``N < k``), as the official BEiT v2 / BEATs ``kmeans(use_cosine_sim=True)``; an empty cluster keeps its centre."""
    if samples.ndim != 2 or samples.shape[0] < 1:
        raise ConfigError(f"spherical_kmeans expects samples (N, d) with N >= 1, got {tuple(samples.shape)}")
    means = _sample_rows(samples, k)
    counts = torch.zeros(k, device=samples.device, dtype=samples.dtype)
    for _ in range(max(1, iters)):
        assign = (samples @ means.t()).argmax(-1)
        counts = torch.bincount(assign, minlength=k).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assign, samples)
        means = torch.where(counts[:, None] > 0, F.normalize(sums, dim=-1), means)
    return means, counts


class VectorQuantizer(nn.Module):
    """One codebook ``(B, D, T) -> VQOutput`` (codes ``(B, T)``).

    Args:
        dim: input channels ``D``.
        codebook_size: number of codes ``K``.
        codebook_dim: code dimension ``d``; when it differs from ``dim``, 1x1 projections map in and out
            (DAC's factorised codes).
        ema: update the codebook by EMA (EnCodec/SoundStream); False: a learned ``nn.Parameter`` codebook.
        decay, eps: EMA decay and Laplace smoothing.
        kmeans_init: initialise the codebook by k-means (``kmeans_iters``) on the first training batch;
            otherwise it starts ~ N(0, 1) (EMA) or uniform(-1/K, 1/K) (learned, as VQ-VAE).
        dead_code_threshold: in training (EMA), codes whose EMA cluster size is below it are replaced by
            random vectors of the batch (0 disables).
        l2_normalize: nearest code by cosine similarity (vectors and codes L2-normalised for the search only).
        replace_interp: where a dead code restarts: ``e(x) + replace_interp (x - e(x))`` for a random batch
            vector ``x`` and its current code ``e(x)``. 1.0 (default, EnCodec): ``x`` itself. Smaller values split
            the busy code's cell near its centre (codebook splitting, Linde, Buzo & Gray 1980): on a structureless
            latent cloud a restarted *sample* is further from the other vectors than the EMA code at the cloud's
            mean and never wins, while a split code takes about half of its parent's vectors.
        count_decay: decay of the EMA usage counts that decide which codes are dead (default: ``decay``). A
            faster one (e.g. 0.8) finds dead codes within a few steps instead of ~1 / (1 - decay).
        standardize: look codes up for the standardised vectors ``(z - mean) / std`` (per code-space channel; the
            batch's statistics in training, running ones (momentum 0.1, saved as buffers ``z_mean`` / ``z_var``)
            in eval / ``encode`` / ``decode``); code vectors map back as ``mean + std e``. Why: a freshly
            initialised encoder emits a cloud whose common offset is ~100x its spread and moves by more than its
            spread at every optimiser step, so any codebook placed on one batch is left behind and the one code
            nearest the new offset takes every frame (codebook collapse, measured in docs/models/encodec.md);
            standardised, the cloud stays where the codes are.
    """

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int | None = None, *, ema: bool = True,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = True, kmeans_iters: int = 10,
                 dead_code_threshold: float = 2.0, l2_normalize: bool = False, replace_interp: float = 1.0,
                 count_decay: float | None = None, standardize: bool = False):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ConfigError(f"VectorQuantizer needs dim >= 1 and codebook_size >= 1, got {dim}, {codebook_size}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"VectorQuantizer decay must be in [0, 1), got {decay}")
        cd = codebook_dim or dim
        self.dim, self.codebook_size, self.codebook_dim = dim, codebook_size, cd
        self.ema, self.decay, self.eps = ema, decay, eps
        self.kmeans_iters, self.dead_code_threshold, self.l2_normalize = kmeans_iters, dead_code_threshold, l2_normalize
        if not 0.0 < replace_interp <= 1.0:
            raise ConfigError(f"VectorQuantizer replace_interp must be in (0, 1], got {replace_interp}")
        if count_decay is not None and not 0.0 <= count_decay < 1.0:
            raise ConfigError(f"VectorQuantizer count_decay must be in [0, 1), got {count_decay}")
        self.replace_interp, self.count_decay = float(replace_interp), count_decay
        self.standardize = bool(standardize)
        if self.standardize:
            self.register_buffer("z_mean", torch.zeros(cd))
            self.register_buffer("z_var", torch.ones(cd))
        self.project_in = nn.Conv1d(dim, cd, 1) if cd != dim else nn.Identity()
        self.project_out = nn.Conv1d(cd, dim, 1) if cd != dim else nn.Identity()
        self.register_buffer("initted", torch.tensor([0.0 if kmeans_init else 1.0]))
        if ema:
            embed = torch.zeros(codebook_size, cd) if kmeans_init else torch.randn(codebook_size, cd)
            self.register_buffer("embed", embed)
            self.register_buffer("embed_avg", embed.clone())
        else:
            self.embed = nn.Parameter(torch.empty(codebook_size, cd).uniform_(-1 / codebook_size, 1 / codebook_size))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        if count_decay is not None:  # training-only usage counts (not saved: checkpoints keep EnCodec's layout)
            self.register_buffer("usage", torch.zeros(codebook_size), persistent=False)

    @property
    def bits(self) -> float:
        """Bits per code, ``log2(K)``."""
        return math.log2(self.codebook_size)

    # ---- lookup -------------------------------------------------------------------------------------
    def _nearest(self, flat: Tensor) -> Tensor:
        """``flat (N, d)`` -> nearest code indices ``(N,)`` (max of ``-||x - e||^2``, EnCodec's expression)."""
        embed = self.embed
        if self.l2_normalize:
            flat, embed = F.normalize(flat, dim=-1), F.normalize(embed, dim=-1)
        et = embed.t()
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ et + et.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.dim:
            raise ConfigError(f"{type(self).__name__} expects (B, {self.dim}, T), got {tuple(x.shape)}")

    _STD_EPS = 1e-10  # variance floor of ``standardize`` (fresh encoders' latents vary by ~1e-3)
    _STD_MOMENTUM = 0.1

    def _running_stats(self) -> tuple[Tensor, Tensor]:
        return self.z_mean, (self.z_var + self._STD_EPS).sqrt()

    def encode(self, x: Tensor) -> Tensor:
        """``(B, D, T)`` -> codes ``(B, T)`` int64."""
        self._check(x)
        z = self.project_in(x)
        b, d, t = z.shape
        flat = z.transpose(1, 2).reshape(-1, d)
        if self.standardize:
            mean, std = self._running_stats()
            flat = (flat - mean) / std
        return self._nearest(flat).view(b, t)

    def codewords(self, codes: Tensor, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Code vectors ``(B, d, T)`` of ``codes (B, T)`` (in the code space, before ``project_out``; with
        ``standardize`` mapped back by ``stats`` = (mean, std), default the running ones)."""
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ConfigError(f"codes must be in [0, {self.codebook_size - 1}]")
        e = F.embedding(codes, self.embed)
        if self.standardize:
            mean, std = stats if stats is not None else self._running_stats()
            e = e * std + mean
        return e.transpose(1, 2)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, T)`` -> ``(B, D, T)``."""
        return self.project_out(self.codewords(codes))

    # ---- training updates ------------------------------------------------------------------------------
    @torch.no_grad()
    def _init_codebook(self, flat: Tensor) -> None:
        means, counts = kmeans(flat.float(), self.codebook_size, self.kmeans_iters)
        self.embed.data.copy_(means)
        if self.ema:
            # EMA state consistent with the means (embed = embed_avg / cluster_size); EnCodec starts embed_avg at
            # the means instead, which shrinks the codes for the first ~1 / (1 - decay) steps
            self.embed_avg.data.copy_(means * counts[:, None])
        self.cluster_size.data.copy_(counts)
        if self.count_decay is not None:
            self.usage.data.copy_(counts)
        self.initted.data.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes: Tensor) -> None:
        onehot = F.one_hot(codes, self.codebook_size).to(flat.dtype)
        self.cluster_size.data.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        if self.ema:
            self.embed_avg.data.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
            n = self.cluster_size.sum()
            # Laplace smoothing (van den Oord et al. App. A.1) so that unused codes do not divide by zero
            smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
            self.embed.data.copy_(self.embed_avg / smoothed[:, None])
        usage = self.cluster_size
        if self.count_decay is not None:
            usage = self.usage
            usage.data.mul_(self.count_decay).add_(onehot.sum(0), alpha=1 - self.count_decay)
        if self.dead_code_threshold > 0:
            dead = usage < self.dead_code_threshold
            if bool(dead.any()):
                fresh = _sample_rows(flat, int(dead.sum()))
                if self.replace_interp < 1.0:
                    near = self.embed[self._nearest(fresh)].to(fresh.dtype)
                    fresh = near + self.replace_interp * (fresh - near)
                self.embed.data[dead] = fresh.to(self.embed.dtype)
                # a replaced code starts at the threshold, its EMA sum consistent with it
                self.cluster_size.data[dead] = self.dead_code_threshold
                usage.data[dead] = self.dead_code_threshold
                if self.ema:
                    self.embed_avg.data[dead] = fresh * self.dead_code_threshold

    def forward(self, x: Tensor, mask: Tensor | None = None) -> VQOutput:
        """Quantise ``x (B, D, T)``; ``mask (B, T)`` bool marks the frames that train the codebook (k-means,
        EMA, dead codes); padding is quantised but does not update it."""
        self._check(x)
        z = self.project_in(x)
        b, d, t = z.shape
        flat = z.transpose(1, 2).reshape(-1, d)
        sel = flat if mask is None else flat[mask.reshape(-1).to(flat.device)]
        stats = None
        if self.standardize:
            stats = self._running_stats()
            if self.training and sel.shape[0] > 1:
                with torch.no_grad():
                    bm, bv = sel.detach().float().mean(0), sel.detach().float().var(0, unbiased=False)
                    first = self.initted.item() == 0
                    self.z_mean.data.copy_(bm if first else torch.lerp(self.z_mean, bm, self._STD_MOMENTUM))
                    self.z_var.data.copy_(bv if first else torch.lerp(self.z_var, bv, self._STD_MOMENTUM))
                stats = (bm.to(flat.dtype), (bv + self._STD_EPS).sqrt().to(flat.dtype))
            flat = (flat - stats[0]) / stats[1]
            sel = flat if mask is None else flat[mask.reshape(-1).to(flat.device)]
        if self.training:
            if self.initted.item() == 0 and sel.shape[0] > 0:
                self._init_codebook(sel.detach())
        codes = self._nearest(flat.detach()).view(b, t)
        zq = self.codewords(codes, stats)  # looked up before the update, as EnCodec
        if self.training and sel.shape[0] > 0:
            sel_codes = codes.reshape(-1) if mask is None else codes.reshape(-1)[mask.reshape(-1).to(flat.device)]
            self._ema_update(sel.detach().float(), sel_codes)
        quantized = self.project_out(z + (zq - z).detach())  # straight-through estimator (VQ-VAE eq. 3)
        return VQOutput(quantized, codes, [z], [zq])


class NormEMAVectorQuantizer(nn.Module):
    """One L2-normalised codebook with EMA updates ``(B, d, T) -> VQOutput`` (codes ``(B, T)``): the quantiser of
    BEiT v2's VQ-KD (Peng et al. 2022, arXiv:2208.06366, Sec. 2.1) and BEATs' tokenizers (official
    ``beats/quantizer.py`` ``NormEMAVectorQuantizer``).

    Vectors are L2-normalised over channels and take the nearest code (squared distance, as the official code; codes
    are unit vectors, so it is the highest cosine). In training: the first batch initialises the codebook by
    spherical k-means (:func:`spherical_kmeans`, 10 iterations, as the official ``kmeans_init``); after that each
    code used by the batch moves to ``l2norm(decay e + (1 - decay) l2norm(mean of its vectors))``, unused codes stay
    (no dead-code restarts, as the official). ``cluster_size`` is the EMA of the codes' usage counts (statistics
    only). ``quantized`` is the straight-through ``z + sg[e - z]`` of the *normalised* ``z``; ``inputs`` /
    ``codewords`` (``z``, ``e``) feed :func:`audiozoo.train.losses.quantize.commitment_loss` (the official
    ``beta * mse(sg[e], z)``, beta 1). Buffers: ``embed (K, d)``, ``cluster_size (K,)``, ``initted``. Without
    ``kmeans_init`` the codebook starts as random unit vectors; an uninitialised (all-zero) codebook maps every
    vector to code 0 outside training. The official cross-process all-reduce of the statistics is not done.
    """

    def __init__(self, dim: int, codebook_size: int, *, decay: float = 0.99, kmeans_init: bool = True,
                 kmeans_iters: int = 10):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ConfigError(f"NormEMAVectorQuantizer needs dim, codebook_size >= 1, got {dim}, {codebook_size}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"NormEMAVectorQuantizer decay must be in [0, 1), got {decay}")
        self.dim, self.codebook_size, self.decay, self.kmeans_iters = dim, codebook_size, float(decay), kmeans_iters
        embed = torch.zeros(codebook_size, dim)
        if not kmeans_init and not embed.is_meta:
            embed = F.normalize(torch.randn(codebook_size, dim), dim=-1)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("initted", torch.tensor([0.0 if kmeans_init else 1.0]))

    def _nearest(self, flat: Tensor) -> Tensor:
        e = self.embed.to(flat.dtype)
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)[None] - 2 * flat @ e.t()
        return dist.argmin(-1)

    def encode(self, x: Tensor) -> Tensor:
        """``(B, d, T)`` -> codes ``(B, T)`` int64 (no update)."""
        if x.ndim != 3 or x.shape[1] != self.dim:
            raise ConfigError(f"NormEMAVectorQuantizer expects (B, {self.dim}, T), got {tuple(x.shape)}")
        z = F.normalize(x, dim=1)
        return self._nearest(z.transpose(1, 2).reshape(-1, self.dim)).view(x.shape[0], x.shape[2])

    @torch.no_grad()
    def _init(self, sel: Tensor) -> None:
        means, counts = spherical_kmeans(sel, self.codebook_size, self.kmeans_iters)
        self.embed.copy_(means)
        self.cluster_size.copy_(counts)
        self.initted.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, sel: Tensor, codes: Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.codebook_size).to(sel.dtype)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        sums = torch.zeros(self.codebook_size, self.dim, dtype=sel.dtype, device=sel.device).index_add_(0, codes, sel)
        means = F.normalize(sums / counts.clamp(min=1)[:, None], dim=-1)
        moved = F.normalize(torch.lerp(self.embed.to(sel.dtype), means, 1 - self.decay), dim=-1)
        self.embed.copy_(torch.where(counts[:, None] > 0, moved, self.embed.to(sel.dtype)))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> VQOutput:
        """Quantise ``x (B, d, T)``; ``mask (B, T)`` bool marks the frames that train the codebook (padding does not).
        As the official: the first training batch initialises the codebook before its lookup; code vectors are
        looked up before the EMA update."""
        if x.ndim != 3 or x.shape[1] != self.dim:
            raise ConfigError(f"NormEMAVectorQuantizer expects (B, {self.dim}, T), got {tuple(x.shape)}")
        z = F.normalize(x, dim=1)
        flat = z.transpose(1, 2).reshape(-1, self.dim)
        keep = None if mask is None else mask.reshape(-1).to(flat.device).bool()
        sel = flat.detach().float() if keep is None else flat.detach().float()[keep]
        if self.training and self.initted.item() == 0 and sel.shape[0] > 0:
            self._init(sel)
        codes = self._nearest(flat.detach())
        e = F.embedding(codes, self.embed).to(z.dtype)
        if self.training and sel.shape[0] > 0:
            self._ema_update(sel, codes if keep is None else codes[keep])
        b, _, t = x.shape
        e = e.view(b, t, self.dim).transpose(1, 2)
        return VQOutput(z + (e - z).detach(), codes.view(b, t), [z], [e])


class ResidualVQ(nn.Module):
    """Residual VQ: ``num_quantizers`` :class:`VectorQuantizer` s, each quantising the previous residual.

    Args:
        quantizer_dropout: in training, the fraction of batch items that use only the first
            ``n_q ~ U{1..N_q}`` codebooks (1.0: SoundStream, every item; DAC: 0.5); 0 disables.
        standardize_input: quantise ``u = (x - mean) / std`` per channel (the batch's statistics in training,
            running ones -- momentum 0.1, buffers ``in_mean`` / ``in_var`` -- in eval, ``encode``) and return /
            decode in that standardised space, as a BatchNorm without affine before the codebooks. A fresh
            encoder's latents are a common offset ~100x larger than their variation, moving at every step: the
            codes collapse onto the offset and the decoder sees the variation only as a 1 % ripple on it. Here the
            offset never reaches codes or decoder (Huh et al. 2023, arXiv:2305.08842, on the codebook's
            covariate shift). The gradient reaching ``x`` is scaled by ``1 / std`` (statistics not differentiated).
        **vq_kwargs: passed to every :class:`VectorQuantizer`.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, codebook_dim: int | None = None, *,
                 quantizer_dropout: float = 0.0, standardize_input: bool = False, **vq_kwargs):
        super().__init__()
        if num_quantizers < 1:
            raise ConfigError(f"ResidualVQ needs num_quantizers >= 1, got {num_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ConfigError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(VectorQuantizer(dim, codebook_size, codebook_dim, **vq_kwargs)
                                    for _ in range(num_quantizers))
        self.standardize_input = bool(standardize_input)
        if self.standardize_input:
            self.register_buffer("in_mean", torch.zeros(dim))
            self.register_buffer("in_var", torch.ones(dim))
            self.register_buffer("in_initted", torch.tensor([0.0]))

    def _standardized(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x (B, D, T)`` -> ``(x - mean) / std`` (see ``standardize_input``); identity when it is off."""
        if not self.standardize_input:
            return x
        if self.training:
            with torch.no_grad():
                flat = x.detach().transpose(1, 2).reshape(-1, x.shape[1]).float()
                if mask is not None:
                    flat = flat[mask.reshape(-1).to(flat.device).bool()]
                if flat.shape[0] > 1:
                    mean, var = flat.mean(0), flat.var(0, unbiased=False)
                    first = self.in_initted.item() == 0
                    self.in_mean.data.copy_(mean if first else torch.lerp(self.in_mean, mean, 0.1))
                    self.in_var.data.copy_(var if first else torch.lerp(self.in_var, var, 0.1))
                    self.in_initted.data.fill_(1.0)
                else:
                    mean, var = self.in_mean, self.in_var
            return (x - mean[:, None].to(x.dtype)) / (var[:, None] + 1e-10).sqrt().to(x.dtype)
        return (x - self.in_mean[:, None].to(x.dtype)) / (self.in_var[:, None] + 1e-10).sqrt().to(x.dtype)

    def bitrate(self, frame_rate: float, n_q: int | None = None) -> float:
        """Bits per second at ``frame_rate`` frames/s with ``n_q`` codebooks: ``n_q log2(K) frame_rate``."""
        return (n_q or self.num_quantizers) * math.log2(self.codebook_size) * frame_rate

    def _n_q(self, n_q: int | None) -> int:
        n = self.num_quantizers if n_q is None else int(n_q)
        if not 1 <= n <= self.num_quantizers:
            raise ConfigError(f"n_q must be in [1, {self.num_quantizers}], got {n_q}")
        return n

    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """``(B, D, T)`` -> codes ``(B, Q, T)`` with the first ``n_q`` codebooks (default all)."""
        residual, codes = self._standardized(x) if self.standardize_input else x, []
        for layer in self.layers[: self._n_q(n_q)]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    @torch.no_grad()
    def calibrate_standardization(self, x: Tensor) -> None:
        """Set the running statistics of every ``standardize`` layer to the exact ones of latents ``x (B, D, T)``,
        layer by layer (a later layer sees the residual the earlier ones leave in eval mode). Training looks codes
        up with each batch's statistics and keeps only a lagging running average for eval, as BatchNorm does;
        recalibrating on training latents after training (as for BatchNorm) removes that lag. With
        ``standardize_input`` the input statistics are set first, from ``x``."""
        if self.standardize_input:
            flat = x.transpose(1, 2).reshape(-1, x.shape[1]).float()
            self.in_mean.data.copy_(flat.mean(0))
            self.in_var.data.copy_(flat.var(0, unbiased=False))
            self.in_initted.data.fill_(1.0)
            x = self._standardized(x)
        residual = x
        for layer in self.layers:
            if layer.standardize:
                z = layer.project_in(residual)
                flat = z.transpose(1, 2).reshape(-1, z.shape[1]).float()
                layer.z_mean.data.copy_(flat.mean(0))
                layer.z_var.data.copy_(flat.var(0, unbiased=False))
            residual = residual - layer.decode(layer.encode(residual))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q', T)``, ``Q' <= num_quantizers`` -> the sum of the first ``Q'`` layers' vectors."""
        if codes.ndim != 3 or not 1 <= codes.shape[1] <= self.num_quantizers:
            raise ConfigError(f"ResidualVQ.decode expects codes (B, Q <= {self.num_quantizers}, T), got "
                              f"{tuple(codes.shape)}")
        out = self.layers[0].decode(codes[:, 0])
        for i in range(1, codes.shape[1]):
            out = out + self.layers[i].decode(codes[:, i])
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None, n_q: int | None = None) -> VQOutput:
        """Quantise ``x (B, D, T)`` with ``n_q`` codebooks (default all; quantizer dropout in training).

        ``mask (B, T)``: valid frames (codebook statistics only). Returns codes ``(B, Q, T)`` and, under
        dropout, ``active (B, Q)``: the items' codebooks used (inactive ones add nothing, train nothing).
        """
        n = self._n_q(n_q)
        b, _, t = x.shape
        active = None
        if self.training and self.quantizer_dropout > 0 and n_q is None:
            n_item = torch.full((b,), n, dtype=torch.long)
            drop = torch.rand(b) < self.quantizer_dropout
            n_item = torch.where(drop, torch.randint(1, n + 1, (b,)), n_item).to(x.device)
            active = torch.arange(n, device=x.device)[None] < n_item[:, None]  # (B, Q)
        x = self._standardized(x, mask)
        residual, quantized = x, torch.zeros_like(x)
        codes, inputs, words = [], [], []
        for i, layer in enumerate(self.layers[:n]):
            m = mask
            if active is not None:
                frames = active[:, i, None].expand(b, t)
                m = frames if m is None else (m.to(x.device) & frames)
            out = layer(residual, m)
            q = out.quantized if active is None else out.quantized * active[:, i, None, None].to(x.dtype)
            quantized = quantized + q
            residual = residual - out.quantized
            codes.append(out.codes)
            inputs += out.inputs
            words += out.codewords
        return VQOutput(quantized, torch.stack(codes, 1), inputs, words, active)


class MaskedChannelRVQ(nn.Module):
    """Masked channel residual VQ (MCRVQ) of Language-Codec (Ji et al., arXiv:2402.12208, Section 3), as the
    official code implements it (``languagecodec_encoder/quantization/core_vq.py``, ``LanguageVectorQuantization``).

    With ``G = num_masked`` (3): quantizer ``k < G`` sees only the channel group ``[bounds[k], bounds[k+1])``
    (``bounds[k] = k * D // G``: 42 / 43 / 43 channels of EnCodec's 128), the other channels zeroed; the ``G``
    outputs are summed **in parallel** (each quantises the raw latent, not a residual). Quantizers ``>= G`` are
    ordinary residual VQ on ``x - sg(q_1 + ... + q_G)``. With ``n_q < G`` only the first ``n_q`` groups are
    coded and the other channels decode to zero.

    Where the code departs from the paper's text, and how this class follows the code:

    * The paper calls the scheme *residual* VQ whose first quantizers are restricted by a mask to "a specified
      space" (the authors' words in the repository's issue 8; the paper's Section 3 was not readable offline);
      the code's first three quantizers are parallel (none sees a residual) and their groups are the uneven
      thirds ``D // 3`` and ``2D // 3``. The paper's headline model has 4 codebooks; the released checkpoint
      (``languagecodec_paper_8nq``) has 8 and is trained with ``n_q`` drawn from {3..8} per step (whole batch;
      ``train_n_q`` here); its ``infer`` always uses 8.
    * The official codebooks are full width (``D``) and see zero-padded inputs. K-means, EMA updates and dead-code
      replacement only ever average or copy masked vectors, so their entries outside the group stay exactly zero:
      here the first ``G`` codebooks hold only their group's channels (``codebook_width(k)``), which is the same
      nearest-code search and makes the masking structural (the converter slices the official codebooks and
      refuses any with non-zero entries outside the group).
    * The official ``encode`` forgets the mask and runs plain RVQ; with codebooks that are zero outside their groups
      it gives the same codes as its masked ``forward`` (the nearest code of a group ignores the other channels),
      so :meth:`encode` here applies the mask explicitly and equals ``forward``'s codes.
    * The official bitrate formula uses ``log2(2048)`` bits for its 1024-entry codebooks (6.6 "kbps" -> 8
      quantizers); the true rate is ``n_q * 10 * 75 = 6`` kbit/s (:meth:`bitrate`).
    * Gradients: as the official code (EnCodec's RVQ, facebookresearch/encodec issue 25), each residual stage's
      input is ``x - sg(...)``, so the straight-through gradient reaches ``x`` once through the masked sum and once
      per residual stage (``max(n_q - G, 0) + 1`` times the upstream gradient). :class:`ResidualVQ` instead passes
      it once.
    * Losses: ``inputs`` / ``codewords`` of the masked stages are zero-padded to ``D`` channels, so
      :func:`audiozoo.train.losses.quantize.commitment_loss` equals the official penalty (the mean over codebooks
      of an MSE over all ``D`` channels).

    Args:
        dim: latent channels ``D``; num_quantizers: ``N_q`` (>= 1); codebook_size: ``K``.
        num_masked: ``G``, the parallel masked quantizers (official: 3); ``D >= G``.
        train_n_q: in training, with ``n_q`` not given, the number of quantizers is drawn from these for the whole
            batch each call (official: ``(3, 4, 5, 6, 7, 8)``); None: all.
        **vq_kwargs: passed to every :class:`VectorQuantizer` (decay, kmeans_init, kmeans_iters, dead_code_threshold,
            l2_normalize, ...). ``codebook_dim`` (not in the official model) gives every quantizer DAC-style
            projections from its group (or the whole latent) to ``codebook_dim``; the loss terms are then those
            ``(B, codebook_dim, T)`` code-space vectors, not zero-padded.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, *, num_masked: int = 3,
                 train_n_q: Sequence[int] | None = None, **vq_kwargs):
        super().__init__()
        if num_quantizers < 1 or num_masked < 1 or dim < num_masked:
            raise ConfigError(f"MaskedChannelRVQ needs num_quantizers >= 1, num_masked >= 1 and dim >= num_masked, got "
                              f"{num_quantizers}, {num_masked}, {dim}")
        choices = tuple(int(n) for n in train_n_q) if train_n_q else None
        if choices and not all(1 <= n <= num_quantizers for n in choices):
            raise ConfigError(f"train_n_q must lie in [1, {num_quantizers}], got {list(choices)}")
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.num_masked, self.train_n_q = num_masked, choices
        self._pad_terms = vq_kwargs.get("codebook_dim") is None  # loss terms in the latent space (not projected)
        # official split: residual[:, :D//3], [D//3 : 2D//3], [2D//3:] (core_vq.py shape1, shape2)
        self.bounds = [k * dim // num_masked for k in range(num_masked + 1)]
        self.layers = nn.ModuleList(
            VectorQuantizer(self.codebook_width(i), codebook_size, **vq_kwargs) for i in range(num_quantizers))

    def codebook_width(self, k: int) -> int:
        """Channels of quantizer ``k``'s codebook: its group's width for ``k < num_masked``, else ``dim``."""
        return self.bounds[k + 1] - self.bounds[k] if k < self.num_masked else self.dim

    def group(self, k: int) -> tuple[int, int]:
        """Channel range ``[lo, hi)`` quantizer ``k`` sees (the whole latent for the residual stages)."""
        return (self.bounds[k], self.bounds[k + 1]) if k < self.num_masked else (0, self.dim)

    def bitrate(self, frame_rate: float, n_q: int | None = None) -> float:
        """Bits per second at ``frame_rate`` frames/s with ``n_q`` codebooks: ``n_q log2(K) frame_rate``."""
        return (n_q or self.num_quantizers) * math.log2(self.codebook_size) * frame_rate

    def _n_q(self, n_q: int | None) -> int:
        n = self.num_quantizers if n_q is None else int(n_q)
        if not 1 <= n <= self.num_quantizers:
            raise ConfigError(f"n_q must be in [1, {self.num_quantizers}], got {n_q}")
        return n

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.dim:
            raise ConfigError(f"MaskedChannelRVQ expects (B, {self.dim}, T), got {tuple(x.shape)}")

    def _place(self, k: int, v: Tensor) -> Tensor:
        """Quantizer ``k``'s ``(B, width, T)`` output -> ``(B, D, T)``, zero outside its group."""
        lo, hi = self.group(k)
        return v if (lo, hi) == (0, self.dim) else F.pad(v, (0, 0, lo, self.dim - hi))

    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """``(B, D, T)`` -> codes ``(B, n_q, T)`` (default all ``N_q``); equal to :meth:`forward`'s codes."""
        self._check(x)
        n, g = self._n_q(n_q), self.num_masked
        codes, masked = [], torch.zeros_like(x)
        for k in range(min(n, g)):
            lo, hi = self.group(k)
            c = self.layers[k].encode(x[:, lo:hi])
            masked = masked + self._place(k, self.layers[k].decode(c))
            codes.append(c)
        residual = x - masked
        for k in range(g, n):
            c = self.layers[k].encode(residual)
            residual = residual - self.layers[k].decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q', T)``, ``1 <= Q' <= N_q`` -> the sum of the first ``Q'`` quantizers' vectors ``(B, D, T)``."""
        if codes.ndim != 3 or not 1 <= codes.shape[1] <= self.num_quantizers:
            raise ConfigError(f"MaskedChannelRVQ.decode expects codes (B, Q <= {self.num_quantizers}, T), got "
                              f"{tuple(codes.shape)}")
        out = self._place(0, self.layers[0].decode(codes[:, 0]))
        for k in range(1, codes.shape[1]):
            out = out + self._place(k, self.layers[k].decode(codes[:, k]))
        return out

    def forward(self, x: Tensor, mask: Tensor | None = None, n_q: int | None = None) -> VQOutput:
        """Quantise ``x (B, D, T)`` with ``n_q`` codebooks (default: all, or one of ``train_n_q`` in training).

        ``mask (B, T)``: valid frames (codebook statistics only). Returns ``quantized (B, D, T)`` (straight-through),
        codes ``(B, n_q, T)`` and per codebook the zero-padded ``(B, D, T)`` inputs and code vectors.
        """
        self._check(x)
        if n_q is None and self.training and self.train_n_q:
            n_q = self.train_n_q[int(torch.randint(len(self.train_n_q), ()).item())]
        n, g = self._n_q(n_q), self.num_masked
        quantized, masked_sum = torch.zeros_like(x), torch.zeros_like(x)
        codes, inputs, words = [], [], []
        for k in range(min(n, g)):  # parallel masked stages: each sees only its channel group of the raw latent
            lo, hi = self.group(k)
            out = self.layers[k](x[:, lo:hi], mask)
            q = self._place(k, out.quantized)
            quantized, masked_sum = quantized + q, masked_sum + q.detach()
            codes.append(out.codes)
            pad = self._place if self._pad_terms else (lambda _, v: v)
            inputs.append(pad(k, out.inputs[0]))
            words.append(pad(k, out.codewords[0]))
        residual = x - masked_sum
        for k in range(g, n):  # ordinary RVQ on x - sg(q_1 + ... + q_G)
            out = self.layers[k](residual, mask)
            quantized = quantized + out.quantized
            residual = residual - out.quantized.detach()
            codes.append(out.codes)
            inputs += out.inputs
            words += out.codewords
        return VQOutput(quantized, torch.stack(codes, 1), inputs, words)


class FSQ(nn.Module):
    """Finite scalar quantisation ``(B, D, T) -> (quantized (B, D, T), codes (B, T))``.

    Each of the ``len(levels)`` channels is bounded to ``L_i`` levels and rounded (straight-through),
    then scaled to ``[-1, 1]``; ``codes`` index the implicit codebook (mixed radix, channel 0 least
    significant). ``dim`` different from ``len(levels)`` adds linear projections in and out.

    ``bound``: ``"atanh"`` (default; ``tanh(z + atanh(o / h)) h - o`` with ``h = (L - 1)(1 + eps) / 2``,
    ``o = 0.5`` for even ``L``: the centred bound of vector-quantize-pytorch and the models trained with it)
    or ``"paper"`` (App. A.1 as printed and as NeMo's codecs use it: ``h = (L - 1)(1 - eps) / 2``, shift
    ``tan(o / h)``).
    """

    def __init__(self, levels: Sequence[int], dim: int | None = None, eps: float = 1e-3, bound: str = "atanh"):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ConfigError(f"FSQ levels must be integers >= 2, got {levels}")
        if bound not in ("atanh", "paper"):
            raise ConfigError(f"FSQ bound must be 'atanh' or 'paper', got {bound!r}")
        self.levels, self.eps, self.bound_kind = levels, eps, bound
        self.codebook_dim = len(levels)
        self.dim = dim or self.codebook_dim
        self.codebook_size = math.prod(levels)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), 0)
        self.register_buffer("_basis", basis, persistent=False)
        proj = self.dim != self.codebook_dim
        self.project_in = nn.Linear(self.dim, self.codebook_dim) if proj else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, self.dim) if proj else nn.Identity()

    @property
    def bits(self) -> float:
        return math.log2(self.codebook_size)

    def bound(self, z: Tensor) -> Tensor:
        """``z (..., d)`` -> values in ``(-L/2, L/2)`` per channel, centred so that rounding gives ``L`` levels."""
        lv = self._levels.to(z.dtype)
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        if self.bound_kind == "atanh":
            half = (lv - 1) * (1 + self.eps) / 2
            shift = torch.atanh(offset / half)
        else:
            half = (lv - 1) * (1 - self.eps) / 2
            shift = torch.tan(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantize(self, z: Tensor) -> Tensor:
        """Channel-last ``z (..., d)`` -> codes in ``[-1, 1]`` (straight-through rounding, Section 3)."""
        b = self.bound(z)
        return (b + (b.round() - b).detach()) / (self._levels // 2).to(z.dtype)

    def codes_to_indices(self, zhat: Tensor) -> Tensor:
        """``(..., d)`` normalised codes -> ``(...)`` int64 indices."""
        half = (self._levels // 2).to(zhat.dtype)
        return ((zhat * half + half) * self._basis.to(zhat.dtype)).sum(-1).round().long()

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """``(...)`` indices -> ``(..., d)`` normalised codes."""
        digits = (indices[..., None] // self._basis) % self._levels
        half = self._levels // 2
        return (digits - half).float() / half.float()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 3 or x.shape[1] != self.dim:
            raise ConfigError(f"FSQ expects (B, {self.dim}, T), got {tuple(x.shape)}")
        z = self.project_in(x.transpose(1, 2))
        orig = z.dtype
        zhat = self.quantize(z.float())  # rounding in float32: bf16 cannot hold the level grid exactly
        codes = self.codes_to_indices(zhat)
        return self.project_out(zhat.to(orig)).transpose(1, 2), codes

    def encode(self, x: Tensor) -> Tensor:
        """``(B, D, T)`` -> codes ``(B, T)``."""
        return self.forward(x)[1]

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, T)`` -> ``(B, D, T)``."""
        zhat = self.indices_to_codes(codes)
        w = next(self.project_out.parameters(), None)
        return self.project_out(zhat if w is None else zhat.to(w.dtype)).transpose(1, 2)
