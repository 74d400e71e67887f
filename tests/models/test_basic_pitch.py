"""Basic Pitch (NMP): architecture facts, front-end pieces, and parity with the official nmp.onnx."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.dsp.io import load_audio
from audiozoo.errors import AudioError, MissingDependencyError
from audiozoo.models.transcribe.basic_pitch import (
    AUDIO_N_SAMPLES,
    INSTALL_HINT,
    BasicPitchConfig,
    NormalizedLog,
    find_basic_pitch_onnx,
    harmonic_shifts,
    load_nmp_onnx,
    n_cqt_bins,
)

CLIP = "librosa/Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg"


def test_constants_match_reference():
    c = BasicPitchConfig()
    # basic_pitch.models.get_cqt: 3 * min(ceil(12 log2 8) + 88, floor(12 log2(11025 / 27.5))) = 3 * 103
    assert n_cqt_bins(c) == 309
    # nn.HarmonicStacking for harmonics 0.5, 1..7 at 36 bins/octave
    assert harmonic_shifts(c) == [-36, 0, 36, 57, 72, 84, 93, 101]
    assert AUDIO_N_SAMPLES == 43844


def test_param_count_and_output_shapes():
    model = audiozoo.create_model("basic_pitch_nmp").eval()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 16_782  # paper / Keras summary
    with torch.no_grad():
        out = model(0.1 * torch.randn(1, AUDIO_N_SAMPLES))
        feats = model.features(0.1 * torch.randn(1, AUDIO_N_SAMPLES))
    # 172 frames per 2 s window (constants.ANNOT_N_FRAMES), 264 contour bins, 88 notes
    assert list(out) == ["onset", "contour", "note"]
    assert out["contour"].shape == (1, 172, 264)
    assert out["note"].shape == out["onset"].shape == (1, 172, 88)
    assert feats.shape == (1, 8, 172, 264)


def test_harmonic_stacking_shifts_bins():
    model = audiozoo.create_model("basic_pitch_nmp")
    x = torch.arange(309.0).expand(1, 1, 2, 309)
    y = model.stack(x)
    assert y.shape == (1, 8, 2, 264)
    assert torch.equal(y[0, 1, 0], x[0, 0, 0, :264])  # h = 1 unchanged
    assert torch.equal(y[0, 2, 0, :10], x[0, 0, 0, 36:46])  # h = 2: one octave up
    assert torch.equal(y[0, 0, 0, :36], torch.zeros(36))  # h = 0.5: zero-filled below the CQT
    assert torch.equal(y[0, 0, 0, 36:40], x[0, 0, 0, :4])
    assert torch.equal(y[0, 7, 0, 208:], torch.zeros(56))  # h = 7: past the top CQT bin (309 - 101)


def test_normalized_log_range_and_silence():
    norm = NormalizedLog()
    y = norm(torch.rand(2, 5, 7) + 0.1)
    assert torch.allclose(y.amin(dim=(1, 2)), torch.zeros(2)) and torch.allclose(y.amax(dim=(1, 2)), torch.ones(2))
    # divide_no_nan: a constant (silent) input gives zeros, not NaN
    assert torch.equal(norm(torch.zeros(1, 4, 3)), torch.zeros(1, 4, 3))


def test_bad_inputs_raise_clear_errors():
    model = audiozoo.create_model("basic_pitch_nmp", **audiozoo.model_info("basic_pitch_nmp").tiny)
    with pytest.raises(AudioError, match="shorter than one hop"):
        model(torch.zeros(1, 100))
    with pytest.raises(AudioError, match="expected audio"):
        model(torch.zeros(1, 5, 10, 36))


def test_missing_onnx_names_the_install_command(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("AUDIOZOO_BASIC_PITCH_ONNX", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps basic-pitch==0.4.0"):
        find_basic_pitch_onnx()


def _onnx_path():
    try:
        return find_basic_pitch_onnx()
    except MissingDependencyError as e:
        pytest.fail(f"parity needs the official weights: {e} (CI: `{INSTALL_HINT}`)")


@pytest.mark.parity
def test_parity_with_official_onnx(shared_data):
    import onnxruntime as ort

    path = _onnx_path()
    model = audiozoo.create_model("basic_pitch_nmp", pretrained=load_nmp_onnx(path)).eval()
    wav, _ = load_audio(shared_data / CLIP, sample_rate=22050, offset=2.0, duration=4.5)
    # two overlapping 2 s windows, as basic_pitch.inference feeds the network
    x = torch.stack([wav[i : i + AUDIO_N_SAMPLES] for i in (0, 30000)])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()[..., None]})
    # output names -> heads, as basic_pitch.inference maps them
    heads = {"StatefulPartitionedCall:0": "contour", "StatefulPartitionedCall:1": "note",
             "StatefulPartitionedCall:2": "onset"}
    ref = {heads[o.name]: v for o, v in zip(sess.get_outputs(), outs)}
    with torch.no_grad():
        got = model(x)
    for k in ("contour", "note", "onset"):
        assert got[k].shape == ref[k].shape
        # float32 CQT + convs in a different op order than ONNX Runtime; measured max 1.3e-5 (contour;
        # onset 1.1e-5, note 6.4e-6) with the polyphase CQT decimation and folded BatchNorms (1.9e-6 before);
        # 1e-4 is the DESIGN.md parity bar on [0, 1] sigmoid outputs.
        np.testing.assert_allclose(got[k].numpy(), ref[k], atol=1e-4, rtol=0)
    assert ref["note"].max() > 0.5  # real music: the comparison covers active notes, not only silence
