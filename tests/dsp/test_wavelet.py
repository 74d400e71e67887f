"""Haar DWT / inverse: lossless round trip, energy preservation, band split, known values, errors."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.dsp.wavelet import haar_dwt, haar_idwt
from audiozoo.errors import AudioError, ConfigError


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_round_trip_is_lossless(levels: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 1024, generator=g, dtype=torch.float64)
    bands = haar_dwt(x, levels)
    assert bands.shape == (3, 2, 2**levels, 1024 // 2**levels)
    y = haar_idwt(bands)
    # float64: each level is one add and one multiply by 1/sqrt(2) per sample; measured max error 8.9e-16 /
    # 1.8e-15 / 2.7e-15 at 1 / 2 / 3 levels (|x| up to ~4.5): 1e-14 is a few ulp per level
    assert (y - x).abs().max() < 1e-14
    x32 = x.float()
    # float32: measured 2.4e-7 / 4.8e-7 / 7.2e-7; 4e-6 = a few float32 ulp per level
    assert (haar_idwt(haar_dwt(x32, levels), levels) - x32).abs().max() < 4e-6


def test_energy_is_preserved_and_known_values() -> None:
    x = torch.randn(4, 512, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for levels in (1, 2):
        b = haar_dwt(x, levels)
        # orthonormal transform (Parseval): identical sums of squares up to float64 rounding
        torch.testing.assert_close(b.square().sum((-2, -1)), x.square().sum(-1), rtol=1e-12, atol=0)
    b = haar_dwt(torch.tensor([1.0, 1.0, 3.0, -1.0]))
    r2 = math.sqrt(2.0)
    torch.testing.assert_close(b, torch.tensor([[2 / r2, 2 / r2], [0.0, 4 / r2]]))


def test_bands_separate_low_and_high_frequencies() -> None:
    sr, n = 16000, 4096
    t = torch.arange(n, dtype=torch.float64) / sr
    low = torch.sin(2 * math.pi * 200 * t)
    high = torch.sin(2 * math.pi * 7600 * t)
    for sig, band in ((low, 0), (high, 1)):
        e = haar_dwt(sig, 1).square().sum(-1)
        # the Haar filters are short (2 taps), so the split is soft; a 200 Hz / 7.6 kHz tone still puts
        # > 99 % of its energy in the low / high band (measured 99.85 % / 99.39 %)
        assert e[band] / e.sum() > 0.99


def test_errors() -> None:
    with pytest.raises(AudioError, match="multiple of 2"):
        haar_dwt(torch.randn(2, 1001))
    with pytest.raises(AudioError, match="multiple of 2"):
        haar_dwt(torch.randn(2, 1002), levels=2)
    with pytest.raises(ConfigError):
        haar_dwt(torch.randn(8), levels=0)
    with pytest.raises(AudioError, match="bands"):
        haar_idwt(torch.randn(2, 3, 10))
    with pytest.raises(AudioError, match="bands"):
        haar_idwt(torch.randn(2, 4, 10), levels=1)
