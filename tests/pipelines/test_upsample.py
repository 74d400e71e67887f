"""UpsamplePipeline and `audiozoo upsample`: output length, sinc path, a tiny model path, refusal of bad rates."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.errors import AudioError, ConfigError
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.upsample import UpsamplePipeline, bandwidth_substitution


def _tiny_model():
    return audiozoo.create_model("hifisr_small_16k", **audiozoo.model_info("hifisr_small_16k").tiny)


@pytest.mark.parametrize(("n", "sr_in", "sr_out"), [(8001, 8000, 48000), (7777, 22050, 48000), (1234, 11025, 16000)])
def test_sinc_output_length(n: int, sr_in: int, sr_out: int) -> None:
    up = pipeline("upsample", rate=sr_out)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
    out = up({"array": x, "sampling_rate": sr_in})
    assert out["audio"].shape == (round(n * sr_out / sr_in),) and out["sample_rate"] == sr_out
    assert out["method"].startswith("sinc")


def test_model_path_length_chunking_and_refusal() -> None:
    m = _tiny_model()  # 4-12 kHz input -> 16 kHz
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.1)
    whole = UpsamplePipeline(m, chunk_seconds=100.0)
    chunked = UpsamplePipeline(m, chunk_seconds=0.25, context_seconds=0.05)
    a, b = whole.upsample(x, 8000), chunked.upsample(x, 8000)
    assert a.shape == b.shape == (round(12345 * 16000 / 8000),)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    # output at another rate: resampled after the model, same length rule
    assert UpsamplePipeline(m, rate=48000).upsample(x, 11025).shape == (round(12345 * 48000 / 11025),)
    for bad in (2000, 16000, 44100):
        with pytest.raises(AudioError, match="outside this model's supported range"):
            whole.upsample(x, bad)
    with pytest.raises(ConfigError):
        UpsamplePipeline(audiozoo.create_model("hifigan_v1", **audiozoo.model_info("hifigan_v1").tiny))


def test_bandwidth_substitution_keeps_the_input_band() -> None:
    rng = np.random.default_rng(0)
    inp, gen = (torch.from_numpy(rng.standard_normal(16000).astype(np.float32)) for _ in range(2))
    y = bandwidth_substitution(gen, inp, 16000, 8000)
    fy, fi, fg = (torch.fft.rfft(v[1000:-1000]) for v in (y, inp, gen))
    f = torch.fft.rfftfreq(14000, 1 / 16000)
    low, high = f < 3500, f > 4200
    # per-frame masking in a 1024-point Hann STFT leaks a little across the cross-fade: measured 4.0e-3 /
    # 5.0e-3 relative error in the low / high kept band (white noise); 1e-2 fails if a band came from the
    # wrong signal (error ~1.4)
    assert torch.linalg.norm(fy[low] - fi[low]) < 1e-2 * torch.linalg.norm(fi[low])
    assert torch.linalg.norm(fy[high] - fg[high]) < 1e-2 * torch.linalg.norm(fg[high])


def test_cli_sinc_and_model(tmp_path, capsys) -> None:
    wav = tmp_path / "in8k.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 8000)
    assert main(["upsample", str(wav), "-o", str(tmp_path / "o48.wav"), "--rate", "48000"]) == 0
    data, sr = sf.read(tmp_path / "o48.wav")
    assert sr == 48000 and len(data) == 48000
    folder = tmp_path / "tiny"
    audiozoo.hub.save_pretrained(_tiny_model(), folder)
    assert main(["upsample", str(wav), "-o", str(tmp_path / "o16.wav"), "--model", str(folder)]) == 0
    data, sr = sf.read(tmp_path / "o16.wav")
    assert sr == 16000 and len(data) == 16000
    bad = tmp_path / "in2k.wav"
    sf.write(bad, np.zeros(2000, dtype=np.float32), 2000)
    assert main(["upsample", str(bad), "-o", str(tmp_path / "x.wav"), "--model", str(folder)]) != 0
    assert "supported range" in capsys.readouterr().err
