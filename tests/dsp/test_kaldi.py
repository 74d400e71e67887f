"""Kaldi fbank vs kaldi-native-fbank (<= 80 bins) and transformers' ASTFeatureExtractor (128 bins)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.dsp.kaldi import kaldi_fbank, kaldi_mel_banks, kaldi_window
from audiozoo.errors import AudioError


def _knf(x: np.ndarray, sr: int, **opts) -> np.ndarray:
    import kaldi_native_fbank as knf

    o = knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sr
    o.frame_opts.window_type = opts.get("window_type", "povey")
    o.frame_opts.snip_edges = opts.get("snip_edges", True)
    o.frame_opts.preemph_coeff = opts.get("preemphasis", 0.97)
    o.frame_opts.remove_dc_offset = opts.get("remove_dc_offset", True)
    o.mel_opts.num_bins = opts.get("num_mel_bins", 23)
    o.mel_opts.low_freq = opts.get("low_freq", 20.0)
    o.mel_opts.high_freq = opts.get("high_freq", 0.0)
    o.use_energy = opts.get("use_energy", False)
    o.raw_energy = opts.get("raw_energy", True)
    o.htk_compat = opts.get("htk_compat", False)
    o.energy_floor = opts.get("energy_floor", 0.0)
    f = knf.OnlineFbank(o)
    f.accept_waveform(sr, x.tolist())
    f.input_finished()
    return np.stack([f.get_frame(i) for i in range(f.num_frames_ready)])


CASES = [
    dict(num_mel_bins=80),
    dict(num_mel_bins=80, window_type="hanning"),
    dict(num_mel_bins=40, window_type="hamming", snip_edges=False, use_energy=True),
    dict(num_mel_bins=23, snip_edges=False, use_energy=True, raw_energy=False, htk_compat=True, energy_floor=1.0),
    dict(num_mel_bins=64, window_type="blackman", low_freq=50.0, high_freq=-400.0, preemphasis=0.0),
    dict(num_mel_bins=30, window_type="rectangular", remove_dc_offset=False),
]


@pytest.mark.parity
@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_matches_kaldi_native_fbank(opts, speechlike):
    x = speechlike
    ref = _knf(x, 16000, **opts)
    ours = kaldi_fbank(torch.from_numpy(x).double(), 16000, **opts).T.numpy()
    assert ours.shape == ref.shape
    # kaldi-native-fbank computes in float32: measured max abs diff on log energies 1e-5 .. 9e-5.
    np.testing.assert_allclose(ours, ref, atol=2e-4)


@pytest.mark.parity
def test_matches_kaldi_native_fbank_on_real_speech_8k(shared_data):
    import soundfile as sf

    x, sr = sf.read(shared_data / "fsdd" / "7_theo_3.wav", dtype="float32")
    ref = _knf(x, sr, num_mel_bins=23)
    ours = kaldi_fbank(torch.from_numpy(x).double(), sr, num_mel_bins=23).T.numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-4)


@pytest.mark.parity
def test_128_bins_match_ast_feature_extractor(speechlike):
    """kaldi-native-fbank refuses 128 bins at 16 kHz (empty mel bins); AST's reference is HF's extractor."""
    from transformers import ASTFeatureExtractor

    fe = ASTFeatureExtractor(do_normalize=False)
    ref = fe(speechlike, sampling_rate=16000, return_tensors="np")["input_values"][0]
    ours = kaldi_fbank(torch.from_numpy(speechlike).double(), 16000, num_mel_bins=128, window_type="hanning").T
    n = ours.shape[0]
    # HF's numpy path runs in float64 like ours here: measured max abs diff ~1e-6 (float32 output rounding).
    np.testing.assert_allclose(ours.numpy(), ref[:n], atol=1e-4)
    assert np.all(ref[n:] == 0)  # HF zero-pads to max_length


def test_batched_equals_single_and_layout(speechlike):
    x = torch.from_numpy(speechlike)
    b = torch.stack([x, x.flip(0)])
    out = kaldi_fbank(b, 16000, num_mel_bins=40)
    assert out.shape == (2, 40, 1 + (x.numel() - 400) // 160)
    torch.testing.assert_close(out[1], kaldi_fbank(x.flip(0), 16000, num_mel_bins=40))


def test_windows_and_banks():
    assert torch.allclose(kaldi_window("hanning", 400), torch.hann_window(400, periodic=False, dtype=torch.float64))
    banks = kaldi_mel_banks(23, 512, 16000)
    assert banks.shape == (23, 257) and banks[:, -1].abs().sum() == 0 and (banks >= 0).all()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(AudioError, match="float waveform"):
        kaldi_fbank(torch.zeros(1000, dtype=torch.int16), 16000)
    with pytest.raises(AudioError, match="empty"):
        kaldi_fbank(torch.zeros(0), 16000)
    with pytest.raises(AudioError, match="shorter than one"):
        kaldi_fbank(torch.zeros(100), 16000)
    with pytest.raises(AudioError, match="unknown Kaldi window"):
        kaldi_fbank(torch.zeros(1000), 16000, window_type="kaiser")
