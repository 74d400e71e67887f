"""All audiozoo metrics in one namespace: ``from audiozoo.eval.metrics import si_sdr, pesq, ...``.

Conventions: argument order is ``(estimate, reference)`` (predictions before targets); set-level
metrics (classification, WER/CER, transcription) return Python floats; per-signal metrics (separation,
speech) return tensors shaped like the inputs' leading axes. The implementations live in
``classification``, ``separation``, ``speech``, ``asr`` and ``music``.
"""

from __future__ import annotations

from .asr import cer, normalize_text, wer
from .classification import (
    accuracy,
    average_precision,
    d_prime,
    macro_f1,
    mean_average_precision,
    roc_auc,
    roc_auc_per_class,
    top_k_accuracy,
)
from .music import frame_metrics, midi_to_hz, note_metrics
from .regression import ccc, ccc_torch, mae, pearson
from .separation import bss_eval_sources, nsdr, pit_si_sdr, si_sdr, si_sdr_improvement
from .speech import (
    MCD_CONSTANT,
    dtw_path,
    f0_rmse,
    mel_cepstral_distortion,
    multi_resolution_stft_distance,
    pesq,
    stoi,
    vuv_error_rate,
)

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "macro_f1",
    "average_precision",
    "mean_average_precision",
    "roc_auc",
    "roc_auc_per_class",
    "d_prime",
    "si_sdr",
    "si_sdr_improvement",
    "pit_si_sdr",
    "nsdr",
    "bss_eval_sources",
    "MCD_CONSTANT",
    "dtw_path",
    "mel_cepstral_distortion",
    "multi_resolution_stft_distance",
    "f0_rmse",
    "vuv_error_rate",
    "pesq",
    "stoi",
    "normalize_text",
    "wer",
    "cer",
    "midi_to_hz",
    "ccc",
    "ccc_torch",
    "mae",
    "pearson",
    "note_metrics",
    "frame_metrics",
]
