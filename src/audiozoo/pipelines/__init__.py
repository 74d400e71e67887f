"""User-facing tasks: preprocess -> batched forward -> postprocess to JSON-able results.

>>> tagger = audiozoo.pipeline("audio-classification", model="ast_tiny.fsdd_digits")
>>> tagger("digit.wav")["labels"][0]
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .upsample import UpsamplePipeline

TASKS = {
    "features": ("features", "FeaturesPipeline"),
    "audio-classification": ("classify", "AudioClassificationPipeline"),
    "transcription": ("transcribe", "TranscriptionPipeline"),
    "vocode": ("vocode", "VocodePipeline"),
    "upsample": ("upsample", "UpsamplePipeline"),
}
ALIASES = {"tag": "audio-classification", "classify": "audio-classification", "transcribe": "transcription"}


def pipeline(task: str, model: Any = None, **kwargs: Any):
    """Build the pipeline for ``task`` (see ``TASKS``); ``model`` is a weight set, folder or module."""
    import importlib

    task = ALIASES.get(task, task)
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; available: {sorted(TASKS)}")
    module, cls = TASKS[task]
    klass = getattr(importlib.import_module(f".{module}", __name__), cls)
    if task == "features":
        if model is not None:
            raise ConfigError("the features pipeline takes no model")
        return klass(**kwargs)
    if task in ("transcription", "vocode", "upsample"):
        return klass(**({"model": model} if model is not None else {}), **kwargs)
    if model is None:
        raise ConfigError(f"task {task!r} needs model= (a weight set like 'ast_tiny.fsdd_digits' or a folder)")
    return klass(model=model, **kwargs)


__all__ = ["TASKS", "UpsamplePipeline", "pipeline"]
