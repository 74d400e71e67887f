"""LPAPS (SpecVQGAN's spectrogram perceptual loss) with a feature network given as an argument, and the VQGAN
adversarial helpers (hinge / vanilla discriminator loss, adaptive weight)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.train.losses import LPAPS
from audiozoo.train.losses.lpaps import normalize_channels, probe_channels
from audiozoo.train.losses.vqgan import adaptive_weight, vqgan_discriminator_loss


class TinyNet(nn.Module):
    """Two conv stages on a mel ``(B, F, T)``; ``forward`` returns both maps."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(6, 10, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = self.a(x[:, None])
        return [h1, self.b(h1)]


def _mels(seed: int = 0, b: int = 3) -> torch.Tensor:
    return torch.randn(b, 16, 24, generator=torch.Generator().manual_seed(seed))


def _lpaps(**kw) -> LPAPS:
    torch.manual_seed(0)
    net = TinyNet()
    return LPAPS(net, probe_channels(net, 16, "forward"), method="forward", **kw).eval()


def test_zero_for_identical_inputs_and_grows_with_distortion() -> None:
    lp = _lpaps()
    x = _mels()
    assert torch.equal(lp(x, x), torch.zeros(3))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    d = [float(lp(x, x + a * noise).mean()) for a in (0.03, 0.1, 0.3, 1.0, 3.0)]
    assert all(b > a for a, b in zip(d, d[1:])), d
    assert tuple(lp(x[:, None], (x + noise)[:, None]).shape) == (3,)  # (B, 1, F, T) works too


def test_gradient_reaches_the_input_only() -> None:
    lp = _lpaps()
    x = _mels()
    y = (x + 0.5 * torch.randn_like(x)).requires_grad_(True)
    lp(x, y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in lp.parameters())  # classifier and linear weights frozen (official)
    lp.train()
    assert not lp.net.training  # the classifier stays in eval mode


def test_linear_weights_and_scaling() -> None:
    x, y = _mels(1), _mels(2)
    base = _lpaps(use_dropout=False)
    doubled = _lpaps(use_dropout=False, lin_init=2.0)
    torch.testing.assert_close(doubled(x, y), 2 * base(x, y))
    shift, scale = torch.linspace(-1, 1, 16), torch.linspace(0.5, 2, 16)
    scaled = _lpaps(use_dropout=False, shift=shift, scale=scale)
    pre = lambda m: (m - shift[:, None]) / scale[:, None]  # noqa: E731
    torch.testing.assert_close(scaled(x, y), base(pre(x), pre(y)))
    # the per-channel normalisation of the feature maps (official normalize_tensor)
    f = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(normalize_channels(f).norm(dim=1), torch.ones(2, 3, 4))


def test_with_the_vggishish_classifier() -> None:
    info = audiozoo.model_info("vggishish")
    net = audiozoo.create_model("vggishish", **{**info.tiny, "n_mels": 16}).eval()
    chans = probe_channels(net, 16)
    assert chans == [4, 8, 8]  # tiny layout (4, MP, 8, MP, 8): one map per stage
    lp = LPAPS(net, chans).eval()
    x = _mels(3)
    assert torch.equal(lp(x, x), torch.zeros(3)) and bool((lp(x, x + 0.3) > 0).all())


def test_errors() -> None:
    net = TinyNet()
    with pytest.raises(ConfigError):
        LPAPS(net, [6], method="forward")(_mels(), _mels(1))  # two maps, one linear layer
    with pytest.raises(ConfigError):
        LPAPS(net, [6, 10], method="feature_maps")  # no such method
    with pytest.raises(ConfigError):
        _lpaps()(_mels(), _mels(b=2))
    with pytest.raises(ConfigError):
        _lpaps(scale=torch.zeros(16))


def test_vqgan_discriminator_loss_and_adaptive_weight() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # hinge: 0.5 (mean relu(1 - r) + mean relu(1 + f)) = 0.5 (0.25 + 0.75)
    assert float(vqgan_discriminator_loss(real, fake, "hinge")) == pytest.approx(0.5)
    sp = torch.nn.functional.softplus
    ref = 0.5 * (sp(-real).mean() + sp(fake).mean())
    assert float(vqgan_discriminator_loss(real, fake, "vanilla")) == pytest.approx(float(ref))
    with pytest.raises(ConfigError):
        vqgan_discriminator_loss(real, fake, "lsgan")
    w = torch.ones(3, requires_grad=True)
    nll, g = (3 * w).sum(), (0.5 * w).sum()  # gradient norms sqrt(27) and sqrt(0.75): ratio ~6
    lam = adaptive_weight(nll, g, w, disc_weight=0.8)
    assert float(lam) == pytest.approx(0.8 * 27**0.5 / (0.75**0.5 + 1e-4), rel=1e-5) and not lam.requires_grad
    assert float(adaptive_weight(nll, g, w, 0.8, 1.0, 1.0)) == pytest.approx(0.8)  # SpecVQGAN's clamp [1, 1]
