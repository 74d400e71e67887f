"""audiozoo.nn.resblocks: HiFi-GAN ResBlock1/ResBlock2/MRF structure, parameter counts, official layout."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audiozoo.errors import ConfigError
from audiozoo.nn.resblocks import LRELU_SLOPE, MRF, ResBlock1, ResBlock2
from audiozoo.nn.weight_norm import convert_legacy_weight_norm_keys, has_weight_norm


def _count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resblock_param_counts_by_hand():
    # One weight-normed Conv1d(C, C, k): v (C*C*k) + g (C, 1, 1) + bias (C) = C*C*k + 2*C.
    # ResBlock1 has 6 such convs (3 dilated + 3 dilation-1), ResBlock2 has len(dilation) of them.
    c = 512
    with torch.device("meta"):  # counting only: no memory, no init
        for k in (3, 7, 11):
            assert _count(ResBlock1(c, k, (1, 3, 5))) == 6 * (c * c * k + 2 * c)
        assert _count(ResBlock1(c, 3)) == 4_724_736  # 6 * (512*512*3 + 1024), written out
        assert _count(ResBlock2(c, 3, (1, 3))) == 2 * (c * c * 3 + 2 * c)
        # HiFi-GAN V1 (upsample_initial_channel=512): its first MRF runs at 512 // 2 = 256 channels after
        # the first upsampling, with kernels (3, 7, 11) and dilations (1, 3, 5):
        # 6 * 256^2 * (3 + 7 + 11) + 3 * 6 * 2 * 256 = 8,257,536 + 9,216.
        assert _count(MRF(256)) == 8_266_752
        assert _count(MRF(512)) == 6 * 512 * 512 * 21 + 3 * 6 * 2 * 512
    assert _count(ResBlock1(8, 3)) == 6 * (8 * 8 * 3 + 2 * 8)  # and the same on a real (CPU) build


def test_resblock_layout_matches_official_names():
    names = set(dict(ResBlock1(8).named_parameters()))
    for i in range(3):
        for grp in ("convs1", "convs2"):
            assert {f"{grp}.{i}.bias", f"{grp}.{i}.parametrizations.weight.original0",
                    f"{grp}.{i}.parametrizations.weight.original1"} <= names
    assert len(names) == 18
    assert {n.split(".")[0] for n in dict(ResBlock2(8).named_parameters())} == {"convs"}
    rb = ResBlock1(8, 7, (1, 3, 5))
    assert [c.dilation[0] for c in rb.convs1] == [1, 3, 5]
    assert [c.dilation[0] for c in rb.convs2] == [1, 1, 1]
    assert [c.padding[0] for c in rb.convs1] == [3, 9, 15]  # d * (k - 1) // 2
    assert all(has_weight_norm(c) for c in [*rb.convs1, *rb.convs2])


def _reference_resblock1(x, block):
    """HiFi-GAN ResBlock1.forward written out with functional ops from the block's weights."""
    for c1, c2 in zip(block.convs1, block.convs2):
        xt = F.conv1d(F.leaky_relu(x, 0.1), c1.weight, c1.bias, padding=c1.padding, dilation=c1.dilation)
        xt = F.conv1d(F.leaky_relu(xt, 0.1), c2.weight, c2.bias, padding=c2.padding)
        x = xt + x
    return x


@pytest.mark.parametrize("length", [1, 37, 64])
def test_resblock1_forward_matches_reference(length):
    rb = ResBlock1(6, 5, (1, 3, 5))
    x = torch.randn(2, 6, length)
    y = rb(x)
    assert y.shape == x.shape
    # Same ops in the same order on the same weights: float32 rounding only.
    assert torch.allclose(y, _reference_resblock1(x, rb), atol=1e-6)
    assert LRELU_SLOPE == 0.1


def test_resblock2_forward_matches_reference():
    rb = ResBlock2(6, 3, (1, 3))
    x = torch.randn(2, 6, 41)
    ref = x
    for c in rb.convs:
        ref = F.conv1d(F.leaky_relu(ref, 0.1), c.weight, c.bias, padding=c.padding, dilation=c.dilation) + ref
    assert torch.allclose(rb(x), ref, atol=1e-6)  # float32 rounding only


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_mrf_is_average_and_masks(resblock):
    dil = ((1, 3, 5),) * 3 if resblock == "1" else ((1, 2), (2, 6), (3, 12))  # V1 / V3 configs
    mrf = MRF(4, (3, 5, 7), dil, resblock)
    x = torch.randn(2, 4, 50)
    expected = sum(b(x) for b in mrf.resblocks) / 3
    assert torch.allclose(mrf(x), expected, atol=1e-6)  # float32 rounding of the same sum
    # VITS-style mask: outputs at valid frames do not depend on what sits in padded frames.
    mask = torch.ones(2, 1, 50)
    mask[1, :, 30:] = 0
    x2 = x.clone()
    x2[1, :, 30:] = 100 * torch.randn(4, 20)
    y1, y2 = mrf(x, mask), mrf(x2, mask)
    assert torch.allclose(y1, y2, atol=1e-5)  # identical math on identical valid data; rounding only
    assert torch.equal(y1[1, :, 30:], torch.zeros(4, 20))


def test_mrf_errors():
    with pytest.raises(ConfigError):
        MRF(4, (3, 5), ((1,),))
    with pytest.raises(ConfigError):
        MRF(4, (3,), ((1,),), resblock="3")


def test_remove_weight_norm_keeps_output():
    mrf = MRF(4, (3, 7), ((1, 3, 5), (1, 3, 5)))
    with torch.no_grad():  # move g away from ||v|| so the fold is not trivial
        for p in mrf.parameters():
            p.mul_(1.3)
    x = torch.randn(1, 4, 33)
    before = mrf(x)
    mrf.remove_weight_norm()
    assert not any(has_weight_norm(m) for m in mrf.modules())
    assert torch.allclose(mrf(x), before, atol=1e-6)  # folded weight == g * v / ||v||; rounding only


class _OfficialResBlock1(nn.Module):
    """jik876/hifi-gan ResBlock1 layout with the legacy hook weight norm (its checkpoints' key names)."""

    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5)):
        super().__init__()
        wn = nn.utils.weight_norm
        self.convs1 = nn.ModuleList(wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                                 padding=(kernel_size * d - d) // 2)) for d in dilation)
        self.convs2 = nn.ModuleList(wn(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                                                 padding=(kernel_size - 1) // 2)) for _ in dilation)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return x


def test_official_checkpoint_layout_loads():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # legacy weight_norm is deprecated; it is the point
        official = _OfficialResBlock1(5, 7)
    sd = official.state_dict()
    assert "convs1.0.weight_g" in sd
    ours = ResBlock1(5, 7)
    ours.load_state_dict(convert_legacy_weight_norm_keys(sd), strict=True)
    x = torch.randn(2, 5, 40)
    # Same g, v and bias -> same weights -> same output up to float32 rounding.
    assert torch.allclose(ours(x), official(x), atol=1e-6)
