"""Utterance embedders (family ``embed``): speaker encoders (GE2E / SV2TTS)."""

from . import ge2e  # noqa: F401
