"""Vocoders (family ``vocoder``): mel (B, n_mels, L) -> waveform (B, T)."""

from . import apnet, hifigan, hifinet, istftnet, periodwave  # noqa: F401
