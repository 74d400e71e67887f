"""HiFi-GAN MPD / MSD: parameter counts, output format for the GAN losses, gradients, official key layout."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import AudioError
from audiozoo.nn.discriminators import (
    DiscriminatorP,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    convert_official_discriminator_keys,
)
from audiozoo.nn.weight_norm import has_weight_norm
from audiozoo.train.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    gains = sum(p.numel() for n, p in model.named_parameters() if n.endswith("parametrizations.weight.original0"))
    return total, total - gains


def test_official_parameter_counts():
    with torch.device("meta"):
        mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    # By hand, one DiscriminatorP: convs 1->32->128->512->1024 (k5) + 1024->1024 (k5) + post 1024->1 (k3),
    # weights + biases: 32*5+32 + 128*32*5+128 + 512*128*5+512 + 1024*512*5+1024 + 1024*1024*5+1024 + 1024*3+1.
    per_p = (32 * 5 + 32) + (128 * 32 * 5 + 128) + (512 * 128 * 5 + 512) + (1024 * 512 * 5 + 1024) \
        + (1024 * 1024 * 5 + 1024) + (1024 * 3 + 1)
    assert _counts(mpd)[1] == 5 * per_p == 41_092_165
    # As built (weight norm's g and v both trainable, as sum(p.numel()) on the official modules): the commonly
    # cited 41.1M (MPD) and 29.6M (MSD).
    assert _counts(mpd)[0] == 41_105_770 and round(_counts(mpd)[0] / 1e6, 1) == 41.1
    assert _counts(msd) == (29_618_821, 29_610_627) and round(_counts(msd)[0] / 1e6, 1) == 29.6


def test_output_format_and_shapes():
    y = torch.randn(2, 1001)  # not a multiple of any period: exercises the reflect padding
    mpd = MultiPeriodDiscriminator(channels=(4, 8, 16, 32, 32))
    logits, fmaps = mpd(y)
    assert len(logits) == len(fmaps) == 5
    for p, logit, fmap in zip((2, 3, 5, 7, 11), logits, fmaps):
        assert len(fmap) == 6 and logit.shape[0] == 2 and logit.ndim == 2
        assert fmap[0].shape[-1] == p  # folded (B, C, T / p, p): convs run along T / p only
        assert fmap[0].shape[-2] == math.ceil(math.ceil(1001 / p) / 3)  # rows T / p, then the first stride 3
    msd = MultiScaleDiscriminator(width=1 / 8)
    logits, fmaps = msd(y.unsqueeze(1))  # (B, 1, T) works too
    assert len(logits) == 3 and all(len(f) == 8 for f in fmaps)
    # each scale halves the length (AvgPool1d(4, 2, padding=2)), then the convs downsample by 2*2*4*4 = 64
    assert [f[-1].shape[-1] for f in fmaps] == [-(-1001 // 64), -(-501 // 64), -(-251 // 64)]
    assert has_weight_norm(msd.discriminators[1].convs[0]) and not has_weight_norm(msd.discriminators[0].convs[0])
    # spectral norm on the first scale only: its conv keeps one "original" weight and power-iteration buffers
    assert "parametrizations.weight.original" in dict(msd.discriminators[0].convs[0].named_parameters())
    assert "parametrizations.weight.0._u" in dict(msd.discriminators[0].convs[0].named_buffers())
    with pytest.raises(AudioError):
        mpd(torch.randn(2, 2, 100))
    with pytest.raises(AudioError, match="needs more than"):
        DiscriminatorP(11)(torch.randn(1, 5))


def test_losses_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    mpd = MultiPeriodDiscriminator(periods=(2, 3), channels=(4, 8, 16, 16, 16))
    msd = MultiScaleDiscriminator(num_scales=2, width=1 / 8)
    real, fake = torch.randn(2, 800), torch.randn(2, 800, requires_grad=True)
    total = 0.0
    for d in (mpd, msd):
        (lr, fr), (lf, ff) = d(real), d(fake)
        total = total + discriminator_loss(lr, lf) + generator_adversarial_loss(lf) + feature_matching_loss(fr, ff)
    total.backward()
    for d in (mpd, msd):
        missing = [n for n, p in d.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert not missing, missing[:5]
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_batch_items_are_independent():
    # GANTask runs real and fake as one concatenated batch: valid only without batch statistics.
    mpd = MultiPeriodDiscriminator(periods=(3,), channels=(4, 8, 8, 8, 8)).eval()
    y = torch.randn(3, 500)
    with torch.no_grad():
        batched = mpd(y)[0][0]
        single = torch.cat([mpd(y[i : i + 1])[0][0] for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-6)  # float32 reassociation only


def test_official_legacy_keys_load():
    src = MultiScaleDiscriminator(width=1 / 8)
    legacy = {}
    for k, v in src.state_dict().items():  # our keys written as the official hook-based norms store them
        k = (k.replace("parametrizations.weight.original0", "weight_g")
             .replace("parametrizations.weight.original1", "weight_v")
             .replace("parametrizations.weight.original", "weight_orig")
             .replace("parametrizations.weight.0._u", "weight_u").replace("parametrizations.weight.0._v", "weight_v"))
        legacy["msd." + k] = v
    assert "msd.discriminators.0.convs.0.weight_orig" in legacy and "msd.discriminators.1.convs.0.weight_g" in legacy
    dst = MultiScaleDiscriminator(width=1 / 8)
    dst.load_state_dict(convert_official_discriminator_keys(legacy, prefix="msd."), strict=True)
    y = torch.randn(1, 400)
    src.eval(), dst.eval()  # no power iteration in eval: identical spectral-norm weights
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(src(y)[0], dst(y)[0]))
