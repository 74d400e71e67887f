"""audiozoo.train.losses: STFT, mel, KL, regression and BCE losses against their defining formulas / references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiozoo.errors import ConfigError, DataError
from audiozoo.eval.regression import ccc
from audiozoo.train.losses import (
    PWG_RESOLUTIONS,
    autoencoder_reconstruction_loss,
    ccc_loss,
    gaussian_kl,
    masked_mse,
    mel_l1,
    multi_resolution_stft_loss,
    rave_kl,
    soft_label_kl,
    spectral_convergence,
    stft_loss,
    stft_magnitude,
)


def _tone(n: int = 4000, f: float = 440.0, sr: int = 16000) -> torch.Tensor:
    return torch.sin(2 * math.pi * f * torch.arange(n) / sr).unsqueeze(0)


def test_stft_loss_against_numpy_and_mr_average() -> None:
    torch.manual_seed(0)
    x, y = _tone(), _tone() + 0.05 * torch.randn(1, 4000)
    sc, lm = stft_loss(y, x, 512, 128, 400)
    # reference: numpy STFT (centred, reflect, periodic Hann 400 zero-padded to 512 in the middle), PWG's floor
    def mag(s: np.ndarray) -> np.ndarray:
        w = np.zeros(512)
        w[56:456] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
        p = np.pad(s, 256, mode="reflect")
        frames = np.stack([p[i : i + 512] * w for i in range(0, len(p) - 511, 128)])
        return np.sqrt(np.maximum(np.abs(np.fft.rfft(frames, axis=-1)) ** 2, 1e-7))
    m, m_hat = mag(x[0].double().numpy()), mag(y[0].double().numpy())
    assert float(sc) == pytest.approx(np.linalg.norm(m - m_hat) / np.linalg.norm(m), rel=1e-4)
    assert float(lm) == pytest.approx(np.abs(np.log(m) - np.log(m_hat)).mean(), rel=1e-4)
    # multi-resolution = mean over resolutions; zero on equal signals
    res = ((512, 128, 400), (256, 64, 256))
    msc, mlm = multi_resolution_stft_loss(y, x, res)
    parts = [stft_loss(y, x, *r) for r in res]
    assert float(msc) == pytest.approx(sum(float(a) for a, _ in parts) / 2)
    assert float(mlm) == pytest.approx(sum(float(b) for _, b in parts) / 2)
    assert float(multi_resolution_stft_loss(x, x, PWG_RESOLUTIONS[:1])[0]) == 0.0
    with pytest.raises(DataError):
        stft_loss(x, x[:, :100], 512, 128, 400)
    m1 = stft_magnitude(x, 512, 128, 400)
    assert float(spectral_convergence(m1, m1)) == 0.0


def test_gaussian_and_rave_kl_match_torch_distributions() -> None:
    torch.manual_seed(0)
    mean, std = torch.randn(2, 3, 5), torch.rand(2, 3, 5) + 0.1
    q = torch.distributions.Normal(mean, std)
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(std))
    want = torch.distributions.kl_divergence(q, p).sum(1).mean()
    torch.testing.assert_close(gaussian_kl(mean, std), want)
    torch.testing.assert_close(rave_kl(mean, std), 2 * want)  # RAVE's VariationalEncoder has no 1/2
    assert float(rave_kl(torch.ones(2, 3, 4), torch.ones(2, 3, 4))) == pytest.approx(3.0)  # sum_c mu^2
    with pytest.raises(DataError):
        gaussian_kl(mean, std[:, :2])


def test_soft_label_kl() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    T = 2.0
    pt, ps = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
    want = (pt * (pt.log() - ps.log())).sum(-1).mean() * T * T
    torch.testing.assert_close(soft_label_kl(s, t, T), want)
    assert float(soft_label_kl(t, t, T)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ConfigError):
        soft_label_kl(s, t, 0.0)


def test_ccc_loss_and_masked_mse() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(16, 3), torch.randn(16, 3)
    assert float(ccc_loss(a, b)) == pytest.approx(1 - ccc(a, b), rel=1e-5)
    assert float(ccc_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(DataError):
        ccc_loss(a[:1], b[:1])
    est, tgt = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    valid = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    want = ((est - tgt) ** 2).mean(-1)[valid].mean()
    torch.testing.assert_close(masked_mse(est, tgt, valid), want)
    # padding is ignored: changing masked-out positions changes nothing
    est2 = est.clone()
    est2[~valid] = 100.0
    torch.testing.assert_close(masked_mse(est2, tgt, valid), want)
    both = autoencoder_reconstruction_loss({"a": (tgt, est, valid), "b": (tgt, tgt, valid)})
    torch.testing.assert_close(both, want / 2)


def test_mel_l1_trims_to_common_frames() -> None:
    def fn(w: torch.Tensor) -> torch.Tensor:
        return w.unfold(-1, 4, 4).mean(-1).unsqueeze(1)  # (B, 1, T // 4)

    x = torch.arange(16.0).unsqueeze(0)
    assert float(mel_l1(x, x + 1, fn)) == pytest.approx(1.0)
    assert float(mel_l1(x[:, :12], x + 2, fn)) == pytest.approx(2.0)  # 3 frames vs 4: the common 3
