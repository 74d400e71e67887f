"""Speech enhancement and super-resolution (family ``enhance``): degraded waveform -> waveform."""

from . import hifisr  # noqa: F401
