"""PQMF (dsp.pqmf): near-perfect reconstruction, band selectivity, and the prototype design against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiozoo.dsp.pqmf import PQMF, cosine_modulated_bank, kaiser_lowpass, kaiser_order, pqmf_prototype


def _snr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(x.pow(2).mean() / (x - y).pow(2).mean()))


@pytest.mark.parametrize("n_band", [2, 4, 8, 16])
def test_reconstruction_snr(n_band: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16 * 1024)
    p = PQMF(100, n_band)
    bands = p(x)
    assert bands.shape == (2, n_band, x.shape[-1] // n_band)
    y = p.inverse(bands)
    assert y.shape == x.shape
    # Away from the edges (zero padding there), measured on white noise: 60.1 / 60.2 / 60.3 / 60.0 dB for
    # 2 / 4 / 8 / 16 bands (the acids-rave PQMF gives the same ~60 dB); 55 dB leaves margin for the noise draw.
    edge = 2 * p.taps
    assert _snr_db(x[:, edge:-edge], y[:, edge:-edge]) > 55
    # Whole signal including the edges (16 bands: measured 39.9 dB): the boundary costs some, not everything.
    assert _snr_db(x, y) > 30


def test_zero_delay() -> None:
    """The reconstruction is aligned with the input: any one-sample shift is far worse."""
    torch.manual_seed(1)
    x = torch.randn(1, 8192)
    p = PQMF(100, 8)
    y = p.inverse(p(x))
    inner = slice(500, -500)
    aligned = _snr_db(x[:, inner], y[:, inner])
    shifted = _snr_db(x[:, inner], torch.roll(y, 1, -1)[:, inner])
    assert aligned > 55 and shifted < 10


def test_band_selectivity() -> None:
    """A sinusoid at the centre of band k puts (almost) all its energy in band k (100 dB prototype)."""
    m, n = 16, 16 * 512
    p = PQMF(100, m)
    t = torch.arange(n, dtype=torch.float64)
    for k in (0, 5, 15):
        f = (k + 0.5) / (2 * m)  # cycles/sample: band k spans [k, k+1] * 0.5 / m
        bands = p(torch.sin(2 * math.pi * f * t).float()[None])[0, :, 64:-64]
        energy = bands.pow(2).sum(-1)
        assert energy.argmax() == k
        # at the band centre the neighbours' responses are in their stop bands: measured > 99.9999 % in band k
        assert energy[k] / energy.sum() > 0.999


def test_identity_and_errors() -> None:
    x = torch.randn(1, 100)
    p1 = PQMF(100, 1)
    assert torch.equal(p1.inverse(p1(x)), x)
    p = PQMF(100, 4)
    with pytest.raises(ValueError, match="multiple of 4"):
        p(torch.randn(1, 10))
    with pytest.raises(ValueError, match="bands"):
        p.inverse(torch.randn(1, 3, 10))
    with pytest.raises(ValueError, match="n_band"):
        PQMF(100, 0)


def test_bank_is_cosine_modulated() -> None:
    h, _ = pqmf_prototype(100, 4)
    hk = cosine_modulated_bank(h, 4)
    assert hk.shape == (4, h.shape[-1])
    assert np.allclose(hk.sum(0).shape, (h.shape[-1],))
    # symmetric prototype, odd length (Kaiser design made odd, as RAVE's kaiser_filter)
    assert h.shape[-1] % 2 == 1 and np.allclose(h, h[::-1])


@pytest.mark.parity
def test_prototype_matches_scipy_design() -> None:
    """RAVE's recipe with scipy (kaiserord + firwin(kaiser) + fmin from 1/M) gives the same prototype."""
    from scipy.optimize import fmin
    from scipy.signal import firwin, kaiserord

    def scipy_filter(wc: float, atten: float) -> np.ndarray:
        n, beta = kaiserord(atten, wc / np.pi)
        n = 2 * (n // 2) + 1
        return firwin(n, wc, window=("kaiser", beta), scale=False, fs=2 * np.pi)

    def objective(w: np.ndarray, atten: float, m: int) -> float:
        h = scipy_filter(float(w[0]), atten)
        g = np.convolve(h, h[::-1], "full")
        return float(np.max(np.abs(g[g.shape[-1] // 2:: 2 * m][1:])))

    for m in (4, 16):
        wc_ref = float(fmin(objective, 1 / m, args=(100.0, m), disp=0)[0])
        h, wc = pqmf_prototype(100, m)
        # the same Nelder-Mead path: the cut-offs agree to float rounding (measured: identical, 0.10751953125 for 16)
        assert abs(wc - wc_ref) < 1e-12
        ref = scipy_filter(wc_ref, 100.0)
        # measured max difference 0.0 (16 bands, 377 taps) and ~1e-17; float64 rounding bound
        assert h.shape == ref.shape and np.abs(h - ref).max() < 1e-12
        n_ref, beta_ref = kaiserord(100.0, wc / np.pi)
        n, beta = kaiser_order(100.0, wc / np.pi)
        assert (n, beta) == (n_ref, pytest.approx(beta_ref))
    h = kaiser_lowpass(0.3, 60.0, numtaps=31)
    ref = firwin(31, 0.3, window=("kaiser", kaiser_order(60.0, 0.3 / np.pi)[1]), scale=False, fs=2 * np.pi)
    assert np.abs(h - ref).max() < 1e-12
