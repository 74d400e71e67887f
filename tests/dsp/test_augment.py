"""audiozoo.dsp.augment: SpecAugment, mixup, random gain and noise at a given SNR."""

from __future__ import annotations

import pytest
import torch

from audiozoo.dsp import SpecAugment, add_noise_snr, mixup, random_gain
from audiozoo.errors import AudioError, ConfigError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _runs(mask_1d: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a 1-D boolean tensor."""
    runs, n = [], 0
    for v in mask_1d.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


# ---------------------------------------------------------------------------------------- SpecAugment


def test_specaugment_eval_is_identity_and_train_masks():
    x = torch.randn(4, 80, 200) + 5.0  # offset: no real value equals the mask value 0
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=30)
    assert aug.eval()(x) is x
    y = aug.train()(x, generator=_gen())
    assert y.shape == x.shape
    changed = y != x
    assert (y[changed] == 0).all() and changed.any()
    for b in range(4):
        freq_rows = changed[b].all(dim=1)  # fully masked frequency bins
        time_cols = changed[b].all(dim=0)  # fully masked frames
        # at most 2 masks of width <= 10 / 30 each (overlapping masks merge into one run)
        assert freq_rows.sum() <= 20 and all(r <= 20 for r in _runs(freq_rows))
        assert time_cols.sum() <= 60 and all(r <= 60 for r in _runs(time_cols))
        assert (changed[b] == (freq_rows[:, None] | time_cols[None, :])).all()  # nothing else touched


def test_specaugment_is_seeded_and_per_example():
    x = torch.randn(8, 64, 100) + 5.0
    aug = SpecAugment(2, 20, 2, 40)
    a, b = aug(x, generator=_gen(1)), aug(x, generator=_gen(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed, same masks
    assert not torch.equal(aug(x, generator=_gen(2)), a)
    masks = [(a[i] != x[i]) for i in range(8)]
    assert len({m.numpy().tobytes() for m in masks}) > 1  # examples draw their own masks
    seeded = SpecAugment(2, 20, 2, 40, generator=_gen(1))
    torch.testing.assert_close(seeded(x), a, rtol=0, atol=0)  # module-level generator is the default


def test_specaugment_lengths_channels_and_mean_value():
    x = torch.randn(3, 2, 40, 100) + 5.0  # (B, C, F, L)
    lengths = torch.tensor([100, 50, 10])
    aug = SpecAugment(freq_masks=0, time_masks=3, time_width=50, mask_value="mean")
    y = aug(x, lengths=lengths, generator=_gen(3))
    changed = y != x
    assert (changed[:, 0] == changed[:, 1]).all()  # one mask per example, shared by its channels
    for b, n in enumerate(lengths.tolist()):
        assert not changed[b, ..., n:].any()  # time masks stay inside the valid frames
        expected = x[b, ..., :n].mean()  # "mean" is over valid frames of that example only
        if changed[b].any():
            torch.testing.assert_close(y[b][changed[b]], expected.expand(int(changed[b].sum())))
    ratio = SpecAugment(freq_masks=0, time_masks=1, time_width=100, time_width_ratio=0.1)
    for seed in range(10):
        cols = (ratio(x[0, 0], generator=_gen(seed)) != x[0, 0]).all(dim=0)  # (F, L) input works too
        assert cols.sum() <= 10  # p = 0.1 of 100 frames


def test_specaugment_no_masks_gradients_and_errors():
    x = torch.randn(2, 20, 30, requires_grad=True)
    torch.testing.assert_close(SpecAugment(0, 10, 0, 10)(x), x)
    y = SpecAugment(1, 5, 1, 5)(x, generator=_gen())
    y.sum().backward()
    assert ((x.grad == 0) == (y != x)).all()  # masked cells get no gradient, the rest gradient 1
    with pytest.raises(ConfigError, match="mask_value"):
        SpecAugment(mask_value="median")
    with pytest.raises(ConfigError, match="freq_width"):
        SpecAugment(freq_width=-1)
    with pytest.raises(AudioError, match="lengths"):
        SpecAugment()(torch.randn(2, 20, 30), lengths=torch.tensor([30]))


# ---------------------------------------------------------------------------------------- mixup


def test_mixup_mixes_inputs_and_targets_consistently():
    b, k = 16, 16
    x = torch.randn(b, 3, 50)
    labels = torch.arange(b)  # distinct classes: lambda can be read back from the targets
    xm, ym = mixup(x, labels, alpha=0.4, generator=_gen(), num_classes=k)
    assert xm.shape == x.shape and ym.shape == (b, k) and ym.dtype == x.dtype
    torch.testing.assert_close(ym.sum(dim=1), torch.ones(b))  # soft targets stay distributions
    for i in range(b):
        lam = ym[i, i]
        partner = int(torch.argmax(ym[i] - lam * torch.nn.functional.one_hot(labels[i], k)))
        if lam < 1 - 1e-6:
            expected = lam * x[i] + (1 - lam) * x[partner]
        else:  # mixed with itself (or lambda == 1): unchanged
            expected = x[i]
        torch.testing.assert_close(xm[i], expected, rtol=1e-5, atol=1e-6)  # float32 products
    again = mixup(x, labels, alpha=0.4, generator=_gen(), num_classes=k)
    torch.testing.assert_close(again[0], xm, rtol=0, atol=0)  # seeded


def test_mixup_lambda_distribution_and_multi_hot():
    n = 4000
    y = torch.zeros(n, 2)
    y[:, 0] = 1.0
    y[: n // 2] = torch.tensor([0.0, 1.0])
    _, ym = mixup(torch.zeros(n, 1), y, alpha=0.2, generator=_gen(5))
    # the weight an example keeps on its own label is lam ~ Beta(0.2, 0.2) where its partner differs;
    # Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)) = 0.1786 for a = 0.2
    own = torch.where(y[:, 0] == 1, ym[:, 0], ym[:, 1])
    differs = own < 1  # partner from the other half (lam < 1 almost surely)
    lam = own[differs]
    assert lam.numel() > n // 3
    # 4000 draws: std error of the mean ~0.007, of the variance ~0.003 -> 5-sigma bounds
    assert abs(float(lam.mean()) - 0.5) < 0.04 and abs(float(lam.var()) - 0.1786) < 0.02
    multi = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    _, mm = mixup(torch.zeros(2, 4), multi, alpha=1.0, generator=_gen())
    assert ((mm >= 0) & (mm <= 1)).all() and torch.allclose(mm[:, 1], torch.ones(2))  # shared label stays 1
    with pytest.raises(AudioError, match="num_classes"):
        mixup(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="alpha"):
        mixup(torch.zeros(2, 4), multi, alpha=0.0)
    with pytest.raises(AudioError, match="batch size"):
        mixup(torch.zeros(3, 4), multi)


# ---------------------------------------------------------------------------------------- gain / noise


def test_random_gain_range_and_seeding():
    x = torch.ones(500, 10)
    y = random_gain(x, -6.0, 3.0, generator=_gen())
    db = 20 * torch.log10(y[:, 0])
    assert (y == y[:, :1]).all()  # one gain per example
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 3.0 + 1e-4  # float32 log10 rounding
    assert db.max() - db.min() > 8.0  # 500 uniform draws cover most of the 9 dB range
    torch.testing.assert_close(random_gain(x, -6.0, 3.0, generator=_gen()), y, rtol=0, atol=0)
    one = random_gain(torch.ones(7), 2.0, 2.0)
    torch.testing.assert_close(one, torch.full((7,), 10 ** (2 / 20)))
    with pytest.raises(ConfigError):
        random_gain(x, 3.0, -3.0)


def test_add_noise_snr_hits_the_target():
    clean = torch.randn(3, 16000, dtype=torch.float64) * torch.tensor([[0.1], [1.0], [0.01]], dtype=torch.float64)
    noise = torch.randn(1, 4000, dtype=torch.float64)  # shorter and broadcast: tiled
    snr = torch.tensor([0.0, 10.0, -5.0], dtype=torch.float64)
    mix = add_noise_snr(clean, noise, snr, generator=_gen())
    added = mix - clean
    measured = 10 * torch.log10(clean.square().mean(-1) / added.square().mean(-1))
    torch.testing.assert_close(measured, snr, rtol=0, atol=1e-9)  # exact up to float64 rounding
    # the noise was tiled; (clean + n) - clean recovers n up to float64 rounding of the sum (~1e-16)
    torch.testing.assert_close(added[0, 4000:8000], added[0, :4000], rtol=0, atol=1e-12)
    long_noise = torch.randn(3, 50000, dtype=torch.float64)  # longer: cropped per example
    mix = add_noise_snr(clean, long_noise, 20.0, generator=_gen())
    measured = 10 * torch.log10(clean.square().mean(-1) / (mix - clean).square().mean(-1))
    torch.testing.assert_close(measured, torch.full((3,), 20.0, dtype=torch.float64), rtol=0, atol=1e-9)
    silent = add_noise_snr(torch.zeros(2, 100), torch.randn(2, 100), 10.0)
    assert torch.equal(silent, torch.zeros(2, 100))  # silent clean: nothing added (limit of the formula)
    with pytest.raises(AudioError, match="broadcast"):
        add_noise_snr(torch.randn(2, 100), torch.randn(3, 100), 10.0)
    with pytest.raises(AudioError, match="empty"):
        add_noise_snr(torch.randn(2, 0), torch.randn(2, 100), 10.0)
