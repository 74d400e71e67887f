"""HEAR-style ``audio-embeddings`` pipeline and ``audiozoo embed -m`` (tiny checkpoints of an ssl, a classify and an
embed model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.dsp.io import save_audio
from audiozoo.errors import AudioError, ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.embeddings import AudioEmbeddingPipeline, write_embeddings


def _tiny(name: str, **kw):
    torch.manual_seed(0)
    return audiozoo.create_model(name, **{**audiozoo.model_info(name).tiny, **kw})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    return {n: str(save_pretrained(_tiny(n), root / n)) for n in ("ssast_tiny_patch", "ast_tiny", "melception_small")}


def _tone(seconds: float, sr: int = 16000, f0: float = 300.0) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    return 0.3 * torch.sin(2 * torch.pi * f0 * t) + 0.01 * noise


def test_ssl_scene_is_the_mean_of_timestamped_frames_over_windows(folders):
    pipe = pipeline(model=folders["ssast_tiny_patch"])  # the task follows the ssl family
    assert isinstance(pipe, AudioEmbeddingPipeline) and pipe.layer == pipe.model.num_layers
    wav = _tone(2.3)
    frames, ts = pipe.timestamps(wav)
    assert pipe.window < wav.shape[-1]  # several windows
    assert frames.shape == (ts.shape[0], pipe.model.embed_dim) and bool((ts.diff() > 0).all())
    assert 0 < float(ts[0]) < 100 and 2200 < float(ts[-1]) < 2300
    torch.testing.assert_close(pipe.scene(wav), frames.mean(0))
    # the first window's positions are exactly the model's own hidden states on that window
    feats, flen = pipe.model.frontend(wav[None, : pipe.window])
    ref = pipe.model.extract_features(feats, flen)[-1][0]
    torch.testing.assert_close(frames[: ref.shape[0]], ref)
    # another layer gives other vectors; an out-of-range layer is a clear error
    first = AudioEmbeddingPipeline(folders["ssast_tiny_patch"], layer=0)
    assert first.layer == 0 and not torch.allclose(first.scene(wav), pipe.scene(wav))
    with pytest.raises(ConfigError, match="out of range.*3 hidden states"):
        AudioEmbeddingPipeline(folders["ssast_tiny_patch"], layer=5)


@pytest.mark.parametrize("name", ["ast_tiny", "melception_small"])
def test_classifier_embedding_is_the_head_input(folders, name):
    pipe = AudioEmbeddingPipeline(folders[name], frame_seconds=0.5, timestamp_hop=0.25)
    m = pipe.model
    wav = _tone(1.0, m.frontend.sample_rate)
    n = pipe.window if pipe.fixed else wav.shape[-1]
    x = torch.zeros(1, n)
    x[0, : min(n, wav.shape[-1])] = wav[:n]
    feats, flen = m.frontend(x, torch.tensor([min(n, wav.shape[-1])]))
    emb = pipe.scene(wav) if pipe.window >= wav.shape[-1] else None
    head = pipe._head.layers[-1]
    with torch.no_grad():
        vec = pipe._window_vectors(x, torch.tensor([min(n, wav.shape[-1])]))
        torch.testing.assert_close(head(vec), m(feats, flen), rtol=1e-4, atol=1e-5)  # penultimate -> logits
    if emb is not None:
        torch.testing.assert_close(emb, vec[0])
    frames, ts = pipe.timestamps(wav)
    assert frames.shape == (len(ts), pipe.embed_dim) and 4 <= len(ts) <= 5 and float(ts[-1]) < 1000.0
    np.testing.assert_allclose(ts.numpy(), np.arange(len(ts)) * 250.0, atol=0.5)  # 0, hop, 2 hop, ...
    with pytest.raises(ConfigError, match="penultimate"):
        AudioEmbeddingPipeline(folders[name], layer=1)


def test_hear_api_shapes_and_errors(folders):
    pipe = AudioEmbeddingPipeline(folders["ssast_tiny_patch"])
    audio = torch.stack([_tone(1.0), _tone(1.0, f0=900.0)])
    scene = pipe.get_scene_embeddings(audio)
    emb, ts = pipe.get_timestamp_embeddings(audio)
    assert scene.shape == (2, pipe.scene_embedding_size) and emb.shape[0::2] == (2, pipe.timestamp_embedding_size)
    assert ts.shape == emb.shape[:2] and not torch.allclose(scene[0], scene[1])
    with pytest.raises(AudioError, match="too short to embed"):
        pipe.scene(torch.zeros(10))
    with pytest.raises(AudioError, match="n_sounds, n_samples"):
        pipe.get_scene_embeddings(torch.zeros(16000))


def test_random_init_needs_the_flag_and_warns():
    with pytest.raises(ConfigError, match="random_init"):
        AudioEmbeddingPipeline("ssast_tiny_patch")
    with pytest.warns(UserWarning, match="random initialisation"):
        pipe = AudioEmbeddingPipeline("ssast_tiny_patch", random_init=True)
    r = pipe({"array": _tone(0.5).numpy(), "sampling_rate": 16000})
    assert "baseline" in r["warning"] and r["embedding"].shape == (192,)
    with pytest.raises(ConfigError, match="bare architecture name"):
        AudioEmbeddingPipeline("ast_tiny.fsdd_digits", random_init=True)


def test_cli_embed_writes_npz_npy_json(folders, tmp_path, capsys):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    save_audio(a, _tone(1.0, 8000).numpy(), 8000)  # resampled to 16 kHz
    save_audio(b, _tone(1.7).numpy(), 16000)
    m = folders["ssast_tiny_patch"]
    assert main(["embed", "-m", m, str(a), str(b), "--frames", "-o", str(tmp_path / "e.npz")]) == 0
    z = np.load(tmp_path / "e.npz")
    assert z["embeddings"].shape == (2, 32) and z["frames_1"].shape[0] == z["timestamps_ms_1"].shape[0]
    np.testing.assert_allclose(z["embeddings"][1], z["frames_1"].mean(0), rtol=1e-5, atol=1e-6)
    assert main(["embed", "-m", m, str(a), "--frames", "--layer", "0", "-o", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape[0] == np.load(tmp_path / "f.timestamps_ms.npy").shape[0]
    assert main(["embed", "-m", m, str(a), str(b), "-o", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["family"] == "ssl" and len(res["items"][0]["embedding"]) == 32
    assert main(["embed", "-m", m, str(a), "--layer", "7"]) == 2
    assert "out of range" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="npz or .json"):
        write_embeddings(tmp_path / "x.npy", {"items": [{"embedding": np.zeros(2)}] * 2}, frames=True)


def test_speaker_encoder_scene_is_its_own_embedding(tmp_path, capsys):
    folder = str(save_pretrained(_tiny("ge2e_speaker_encoder"), tmp_path / "ge2e"))
    pipe = AudioEmbeddingPipeline(folder, timestamp_hop=0.1)
    wav = _tone(1.2)
    torch.testing.assert_close(pipe.scene(wav), pipe.model.embed(wav[None])[0])
    frames, ts = pipe.timestamps(wav)
    assert frames.shape == (12, pipe.embed_dim) and float(ts[-1]) == pytest.approx(1100.0)
    save_audio(tmp_path / "a.wav", wav.numpy(), 16000)
    assert main(["embed", "-m", folder, str(tmp_path / "a.wav")]) == 0  # speaker model, no options: GE2E output
    assert "8-d embedding" in capsys.readouterr().out
    assert main(["embed", "-m", folder, str(tmp_path / "a.wav"), "--frames", "--hop", "0.1"]) == 0  # HEAR output
    assert "8-d embed embedding (1.20 s; 12 timestamped frames)" in capsys.readouterr().out
