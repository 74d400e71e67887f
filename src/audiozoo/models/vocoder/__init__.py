"""Vocoders and speech super-resolution (family ``vocoder``): mel (B, n_mels, L) -> waveform (B, T)."""

from . import apnet, hifigan, hifinet, hifisr, istftnet, periodwave, rave  # noqa: F401
