"""Model zoo. Importing this package registers every model (one file per paper, by family)."""

from . import asr, classify, codec, embed, enhance, separate, ssl, transcribe, tts, vocoder  # noqa: F401
