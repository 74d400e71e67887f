"""audiozoo.eval: evaluation metrics (see :mod:`audiozoo.eval.metrics` for the conventions)."""

from .metrics import *  # noqa: F403
from .metrics import __all__ as __all__
