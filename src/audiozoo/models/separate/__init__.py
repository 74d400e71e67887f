"""Source separators (family ``separate``): Demucs v2 and Conv-TasNet (waveform music / speech separation)."""

from . import conv_tasnet, demucs  # noqa: F401
