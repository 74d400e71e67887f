"""Feature extractors: the one interface between waveforms and every model's input features.

A :class:`FeatureExtractor` turns ``wav (B, T)`` or ``(T,)`` at :attr:`~FeatureExtractor.sample_rate` into
``(features (B, F, L), frame_lengths (B,))``. Pipelines and training tasks talk only to this interface
(``sample_rate``, ``hop_length``, ``n_features``, ``min_samples``, :meth:`~FeatureExtractor.num_frames`,
:meth:`~FeatureExtractor.num_samples`, :meth:`~FeatureExtractor.get_config`), never to a model's front-end
settings.

Every extractor shares one prologue (:meth:`FeatureExtractor.forward`): the shape, dtype, sample-rate and
minimum-length checks, the default ``lengths``, and the frame lengths ``min(num_frames(lengths), L)``.
Subclasses implement three hooks:

* :meth:`~FeatureExtractor.compute` ``(B, T) -> (B, F, L)``, the transform itself (required);
* :meth:`~FeatureExtractor.prepare` ``(wav, lengths) -> (wav, lengths)``, waveform steps that need the
  valid lengths (per-utterance normalisation, cropping to a fixed clip); default identity;
* :meth:`~FeatureExtractor.finish` ``(features, frames) -> (features, frames)``, feature steps that need
  the frame lengths (masking padded frames, padding/cropping to a fixed length, normalisation); default
  identity.

:meth:`~FeatureExtractor.get_config` is a JSON-serialisable dict (``"type"`` plus the constructor's
settings) and :func:`feature_extractor_from_config` rebuilds any extractor from it: every subclass is
recorded by class name when it is defined. Model-specific extractors that take their model's config
dataclass set :attr:`~FeatureExtractor.config_class` and :attr:`~FeatureExtractor.config_fields`: their
config holds only those front-end fields (the rest of the model config keeps its defaults when rebuilt).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from audiozoo.config import build_config
from audiozoo.errors import AudioError, ConfigError

from .stft import ConstantBuffers

__all__ = ["CMVN_MODES", "FeatureExtractor", "feature_extractor_from_config", "feature_extractors",
           "floor_db", "trim_quiet_frames", "utterance_cmvn"]

#: class name -> FeatureExtractor subclass, filled by ``FeatureExtractor.__init_subclass__``
_EXTRACTORS: dict[str, type[FeatureExtractor]] = {}

# num_samples() searches up to this many samples (~6 days at 48 kHz) before declaring a frame count unreachable
_MAX_SAMPLES = 1 << 35


#: per-utterance normalisations a front end may apply (:func:`utterance_cmvn`): none, mean, mean and variance
CMVN_MODES = ("none", "mean", "mean_var")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


class FeatureExtractor(ConstantBuffers):
    """``(wav (B, T) or (T,), lengths (B,) | None) -> (features (B, F, L), frame_lengths (B,))``.

    Attributes (set by every subclass's constructor):
        sample_rate: Hz the extractor expects (``forward(..., sample_rate=...)`` checks it).
        hop_length: input samples per frame step.
        n_features: ``F``, rows of the features.
        min_samples: the shortest input (``T``) accepted, >= 1; shorter inputs raise :class:`AudioError`.

    No learned parameters: constants (windows, filterbanks) are non-persistent buffers
    (:class:`~audiozoo.dsp.stft.ConstantBuffers`), so extractors never appear in a model's ``state_dict``.
    Features are returned in the input's float dtype; frame lengths are ``torch.long``.
    """

    sample_rate: int
    hop_length: int
    n_features: int
    min_samples: int = 1
    #: why ``min_samples`` is what it is, a clause appended to the too-short error
    min_samples_reason: str = ""
    #: model-specific extractors: the model config dataclass their constructor takes ...
    config_class: ClassVar[type | None] = None
    #: ... and the front-end fields of it that :meth:`get_config` records
    config_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        prev = _EXTRACTORS.get(cls.__name__)
        if prev is not None and (prev.__module__, prev.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ConfigError(f"two FeatureExtractor classes named {cls.__name__!r} ({prev.__module__} and "
                              f"{cls.__module__}); get_config() names extractors by class name, rename one")
        _EXTRACTORS[cls.__name__] = cls

    # ---- subclass hooks ---------------------------------------------------------------------------
    def compute(self, wav: Tensor) -> Tensor:
        """The transform: ``(B, T)`` float waveform -> ``(B, F, L)`` features."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute()")

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Waveform steps that need the valid ``lengths (B,)`` (before :meth:`compute`); default identity."""
        return wav, lengths

    def finish(self, features: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Feature steps that need the frame lengths ``frames (B,)`` (after :meth:`compute`); default identity."""
        return features, frames

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        """Frames produced by ``n_samples`` valid samples (an int, or an integer tensor ``(B,)``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement num_frames()")

    # ---- the shared interface ---------------------------------------------------------------------
    def num_samples(self, n_frames: int) -> int:
        """The fewest samples that give ``n_frames`` frames: ``num_frames(num_samples(n)) >= n`` and
        ``num_frames(num_samples(n) - 1) < n``.

        A bisection over :meth:`num_frames` (non-decreasing in the sample count), so it holds for any
        subclass's frame arithmetic; subclasses may override it with a closed form.
        """
        n = int(n_frames)
        if n < 0:
            raise ConfigError(f"{type(self).__name__}.num_samples: n_frames must be >= 0, got {n_frames!r}")
        if int(self.num_frames(0)) >= n:
            return 0
        lo, hi = 0, max(1, n * int(self.hop_length))  # num_frames(lo) < n
        while int(self.num_frames(hi)) < n:
            lo, hi = hi, 2 * hi
            if hi > _MAX_SAMPLES:
                raise ConfigError(f"{type(self).__name__} never produces {n} frames")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if int(self.num_frames(mid)) >= n else (mid, hi)
        return hi

    def check_sample_rate(self, sample_rate: int | None) -> None:
        """Raise :class:`AudioError` unless ``sample_rate`` (when given) is :attr:`sample_rate`."""
        if sample_rate is not None and int(sample_rate) != int(self.sample_rate):
            raise AudioError(f"{type(self).__name__} expects {self.sample_rate} Hz audio, got {sample_rate} Hz; "
                             "resample first")

    def forward(self, wav: Tensor, lengths: Tensor | None = None,
                sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
        """``wav (B, T) or (T,)`` float at :attr:`sample_rate`, valid ``lengths (B,)`` (default ``T``) ->
        ``(features (B, n_features, L), frame_lengths (B,))`` with ``frame_lengths = min(num_frames(lengths),
        L)``. ``sample_rate``, when given, must be the extractor's (no silent resampling)."""
        name = type(self).__name__
        if not isinstance(wav, Tensor):
            raise AudioError(f"{name} expects a waveform tensor (B, T) or (T,), got {type(wav).__name__}")
        if wav.ndim == 1:
            wav = wav.unsqueeze(0)
        if wav.ndim != 2:
            raise AudioError(f"{name} expects a mono waveform (B, T) or (T,), got shape {tuple(wav.shape)}")
        if not wav.is_floating_point():
            raise AudioError(f"{name} expects a float waveform in [-1, 1], got dtype {wav.dtype} "
                             "(divide int16 samples by 32768)")
        self.check_sample_rate(sample_rate)
        t = wav.shape[-1]
        if t < self.min_samples:
            ms = 1e3 * self.min_samples / self.sample_rate
            why = f"; {self.min_samples_reason}" if self.min_samples_reason else ""
            raise AudioError(f"{name}: input of {t} samples is too short; it needs at least {self.min_samples} "
                             f"samples ({ms:.1f} ms at {self.sample_rate} Hz){why}")
        if lengths is None:
            lengths = torch.full((wav.shape[0],), t, dtype=torch.long, device=wav.device)
        else:
            lengths = torch.as_tensor(lengths, device=wav.device)
            if lengths.shape != (wav.shape[0],) or lengths.is_floating_point() or lengths.is_complex():
                raise AudioError(f"{name}: lengths must be integers of shape ({wav.shape[0]},), got "
                                 f"{lengths.dtype} of shape {tuple(lengths.shape)}")
            lengths = lengths.long()
            if bool(((lengths < 0) | (lengths > t)).any()):
                raise AudioError(f"{name}: lengths {lengths.tolist()} must lie in [0, {t}] (the input has {t} "
                                 "samples)")
        out_dtype = wav.dtype
        wav, lengths = self.prepare(wav, lengths)
        feats = self.compute(wav)
        frames = torch.clamp(torch.as_tensor(self.num_frames(lengths.to(feats.device))), max=feats.shape[-1])
        feats, frames = self.finish(feats, frames)
        return feats.to(out_dtype), frames.long()

    # ---- config -----------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-serialisable settings: ``{"type": class name, **constructor settings}``.

        Extractors that take a model config record :attr:`config_fields` of it; the others record every
        constructor argument, read back from the attribute of the same name.
        """
        name = type(self).__name__
        if self.config_class is not None:
            cfg = getattr(self, "config", None)
            if not isinstance(cfg, self.config_class):
                raise ConfigError(f"{name}.get_config: self.config must be a {self.config_class.__name__}")
            values = {f: getattr(cfg, f) for f in self.config_fields}
        else:
            values = {}
            for p in list(inspect.signature(type(self).__init__).parameters.values())[1:]:
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or not hasattr(self, p.name):
                    raise ConfigError(f"{name}.get_config: cannot read constructor argument {p.name!r} back "
                                      "(store it under the same name or override get_config)")
                values[p.name] = getattr(self, p.name)
        out = {"type": name, **{k: _jsonable(v) for k, v in values.items()}}
        try:
            json.dumps(out)
        except TypeError as e:
            raise ConfigError(f"{name}.get_config is not JSON-serialisable: {e}") from e
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FeatureExtractor:
        """Rebuild an extractor from :meth:`get_config` (on the base class: any registered subclass)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"a feature-extractor config must be a mapping, got {type(config).__name__}")
        if cls is FeatureExtractor:
            return feature_extractor_from_config(config)
        kwargs = dict(config)
        kind = kwargs.pop("type", cls.__name__)
        if kind != cls.__name__:
            raise ConfigError(f"config is for {kind!r}, not {cls.__name__}")
        if cls.config_class is not None:
            unknown = sorted(set(kwargs) - set(cls.config_fields))
            if unknown:
                raise ConfigError(f"{cls.__name__} config has unknown key(s) {unknown}; known: "
                                  f"{list(cls.config_fields)}")
            return cls(build_config(cls.config_class, **kwargs))
        try:
            inspect.signature(cls).bind(**kwargs)
        except TypeError as e:
            raise ConfigError(f"invalid {cls.__name__} config {kwargs}: {e}") from e
        return cls(**kwargs)

    def extra_repr(self) -> str:
        try:
            cfg = self.get_config()
        except ConfigError:
            return ""
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items() if k != "type")


def feature_extractors() -> dict[str, type[FeatureExtractor]]:
    """Every defined :class:`FeatureExtractor` subclass by class name (model-specific ones once their model
    module is imported, e.g. by ``import audiozoo``)."""
    return dict(_EXTRACTORS)


def feature_extractor_from_config(config: Mapping[str, Any]) -> FeatureExtractor:
    """Rebuild any extractor from its :meth:`FeatureExtractor.get_config` (dispatch on ``config["type"]``)."""
    if not isinstance(config, Mapping) or "type" not in config:
        raise ConfigError(f"a feature-extractor config needs a 'type' key, got {config!r}")
    cls = _EXTRACTORS.get(str(config["type"]))
    if cls is None:
        raise ConfigError(f"unknown feature extractor {config['type']!r}; known: {sorted(_EXTRACTORS)} (a "
                          "model's own extractor is known once its module is imported)")
    return cls.from_config(config)


def utterance_cmvn(x: Tensor, lengths: Tensor, variance: bool = True) -> Tensor:
    """Per-utterance, per-band mean and variance normalisation over the valid frames of ``x (B, F, L)``
    (``lengths (B,)`` frames); padded frames become 0. ``variance=False``: the mean only (CMN).

    The classic channel normalisation of speech recognisers: a fixed microphone response or level is an
    additive constant per band of a log spectrum, which the per-utterance mean removes.
    """
    valid = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None])[:, None].to(x.dtype)
    n = valid.sum(-1, keepdim=True).clamp(min=1)
    mean = (x * valid).sum(-1, keepdim=True) / n
    if not variance:
        return (x - mean) * valid
    var = ((x - mean).pow(2) * valid).sum(-1, keepdim=True) / n
    return (x - mean) * torch.rsqrt(var + 1e-5) * valid


def frame_level_db(x: Tensor) -> Tensor:
    """Level of each frame of dB-valued features ``x (B, F, L)``: ``10 log10`` of the mean power over ``F`` ->
    ``(B, L)``."""
    return 10.0 * torch.log10((10.0 ** (x.double() / 10.0)).mean(1)).to(x.dtype)


def trim_quiet_frames(x: Tensor, lengths: Tensor, top_db: float) -> tuple[Tensor, Tensor]:
    """Drop the leading and trailing frames of dB features ``x (B, F, L)`` whose level
    (:func:`frame_level_db`) is more than ``top_db`` below the item's loudest valid frame (the frame-domain
    ``librosa.effects.trim``); the kept frames move to the start, the rest become 0.

    Returns ``(B, F, L)`` features and the new frame counts ``(B,)`` (an item with 0 frames keeps 0).
    """
    lengths = lengths.to(x.device)
    valid = torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None]  # (B, L)
    level = frame_level_db(x).masked_fill(~valid, -torch.inf)
    active = (level >= level.amax(-1, keepdim=True) - top_db) & valid
    idx = torch.arange(x.shape[-1], device=x.device)[None].expand_as(active)
    first = torch.where(active, idx, x.shape[-1]).amin(-1).clamp(max=x.shape[-1] - 1)
    last = torch.where(active, idx, -1).amax(-1)
    new_len = torch.clamp(last - first + 1, min=0)
    src = (first[:, None] + idx).clamp(max=x.shape[-1] - 1)  # (B, L): output frame t reads frame first + t
    out = x.gather(-1, src[:, None, :].expand_as(x))
    keep = (idx < new_len[:, None])[:, None, :]
    return out * keep.to(x.dtype), new_len


def floor_db(x: Tensor, lengths: Tensor, top_db: float) -> Tensor:
    """Raise every value of dB features ``x (B, F, L)`` to at least the item's maximum over its valid frames
    minus ``top_db`` (``librosa.power_to_db``'s ``top_db``, per item): quiet recordings' deep noise floors
    and loud ones' shallow floors end ``top_db`` below the peak alike. Padded frames are left as they are."""
    valid = (torch.arange(x.shape[-1], device=x.device)[None] < lengths.to(x.device)[:, None])[:, None]
    peak = x.masked_fill(~valid, -torch.inf).amax(dim=(1, 2), keepdim=True)
    return torch.where(valid, torch.maximum(x, peak - top_db), x)
