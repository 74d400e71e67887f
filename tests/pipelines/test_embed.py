"""``embed`` pipeline and ``audiozoo embed`` verb: a tiny GE2E checkpoint everywhere, the real weights where
resemblyzer is installed."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.dsp.io import save_audio
from audiozoo.errors import AudioError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import FAMILY_TASKS, pipeline
from audiozoo.pipelines.embed import EmbedPipeline


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    torch.manual_seed(0)
    m = audiozoo.create_model("ge2e_speaker_encoder", **audiozoo.model_info("ge2e_speaker_encoder").tiny)
    return save_pretrained(m, tmp_path_factory.mktemp("ckpt") / "ge2e_tiny")


def _tone(path, f0: float, seconds: float, sr: int = 16000):
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * 0.1
    save_audio(path, x.astype(np.float32), sr)
    return path


def test_pipeline_embeds_and_compares(tiny_folder, tmp_path):
    assert FAMILY_TASKS["embed"] == "embed"
    pipe = pipeline(model=str(tiny_folder))  # the task follows the model's family
    assert isinstance(pipe, EmbedPipeline) and pipe.sample_rate == 16000
    a = _tone(tmp_path / "a.wav", 120, 1.0)
    b = _tone(tmp_path / "b.flac", 220, 2.5, sr=22050)  # resampled to 16 kHz by the pipeline
    r = pipe(str(a))
    assert r["embed_dim"] == 8 and len(r["embedding"]) == 8 and r["num_partials"] == 9
    assert np.linalg.norm(r["embedding"]) == pytest.approx(1.0, abs=1e-5)
    # the same as the model's own embed on the same audio
    wav = torch.from_numpy(audiozoo.load_audio(a)[0].numpy())
    np.testing.assert_allclose(r["embedding"], pipe.model.embed(wav)[0].detach().numpy(), atol=1e-6)
    res = pipe.compare([str(a), str(b), str(a)])
    sim = np.array(res["similarity"])
    assert sim.shape == (3, 3) and np.allclose(np.diag(sim), 1.0, atol=1e-5) and sim[0, 2] == pytest.approx(1.0)
    e0, e1 = (np.array(res["items"][i]["embedding"]) for i in (0, 1))
    assert sim[0, 1] == pytest.approx(e0 @ e1 / np.linalg.norm(e0) / np.linalg.norm(e1), abs=1e-6)


def test_pipeline_refuses_short_input_and_flags_silence(tiny_folder, tmp_path):
    pipe = EmbedPipeline(model=str(tiny_folder))
    save_audio(tmp_path / "short.wav", np.zeros(800, np.float32) + 0.1, 16000)
    with pytest.raises(AudioError, match="too short to embed"):
        pipe(str(tmp_path / "short.wav"))
    save_audio(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    assert "silence" in pipe(str(tmp_path / "silence.wav"))["warning"]


def test_cli_embed_writes_json(tiny_folder, tmp_path, capsys):
    a, b = _tone(tmp_path / "a.wav", 120, 1.0), _tone(tmp_path / "b.wav", 300, 1.2)
    out = tmp_path / "out" / "emb.json"
    assert main(["embed", "-m", str(tiny_folder), str(a), str(b), "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["input"] for r in res["items"]] == [str(a), str(b)] and len(res["similarity"]) == 2
    assert "cosine similarity" in capsys.readouterr().out
    assert main(["embed", str(a)]) == 2  # neither --speaker nor -m: a clean error
    assert "--speaker" in capsys.readouterr().err


def test_cli_embed_speaker_with_real_weights(shared_data, tmp_path, capsys):
    try:
        if metadata.version("resemblyzer") != "0.1.4":
            pytest.skip("resemblyzer 0.1.4 is needed")
    except metadata.PackageNotFoundError:
        pytest.skip("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4 (scripts/setup.sh)")
    files = [shared_data / "fsdd" / f for f in ("0_george_1.wav", "5_george_2.wav", "0_jackson_1.wav")]
    assert main(["embed", "--speaker", *map(str, files), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    sim = np.array(res["similarity"])
    assert res["model"] == "ge2e_speaker_encoder.resemblyzer" and res["items"][0]["embed_dim"] == 256
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]  # same speaker, different digits, is closer
