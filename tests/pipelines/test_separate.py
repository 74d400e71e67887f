"""``separate`` pipeline and CLI verb: windowed overlap-add streaming, channel/rate handling, files per source."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.errors import ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.streaming import overlap_add_spans, overlap_add_stream, overlap_add_taper


def _two(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x, -2 * x])  # (2, ..., n): a length-keeping fn with a "source" axis


def test_overlap_add_is_exact_for_a_pointwise_fn_and_streams():
    x = torch.randn(2, 1000)
    calls = []

    def fn(seg):
        calls.append(seg.shape[-1])
        return _two(seg)

    it = overlap_add_stream(x, fn, window=128, overlap=32)
    first = next(it)
    assert len(calls) == 1 and first.shape[-1] == 96  # the first piece is out after one window
    y = torch.cat([first, *it], -1)
    assert y.shape == (2, 2, 1000) and torch.allclose(y, _two(x), atol=1e-6)
    assert max(calls) == 128
    # one window when the input is short; the last window ends exactly at the end
    assert overlap_add_spans(100, 128, 32) == [(0, 100)]
    spans = overlap_add_spans(1000, 128, 32)
    assert spans[-1][1] == 1000 and all(b - a == 128 for a, b in spans)
    with pytest.raises(ConfigError):
        overlap_add_spans(10, 8, 8)


def test_taper_is_a_linear_cross_fade():
    w = overlap_add_taper(10, 4)
    assert torch.allclose(w[:4] + w[-4:], torch.ones(4))  # two overlapping windows sum to 1
    assert w[4:6].eq(1).all() and overlap_add_taper(10, 4, left=False)[0] == 1


def test_overlap_add_cross_fades_window_outputs():
    """A fn that is not shift-invariant (adds its window's own mean): the output in an overlap is the linear
    cross-fade of the two windows' outputs."""
    x = torch.arange(40, dtype=torch.float32)
    y = torch.cat(list(overlap_add_stream(x, lambda s: s + s.mean(), window=20, overlap=10)))
    a, b = x[0:20].mean(), x[10:30].mean()
    w = overlap_add_taper(20, 10)[10:]  # window 1's ramp down over [10, 20)
    assert torch.allclose(y[10:20], x[10:20] + w * a + (1 - w) * b, atol=1e-5)
    assert torch.allclose(y[:10], x[:10] + a)


@pytest.fixture
def tasnet_dir(tmp_path):
    info = audiozoo.model_info("conv_tasnet_speech")
    m = audiozoo.create_model("conv_tasnet_speech", **info.tiny, segment_seconds=0.05)
    return save_pretrained(m, tmp_path / "tasnet"), m.eval()


def test_pipeline_separates_and_writes_files(tasnet_dir, tmp_path):
    folder, m = tasnet_dir
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal((16000, 2))).astype(np.float32)  # stereo at 16 kHz: down-mixed, resampled
    path = tmp_path / "mix.wav"
    sf.write(path, wav, 16000)
    sep = pipeline("separate", model=str(folder))
    assert sep.window == 400 and sep.overlap == 100
    out = sep(str(path))
    assert set(out["sources"]) == {"s1", "s2"} and out["sample_rate"] == 8000 and out["input_rate"] == 16000
    mix = out["mixture"]
    assert mix.shape == (1, 8000)
    assert out["sources"]["s1"].shape == (1, 8000)
    # one window covering everything is the model itself
    whole = pipeline("separate", model=str(folder), chunk_seconds=2.0)(str(path))
    with torch.no_grad():
        direct = m(mix[None])[0]
    assert torch.allclose(whole["sources"]["s2"], direct[1], atol=1e-5)
    res = sep.separate_to_files(str(path), tmp_path / "out")
    for name in ("s1", "s2"):
        data, sr = sf.read(res["files"][name], dtype="float32")
        assert sr == 8000 and data.shape == (8000,)
        assert np.allclose(data, out["sources"][name][0].numpy(), atol=1e-6)


def test_mono_input_to_a_stereo_model(tmp_path):
    m = audiozoo.create_model("demucs_v2", **audiozoo.model_info("demucs_v2").tiny)
    sep = pipeline("separate", model=m, chunk_seconds=0.01)
    out = sep({"array": np.zeros(1000, np.float32) + 0.01, "sampling_rate": 44100})
    assert out["mixture"].shape == (2, 1000) and torch.equal(out["mixture"][0], out["mixture"][1])
    assert out["sources"]["vocals"].shape == (2, 1000)


def test_untrained_names_are_refused():
    with pytest.raises(ConfigError, match="untrained"):
        pipeline("separate", model="mossformer_small")  # no weight set


def test_cli_separate(tasnet_dir, tmp_path, capsys):
    folder, _ = tasnet_dir
    path = tmp_path / "mix.wav"
    sf.write(path, (0.1 * np.random.default_rng(1).standard_normal(4000)).astype(np.float32), 8000)
    assert main(["separate", str(path), "-o", str(tmp_path / "o"), "-m", str(folder)]) == 0
    assert (tmp_path / "o" / "s1.wav").is_file() and (tmp_path / "o" / "s2.wav").is_file()
    assert "2 sources at 8000 Hz" in capsys.readouterr().out
