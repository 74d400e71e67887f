"""Band split / mask estimation blocks (audiozoo.nn.bandsplit): Mel-band membership, gather layout, overlap mean."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.nn.bandsplit import (
    BandMaskEstimator,
    BandSplit,
    ConvISTFT,
    ConvSTFT,
    OverlapAverage,
    RMSNorm,
    average_overlapping,
    band_indices,
    mel_band_assignment,
)


@pytest.mark.parametrize("sr,n_fft,k", [(44100, 2048, 60), (8000, 256, 8), (16000, 1024, 32)])
def test_mel_bands_cover_every_bin_with_overlap(sr, n_fft, k):
    m = mel_band_assignment(sr, n_fft, k)
    assert m.shape == (k, n_fft // 2 + 1) and m.dtype == torch.bool
    per_bin = m.sum(0)
    assert (per_bin >= 1).all()  # every bin is in some band
    assert (per_bin == 2).any()  # neighbouring triangles overlap
    assert per_bin.max() <= 2
    lo = m.float().argmax(1)
    hi = m.shape[1] - 1 - m.flip(1).float().argmax(1)
    assert (m.sum(1) == hi - lo + 1).all()  # each band is one contiguous run of bins
    assert (lo.diff() >= 0).all() and (hi.diff() >= 0).all()  # ascending
    assert m.sum(1)[-1] > m.sum(1)[0]  # mel scale: wider bands at high frequencies
    assert m[0, 0] and m[-1, -1]


def test_too_many_bands_is_a_config_error():
    with pytest.raises(ConfigError, match="empty"):
        mel_band_assignment(8000, 64, 60)


@pytest.mark.parity
@pytest.mark.parametrize("sr,n_fft,k", [(44100, 2048, 60), (8000, 256, 8)])
def test_mel_bands_match_librosa_filters(sr, n_fft, k):
    librosa = pytest.importorskip("librosa")
    ref = torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=k)) > 0
    ref[0, 0] = ref[-1, -1] = True
    assert torch.equal(mel_band_assignment(sr, n_fft, k), ref)


def test_band_indices_interleave_channels_per_bin():
    m = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    assert band_indices(m, 1).tolist() == [0, 1, 1, 2, 3]
    assert band_indices(m, 2).tolist() == [0, 1, 2, 3, 2, 3, 4, 5, 6, 7]


def test_average_overlapping_means_shared_bins():
    m = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    idx = band_indices(m)  # [0, 1, 1, 2]
    vals = torch.tensor([1.0, 2.0, 4.0, 8.0])[None, :, None].repeat(2, 1, 3)  # (B, N, L)
    out = average_overlapping(vals, idx, 3)
    assert out.shape == (2, 3, 3)
    assert torch.allclose(out[0, :, 0], torch.tensor([1.0, 3.0, 8.0]))
    z = torch.complex(vals, -vals)
    assert torch.allclose(average_overlapping(z, idx, 3)[1, :, 2], torch.tensor([1 - 1j, 3 - 3j, 8 - 8j]))


def test_band_split_and_mask_estimator_are_per_band():
    torch.manual_seed(0)
    dims = (4, 6, 10)
    split, est = BandSplit(dims, 8), BandMaskEstimator(8, dims, depth=2, hidden=16)
    x = torch.randn(2, 5, sum(dims))
    tok = split(x)
    assert tok.shape == (2, 5, 3, 8)
    y = x.clone()
    y[..., 4:10] += 1.0  # band 1 only
    d = (split(y) - tok).abs().amax(dim=(0, 1, 3))
    assert d[1] > 0 and d[0] == 0 and d[2] == 0
    out = est(tok)
    assert out.shape == (2, 5, sum(dims))
    assert len(est.to_freqs[0][0]) == 5  # Linear, Tanh, Linear, Tanh, Linear (depth 2)
    with pytest.raises(ConfigError):
        split(torch.randn(1, 2, 5))


def test_rmsnorm_is_scale_invariant():
    n = RMSNorm(6)
    x = torch.randn(3, 6)
    assert torch.allclose(n(x), n(7.0 * x), atol=1e-6)
    assert torch.allclose(n(x).pow(2).mean(-1), torch.ones(3), atol=1e-5)


def test_overlap_average_gather_equals_scatter_mean():
    m = mel_band_assignment(8000, 256, 8)
    idx = band_indices(m, 2)
    avg = OverlapAverage(idx, 129 * 2)
    assert avg.max_count == 2
    v = torch.randn(2, 3, len(idx), 7)
    assert (avg(v) - average_overlapping(v, idx, 129 * 2)).abs().max() < 1e-6


@pytest.mark.parametrize("n_fft,hop,win,t", [(256, 64, 256, 1999), (1024, 256, 800, 5000)])
def test_conv_stft_pair_equals_torch_stft_istft(n_fft, hop, win, t):
    x = torch.randn(3, t, dtype=torch.float64)
    real, imag = ConvSTFT(n_fft, hop, win).double()(x)
    w = torch.hann_window(win, dtype=torch.float64)
    ref = torch.stft(x, n_fft, hop, win, window=w, return_complex=True)  # centred, reflect-padded
    assert (torch.complex(real, imag) - ref).abs().max() < 1e-9
    y = ConvISTFT(n_fft, hop, win).double()(real, imag, t)
    assert (y - torch.istft(ref, n_fft, hop, win, window=w, length=t)).abs().max() < 1e-9
    assert (y - x).abs().max() < 1e-9  # and it is the inverse
    with pytest.raises(AudioError, match="reflect"):
        ConvSTFT(n_fft, hop, win)(torch.randn(1, n_fft // 2))
