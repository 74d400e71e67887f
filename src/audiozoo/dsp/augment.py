"""Data augmentation: SpecAugment masking, mixup, random gain, noise at a given SNR.

All randomness comes from an optional ``torch.Generator`` (the global RNG when ``None``), drawn on the
generator's device and moved to the data's, so a seeded generator reproduces the same augmentation on
CPU and GPU. Everything is batched over the first dim and differentiable with respect to the data.
"""

from __future__ import annotations

import torch
from torch import nn

from audiozoo.errors import AudioError, ConfigError

__all__ = ["SpecAugment", "add_noise_snr", "mixup", "random_gain"]


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """float64 U[0, 1) drawn from ``generator`` (on its device), returned on ``device``."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64).to(device)


def _bands(
    n: int, count: int, max_width: torch.Tensor, limit: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Boolean ``(B, n)``: the union of ``count`` random bands per example.

    Band width ~ U{0..max_width[b]} and start ~ U{0..limit[b] - width} (SpecAugment, Park et al. 2019,
    sec. 2: "f is first chosen from a uniform distribution from 0 to F, f0 from [0, nu - f)").
    """
    b = max_width.shape[0]
    device = max_width.device
    width = (_rand((b, count), generator, device) * (max_width[:, None] + 1)).floor()
    start = (_rand((b, count), generator, device) * (limit[:, None] - width + 1)).floor()
    pos = torch.arange(n, device=device, dtype=torch.float64)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (B, count, n)
    return inside.any(dim=1)


class SpecAugment(nn.Module):
    """Frequency and time masking of spectrogram-like features (Park et al. 2019, arXiv:1904.08779).

    Args:
        freq_masks, freq_width: number of frequency masks and their maximum width F (bins).
        time_masks, time_width: number of time masks and their maximum width T (frames).
        time_width_ratio: optional upper bound p on a time mask as a fraction of the (valid) length:
            width <= p * length (the paper's "p", 1.0 in LibriSpeech policies, 0.05 in adaptive ones).
        mask_value: ``0.0`` (any number) or ``"mean"`` (each example's mean over its valid frames, as
            ESPnet/NeMo offer, sensible for log features whose "silence" is not 0).
        generator: default ``torch.Generator`` for forward calls that pass none.

    Time warping is not implemented. In ``eval()`` mode the input is returned unchanged.

    Forward: ``spec`` ``(B, ..., F, L)`` (or ``(F, L)``, one example); ``lengths`` (B,) valid frames
    per example (time masks stay inside them). Returns a new tensor of the same shape; every example
    gets its own masks, shared across any middle dims (e.g. channels).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 27,
        time_masks: int = 2,
        time_width: int = 100,
        time_width_ratio: float | None = None,
        mask_value: float | str = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, v in (
            ("freq_masks", freq_masks),
            ("freq_width", freq_width),
            ("time_masks", time_masks),
            ("time_width", time_width),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"SpecAugment {name} must be an integer >= 0, got {v!r}")
        if time_width_ratio is not None and not 0.0 <= time_width_ratio <= 1.0:
            raise ConfigError(f"time_width_ratio must be in [0, 1] or None, got {time_width_ratio!r}")
        if isinstance(mask_value, str) and mask_value != "mean":
            raise ConfigError(f"mask_value must be a number or 'mean', got {mask_value!r}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.time_width_ratio, self.mask_value, self.generator = time_width_ratio, mask_value, generator

    def forward(
        self,
        spec: torch.Tensor,
        lengths: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if not self.training:
            return spec
        if spec.ndim < 2:
            raise AudioError(f"SpecAugment expects (B, ..., F, L) or (F, L), got shape {tuple(spec.shape)}")
        single = spec.ndim == 2
        x = spec[None] if single else spec
        gen = generator if generator is not None else self.generator
        b, n_freq, n_time = x.shape[0], x.shape[-2], x.shape[-1]
        dev = x.device
        if lengths is None:
            valid = torch.full((b,), n_time, device=dev, dtype=torch.float64)
        else:
            if lengths.shape != (b,):
                raise AudioError(f"lengths must have shape ({b},), got {tuple(lengths.shape)}")
            valid = lengths.to(dev, torch.float64).clamp(0, n_time)

        f_limit = torch.full((b,), float(n_freq), device=dev, dtype=torch.float64)
        fmask = _bands(n_freq, self.freq_masks, f_limit.clamp(max=self.freq_width), f_limit, gen)
        t_max = valid.clamp(max=self.time_width)
        if self.time_width_ratio is not None:
            t_max = torch.minimum(t_max, (valid * self.time_width_ratio).floor())
        tmask = _bands(n_time, self.time_masks, t_max, valid, gen)
        mask = fmask[:, :, None] | tmask[:, None, :]  # (B, F, L)
        mask = mask.reshape(b, *([1] * (x.ndim - 3)), n_freq, n_time)

        if self.mask_value == "mean":
            frames = torch.arange(n_time, device=dev)[None, :] < valid[:, None]  # (B, L) valid frames
            w = frames.reshape(b, *([1] * (x.ndim - 2)), n_time).to(x.dtype)
            dims = tuple(range(1, x.ndim))
            count = (w.expand_as(x)).sum(dim=dims, keepdim=True).clamp(min=1)
            fill = (x * w).sum(dim=dims, keepdim=True) / count
        else:
            fill = torch.as_tensor(float(self.mask_value), dtype=x.dtype, device=dev)
        out = torch.where(mask, fill, x)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return (
            f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, time_masks={self.time_masks}, "
            f"time_width={self.time_width}, time_width_ratio={self.time_width_ratio}, "
            f"mask_value={self.mask_value!r}"
        )


def _beta(alpha: float, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of Beta(alpha, alpha) (float64) as G1 / (G1 + G2) with Gi ~ Gamma(alpha).

    torch.distributions.Beta cannot take a Generator; ``torch._standard_gamma`` (what it uses) can.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    conc = torch.full((2, n), float(alpha), dtype=torch.float64, device=gen_device)
    g = torch._standard_gamma(conc, generator=generator)
    total = g.sum(dim=0)
    # for tiny alpha both draws can underflow to 0; Beta(a, a) -> {0, 1} there, so "no mixing" (1) is fine
    return torch.where(total > 0, g[0] / total.clamp(min=torch.finfo(torch.float64).tiny), 1.0)


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 0.4,
    generator: torch.Generator | None = None,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al. 2018, arXiv:1710.09412) with one lambda per example (as AST/PANNs/BEATs do).

    ``x_i' = lam_i x_i + (1 - lam_i) x_p(i)`` and the same for targets, ``p`` a random permutation of
    the batch, ``lam_i ~ Beta(alpha, alpha)``.

    Args:
        x: inputs ``(B, ...)`` (waveforms or features of equal shape; pad variable lengths first).
        y: targets ``(B, K)`` one-hot / multi-hot (or soft), or integer class ids ``(B,)`` with
            ``num_classes`` given.
        alpha: Beta concentration (> 0).

    Returns:
        ``(x_mixed, y_mixed)``: shapes of ``x`` and ``(B, K)``; ``y_mixed`` is float (x's dtype if
        floating, else float32).
    """
    if not alpha > 0:
        raise ConfigError(f"mixup alpha must be > 0, got {alpha!r}")
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
        raise AudioError(f"mixup: x {tuple(x.shape)} and y {tuple(y.shape)} need the same batch size")
    b = x.shape[0]
    fdtype = x.dtype if x.is_floating_point() else torch.float32
    if not y.is_floating_point():
        if num_classes is None or y.ndim != 1:
            raise AudioError(
                "mixup: integer targets must be class ids of shape (B,) with num_classes=...; "
                f"got {y.dtype} of shape {tuple(y.shape)}"
            )
        y = torch.nn.functional.one_hot(y.long(), num_classes)
    y = y.to(fdtype)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(b, generator=generator, device=gen_device).to(x.device)
    lam = _beta(alpha, b, generator).to(x.device)
    lam_x = lam.to(fdtype).reshape(b, *([1] * (x.ndim - 1)))
    lam_y = lam.to(fdtype).reshape(b, *([1] * (y.ndim - 1))).to(y.device)
    return lam_x * x + (1 - lam_x) * x[perm], lam_y * y + (1 - lam_y) * y[perm.to(y.device)]


def random_gain(
    x: torch.Tensor, min_db: float = -6.0, max_db: float = 6.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scale each example of ``x`` ``(B, ...)`` by a gain drawn uniformly in [min_db, max_db] dB.

    A 1-D ``x`` (T,) is one example. Returns the same shape; nothing is clipped.
    """
    if min_db > max_db:
        raise ConfigError(f"random_gain needs min_db <= max_db, got {min_db} > {max_db}")
    b = x.shape[0] if x.ndim >= 2 else 1
    db = min_db + (max_db - min_db) * _rand((b,), generator, x.device)
    gain = torch.pow(10.0, db / 20.0).to(x.dtype)
    return x * (gain.reshape(b, *([1] * (x.ndim - 1))) if x.ndim >= 2 else gain)


def add_noise_snr(
    clean: torch.Tensor,
    noise: torch.Tensor,
    snr_db: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add ``noise`` to ``clean`` scaled so that ``10 log10(P_clean / P_noise) = snr_db`` per example.

    Args:
        clean: ``(..., T)``. noise: ``(..., Tn)``, leading dims broadcastable to clean's. A shorter
            noise is tiled; a longer one is cropped at a random offset per example (``generator``).
        snr_db: a number, or a tensor broadcastable to clean's leading dims (e.g. (B,)).

    Powers are mean squares over the last axis. A silent example (clean or noise all zeros) comes back
    as ``clean`` unchanged, the limit of the formula. Returns ``(..., T)``.
    """
    if clean.ndim == 0 or clean.shape[-1] == 0 or noise.ndim == 0 or noise.shape[-1] == 0:
        raise AudioError(f"add_noise_snr: empty signal (clean {tuple(clean.shape)}, noise {tuple(noise.shape)})")
    t = clean.shape[-1]
    try:
        lead = torch.broadcast_shapes(clean.shape[:-1], noise.shape[:-1])
    except RuntimeError as e:
        raise AudioError(
            f"add_noise_snr: noise {tuple(noise.shape)} does not broadcast to clean {tuple(clean.shape)}"
        ) from e
    if lead != clean.shape[:-1]:
        raise AudioError(f"add_noise_snr: noise {tuple(noise.shape)} has more examples than clean")
    noise = noise.to(clean.dtype).expand(*lead, noise.shape[-1])
    tn = noise.shape[-1]
    if tn < t:  # tile
        noise = noise.repeat(*([1] * len(lead)), -(-t // tn))[..., :t]
    elif tn > t:  # random crop per example
        flat = noise.reshape(-1, tn)
        offset = (_rand((flat.shape[0],), generator, clean.device) * (tn - t + 1)).long()
        idx = offset[:, None] + torch.arange(t, device=clean.device)[None, :]
        noise = flat.gather(1, idx).reshape(*lead, t)
    p_clean = clean.square().mean(dim=-1, keepdim=True)
    p_noise = noise.square().mean(dim=-1, keepdim=True)
    snr = torch.as_tensor(snr_db, dtype=clean.dtype, device=clean.device)
    if snr.ndim:
        snr = snr[..., None]
    tiny = torch.finfo(clean.dtype).tiny
    # clamps keep the gradient finite for silent examples (sqrt'(0) = inf)
    scale = torch.sqrt(p_clean.clamp(min=tiny) / (p_noise.clamp(min=tiny) * torch.pow(10.0, snr / 10.0)))
    scale = torch.where((p_noise > 0) & (p_clean > 0), scale, torch.zeros_like(scale))
    return clean + scale * noise
