"""Self-supervised encoders (family ``ssl``): importing this package registers them."""

from . import beats, ssamba, ssast, tera  # noqa: F401
