"""audiozoo: paper-faithful implementations of spectrogram-era audio AI systems.

>>> import audiozoo
>>> model = audiozoo.create_model("ast_base_p16", num_classes=10)
>>> audiozoo.list_models("classify")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import AudiozooError  # noqa: E402
from .registry import create_model, from_pretrained, list_models, model_info, register_model  # noqa: E402


def resolve_model(spec, family=None, **kwargs):
    """See :func:`audiozoo.resolve.resolve_model`."""
    from .resolve import resolve_model as _resolve

    return _resolve(spec, family, **kwargs)


def load_audio(*args, **kwargs):
    """See :func:`audiozoo.dsp.io.load_audio`."""
    from .dsp.io import load_audio as _load

    return _load(*args, **kwargs)


def pipeline(task: str | None = None, model=None, **kwargs):
    """See :func:`audiozoo.pipelines.pipeline`."""
    from .pipelines import pipeline as _pipeline

    return _pipeline(task, model=model, **kwargs)


__all__ = [
    "AudiozooError", "__version__", "create_model", "from_pretrained", "list_models", "load_audio", "model_info",
    "pipeline", "register_model", "resolve_model",
]
