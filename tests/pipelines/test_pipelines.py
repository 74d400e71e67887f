"""Pipelines: input kinds, chunking, features outputs, refusal of untrained classifiers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.pipelines.base import chunk


def test_chunk_covers_signal_with_bounded_windows():
    wav = torch.arange(25, dtype=torch.float32)
    w, n, s = chunk(wav, window=10, hop=5)
    assert w.shape == (4, 10) and s.tolist() == [0, 5, 10, 15] and n.tolist() == [10, 10, 10, 10]
    w, n, s = chunk(torch.ones(3), window=10, hop=5)
    assert w.shape == (1, 10) and n.tolist() == [3] and w[0, 3:].abs().sum() == 0


def test_features_pipeline_accepts_path_bytes_and_dict(tmp_path, speechlike):
    path = tmp_path / "x.wav"
    sf.write(path, speechlike, 16000)
    buf = io.BytesIO()
    sf.write(buf, speechlike, 16000, format="WAV")
    pipe = audiozoo.pipeline("features", out_dir=tmp_path / "out")
    r_path, r_bytes, r_dict = pipe([str(path), buf.getvalue(), {"array": speechlike, "sampling_rate": 16000}])
    assert r_path["log_mel"]["shape"] == r_bytes["log_mel"]["shape"] == r_dict["log_mel"]["shape"] == [80, 131]
    assert abs(r_path["duration_s"] - 1.3) < 1e-3
    assert (tmp_path / "out" / "x.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "x.json").read_text())["sample_rate"] == 16000
    # 8 kHz input is resampled to the pipeline rate.
    r8 = pipe({"array": speechlike[::2], "sampling_rate": 8000})
    assert r8["log_mel"]["shape"] == [80, 131]


def test_pipeline_errors_are_clear():
    pipe = audiozoo.pipeline("features")
    with pytest.raises(AudioError, match="sampling_rate"):
        pipe(np.zeros(100, dtype=np.float32))
    with pytest.raises(ConfigError, match="unknown task"):
        audiozoo.pipeline("karaoke")
    with pytest.raises(ConfigError, match="names an untrained architecture"):
        audiozoo.pipeline("audio-classification", model="ast_tiny")
