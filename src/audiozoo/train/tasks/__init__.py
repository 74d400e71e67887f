"""Task modules (one per training style), registered by name with :func:`register_task`.

Importing this package imports every task module, so :data:`TASKS` (name -> class) is complete; recipes pick a
task with ``task: {name: ...}``. Task modules never import each other: shared base classes and helpers live in
``base`` and the ``_``-prefixed modules (``_gan``: adversarial and waveform-generator bases; ``_common``: front-end
inputs, waveform crops, classification metrics).
"""

from __future__ import annotations

from . import (  # noqa: F401
    autoencoder,
    classify,
    codec,
    distill,
    flow_vocoder,
    gan,
    rave,
    specvqgan,
    superres,
    transcribe,
    tts,
    vocoder,
)
from .asr import ASRTask
from .autoencoder import AutoencoderTask
from .base import TASKS, Task, batch_size, get_task_class, register_task, unwrap
from .classify import ClassificationTask
from .codec import CodecTask
from .distill import DistillationTask
from .flow_vocoder import FlowVocoderTask
from .gan import GANTask
from .rave import RAVETask
from .separation import SeparationTask
from .specvqgan import SpecVQGANTask
from .ssl import SSLTask
from .superres import SuperResTask
from .transcribe import TranscriptionTask
from .tts import TTSTask
from .vocoder import VocoderTask

__all__ = ["TASKS", "AutoencoderTask", "ClassificationTask", "CodecTask", "DistillationTask", "FlowVocoderTask",
           "GANTask", "RAVETask", "SeparationTask", "SuperResTask", "TTSTask", "Task", "TranscriptionTask",
           "VocoderTask", "batch_size", "get_task_class", "register_task", "unwrap"]
__all__ += ["ASRTask"]  # issue #17
__all__ += ["SSLTask"]  # issue #13: self-supervised masked prediction
__all__ += ["SpecVQGANTask"]  # issue #14: spectrogram VQGAN codebook
