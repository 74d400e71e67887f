"""Model zoo. Importing this package registers every model (one file per paper, by family)."""

from . import classify, codec, embed, enhance, separate, transcribe, vocoder  # noqa: F401
