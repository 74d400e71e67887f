"""User-facing tasks: preprocess -> batched forward -> postprocess to JSON-able results.

>>> tagger = audiozoo.pipeline("audio-classification", model="ast_tiny.fsdd_digits")
>>> tagger("digit.wav")["labels"][0]
>>> audiozoo.pipeline(model="apnet.freev_speech16k+griffinlim:32")   # task from the model's family: vocode

The table is keyed by task, and each task names the model family it runs, so ``pipeline(model=...)`` finds
the task from the model alone (:data:`FAMILY_TASKS`). Models are loaded only through
:func:`audiozoo.resolve.resolve_model`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError

# task -> (module, class, family of the model it runs or None, whether a model must be given)
TASKS: dict[str, tuple[str, str, str | None, bool]] = {
    "features": ("features", "FeaturesPipeline", None, False),
    "audio-classification": ("classify", "AudioClassificationPipeline", "classify", True),
    "transcription": ("transcribe", "TranscriptionPipeline", "transcribe", False),
    "vocode": ("vocode", "VocodePipeline", "vocoder", False),
    "upsample": ("upsample", "UpsamplePipeline", "enhance", False),
    "embed": ("embed", "EmbedPipeline", "embed", False),
    "audio-embeddings": ("embeddings", "AudioEmbeddingPipeline", "ssl", True),  # ssl, classify and embed models
    "separate": ("separate", "SeparatePipeline", "separate", True),
    "codec": ("codec", "CodecPipeline", "codec", True),
    "tts": ("tts", "TTSPipeline", "tts", False),
    # two tasks run asr models; "asr" comes last so that it is the family's default (FAMILY_TASKS)
    "align": ("asr", "AlignPipeline", "asr", False),
    "asr": ("asr", "ASRPipeline", "asr", False),
}
ALIASES = {"tag": "audio-classification", "classify": "audio-classification", "transcribe": "transcription",
           "text-to-speech": "tts", "speech-recognition": "asr", "forced-alignment": "align"}
FAMILY_TASKS: dict[str, str] = {fam: task for task, (_, _, fam, _) in TASKS.items() if fam}


def _family_of_spec(model: Any) -> str:
    from ..registry import model_info
    from ..resolve import builtin_systems, split_spec

    fam = getattr(model, "family", None)
    if fam:
        return fam
    first = split_spec(str(model))[0] if isinstance(model, str) else str(model)
    name = first.split(":", 1)[0]
    if name in builtin_systems():
        return builtin_systems()[name]
    import os

    if os.path.isdir(first):
        from ..hub import read_config

        return model_info(read_config(first)["model_name"]).family
    return model_info(first).family


def pipeline(task: str | None = None, model: Any = None, **kwargs: Any):
    """Build the pipeline for ``task`` (see :data:`TASKS`); without ``task`` it follows the model's family.

    ``model`` is anything :func:`audiozoo.resolve.resolve_model` accepts (name, ``name.tag``, folder, file,
    module, ``a+b`` composite).
    """
    if task is None:
        if model is None:
            raise ConfigError("give a task or a model (the task follows the model's family)")
        fam = _family_of_spec(model)
        if fam not in FAMILY_TASKS:
            raise ConfigError(f"no pipeline runs {fam} models yet; tasks: {sorted(TASKS)}")
        task = FAMILY_TASKS[fam]
    task = ALIASES.get(task, task)
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; available: {sorted(TASKS)}")
    module, cls, family, needs_model = TASKS[task]
    klass = getattr(importlib.import_module(f".{module}", __name__), cls)
    if family is None:
        if model is not None:
            raise ConfigError(f"the {task} pipeline takes no model")
        return klass(**kwargs)
    if model is None and needs_model:
        raise ConfigError(f"task {task!r} needs model= (a weight set like 'ast_tiny.fsdd_digits' or a folder)")
    return klass(**({"model": model} if model is not None else {}), **kwargs)


__all__ = ["FAMILY_TASKS", "TASKS", "pipeline"]
