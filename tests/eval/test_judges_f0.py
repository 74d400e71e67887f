"""CREPE F0 judge: network parity with torchcrepe (same weights), pure tones in cents, F0 RMSE and voicing
error between two signals."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from audiozoo.errors import ConfigError, MissingDependencyError
from audiozoo.eval.judges import f0 as F0


def _crepe(capacity: str):
    try:
        return F0.crepe_model(capacity)
    except MissingDependencyError as e:
        pytest.skip(str(e))


def _tone(freq: float, sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parity
@pytest.mark.parametrize("capacity", ["tiny", "full"])
def test_network_matches_torchcrepe(capacity, monkeypatch):
    ours = _crepe(capacity)
    if "torchaudio" not in sys.modules:  # torchcrepe imports torchaudio, whose wheel needs CUDA torch here
        monkeypatch.setitem(sys.modules, "torchaudio", types.ModuleType("torchaudio"))
    tc = pytest.importorskip("torchcrepe")
    ref = tc.Crepe(capacity)
    ref.load_state_dict(torch.load(F0.judge_file(f"crepe/{capacity}.pth"), weights_only=True))
    frames = torch.randn(6, 1024)
    with torch.no_grad():
        torch.testing.assert_close(ours(frames), ref.eval()(frames), atol=1e-5, rtol=0)


@pytest.mark.parametrize("freq", [110.0, 220.0, 440.0, 880.0])
def test_pure_tones_in_cents(freq):
    _crepe("tiny")
    f0, conf = F0.f0_crepe(_tone(freq), 16000, model="tiny")
    assert f0.shape == conf.shape == (1 + 8000 // 160,)
    voiced = f0 > 0
    assert voiced.float().mean() > 0.9
    cents = 1200 * torch.log2(f0[voiced] / freq)
    assert cents.median().abs() < 15  # measured with tiny: -3 to +7 cents


def test_f0_distance_between_two_signals():
    _crepe("tiny")
    sr = 22050  # not 16 kHz: resampled inside, frames on the input's 10 ms grid
    a, b = _tone(220.0, sr), _tone(220.0 * 2 ** (100 / 1200), sr)  # b is 100 cents (a semitone) higher
    same = F0.crepe_f0_distance(a, a, sr, model="tiny")
    assert same["f0_rmse_cents"] == 0.0 and same["vuv_error"] == 0.0
    rep = F0.crepe_f0_distance(b, a, sr, model="tiny")
    assert 85 < rep["f0_rmse_cents"] < 115 and rep["vuv_error"] < 0.1 and rep["voiced_frames"] > 40
    assert "CREPE-tiny" in rep["judge"]
    # noise is (mostly) unvoiced: the voicing error against a tone is large
    noise = (0.3 * np.random.default_rng(0).standard_normal(a.size)).astype(np.float32)
    assert F0.crepe_f0_distance(noise, a, sr, model="tiny")["vuv_error"] > 0.5


def test_batch_hop_and_errors():
    _crepe("tiny")
    x = np.stack([_tone(200.0), _tone(300.0)])
    f0, conf = F0.f0_crepe(x, 16000, hop_length=320, model="tiny")
    assert f0.shape == (2, 1 + 8000 // 320)
    assert abs(float(f0[1, 5:-5].median()) - 300.0) < 5
    with pytest.raises(ConfigError, match="capacity"):
        F0.f0_crepe(x, 16000, model="large")
    with pytest.raises(ConfigError, match="threshold"):
        F0.f0_crepe(x, 16000, threshold=2.0)
