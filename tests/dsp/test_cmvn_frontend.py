"""Per-utterance CMVN option of the shared log-mel front end (``DecibelMelFrontend(cmvn=...)``, PANNs ``cmvn``)."""

import json

import pytest
import torch

from audiozoo.dsp import DecibelMelFrontend
from audiozoo.dsp.features import feature_extractor_from_config, floor_db, utterance_cmvn
from audiozoo.errors import ConfigError
from audiozoo.models.classify.panns import PANNsConfig, PANNsFrontend


def _fe(cmvn: str) -> DecibelMelFrontend:
    return DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0, cmvn=cmvn)


def _wav(seed: int = 0, n: int = 4000) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 300 * t * (1 + t)) + 0.05 * torch.randn(n, generator=g))[None]


def test_mean_var_normalises_each_bin_over_valid_frames():
    wav = torch.cat([_wav(0), _wav(1)])
    lengths = torch.tensor([4000, 2500])
    feats, frames = _fe("mean_var")(wav, lengths)
    for b in range(2):
        f = feats[b, :, : frames[b]]
        assert torch.allclose(f.mean(-1), torch.zeros(24), atol=1e-4)
        assert torch.allclose(f.std(-1, unbiased=False), torch.ones(24), atol=1e-3)
        assert torch.all(feats[b, :, frames[b]:] == 0)  # padding zeroed
    # statistics are per item: the first item of the batch is normalised like the lone clip
    lone, _ = _fe("mean_var")(wav[:1])
    assert torch.allclose(feats[0], lone[0], atol=1e-4)


def test_cmvn_removes_level_and_channel_gain():
    wav = _wav(2)
    plain, cmvn = _fe("none"), _fe("mean_var")
    # 20 dB quieter: the dB log-mel moves by -20 in every bin, the CMVN features do not move
    assert (plain(wav)[0] - plain(0.1 * wav)[0]).abs().mean() > 10
    assert torch.allclose(cmvn(wav)[0], cmvn(0.1 * wav)[0], atol=1e-3)
    mean_only = _fe("mean")(wav)[0]
    assert torch.allclose(mean_only, _fe("mean")(0.1 * wav)[0], atol=1e-3)
    assert torch.allclose(mean_only.mean(-1), torch.zeros(24), atol=1e-3)
    assert not torch.allclose(mean_only.std(-1), torch.ones(24), atol=1e-2)


def test_none_is_the_unchanged_front_end_and_bad_modes_fail():
    wav = _wav(3)
    default = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0)
    assert torch.equal(default(wav)[0], _fe("none")(wav)[0])
    assert torch.equal(PANNsFrontend(PANNsConfig())(_wav(3, 8000))[0],
                       DecibelMelFrontend()(_wav(3, 8000))[0])  # PANNs' default front end is untouched
    with pytest.raises(ConfigError, match="cmvn must be one of"):
        _fe("global")


def test_config_round_trip_keeps_cmvn():
    for fe in (_fe("mean_var"), PANNsFrontend(PANNsConfig(sample_rate=16000, n_fft=512, hop_length=160,
                                                          n_mels=24, f_max=4000.0, cmvn="mean"))):
        cfg = fe.get_config()
        assert cfg["cmvn"] in ("mean", "mean_var")
        again = feature_extractor_from_config(json.loads(json.dumps(cfg)))
        assert again.get_config() == cfg
        wav = _wav(4)
        assert torch.equal(fe(wav)[0], again(wav)[0])


def test_utterance_cmvn_mean_only():
    x = torch.randn(2, 3, 10) * 4 + 7
    out = utterance_cmvn(x, torch.tensor([10, 6]), variance=False)
    assert torch.allclose(out[0], x[0] - x[0].mean(-1, keepdim=True), atol=1e-5)
    assert torch.allclose(out[1, :, :6], x[1, :, :6] - x[1, :, :6].mean(-1, keepdim=True), atol=1e-5)
    assert torch.all(out[1, :, 6:] == 0)


def test_trim_drops_leading_and_trailing_silence():
    wav = torch.zeros(1, 16000)
    wav[0, 4000:8000] = _wav(5)[0]
    wav = wav + 1e-5 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    plain = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0)
    trim = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0, trim_db=45.0)
    full, n_full = plain(wav)
    cut, n_cut = trim(wav)
    assert int(n_full[0]) == 101 and 25 <= int(n_cut[0]) <= 31  # 0.25 s of sound (+ the 32 ms window each side)
    first = int(n_full[0]) - int(n_cut[0])
    frame_level = 10 * torch.log10((10 ** (full[0].double() / 10)).mean(0))
    # the kept frames are the plain front end's frames from the first loud one on, moved to t = 0
    start = int((frame_level >= frame_level.max() - 45).nonzero()[0])
    assert torch.equal(cut[0, :, : n_cut[0]], full[0, :, start:start + int(n_cut[0])])
    assert torch.all(cut[0, :, n_cut[0]:] == 0) and first > 0
    # with CMVN, the silence before the word no longer moves the statistics
    a = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0, cmvn="mean_var", trim_db=45.0)
    b = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0, cmvn="mean_var")
    shorter = wav[:, 2400:9600]  # less silence around the word, on the same 10 ms frame grid
    assert torch.allclose(a(wav)[0][0, :, :20], a(shorter)[0][0, :, :20], atol=1e-3)
    assert not torch.allclose(b(wav)[0][0, :, :20], b(shorter)[0][0, :, :20], atol=1e-1)


def test_floor_raises_values_below_the_peak_minus_floor_db():
    x = torch.tensor([[[-10.0, -70.0, -30.0, -100.0]]])
    out = floor_db(x, torch.tensor([3]), 40.0)
    assert out.tolist() == [[[-10.0, -50.0, -30.0, -100.0]]]  # frame 3 is padding: untouched
    fe = DecibelMelFrontend(16000, 512, 160, 24, 50.0, 4000.0, floor_db=30.0)
    f, n = fe(_wav(6))
    assert float(f.min()) >= float(f.max()) - 30.0 - 1e-4
    with pytest.raises(ConfigError, match="floor_db must be None or > 0"):
        DecibelMelFrontend(floor_db=0.0)
