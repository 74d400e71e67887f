"""Discrete-time diffusion: noise schedules, forward noising, DDPM and DDIM steps, prediction conversions.

DDPM (Ho et al. 2020, arXiv:2006.11239): ``q(x_t | x_0) = N(sqrt(a_t) x_0, (1 - a_t) I)`` with
``a_t = prod_{s<=t} (1 - beta_s)`` (eq. 4); the reverse step (eqs. 6-7, Algorithm 2) uses the posterior mean
``mu = sqrt(a_{t-1}) beta_t / (1 - a_t) x0_hat + sqrt(alpha_t) (1 - a_{t-1}) / (1 - a_t) x_t`` and variance
``(1 - a_{t-1}) / (1 - a_t) beta_t`` ("fixed small") or ``beta_t`` ("fixed large").
DDIM (Song et al. 2021, arXiv:2010.02502, eq. 12): ``x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - s^2) eps_hat
+ s z`` with ``s = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)`` (eq. 16); ``eta = 0`` is
deterministic, ``eta = 1`` is DDPM on the sub-sequence.

Schedules: ``"linear"`` (Ho et al.: 1e-4 .. 0.02), ``"scaled_linear"`` (linear in ``sqrt(beta)``, Stable
Diffusion / AudioLDM: 0.00085 .. 0.012), ``"cosine"`` (Nichol & Dhariwal 2021, arXiv:2102.09672, eq. 17,
``s = 0.008``, betas capped at 0.999). Parameterisations (``prediction_type``): ``"epsilon"`` (noise),
``"v_prediction"`` (Salimans & Ho 2022, arXiv:2202.00512, Section 4: ``v = sqrt(a) eps - sqrt(1 - a) x_0``) and
``"sample"`` (``x_0``). Conventions (float32 tables, timestep spacings, ``clip_sample``, ``set_alpha_to_one``)
follow diffusers, so that checkpoints trained with its schedulers sample the same here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "BETA_SCHEDULES", "PREDICTION_TYPES", "NoiseSchedule", "beta_schedule", "convert_prediction",
    "rescale_zero_terminal_snr",
]

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SPACINGS = ("leading", "trailing", "linspace")


def beta_schedule(name: str, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                  max_beta: float = 0.999, cosine_s: float = 0.008) -> Tensor:
    """``(num_steps,)`` float32 betas of a named schedule (see the module docstring)."""
    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ConfigError(f"beta_schedule: num_steps must be a positive integer, got {num_steps!r}")
    n = int(num_steps)
    if name == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float32)
    if name == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2
    if name == "cosine":
        # alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2); beta_i = 1 - alpha_bar(t_{i+1}) / alpha_bar(t_i), in float64
        def alpha_bar(t: float) -> float:
            return math.cos((t + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)]
        return torch.tensor(betas, dtype=torch.float32)
    raise ConfigError(f"unknown beta schedule {name!r}; expected one of {BETA_SCHEDULES}")


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Rescale betas so that the last step has zero SNR (Lin et al. 2024, arXiv:2305.08891, Algorithm 1):
    shift and scale ``sqrt(a_t)`` so that it ends at 0 and keeps its first value. Use with ``v_prediction``."""
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    alphas = torch.cat([ab[0:1], ab[1:] / ab[:-1]])
    return 1 - alphas


def _expand(a: Tensor, like: Tensor) -> Tensor:
    """A scalar or ``(B,)`` coefficient broadcast against ``like (B, ...)``."""
    a = a.to(device=like.device, dtype=like.dtype)
    if a.ndim == 0:
        return a
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def convert_prediction(output: Tensor, x_t: Tensor, alpha_bar: Tensor, source: str, target: str) -> Tensor:
    """Convert a model output between parameterisations at noise level ``alpha_bar`` (scalar or ``(B,)``).

    ``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` ties ``eps``, ``x_0`` (``"sample"``) and ``v = sqrt(a) eps -
    sqrt(1 - a) x_0``: ``x_0 = sqrt(a) x_t - sqrt(1 - a) v`` and ``eps = sqrt(a) v + sqrt(1 - a) x_t``.
    """
    for name in (source, target):
        if name not in PREDICTION_TYPES:
            raise ConfigError(f"unknown prediction type {name!r}; expected one of {PREDICTION_TYPES}")
    if source == target:
        return output
    a = _expand(alpha_bar, x_t)
    b = 1 - a
    if target == "sample":
        if source == "epsilon":
            return (x_t - b ** (0.5) * output) / a ** (0.5)
        return (a**0.5) * x_t - (b**0.5) * output  # from v
    if target == "epsilon":
        if source == "sample":
            return (x_t - a ** (0.5) * output) / b ** (0.5)
        return (a**0.5) * output + (b**0.5) * x_t  # from v
    # target v
    if source == "epsilon":
        x0 = (x_t - b ** (0.5) * output) / a ** (0.5)
        return (a**0.5) * output - (b**0.5) * x0
    eps = (x_t - a ** (0.5) * output) / b ** (0.5)
    return (a**0.5) * eps - (b**0.5) * output


class NoiseSchedule:
    """A discrete diffusion schedule with ``num_train_steps`` steps and its DDPM / DDIM samplers.

    Args:
        schedule: a name of :data:`BETA_SCHEDULES` or explicit ``betas`` ``(T,)``.
        prediction_type: what the model predicts (``"epsilon"``, ``"v_prediction"``, ``"sample"``).
        clip_sample: clamp the predicted ``x_0`` to ``[-clip_sample, clip_sample]`` in the steps (``None``: no
            clipping; diffusers' DDPM/DDIM default is 1.0 for pixel data; audio latents use ``None``).
        set_alpha_to_one: DDIM's ``a_prev`` after the last step is 1 (else ``a_0``), as diffusers; DDPM always
            ends at 1.
        zero_terminal_snr: rescale the betas (:func:`rescale_zero_terminal_snr`).

    Timesteps are integers ``0 .. T - 1``; ``t`` arguments are ints or ``(B,)`` integer tensors.
    """

    def __init__(self, schedule: str | Tensor = "linear", num_train_steps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, prediction_type: str = "epsilon", clip_sample: float | None = None,
                 set_alpha_to_one: bool = True, zero_terminal_snr: bool = False):
        if isinstance(schedule, Tensor):
            betas = schedule.detach().to(torch.float32).flatten()
        else:
            betas = beta_schedule(schedule, num_train_steps, beta_start, beta_end)
        if betas.numel() < 1 or bool((betas <= 0).any()) or bool((betas > 1).any()):
            raise ConfigError("NoiseSchedule: betas must be in (0, 1]")
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        if prediction_type not in PREDICTION_TYPES:
            raise ConfigError(f"unknown prediction type {prediction_type!r}; expected one of {PREDICTION_TYPES}")
        if clip_sample is not None and clip_sample <= 0:
            raise ConfigError(f"clip_sample must be positive or None, got {clip_sample}")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.num_train_steps = betas.numel()
        self.prediction_type, self.clip_sample = prediction_type, clip_sample
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]

    # ---- tables ---------------------------------------------------------------------------------------
    def _check_t(self, t: int | Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if t.is_floating_point() or t.ndim > 1:
            raise ConfigError(f"timesteps must be an int or an integer tensor (B,), got {t.dtype} {tuple(t.shape)}")
        if bool((t < 0).any()) or bool((t >= self.num_train_steps).any()):
            raise ConfigError(f"timesteps must be in [0, {self.num_train_steps - 1}], got {t.tolist()}")
        return t.long()

    def alpha_bar(self, t: int | Tensor) -> Tensor:
        """``a_t`` for integer ``t`` (scalar or ``(B,)``); ``t = -1`` is not allowed here."""
        return self.alphas_cumprod[self._check_t(t).cpu()]

    def _alpha_bar_prev(self, prev_t: int | Tensor, final: Tensor) -> Tensor:
        p = torch.as_tensor(prev_t).long().cpu()
        if bool((p >= self.num_train_steps).any()):
            raise ConfigError(f"previous timesteps must be < {self.num_train_steps}, got {p.tolist()}")
        return torch.where(p >= 0, self.alphas_cumprod[p.clamp(min=0)], final)

    def snr(self, t: int | Tensor) -> Tensor:
        """Signal-to-noise ratio ``a_t / (1 - a_t)``."""
        a = self.alpha_bar(t)
        return a / (1 - a)

    # ---- forward process / training targets -------------------------------------------------------------
    def q_sample(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (eq. 4); ``x0, noise (B, ...)``."""
        a = self.alpha_bar(t)
        return _expand(a**0.5, x0) * x0 + _expand((1 - a) ** 0.5, x0) * noise

    def velocity(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """The v-prediction target ``sqrt(a_t) noise - sqrt(1 - a_t) x0``."""
        a = self.alpha_bar(t)
        return _expand(a**0.5, x0) * noise - _expand((1 - a) ** 0.5, x0) * x0

    def target(self, x0: Tensor, t: int | Tensor, noise: Tensor) -> Tensor:
        """The training target of :attr:`prediction_type` (noise, v, or ``x0``)."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.velocity(x0, t, noise)
        return x0

    def predict(self, output: Tensor, x_t: Tensor, t: int | Tensor, kind: str = "sample") -> Tensor:
        """The model's ``output`` converted to ``kind`` (``"sample"`` = ``x_0``, ``"epsilon"``, ``"v_prediction"``)."""
        return convert_prediction(output, x_t, self.alpha_bar(t), self.prediction_type, kind)

    # ---- inference timesteps ------------------------------------------------------------------------------
    def timesteps(self, num_steps: int, spacing: str = "leading", offset: int = 0) -> Tensor:
        """Descending inference timesteps ``(num_steps,)`` int64 (diffusers' ``set_timesteps``).

        ``"leading"``: ``i * (T // n) + offset``; ``"trailing"``: ``round(T - i T / n) - 1`` (reaches ``T - 1``,
        Lin et al. 2024 Section 3.3); ``"linspace"``: ``round(linspace(0, T - 1, n))``.
        """
        T = self.num_train_steps
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or not 1 <= num_steps <= T:
            raise ConfigError(f"num_steps must be an integer in [1, {T}], got {num_steps!r}")
        n = int(num_steps)
        if spacing == "leading":
            ts = torch.arange(n, dtype=torch.int64) * (T // n) + offset
        elif spacing == "trailing":
            ratio = T / n
            ts = torch.tensor([round(T - i * ratio) - 1 for i in range(n)], dtype=torch.int64).flip(0)
        elif spacing == "linspace":
            ts = torch.linspace(0, T - 1, n, dtype=torch.float64).round().to(torch.int64)
        else:
            raise ConfigError(f"unknown timestep spacing {spacing!r}; expected one of {SPACINGS}")
        return ts.flip(0)

    # ---- reverse steps --------------------------------------------------------------------------------------
    def _x0_eps(self, output: Tensor, x_t: Tensor, a_t: Tensor) -> tuple[Tensor, Tensor]:
        x0 = convert_prediction(output, x_t, a_t, self.prediction_type, "sample")
        eps = convert_prediction(output, x_t, a_t, self.prediction_type, "epsilon")
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0, eps

    @staticmethod
    def _noise(x: Tensor, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
        if noise is not None:
            if noise.shape != x.shape:
                raise ConfigError(f"noise must have the sample's shape {tuple(x.shape)}, got {tuple(noise.shape)}")
            return noise
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def ddpm_step(self, output: Tensor, t: int | Tensor, x_t: Tensor, prev_t: int | Tensor | None = None, *,
                  variance: str = "fixed_small", generator: torch.Generator | None = None,
                  noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One ancestral DDPM step ``x_t -> x_prev`` (Algorithm 2); returns ``(x_prev, x0_hat)``.

        ``prev_t`` defaults to ``t - 1``; a larger jump samples a strided chain (``beta`` replaced by
        ``1 - a_t / a_prev``). Noise (from ``noise`` or ``generator``) is added where ``t > 0``.
        ``variance``: ``"fixed_small"`` (posterior variance, clamped at 1e-20) or ``"fixed_large"`` (``beta``).
        """
        if variance not in ("fixed_small", "fixed_large"):
            raise ConfigError(f"variance must be 'fixed_small' or 'fixed_large', got {variance!r}")
        t_ = self._check_t(t)
        p_ = t_ - 1 if prev_t is None else torch.as_tensor(prev_t).long()
        a_t, a_prev = self.alpha_bar(t_), self._alpha_bar_prev(p_, torch.tensor(1.0))  # DDPM ends at a = 1
        b_t, b_prev = 1 - a_t, 1 - a_prev
        cur_alpha = a_t / a_prev
        cur_beta = 1 - cur_alpha
        x0, _ = self._x0_eps(output, x_t, a_t)
        c0 = (a_prev ** (0.5) * cur_beta) / b_t
        ct = cur_alpha ** (0.5) * b_prev / b_t
        mean = _expand(c0, x_t) * x0 + _expand(ct, x_t) * x_t
        if not bool((t_ > 0).any()):
            return mean, x0
        var = torch.clamp(b_prev / b_t * cur_beta, min=1e-20) if variance == "fixed_small" else cur_beta
        std = torch.where(t_ > 0, var ** 0.5, torch.zeros_like(var))
        return mean + _expand(std, x_t) * self._noise(x_t, noise, generator), x0

    def ddim_step(self, output: Tensor, t: int | Tensor, x_t: Tensor, prev_t: int | Tensor, *, eta: float = 0.0,
                  use_clipped_model_output: bool = False, generator: torch.Generator | None = None,
                  noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One DDIM step ``x_t -> x_prev`` (eq. 12); returns ``(x_prev, x0_hat)``. ``prev_t < 0`` is the end.

        ``use_clipped_model_output`` recomputes ``eps`` from the clipped ``x0_hat`` (diffusers' option).
        """
        if eta < 0:
            raise ConfigError(f"eta must be >= 0, got {eta}")
        t_ = self._check_t(t)
        a_t, a_prev = self.alpha_bar(t_), self._alpha_bar_prev(prev_t, self.final_alpha_cumprod)
        b_t, b_prev = 1 - a_t, 1 - a_prev
        x0, eps = self._x0_eps(output, x_t, a_t)
        if use_clipped_model_output:
            eps = (x_t - _expand(a_t ** (0.5), x_t) * x0) / _expand(b_t ** (0.5), x_t)
        var = (b_prev / b_t) * (1 - a_t / a_prev)
        std = eta * var ** (0.5)
        direction = _expand((1 - a_prev - std**2) ** (0.5), x_t) * eps
        x_prev = _expand(a_prev ** (0.5), x_t) * x0 + direction
        if eta > 0:
            x_prev = x_prev + _expand(std, x_t) * self._noise(x_t, noise, generator)
        return x_prev, x0

    # ---- loops ---------------------------------------------------------------------------------------------
    def sample(self, model_fn: Callable[[Tensor, Tensor], Tensor], x_T: Tensor, num_steps: int | None = None, *,
               method: str = "ddim", eta: float = 0.0, spacing: str = "leading",
               generator: torch.Generator | None = None) -> Tensor:
        """Run the reverse chain from ``x_T (B, ...)`` with ``model_fn(x_t, t (B,) int64) -> output``.

        ``method``: ``"ddim"`` (``eta`` as in :meth:`ddim_step`) or ``"ddpm"`` (ancestral, fixed-small variance).
        ``num_steps`` inference steps (default: all ``T``) spaced by ``spacing``; each step goes to the next
        timestep of the grid, the last one to the end (``a_prev = final_alpha_cumprod`` for DDIM, ``a = 1``
        for DDPM). Guidance is the caller's ``model_fn``.
        """
        if method not in ("ddim", "ddpm"):
            raise ConfigError(f"method must be 'ddim' or 'ddpm', got {method!r}")
        ts = self.timesteps(num_steps or self.num_train_steps, spacing).tolist()
        x = x_T
        b = x.shape[0]
        for i, t in enumerate(ts):
            prev = ts[i + 1] if i + 1 < len(ts) else -1
            out = model_fn(x, torch.full((b,), t, dtype=torch.long, device=x.device))
            if method == "ddim":
                x = self.ddim_step(out, t, x, prev, eta=eta, generator=generator)[0]
            else:
                x = self.ddpm_step(out, t, x, prev, generator=generator)[0]
        return x
