"""Weight / spectral normalisation helpers on ``torch.nn.utils.parametrizations``.

The old hook-based ``torch.nn.utils.weight_norm``/``spectral_norm`` (used by HiFi-GAN, MelGAN, VITS...
checkpoints) are deprecated; their state-dict keys differ from the parametrization ones:

=====================  ==============================================
legacy key             parametrization key
=====================  ==============================================
``weight_g``           ``parametrizations.weight.original0`` (norm g)
``weight_v``           ``parametrizations.weight.original1`` (direction v)
``weight_orig``        ``parametrizations.weight.original`` (spectral)
``weight_u``           ``parametrizations.weight.0._u`` (spectral)
``weight_v``           ``parametrizations.weight.0._v`` (spectral)
=====================  ==============================================

``weight_v`` means different things for the two legacy norms; a module's other keys (``weight_g`` vs
``weight_orig``) tell them apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, _WeightNorm, spectral_norm, weight_norm

__all__ = [
    "DEFAULT_TYPES", "apply_spectral_norm", "apply_weight_norm", "convert_legacy_weight_norm_keys",
    "has_weight_norm", "remove_spectral_norm", "remove_weight_norm",
]

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d, nn.Linear)


def _has(module: nn.Module, kind: type, name: str = "weight") -> bool:
    return parametrize.is_parametrized(module, name) and any(
        isinstance(p, kind) for p in module.parametrizations[name]
    )


def has_weight_norm(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` carries a weight-norm parametrization."""
    return _has(module, _WeightNorm, name)


def apply_weight_norm(module: nn.Module, types: tuple[type[nn.Module], ...] = DEFAULT_TYPES,
                      name: str = "weight", dim: int = 0) -> nn.Module:
    """Weight-normalise (Salimans & Kingma 2016) every submodule of ``types`` (``module`` itself included).

    ``dim=0`` is the default of both torch APIs and of HiFi-GAN/VITS (for ``ConvTranspose1d`` it gives
    ``g`` of shape ``(C_in, 1, 1)``, as their checkpoints store). Already-normalised layers are skipped.
    At application ``g = ||v||``, so outputs are unchanged. Returns ``module`` (modified in place).
    """
    for m in list(module.modules()):
        if isinstance(m, types) and getattr(m, name, None) is not None and not has_weight_norm(m, name):
            weight_norm(m, name=name, dim=dim)
    return module


def remove_weight_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Fold every weight-norm parametrization back into a plain parameter (``leave_parametrized=True``),
    e.g. before export/inference; outputs are unchanged. Other parametrizations are left alone."""
    for m in list(module.modules()):
        if has_weight_norm(m, name):
            parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


def apply_spectral_norm(module: nn.Module, types: tuple[type[nn.Module], ...] = DEFAULT_TYPES,
                        name: str = "weight", n_power_iterations: int = 1) -> nn.Module:
    """Spectral-normalise (Miyato et al. 2018) every submodule of ``types``; as HiFi-GAN's first MSD
    sub-discriminator. One power iteration per training forward (the torch and paper default)."""
    for m in list(module.modules()):
        if isinstance(m, types) and getattr(m, name, None) is not None and not _has(m, _SpectralNorm, name):
            spectral_norm(m, name=name, n_power_iterations=n_power_iterations)
    return module


def remove_spectral_norm(module: nn.Module, name: str = "weight") -> nn.Module:
    """Fold spectral-norm parametrizations into plain weights (the current ``W / sigma``)."""
    for m in list(module.modules()):
        if _has(m, _SpectralNorm, name):
            parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


def convert_legacy_weight_norm_keys(state_dict: Mapping[str, Tensor], name: str = "weight") -> dict[str, Tensor]:
    """Rename legacy ``weight_norm``/``spectral_norm`` keys to the parametrization layout (table above).

    Returns a new dict in the same order; keys of other modules pass through. A state dict already in the
    new layout is returned unchanged, so converters can call this unconditionally.
    """
    g, v, orig, u = f"{name}_g", f"{name}_v", f"{name}_orig", f"{name}_u"
    prefixes_wn = {k[: -len(g)] for k in state_dict if k.endswith(g)}
    prefixes_sn = {k[: -len(orig)] for k in state_dict if k.endswith(orig)}
    new = f"parametrizations.{name}."
    out: dict[str, Tensor] = {}
    for k, t in state_dict.items():
        key = k
        for pre in (k[: -len(s)] for s in (g, v, orig, u) if k.endswith(s)):
            suffix = k[len(pre):]
            if pre in prefixes_wn and suffix in (g, v):
                key = pre + new + ("original0" if suffix == g else "original1")
            elif pre in prefixes_sn and suffix in (orig, u, v):
                key = pre + new + {orig: "original", u: "0._u", v: "0._v"}[suffix]
        out[key] = t
    return out
