"""FSDD clips as in-memory tensors for the scripts of this folder (fsdd_linear_baseline.py): the real recordings
in ../shared/data/fsdd (``AUDIOZOO_SHARED_DATA`` overrides), split by take number as the FSDD builder does
(takes 0-4 test, 5-9 valid, 10-49 train)."""

from __future__ import annotations

import os
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F

from audiozoo.dsp import resample
from audiozoo.errors import DataError


def fsdd_dir() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    root = root / "fsdd"
    if not root.is_dir():
        raise DataError(f"FSDD not found at {root} (set AUDIOZOO_SHARED_DATA to the folder holding fsdd/)")
    return root


def load_split(root: Path, takes: range, num_samples: int, sample_rate: int = 16000
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Waveforms ``(N, num_samples)`` at ``sample_rate`` (cut or zero-padded), sample lengths ``(N,)`` and digit
    labels ``(N,)`` of the FSDD clips whose take number is in ``takes``."""
    wavs, lengths, labels = [], [], []
    for path in sorted(root.glob("*.wav")):
        digit, _, take = path.stem.split("_")
        if int(take) not in takes:
            continue
        wav, sr = sf.read(path, dtype="float32", always_2d=False)
        w = resample(torch.from_numpy(wav), sr, sample_rate)[:num_samples]
        lengths.append(w.shape[0])
        wavs.append(F.pad(w, (0, num_samples - w.shape[0])))
        labels.append(int(digit))
    if not wavs:
        raise DataError(f"no FSDD clips with takes {takes} in {root}")
    return torch.stack(wavs), torch.tensor(lengths), torch.tensor(labels)
