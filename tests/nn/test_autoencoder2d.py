"""The VQGAN / latent-diffusion 2-D autoencoder blocks: resampling arithmetic (per-axis factors, the official
floor), attention levels, the PatchGAN's shape, and clear errors."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.autoencoder2d import AttnBlock2d, Decoder2d, Downsample2d, Encoder2d, NLayerDiscriminator


def test_downsample_floors_like_the_official_padding() -> None:
    d = Downsample2d(4, (2, 2))
    for h, w in ((80, 848), (81, 37), (2, 3)):
        assert tuple(d(torch.zeros(1, 4, h, w)).shape[-2:]) == (h // 2, w // 2)
    assert tuple(Downsample2d(4, (2, 1))(torch.zeros(1, 4, 10, 7)).shape[-2:]) == (5, 7)


def test_encoder_decoder_with_per_axis_factors() -> None:
    kw = dict(z_channels=6, ch=8, ch_mult=(1, 2, 2), num_res_blocks=1, attn_levels=(2,), factors=((2, 2), (2, 1)),
              groups=4)
    enc, dec = Encoder2d(in_channels=1, **kw), Decoder2d(out_channels=1, **kw)
    x = torch.randn(2, 1, 16, 12)
    z = enc(x)
    assert tuple(z.shape) == (2, 6, 4, 6)  # 4x in frequency, 2x in time
    assert tuple(dec(z).shape) == (2, 1, 16, 12)
    assert [len(lv.attn) for lv in enc.down] == [0, 0, 1] and [len(lv.attn) for lv in dec.up] == [0, 0, 2]
    assert dec.last_layer is dec.conv_out.weight


def test_attention_is_a_residual_over_all_positions() -> None:
    a = AttnBlock2d(8, groups=4)
    torch.nn.init.zeros_(a.proj_out.weight)
    torch.nn.init.zeros_(a.proj_out.bias)
    x = torch.randn(1, 8, 3, 5)
    assert torch.equal(a(x), x)  # zero output projection: identity


def test_patchgan_and_errors() -> None:
    d = NLayerDiscriminator(1, ndf=8, n_layers=3)
    assert tuple(d(torch.randn(2, 1, 80, 64)).shape) == (2, 1, 8, 6)
    with pytest.raises(ConfigError):
        Encoder2d(in_channels=1, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, factors=((3, 2),), groups=4)
    with pytest.raises(ConfigError):
        Encoder2d(in_channels=1, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, factors=((2, 2), (2, 2)),
                  groups=4)
    with pytest.raises(ConfigError):
        Encoder2d(in_channels=1, z_channels=4, ch=6, ch_mult=(1,), num_res_blocks=1, groups=4)  # 6 % 4 groups
    with pytest.raises(ConfigError):
        Encoder2d(in_channels=1, z_channels=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_levels=(2,), groups=4)
