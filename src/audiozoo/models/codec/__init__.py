"""Neural audio codecs and autoencoders (family ``codec``): waveform -> codes / latents -> waveform."""

from . import encodec, language_codec, rave, specvqgan, wavtokenizer  # noqa: F401
