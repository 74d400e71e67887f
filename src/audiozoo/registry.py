"""Model registry (timm-style): ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Each architecture variant is one small factory ``name(**overrides) -> nn.Module`` decorated with
:func:`register_model`, which records the paper, arXiv id, family, canonical parameter count (the
published/official figure, checked by a test that builds the canonical config on the ``meta`` device),
the input contract (sample rate, front-end settings), a tiny config for unit tests, and the verification
level reached (letters of DESIGN.md: A architecture, P parity, T trains, U usable).

Trained weight sets are addressed as ``name.tag`` (e.g. ``ast_tiny.fsdd_digits``) and are self-describing
checkpoint folders (see :mod:`audiozoo.hub`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelNotFoundError

FAMILIES = (
    "classify", "ssl", "tts", "vocoder", "codec", "separate", "enhance", "generate", "caption", "asr", "s2st",
    "transcribe",
)
_LEVELS = set("APTU")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model variant."""

    name: str
    family: str
    paper: str
    arxiv: str
    params: int
    params_source: str
    input: Mapping[str, Any]
    verified: str
    factory: Callable[..., Any] = field(repr=False)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    official_repo: str = ""
    license: str = ""
    converter: Callable[[dict, Any], dict] | None = field(default=None, repr=False)
    weights: Mapping[str, str] = field(default_factory=dict)  # tag -> description
    # tag -> function returning the weight set's state dict, for weights that come with an installed
    # package (e.g. the basic-pitch wheel's nmp.onnx) rather than as a checkpoint folder.
    weight_sources: Mapping[str, Callable[[], dict]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "arxiv": self.arxiv,
            "official_repo": self.official_repo,
            "license": self.license,
            "params": self.params,
            "params_source": self.params_source,
            "input": dict(self.input),
            "verified": self.verified,
            "weights": sorted(f"{self.name}.{t}" for t in self.weights),
        }


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    arxiv: str,
    params: int,
    params_source: str,
    input: Mapping[str, Any],
    verified: str,
    tiny: Mapping[str, Any] | None = None,
    official_repo: str = "",
    license: str = "",
    converter: Callable[[dict, Any], dict] | None = None,
    weights: Mapping[str, str] | None = None,
    weight_sources: Mapping[str, Callable[[], dict]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under its function name."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if not verified or not set(verified) <= _LEVELS:
        raise ConfigError(f"verified must be letters of 'APTU', got {verified!r}")

    unknown = set(weight_sources or {}) - set(weights or {})
    if unknown:
        raise ConfigError(f"weight_sources {sorted(unknown)} have no description in weights")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name=name, family=family, paper=paper, arxiv=arxiv, params=int(params),
            params_source=params_source, input=dict(input), verified=verified, factory=fn,
            tiny=dict(tiny or {}), official_repo=official_repo, license=license, converter=converter,
            weights=dict(weights or {}), weight_sources=dict(weight_sources or {}),
        )
        return fn

    return deco


def _ensure_models_imported() -> None:
    import audiozoo.models  # noqa: F401  (registers every model on import)


def _split(name: str) -> tuple[str, str | None]:
    base, _, tag = name.partition(".")
    return base, (tag or None)


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name`` (a ``name.tag`` resolves to its architecture)."""
    _ensure_models_imported()
    base, _ = _split(name)
    if base not in _REGISTRY:
        close = [n for n in _REGISTRY if base.split("_")[0] in n][:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ModelNotFoundError(f"no model named {base!r} is registered{hint} (see `audiozoo list`)")
    return _REGISTRY[base]


def list_models(pattern_or_family: str = "*", *, with_weights: bool = False) -> list[str]:
    """Sorted registered names matching a family name or an fnmatch pattern (``"ast_*"``).

    ``with_weights=True`` lists the trained weight sets (``name.tag``) instead.
    """
    _ensure_models_imported()
    infos = list(_REGISTRY.values())
    if pattern_or_family in FAMILIES:
        infos = [i for i in infos if i.family == pattern_or_family]
    else:
        pat = pattern_or_family if any(c in pattern_or_family for c in "*?[") else f"*{pattern_or_family}*"
        infos = [i for i in infos if fnmatch.fnmatch(i.name, pat)]
    if with_weights:
        return sorted(f"{i.name}.{t}" for i in infos for t in i.weights)
    return sorted(i.name for i in infos)


def weights_dir(name: str) -> Path:
    """Folder of the trained weight set ``name.tag``.

    Searched in ``$AUDIOZOO_HOME/checkpoints`` (default ``~/.cache/audiozoo/checkpoints``), then in the
    checkpoints shipped inside the package.
    """
    base, tag = _split(name)
    info = model_info(base)
    if tag is None or tag not in info.weights:
        known = ", ".join(f"{base}.{t}" for t in info.weights) or "none"
        raise ModelNotFoundError(f"no weight set {name!r}; known weight sets of {base}: {known}")
    home = Path(os.environ.get("AUDIOZOO_HOME", Path.home() / ".cache" / "audiozoo"))
    for root in (home / "checkpoints", Path(__file__).parent / "checkpoints"):
        d = root / f"{base}.{tag}"
        if (d / "config.json").is_file():
            return d
    raise ModelNotFoundError(
        f"weight set {name!r} is registered but not present; build it with its recipe "
        f"(see docs/models/{base}.md) or place it in {home / 'checkpoints' / name}"
    )


def create_model(name: str, pretrained: Any = None, **overrides: Any):
    """Build a registered model.

    Args:
        name: registry name (``"ast_base_p16"``) or a trained weight set (``"ast_tiny.fsdd_digits"``).
        pretrained: ``None``; ``True`` (only with ``name.tag``); a checkpoint folder; a ``.safetensors``
            file; or a state dict — in audiozoo's key layout or in the layout of the model's reference
            implementation (converted by the model's ``checkpoint_filter_fn``).
        **overrides: fields of the model's config dataclass (``num_classes=10``...).
    """
    from . import hub

    base, tag = _split(name)
    info = model_info(base)
    if tag is not None:
        if pretrained not in (None, True):
            raise ConfigError("give either a weight tag (name.tag) or pretrained=..., not both")
        if tag in info.weight_sources:  # weights read from an installed package (converted on the fly)
            model = info.factory(**overrides)
            model.model_name = base
            hub.load_into(model, info.weight_sources[tag](), converter=info.converter)
            return model
        return hub.from_pretrained(weights_dir(name), **overrides)
    if pretrained is True:
        raise ConfigError(f"pretrained=True needs a weight tag, e.g. one of {list_models(base, with_weights=True)}")
    if isinstance(pretrained, (str, os.PathLike)) and Path(pretrained).is_dir():
        return hub.from_pretrained(pretrained, **overrides)
    model = info.factory(**overrides)
    model.model_name = base
    if pretrained is not None:
        state = hub.load_state_dict(pretrained) if isinstance(pretrained, (str, os.PathLike)) else dict(pretrained)
        hub.load_into(model, state, converter=info.converter)
    return model
