"""Self-supervised encoders (family ``ssl``): importing this package registers them."""

from . import ssast, tera  # noqa: F401
