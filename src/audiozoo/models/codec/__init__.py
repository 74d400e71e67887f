"""Neural audio codecs and autoencoders (family ``codec``): waveform -> codes / latents -> waveform."""

from . import rave  # noqa: F401
