"""GE2E speaker encoder (``ge2e_speaker_encoder``) with resemblyzer's released weights (issue #12).

The reference is resemblyzer 0.1.4's ``VoiceEncoder`` (``voice_encoder.py``: network, partial slicing,
``embed_utterance``) and ``audio.normalize_volume``. ``resemblyzer/__init__`` imports ``audio.py``, which
imports ``webrtcvad`` at module level for the silence trimming that is not compared here, so a stub module
stands in for it. Tests skip with the install line when the package is absent.
"""

from __future__ import annotations

import pickle
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.dsp.io import load_audio, resample
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.hub import file_sha256
from audiozoo.models.embed import ge2e

PIN = ("resemblyzer", "0.1.4")
#: largest |difference| allowed between our embeddings and resemblyzer's (measured: 4e-7 on 13 real clips)
BOUND = 2e-6


def _installed() -> Path:
    try:
        d = metadata.distribution(PIN[0])
    except metadata.PackageNotFoundError:
        pytest.skip("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4 (scripts/setup.sh)")
    if d.version != PIN[1]:
        pytest.skip(f"resemblyzer {d.version} is installed, these tests pin {PIN[1]}")
    return Path(str(d.locate_file("resemblyzer/pretrained.pt")))


@pytest.fixture(scope="module")
def resemblyzer() -> types.ModuleType:
    _installed()
    pytest.importorskip("librosa")
    if "webrtcvad" not in sys.modules:  # only trim_long_silences uses it; not called here
        sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")
    import resemblyzer as rz

    return rz


@pytest.fixture(scope="module")
def model() -> ge2e.GE2ESpeakerEncoder:
    _installed()
    return audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()


def _clip(path: Path) -> np.ndarray:
    wav, sr = load_audio(path, mono=True)
    return (resample(wav, sr, 16000) if sr != 16000 else wav).numpy().astype(np.float32)


def test_pinned_file_sha256():
    path = _installed()
    assert path.stat().st_size == 17_090_379
    assert file_sha256(path) == ge2e.RESEMBLYZER_SHA256
    ws = audiozoo.registry.weight_set("ge2e_speaker_encoder.resemblyzer")
    assert ws.source == "package" and ws.location == ge2e.RESEMBLYZER_LOCATION and ws.license == "Apache-2.0"


def test_released_checkpoint_loads_weights_only(model):
    state = ge2e.load_resemblyzer()
    # the encoder holds every checkpoint tensor but GE2E's loss scale/bias (w = 70.9, b = -4.18 here)
    assert set(state) - set(model.state_dict()) == {"similarity_weight", "similarity_bias"}
    assert state["similarity_weight"].item() == pytest.approx(70.8929, abs=1e-3)
    assert sum(p.numel() for p in model.parameters()) == 1_423_616
    torch.testing.assert_close(model.linear.weight, state["linear.weight"], rtol=0, atol=0)
    # the whole checkpoint dict (with step and optimizer state) goes through the converter too
    full = torch.load(_installed(), map_location="cpu", weights_only=True)
    again = audiozoo.create_model("ge2e_speaker_encoder", pretrained=full)
    torch.testing.assert_close(again.lstm.weight_hh_l2, model.lstm.weight_hh_l2, rtol=0, atol=0)


class _NotATensor:
    pass


def test_loader_refuses_files_that_need_a_full_unpickle(tmp_path):
    bad = tmp_path / "evil.pt"
    torch.save({"model_state": {"x": torch.zeros(1)}, "extra": _NotATensor()}, bad)
    with pytest.raises(CheckpointError, match="full unpickle"):
        ge2e.load_resemblyzer(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(CheckpointError):
        ge2e.load_resemblyzer(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"generator": {"w": torch.zeros(1)}}, plain)
    with pytest.raises(CheckpointError, match="model_state"):
        ge2e.load_resemblyzer(plain)


@pytest.mark.parametrize("seconds", [0.05, 0.8, 1.6, 1.61, 2.0, 2.1, 2.3, 3.7, 10.0, 31.3])
def test_partial_slices_match_resemblyzer(resemblyzer, seconds):
    n = int(seconds * 16000)
    _, mel_slices = resemblyzer.VoiceEncoder.compute_partial_slices(n, rate=1.3, min_coverage=0.75)
    assert ge2e.partial_starts(n, ge2e.GE2EConfig()) == [s.start for s in mel_slices]
    assert all(s.stop - s.start == 160 for s in mel_slices)


def test_partial_slices_by_hand():
    cfg = ge2e.GE2EConfig()
    assert ge2e.partial_starts(100, cfg) == [0]  # shorter than one partial: one zero-padded partial
    # 3 s = 301 frames -> starts 0, 77 (covers to 237), 154 (to 314, coverage (48000 - 24640) / 25600 = 0.91)
    assert ge2e.partial_starts(48000, cfg) == [0, 77, 154]
    # 2.6 s: the third partial would cover (41600 - 24640) / 25600 = 0.66 < 0.75 of its window: dropped
    assert ge2e.partial_starts(41600, cfg) == [0, 77]
    with pytest.raises(AudioError):
        ge2e.partial_starts(0, cfg)


def test_volume_normalisation_matches_resemblyzer(resemblyzer):
    fe = ge2e.GE2EFrontend(ge2e.GE2EConfig())
    rng = np.random.default_rng(0)
    quiet = (0.001 * rng.standard_normal(8000)).astype(np.float32)
    loud = (0.5 * rng.standard_normal(8000)).astype(np.float32)
    for x in (quiet, loud):
        want = resemblyzer.normalize_volume(x, -30, increase_only=True)
        got, _ = fe.prepare(torch.from_numpy(x)[None], torch.tensor([x.size]))
        np.testing.assert_allclose(got[0].numpy(), want, rtol=1e-5, atol=1e-7)
    # loud audio is never lowered; silence stays silence (the reference would give NaN)
    assert torch.equal(fe.prepare(torch.from_numpy(loud)[None], torch.tensor([8000]))[0][0], torch.from_numpy(loud))
    z, _ = fe.prepare(torch.zeros(1, 100), torch.tensor([100]))
    assert torch.equal(z, torch.zeros(1, 100))


@pytest.mark.parity
def test_frontend_is_librosas_power_mel():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(5000)).astype(np.float32)
    fe = ge2e.GE2EFrontend(ge2e.GE2EConfig(norm_dbfs=None))
    got, frames = fe(torch.from_numpy(x)[None])
    want = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=400, hop_length=160, n_mels=40)
    assert got.shape == (1, 40, want.shape[1]) and frames.item() == 5000 // 160 + 1
    np.testing.assert_allclose(got[0].numpy(), want, rtol=1e-4, atol=1e-6 * want.max())


@pytest.mark.parity
def test_same_embeddings_as_resemblyzer_on_real_speech(resemblyzer, model, shared_data):
    """Same volume-normalised 16 kHz waveform into both: utterance and partial embeddings agree to ``BOUND``."""
    ref = resemblyzer.VoiceEncoder("cpu", verbose=False).eval()
    files = [shared_data / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav",  # 3.9 s, 4 partials
             shared_data / "speech_sources" / "sisec2011_speech" / "dev1_male4_src_1.wav",  # 10 s, 12 partials
             shared_data / "fsdd" / "3_theo_7.wav"]  # < 1 s, 8 kHz: one zero-padded partial
    files = [f for f in files if f.is_file()]
    if not files:
        pytest.skip("no speech clips in ../shared/data")
    wavs = [resemblyzer.normalize_volume(_clip(f), -30, increase_only=True).astype(np.float32) for f in files]
    for w in wavs:
        want, want_parts, _ = ref.embed_utterance(w, return_partials=True)
        with torch.no_grad():
            got, parts = model.embed(torch.from_numpy(w), return_partials=True)
        assert parts[0].shape == want_parts.shape
        assert np.abs(got[0].numpy() - want).max() < BOUND
        assert np.abs(parts[0].numpy() - want_parts).max() < BOUND
    # a padded batch of all of them gives the same embeddings as one at a time
    t = max(w.size for w in wavs)
    batch = torch.stack([torch.nn.functional.pad(torch.from_numpy(w), (0, t - w.size)) for w in wavs])
    with torch.no_grad():
        together = model.embed(batch, torch.tensor([w.size for w in wavs]))
        alone = torch.cat([model.embed(torch.from_numpy(w)) for w in wavs])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_embed_raises_quiet_audio_to_minus_30_dbfs(model, shared_data):
    """``embed`` applies resemblyzer's volume normalisation itself: a quiet copy of a clip at -30 dBFS RMS gives
    the same embedding; a louder copy is not lowered (raise only), so its embedding differs."""
    w = torch.from_numpy(_clip(shared_data / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_axb_a0005.wav"))
    at_30 = w * 10 ** ((-30 - 10 * torch.log10(w.double().square().mean())) / 20).float()
    with torch.no_grad():
        ref, quiet, loud = model.embed(torch.stack([at_30, 0.01 * at_30, 8.0 * at_30]))
    torch.testing.assert_close(quiet, ref, rtol=0, atol=1e-5)
    assert (loud - ref).abs().max() > 1e-3


def test_forward_with_lengths_equals_each_item_alone():
    torch.manual_seed(0)
    m = audiozoo.create_model("ge2e_speaker_encoder", **audiozoo.model_info("ge2e_speaker_encoder").tiny).eval()
    x = torch.rand(3, 40, 25)
    lengths = torch.tensor([25, 9, 17])
    with torch.no_grad():
        out = m(x, lengths)
        alone = torch.cat([m(x[i:i + 1, :, :n]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(out, alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    with pytest.raises(AudioError, match="lengths"):
        m(x, torch.tensor([25, 0, 3]))
    with pytest.raises(AudioError, match=r"\(B, 40, L\)"):
        m(torch.rand(2, 12, 5))


def test_paper_variant_is_the_projected_768_lstm():
    with torch.device("meta"):
        m = audiozoo.create_model("ge2e_speaker_encoder_768")
    assert m.lstm.hidden_size == 768 and m.lstm.proj_size == 256 and m.linear is None and m.embed_dim == 256
    assert m.config.log_mel and m.config.partial_frames == 80 and m.config.partial_step == 40
    with pytest.raises(ConfigError, match="embed_dim"):
        audiozoo.create_model("ge2e_speaker_encoder", linear=False, embed_dim=128)


def test_embed_checks_its_input():
    m = audiozoo.create_model("ge2e_speaker_encoder", **audiozoo.model_info("ge2e_speaker_encoder").tiny)
    with pytest.raises(AudioError, match="16000 Hz"):
        m.embed(torch.zeros(1000), sample_rate=22050)
    with pytest.raises(AudioError, match="lengths"):
        m.embed(torch.zeros(2, 1000), torch.tensor([1000, 0]))
    with pytest.raises(AudioError, match="float"):
        m.embed(torch.zeros(1000, dtype=torch.int16))


def test_missing_package_says_what_to_install(monkeypatch):
    from audiozoo.errors import MissingDependencyError

    monkeypatch.setattr(ge2e, "RESEMBLYZER_LOCATION", "resemblyzer-not-here-xyz==0.1.4:resemblyzer/pretrained.pt")
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps resemblyzer-not-here-xyz==0\.1\.4"):
        ge2e.load_resemblyzer()
