"""audiozoo.nn.conv: padding arithmetic, ConvNormAct, ChannelLayerNorm, CausalConv1d, PANNs ConvBlock2d."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiozoo.errors import AudioError, ConfigError
from audiozoo.nn.conv import (
    CausalConv1d,
    ChannelLayerNorm,
    ConvBlock2d,
    ConvNormAct,
    get_activation,
    get_padding,
    same_padding,
)


def test_get_padding_matches_hifigan_formula():
    # HiFi-GAN utils.get_padding: int((k * d - d) / 2), computed here by hand for its kernel/dilations.
    assert get_padding(3, 1) == 1
    assert get_padding(3, 5) == 5
    assert get_padding(7, 3) == 9
    assert get_padding(11, 5) == 25
    assert same_padding(4, 1) == (1, 2)  # even kernel: the extra sample goes right, like torch "same"
    with pytest.raises(ConfigError):
        get_padding(0)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_same_padding_output_length(dims, kernel, dilation, stride):
    m = ConvNormAct(3, 4, kernel, stride=stride, dilation=dilation, norm=None, act=None, dims=dims)
    size = 17  # odd, so even receptive fields need the asymmetric split
    x = torch.randn(2, 3, *([size] * dims))
    assert m(x).shape == (2, 4, *([math.ceil(size / stride)] * dims))


# torch warns that it copies the input for even "same" kernels; that cost is not under test.
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kernel,dilation", [(4, 1), (3, 2), (2, 3), (5, 1)])
def test_same_padding_equals_torch_same(kernel, dilation):
    """Stride 1: our "same" (incl. asymmetric even case) equals torch's padding="same" convolution."""
    m = ConvNormAct(3, 4, kernel, dilation=dilation, norm=None, act=None, bias=True)
    ref = nn.Conv1d(3, 4, kernel, padding="same", dilation=dilation)
    ref.load_state_dict(m.conv.state_dict())
    x = torch.randn(2, 3, 19)
    # Same float32 conv on identically padded input; only summation order can differ.
    assert torch.allclose(m(x), ref(x), atol=1e-6)


def test_conv_norm_act_norms_and_bias():
    bn = ConvNormAct(2, 6, 3)
    assert isinstance(bn.norm, nn.BatchNorm1d) and bn.conv.bias is None  # BN shift makes the bias redundant
    ln = ConvNormAct(2, 6, 3, norm="layer", act="gelu")
    assert isinstance(ln.norm, ChannelLayerNorm) and ln.conv.bias is not None and isinstance(ln.act, nn.GELU)
    plain = ConvNormAct(2, 6, (3, 5), norm=None, act=None, dims=2)
    assert isinstance(plain.norm, nn.Identity) and plain.conv.kernel_size == (3, 5)
    bn2 = ConvNormAct(2, 6, 3, dims=2)
    assert isinstance(bn2.norm, nn.BatchNorm2d)
    assert bn2(torch.randn(2, 2, 9, 10)).shape == (2, 6, 9, 10)
    # A "layer" norm output (before activation) is normalised over channels at every time step.
    y = ConvNormAct(2, 6, 3, norm="layer", act=None)(torch.randn(3, 2, 11))
    assert torch.allclose(y.mean(1), torch.zeros(3, 11), atol=1e-5)
    lrelu = ConvNormAct(2, 2, 1, act="leaky_relu", act_kwargs={"negative_slope": 0.1})
    assert lrelu.act.negative_slope == 0.1


def test_conv_norm_act_errors():
    with pytest.raises(ConfigError):
        ConvNormAct(2, 2, 3, norm="group")
    with pytest.raises(ConfigError):
        ConvNormAct(2, 2, 3, act="nope")
    with pytest.raises(ConfigError):
        ConvNormAct(2, 2, 3, dims=3)
    with pytest.raises(ConfigError):
        ConvNormAct(2, 2, (3, 3, 3), dims=2)
    with pytest.raises(ConfigError):
        ConvNormAct(2, 2, 3, padding="full")
    with pytest.raises(AudioError, match="3-D input"):
        ConvNormAct(2, 2, 3)(torch.randn(2, 9))
    with pytest.raises(ConfigError):
        get_activation("softplusplus")


@pytest.mark.parametrize("shape", [(2, 6, 13), (2, 6, 5, 7)])
def test_channel_layer_norm_matches_layernorm_on_channels_last(shape):
    cln = ChannelLayerNorm(6, eps=1e-6)
    with torch.no_grad():
        cln.weight.normal_()
        cln.bias.normal_()
    ref = nn.LayerNorm(6, eps=1e-6)
    ref.load_state_dict(cln.state_dict())
    x = torch.randn(*shape) * 3 + 1
    # Same normalisation on the same numbers; float32 rounding only.
    assert torch.allclose(cln(x), ref(x.movedim(1, -1)).movedim(-1, 1), atol=1e-5)
    with pytest.raises(AudioError):
        cln(torch.randn(2, 5, 13))


@pytest.mark.parametrize("stride,dilation", [(1, 1), (1, 4), (2, 1)])
def test_causal_conv_is_causal(stride, dilation):
    conv = CausalConv1d(3, 5, kernel_size=4, stride=stride, dilation=dilation)
    x = torch.randn(2, 3, 31)
    y = conv(x)
    assert y.shape == (2, 5, math.ceil(31 / stride))
    t = 15
    x2 = x.clone()
    x2[..., t + 1:] = torch.randn_like(x2[..., t + 1:])  # change only the future
    y2 = conv(x2)
    last = t // stride  # outputs that end at or before input t
    # The past must be bit-identical: same inputs, same ops.
    assert torch.equal(y[..., : last + 1], y2[..., : last + 1])
    assert not torch.allclose(y[..., last + 1:], y2[..., last + 1:])
    assert isinstance(conv, nn.Conv1d) and set(dict(conv.named_parameters())) == {"weight", "bias"}


@pytest.mark.parametrize("pool_type", ["avg", "max", "avg+max"])
def test_conv_block2d_shapes(pool_type):
    block = ConvBlock2d(1, 8)
    x = torch.randn(2, 1, 20, 16)  # (B, C, T, F) as PANNs
    assert block(x, pool_size=(2, 2), pool_type=pool_type).shape == (2, 8, 10, 8)
    assert block(x, pool_size=(1, 1), pool_type=pool_type).shape == (2, 8, 20, 16)
    if pool_type == "avg+max":
        y = block(x, (2, 2), "avg+max")
        assert torch.allclose(y, block(x, (2, 2), "avg") + block(x, (2, 2), "max"), atol=1e-6)
    with pytest.raises(ConfigError):
        block(x, pool_type="median")


def test_conv_block2d_matches_panns_layout_and_cnn14_count():
    block = ConvBlock2d(64, 128)
    assert sorted(block.state_dict()) == sorted([
        "conv1.weight", "conv2.weight",
        *(f"bn{i}.{n}" for i in (1, 2) for n in ("weight", "bias", "running_mean", "running_var",
                                                  "num_batches_tracked")),
    ])
    # Per block by hand: two bias-free 3x3 convs + two BatchNorms (weight + bias).
    def count(cin: int, cout: int) -> int:
        return 9 * cin * cout + 9 * cout * cout + 2 * 2 * cout

    assert sum(p.numel() for p in block.parameters()) == count(64, 128)
    chans = [1, 64, 128, 256, 512, 1024, 2048]
    with torch.device("meta"):
        blocks = [ConvBlock2d(a, b) for a, b in zip(chans, chans[1:])]
    conv_params = sum(p.numel() for b in blocks for p in b.parameters())
    assert conv_params == sum(count(a, b) for a, b in zip(chans, chans[1:]))
    # CNN14 = bn0 (64 mel bins: 2 * 64) + 6 blocks + fc1 (2048x2048 + bias) + fc_audioset (2048x527 + bias):
    # the published 80,753,615 (PANNs, Kong et al. 2020, 527 AudioSet classes).
    total = 2 * 64 + conv_params + 2048 * 2048 + 2048 + 2048 * 527 + 527
    assert total == 80_753_615


def test_conv_block2d_panns_init():
    block = ConvBlock2d(4, 8)
    # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)), fan = channels * 3 * 3.
    bound = math.sqrt(6 / (4 * 9 + 8 * 9))
    assert block.conv1.weight.abs().max() <= bound
    assert torch.equal(block.bn1.weight, torch.ones(8)) and torch.equal(block.bn2.bias, torch.zeros(8))
