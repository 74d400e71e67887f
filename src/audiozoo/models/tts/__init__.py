"""Acoustic models (family ``tts``): token ids (B, N) -> log-mel (B, n_mels, L) (+ durations).

A TTS system is an acoustic model composed with a vocoder by name (``"fastspeech2_small.piper_joe+hifigan_v1
.universal"``, :class:`~audiozoo.models.tts.system.TTSSystem` through :func:`audiozoo.resolve.resolve_model`).
"""

from . import (  # noqa: F401
    adaspeech,
    delightful_tts,
    fastspeech,
    fastspeech2,
    fastspeech2_conformer,
    portaspeech,
    tacotron2,
    transformer_tts,
)
from .system import TTSSystem

__all__ = ["TTSSystem"]
