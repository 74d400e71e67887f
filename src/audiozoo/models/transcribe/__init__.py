"""Music transcription models (family ``transcribe``)."""

from . import basic_pitch  # noqa: F401
