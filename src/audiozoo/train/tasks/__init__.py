"""Task modules (one per training style) and the name -> task class table used by recipes."""

from __future__ import annotations

from ...errors import ConfigError
from .base import Task, batch_size, unwrap
from .classify import ClassificationTask
from .flow_vocoder import FlowVocoderTask
from .gan import GANTask
from .rave import RAVETask
from .superres import SuperResTask
from .transcribe import TranscriptionTask
from .vocoder import VocoderTask

TASKS: dict[str, type[Task]] = {
    "classify": ClassificationTask,
    "flow_vocoder": FlowVocoderTask,
    "gan": GANTask,
    "rave": RAVETask,
    "superres": SuperResTask,
    "transcribe": TranscriptionTask,
    "vocoder": VocoderTask,
}


def get_task_class(name: str) -> type[Task]:
    """The task class registered as ``name`` (``classify``, ``gan``...)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "ClassificationTask", "FlowVocoderTask", "GANTask", "RAVETask", "SuperResTask", "Task",
           "TranscriptionTask", "VocoderTask", "batch_size", "get_task_class", "unwrap"]
