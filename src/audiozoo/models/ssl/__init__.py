"""Self-supervised encoders (family ``ssl``): importing this package registers them."""

from . import beats, beats_tokenizer, mert, ssamba, ssast, tera  # noqa: F401
