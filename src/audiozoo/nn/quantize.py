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

__all__ = ["FSQ", "ResidualVQ", "VQOutput", "VectorQuantizer", "kmeans"]


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
    """

    def __init__(self, dim: int, codebook_size: int, codebook_dim: int | None = None, *, ema: bool = True,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = True, kmeans_iters: int = 10,
                 dead_code_threshold: float = 2.0, l2_normalize: bool = False):
        super().__init__()
        if dim < 1 or codebook_size < 1:
            raise ConfigError(f"VectorQuantizer needs dim >= 1 and codebook_size >= 1, got {dim}, {codebook_size}")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"VectorQuantizer decay must be in [0, 1), got {decay}")
        cd = codebook_dim or dim
        self.dim, self.codebook_size, self.codebook_dim = dim, codebook_size, cd
        self.ema, self.decay, self.eps = ema, decay, eps
        self.kmeans_iters, self.dead_code_threshold, self.l2_normalize = kmeans_iters, dead_code_threshold, l2_normalize
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

    def encode(self, x: Tensor) -> Tensor:
        """``(B, D, T)`` -> codes ``(B, T)`` int64."""
        self._check(x)
        z = self.project_in(x)
        b, d, t = z.shape
        return self._nearest(z.transpose(1, 2).reshape(-1, d)).view(b, t)

    def codewords(self, codes: Tensor) -> Tensor:
        """Code vectors ``(B, d, T)`` of ``codes (B, T)`` (in the code space, before ``project_out``)."""
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ConfigError(f"codes must be in [0, {self.codebook_size - 1}]")
        return F.embedding(codes, self.embed).transpose(1, 2)

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
        if self.dead_code_threshold > 0:
            dead = self.cluster_size < self.dead_code_threshold
            if bool(dead.any()):
                fresh = _sample_rows(flat, int(dead.sum()))
                self.embed.data[dead] = fresh.to(self.embed.dtype)
                # a replaced code starts at the threshold, its EMA sum consistent with it
                self.cluster_size.data[dead] = self.dead_code_threshold
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
        if self.training:
            if self.initted.item() == 0 and sel.shape[0] > 0:
                self._init_codebook(sel.detach())
        codes = self._nearest(flat.detach()).view(b, t)
        zq = self.codewords(codes)  # looked up before the update, as EnCodec
        if self.training and sel.shape[0] > 0:
            sel_codes = codes.reshape(-1) if mask is None else codes.reshape(-1)[mask.reshape(-1).to(flat.device)]
            self._ema_update(sel.detach().float(), sel_codes)
        quantized = self.project_out(z + (zq - z).detach())  # straight-through estimator (VQ-VAE eq. 3)
        return VQOutput(quantized, codes, [z], [zq])


class ResidualVQ(nn.Module):
    """Residual VQ: ``num_quantizers`` :class:`VectorQuantizer` s, each quantising the previous residual.

    Args:
        quantizer_dropout: in training, the fraction of batch items that use only the first
            ``n_q ~ U{1..N_q}`` codebooks (1.0: SoundStream, every item; DAC: 0.5); 0 disables.
        **vq_kwargs: passed to every :class:`VectorQuantizer`.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int, codebook_dim: int | None = None, *,
                 quantizer_dropout: float = 0.0, **vq_kwargs):
        super().__init__()
        if num_quantizers < 1:
            raise ConfigError(f"ResidualVQ needs num_quantizers >= 1, got {num_quantizers}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ConfigError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(VectorQuantizer(dim, codebook_size, codebook_dim, **vq_kwargs)
                                    for _ in range(num_quantizers))

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
        residual, codes = x, []
        for layer in self.layers[: self._n_q(n_q)]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

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
