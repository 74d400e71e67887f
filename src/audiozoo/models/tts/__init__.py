"""Acoustic models (family ``tts``): token ids (B, N) -> log-mel (B, n_mels, L) (+ durations).

A TTS system is an acoustic model composed with a vocoder by name (``"fastspeech2_small.piper_joe+hifigan_v1
.universal"``, :class:`~audiozoo.models.tts.system.TTSSystem` through :func:`audiozoo.resolve.resolve_model`).
"""

from . import adaspeech, delightful_tts, fastspeech, fastspeech2, transformer_tts  # noqa: F401
from .system import TTSSystem

__all__ = ["TTSSystem"]
