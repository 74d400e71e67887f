"""Fixtures for the data tests: tiny deterministic wav files and manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiozoo.dsp.io import save_audio


def write_tone(path: Path, seconds: float, sr: int, freq: float = 440.0, seed: int = 0, channels: int = 1) -> Path:
    """A tone plus a little noise (so every sample position is distinguishable), float32 wav."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)])
    save_audio(path, x.astype(np.float32), sr, subtype="FLOAT")
    return path


@pytest.fixture
def tone():
    """The :func:`write_tone` helper (a fixture, since test folders are not packages)."""
    return write_tone


@pytest.fixture
def clips(tmp_path: Path) -> list[dict]:
    """Five clips of different lengths/rates with labels and speakers (absolute paths)."""
    spec = [("a", 0.5, 16000, "dog", "s1"), ("b", 1.0, 8000, "cat", "s2"), ("c", 1.5, 16000, "dog", "s3"),
            ("d", 0.25, 16000, "bird", "s1"), ("e", 2.0, 22050, "cat", "s2")]
    items = []
    for i, (name, sec, sr, label, spk) in enumerate(spec):
        p = write_tone(tmp_path / "audio" / f"{name}.wav", sec, sr, freq=200 + 100 * i, seed=i)
        items.append({"audio_filepath": str(p), "duration": sec, "label": label, "speaker": spk, "name": name})
    return items


@pytest.fixture
def mix_sources(tmp_path: Path) -> dict[str, Path]:
    """Tiny speech (3 speakers x 2 clips, 16 kHz) and noise (8 kHz, shorter than a mixture) manifests."""
    from audiozoo.data import write_manifest

    src = tmp_path / "sources"
    speech = []
    for s, spk in enumerate(("ann", "bob", "cid")):
        for k, sec in enumerate((1.2, 2.6)):
            p = write_tone(src / f"{spk}_{k}.wav", sec, 16000, freq=150 + 60 * s + 20 * k, seed=10 * s + k)
            speech.append({"audio_filepath": str(p), "duration": sec, "speaker": spk, "text": f"{spk} says {k}"})
    noise_path = src / "noise.wav"
    rng = np.random.default_rng(99)
    save_audio(noise_path, (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000, subtype="FLOAT")
    return {
        "speech": write_manifest(src / "speech.jsonl", speech),
        "noise": write_manifest(src / "noise.jsonl", [{"audio_filepath": str(noise_path), "duration": 1.0}]),
    }
