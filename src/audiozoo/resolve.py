"""One model resolver: the only way pipelines, the CLI and training tasks load models.

``resolve_model(spec, family)`` accepts

- a module (returned as is, after the family check);
- a registry name (``"ast_tiny"``: untrained, refused where ``trained=True``);
- a weight set (``"ast_tiny.fsdd_digits"``: shipped folder or installed package, see
  :class:`audiozoo.registry.WeightSet`);
- a checkpoint folder (``config.json`` + ``model.safetensors``);
- a ``.safetensors`` file: audiozoo's own (its ``model_name`` metadata and a sibling ``config.json`` say what
  to build) or an official checkpoint converted by the model's converter (give ``arch=``);
- a built-in parameter-free system (``"griffinlim[:N]"``);
- a composite: specs joined by ``+`` (``"apnet.freev_speech16k+griffinlim:32"``,
  ``"fastspeech2_small.x+hifigan_v1.universal"``). The first part's family decides how the parts compose
  (:func:`register_composer`); model files never import each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from . import hub
from .errors import ConfigError, ModelNotFoundError
from .registry import FAMILIES, create_model, from_pretrained, model_info

__all__ = ["builtin_systems", "register_builtin", "register_composer", "resolve_model", "split_spec"]

# name -> (family, builder(arg: str | None) -> module); e.g. "griffinlim" -> a parameter-free vocoder
_BUILTINS: dict[str, tuple[str, Callable[[str | None], nn.Module]]] = {}
# (first family, second part's family or built-in name) -> composer(first, second, arg) -> module
_COMPOSERS: dict[tuple[str, str], Callable[[nn.Module, Any, str | None], nn.Module]] = {}


def register_builtin(name: str, family: str, builder: Callable[[str | None], nn.Module]) -> None:
    """Make ``name[:arg]`` a spec of its own (a parameter-free system such as Griffin-Lim)."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}")
    _BUILTINS[name] = (family, builder)


def register_composer(first_family: str, second: str,
                      composer: Callable[[nn.Module, Any, str | None], nn.Module]) -> None:
    """How ``A+B`` composes when A is of ``first_family`` and B is of family (or built-in name) ``second``.

    ``composer(a, b, arg)`` gets the resolved first part, the resolved second part (``None`` for a built-in,
    whose ``arg`` is the text after ``:``) and returns the composed module.
    """
    _COMPOSERS[(first_family, second)] = composer


def builtin_systems() -> dict[str, str]:
    """Built-in spec names and their families."""
    _ensure_builtins()
    return {k: v[0] for k, v in _BUILTINS.items()}


def _griffinlim_iters(arg: str | None) -> int:
    if arg is not None and not arg.isdigit():
        raise ConfigError(f"bad Griffin-Lim spec 'griffinlim:{arg}': use 'griffinlim' or 'griffinlim:N'")
    return int(arg) if arg is not None else 32


def _ensure_builtins() -> None:
    if "griffinlim" in _BUILTINS:
        return
    from .nn.griffinlim import GriffinLimRefiner, GriffinLimVocoder

    register_builtin("griffinlim", "vocoder", lambda arg: GriffinLimVocoder(n_iter=_griffinlim_iters(arg)))
    register_composer("vocoder", "griffinlim",
                      lambda first, _, arg: GriffinLimRefiner(first, n_iter=_griffinlim_iters(arg)))
    # text-to-speech: acoustic model + vocoder (models/tts/system.py); Griffin-Lim inverts the acoustic model's mel
    register_composer("tts", "vocoder", lambda first, second, _: _tts_system(first, second))
    register_composer("tts", "griffinlim", lambda first, _, arg: _tts_system(first, _griffinlim_for(first, arg)))
    # mel codec + vocoder (models/codec/system.py): the codec's decoded mel is the vocoder's input (SpecVQGAN + MelGAN)
    register_composer("codec", "vocoder", lambda first, second, _: _mel_codec_system(first, second))
    register_composer("codec", "griffinlim", lambda first, _, arg: _mel_codec_system(first, None, arg))


def _tts_system(acoustic: nn.Module, vocoder: nn.Module) -> nn.Module:
    from .models.tts.system import TTSSystem

    return TTSSystem(acoustic, vocoder)


def _mel_codec_system(codec: nn.Module, vocoder: nn.Module | None, gl_arg: str | None = None) -> nn.Module:
    """``codec+vocoder``, or ``codec+griffinlim[:N]`` (``vocoder=None``: Griffin-Lim over the codec's own mel)."""
    from .models.codec.system import MelCodecSystem
    from .nn.griffinlim import GriffinLimVocoder

    MelCodecSystem.check_codec(codec)
    if vocoder is None:
        vocoder = GriffinLimVocoder.like(codec, n_iter=_griffinlim_iters(gl_arg))
    return MelCodecSystem(codec, vocoder)


def _griffinlim_for(acoustic: nn.Module, arg: str | None) -> nn.Module:
    """Griffin-Lim over the acoustic model's own mel settings (sample rate, FFT, hop, bands)."""
    from .nn.griffinlim import GriffinLimVocoder

    c = getattr(acoustic, "config", None)
    keys = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max")
    kw = {k: getattr(c, k) for k in keys if hasattr(c, k)}
    return GriffinLimVocoder(n_iter=_griffinlim_iters(arg), **kw)


def split_spec(spec: str) -> list[str]:
    """``"a.b+griffinlim:32"`` -> ``["a.b", "griffinlim:32"]`` (paths may contain ``+``: a part that names an
    existing file or folder is kept whole)."""
    if os.path.exists(spec):
        return [spec]
    return [p.strip() for p in spec.split("+") if p.strip()]


_BUILTIN_RE = re.compile(r"^([a-z_]+)(?::(.*))?$")


def _family_of(model: nn.Module) -> str:
    fam = getattr(model, "family", "")
    if not fam:
        name = getattr(model, "model_name", None)
        fam = model_info(name).family if name else ""
    return fam


def _check_family(model: nn.Module | str, family: str | Sequence[str] | None, spec: Any) -> None:
    """``model``: a module or a family name."""
    if family is None:
        return
    allowed = (family,) if isinstance(family, str) else tuple(family)
    fam = model if isinstance(model, str) else _family_of(model)
    if fam not in allowed:
        raise ConfigError(f"{spec!r} is a {fam or type(model).__name__} model; this needs "
                          f"{' or '.join(allowed)} (see `audiozoo list {allowed[0]}`)")


def _resolve_one(spec: Any, *, trained: bool, arch: str | None, family: str | Sequence[str] | None = None,
                 overrides: dict[str, Any] | None = None) -> nn.Module:
    ov = dict(overrides or {})
    if isinstance(spec, nn.Module):
        if ov:
            raise ConfigError("config overrides apply to a spec that builds a model, not to a module")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ConfigError(f"cannot resolve a model from {type(spec).__name__}; give a name, weight set, folder, "
                          ".safetensors file or module")
    s = str(spec)
    p = Path(s)
    if p.is_dir():
        if arch is not None:
            return create_model(arch, pretrained=hub.load_state_dict(p), **ov)
        return from_pretrained(p, **ov)
    if p.suffix == ".safetensors" or p.is_file():
        if not p.is_file():
            raise ModelNotFoundError(f"no such file: {p}")
        if arch is not None:  # an official / peer checkpoint: the model's converter maps its keys
            return create_model(arch, pretrained=p, **ov)
        if (p.parent / hub.CONFIG_NAME).is_file():
            return from_pretrained(p.parent, **ov)
        raise ConfigError(f"{p}: a bare weights file does not say which architecture it is; pass arch=NAME "
                          "(or --arch NAME) or put it in a folder with its config.json")
    m = _BUILTIN_RE.match(s)
    if m and m.group(1) in builtin_systems() and "." not in s:
        return _BUILTINS[m.group(1)][1](m.group(2))
    if m and m.group(2) is not None and "." not in s:
        raise ConfigError(f"unknown built-in system {m.group(1)!r} in {s!r}; built-ins: "
                          f"{', '.join(f'{k}[:N]' for k in builtin_systems())}")
    if "/" in s or s.endswith((".pt", ".pth", ".ckpt", ".bin")):
        raise ModelNotFoundError(f"no such checkpoint file or folder: {s}")
    base, _, tag = s.partition(".")
    info = model_info(base)  # raises ModelNotFoundError with suggestions
    _check_family(info.family, family, s)  # before building anything
    if not tag and trained:
        sets = [f"{base}.{t}" for t in info.weights]
        if len(sets) == 1:  # the one weight set of the architecture (e.g. basic_pitch_nmp.icassp_2022)
            return create_model(sets[0], **ov)
        raise ConfigError(f"{s!r} names an untrained architecture; give trained weights: a weight set "
                          f"({', '.join(sets) or 'none shipped for ' + base}; `audiozoo list --weights`) "
                          "or a checkpoint folder")
    return create_model(s, **ov)


def resolve_model(spec: Any, family: str | Sequence[str] | None = None, *, trained: bool = False,
                  arch: str | None = None, overrides: dict[str, Any] | None = None) -> nn.Module:
    """Resolve ``spec`` to a model (see the module docstring); composite specs are composed.

    Args:
        spec: module, registry name, ``name.tag``, folder, ``.safetensors`` file, built-in, or ``a+b``.
        family: the family (or families) the first part must belong to; ``None`` accepts any.
        trained: pipelines that show results need trained weights: a bare architecture name resolves to its
            weight set when it has exactly one, and is refused otherwise.
        arch: architecture of a bare (official) checkpoint file given as ``spec``.
        overrides: config fields for the model the (first) spec builds (a recipe's ``model:`` block); with
            trained weights only fields that keep every weight's shape.
    """
    parts = split_spec(spec) if isinstance(spec, str) else [spec]
    if not parts:
        raise ConfigError("empty model spec")
    model = _resolve_one(parts[0], trained=trained, arch=arch, family=family, overrides=overrides)
    _check_family(model, family, parts[0])
    if len(parts) > 1:
        _ensure_builtins()  # registers the composers too
    for part in parts[1:]:
        m = _BUILTIN_RE.match(part)
        if m and m.group(1) in builtin_systems() and "." not in part:
            key, second, arg = m.group(1), None, m.group(2)
        else:
            second, arg = _resolve_one(part, trained=trained, arch=None), None
            key = _family_of(second)
        fam = _family_of(model)
        composer = _COMPOSERS.get((fam, key))
        if composer is None:
            known = sorted(f"{a}+{b}" for a, b in _COMPOSERS)
            raise ConfigError(f"cannot compose a {fam} model with {part!r}; known compositions: {known}")
        model = composer(model, second, arg)
    return model
