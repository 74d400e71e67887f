"""audiozoo.eval: evaluation metrics (see :mod:`audiozoo.eval.metrics` for the conventions).

Real pretrained judges (Whisper WER, DNSMOS, CREPE F0, MiniLM text similarity, Fréchet distance) live in
:mod:`audiozoo.eval.judges` (optional packages; imported on demand: ``from audiozoo.eval.judges import ...``).
"""

from .metrics import *  # noqa: F403
from .metrics import __all__ as __all__
