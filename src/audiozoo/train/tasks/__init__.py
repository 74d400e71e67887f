"""Task modules (one per training style), registered by name with :func:`register_task`.

Importing this package imports every task module, so :data:`TASKS` (name -> class) is complete; recipes pick a
task with ``task: {name: ...}``. Task modules never import each other: shared base classes and helpers live in
``base`` and the ``_``-prefixed modules (``_gan``: adversarial and waveform-generator bases; ``_common``: front-end
inputs, waveform crops, classification metrics).
"""

from __future__ import annotations

from . import autoencoder, classify, codec, distill, flow_vocoder, gan, rave, superres, transcribe, vocoder  # noqa: F401
from .autoencoder import AutoencoderTask
from .base import TASKS, Task, batch_size, get_task_class, register_task, unwrap
from .classify import ClassificationTask
from .codec import CodecTask
from .distill import DistillationTask
from .flow_vocoder import FlowVocoderTask
from .gan import GANTask
from .rave import RAVETask
from .separation import SeparationTask
from .superres import SuperResTask
from .transcribe import TranscriptionTask
from .vocoder import VocoderTask

__all__ = ["TASKS", "AutoencoderTask", "ClassificationTask", "CodecTask", "DistillationTask", "FlowVocoderTask",
           "GANTask", "RAVETask", "SeparationTask", "SuperResTask", "Task", "TranscriptionTask", "VocoderTask",
           "batch_size", "get_task_class", "register_task", "unwrap"]
