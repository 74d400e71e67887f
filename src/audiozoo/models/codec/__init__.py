"""Neural audio codecs and autoencoders (family ``codec``): waveform -> codes / latents -> waveform."""

from . import encodec, rave, wavtokenizer  # noqa: F401
