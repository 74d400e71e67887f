"""audiozoo.eval: evaluation metrics (see :mod:`audiozoo.eval.metrics` for the conventions).

Real pretrained judges (Whisper WER, DNSMOS, CREPE F0, MiniLM text similarity, Fréchet distance) live in
:mod:`audiozoo.eval.judges` (optional packages; imported on demand: ``from audiozoo.eval.judges import ...``).
Generation metrics on a spectrogram classifier (SpecVQGAN's FID and MKL with Melception) live in
:mod:`audiozoo.eval.generation` (``from audiozoo.eval.generation import melception_scores, mkl, fid``).
"""

from .metrics import *  # noqa: F403
from .metrics import __all__ as __all__
