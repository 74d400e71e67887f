"""audiozoo.nn.conformer vs transformers' Wav2Vec2ConformerEncoderLayer (same weights), padding, front-end."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.conformer import (
    ConformerAttention,
    ConformerBlock,
    ConformerEncoder,
    Conv2dSubsampling,
    relative_positional_encoding,
)

# transformers' Wav2Vec2ConformerEncoderLayer key -> audiozoo ConformerBlock key
_KEY_MAP = {
    "ffn1_layer_norm": "ffn1.norm", "ffn1.intermediate_dense": "ffn1.fc1", "ffn1.output_dense": "ffn1.fc2",
    "self_attn_layer_norm": "attn_norm",
    "self_attn.linear_q": "attn.q_proj", "self_attn.linear_k": "attn.k_proj", "self_attn.linear_v": "attn.v_proj",
    "self_attn.linear_out": "attn.out_proj", "self_attn.linear_pos": "attn.pos_proj",
    "self_attn.pos_bias_u": "attn.pos_bias_u", "self_attn.pos_bias_v": "attn.pos_bias_v",
    "conv_module.layer_norm": "conv.norm", "conv_module.pointwise_conv1": "conv.pointwise_conv1",
    "conv_module.depthwise_conv": "conv.depthwise_conv", "conv_module.batch_norm": "conv.conv_norm",
    "conv_module.pointwise_conv2": "conv.pointwise_conv2",
    "ffn2_layer_norm": "ffn2.norm", "ffn2.intermediate_dense": "ffn2.fc1", "ffn2.output_dense": "ffn2.fc2",
    "final_layer_norm": "final_norm",
}


def _map_key(key: str) -> str:
    for src, dst in _KEY_MAP.items():
        if key == src or key.startswith(src + "."):
            return dst + key[len(src):]
    raise KeyError(key)


def _hf_layer(pos_type: str, dim=32, heads=4, kernel=7):
    pytest.importorskip("transformers.models.wav2vec2_conformer")
    from transformers import Wav2Vec2ConformerConfig
    from transformers.models.wav2vec2_conformer import modeling_wav2vec2_conformer as hf

    cfg = Wav2Vec2ConformerConfig(hidden_size=dim, num_attention_heads=heads, intermediate_size=2 * dim,
                                  hidden_act="swish", conv_depthwise_kernel_size=kernel,
                                  position_embeddings_type=pos_type, rotary_embedding_base=10000)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    layer = hf.Wav2Vec2ConformerEncoderLayer(cfg).eval()
    with torch.no_grad():  # every parameter and BatchNorm statistic random, nothing left at its init
        for p in layer.parameters():
            p.normal_(0, 0.2)
        bn = layer.conv_module.batch_norm
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    emb = hf.Wav2Vec2ConformerRelPositionalEmbedding(cfg) if pos_type == "relative" else \
        hf.Wav2Vec2ConformerRotaryPositionalEmbedding(cfg)
    return layer, emb


def _ours_from(layer, pos_type: str, dim=32, heads=4, kernel=7) -> ConformerBlock:
    ours = ConformerBlock(dim, heads, ffn_dim=2 * dim, kernel_size=kernel, pos_type=pos_type, conv_bias=False,
                          rotary_on_input=True).eval()
    sd = {_map_key(k): v for k, v in layer.state_dict().items()}
    ours.load_state_dict(sd, strict=True)
    return ours


@pytest.mark.parity
@pytest.mark.parametrize("pos_type", ["relative", "rotary"])
def test_block_matches_transformers_conformer_layer(pos_type):
    layer, emb = _hf_layer(pos_type)
    ours = _ours_from(layer, pos_type)
    x = torch.randn(2, 19, 32)
    with torch.no_grad():
        y_ref = layer(x, relative_position_embeddings=emb(x))
        y = ours(x)
    assert (y - y_ref).abs().max() <= 1e-5
    if pos_type == "relative":  # the same table, computed without transformers' cache
        assert torch.allclose(relative_positional_encoding(19, 32), emb(x), atol=0)


@pytest.mark.parity
def test_masked_relative_attention_matches_transformers():
    layer, emb = _hf_layer("relative")
    ours = _ours_from(layer, "relative")
    x = torch.randn(2, 11, 32)
    pad = torch.zeros(2, 11, dtype=torch.bool)
    pad[1, 6:] = True
    additive = torch.zeros(2, 1, 11, 11).masked_fill(pad[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        ref, _ = layer.self_attn(x, attention_mask=additive, relative_position_embeddings=emb(x))
        y = ours.attn(x, padding_mask=pad)
    assert (y - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("pos_type", ["relative", "rotary", "none"])
def test_encoder_padding_does_not_leak_and_gradients_flow(pos_type):
    torch.manual_seed(0)
    enc = ConformerEncoder(16, depth=2, num_heads=2, kernel_size=5, pos_type=pos_type, dropout=0.0).eval()
    x = torch.randn(3, 9, 16)
    lengths = torch.tensor([9, 5, 2])
    x[1, 5:] = 50.0  # garbage in the padding
    with torch.no_grad():
        y, out_len = enc(x, lengths)
        assert torch.equal(out_len, lengths) and (y[1, 5:] == 0).all()
        for b, n in enumerate(lengths.tolist()):
            alone, _ = enc(x[b:b + 1, :n])
            assert torch.allclose(y[b, :n], alone[0], atol=1e-5), b
    enc.train()
    y, _ = enc(torch.randn(2, 9, 16), torch.tensor([9, 7]))
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_rotary_placements_and_bad_configs():
    torch.manual_seed(1)
    x = torch.randn(1, 6, 8)
    rot = ConformerAttention(8, 2, pos_type="rotary").eval()
    rot_in = ConformerAttention(8, 2, pos_type="rotary", rotary_on_input=True).eval()
    rot_in.load_state_dict(rot.state_dict())
    with torch.no_grad():
        assert not torch.allclose(rot(x), rot_in(x))  # the two rotary placements are different models
    with pytest.raises(ConfigError, match="pos_type"):
        ConformerAttention(8, 2, pos_type="alibi")
    with pytest.raises(ConfigError, match="odd kernel_size"):
        ConformerBlock(8, 2, kernel_size=4)


def test_causal_conv_and_layer_norm_options():
    torch.manual_seed(2)
    block = ConformerBlock(8, 2, kernel_size=4, causal=True, conv_norm="layer", pos_type="none", dropout=0.0).eval()
    x = torch.randn(1, 7, 8)
    with torch.no_grad():
        a = block.conv(x)
        x2 = x.clone()
        x2[:, 5:] += torch.randn(1, 2, 8)  # not a constant shift, which the LayerNorm would remove
        b = block.conv(x2)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5:], b[:, 5:])


def test_conv2d_subsampling_lengths():
    sub = Conv2dSubsampling(20, 16)
    x = torch.randn(2, 31, 20)
    y, lengths = sub(x, torch.tensor([31, 17]))
    assert y.shape == (2, 7, 16) and lengths.tolist() == [7, 3]
    assert (y[1, 3:] == 0).all() and (y[1, :3] != 0).any()
    with pytest.raises(ConfigError, match="7 frames"):
        sub(torch.randn(1, 6, 20))


def test_post_norm_conv_ffn_block_keeps_keys_and_padding():
    """ESPnet's variant (the conformer FastSpeech 2): post-norm with FastSpeech's conv1d feed-forward. Same module
    names as the pre-norm block; padded frames do not leak through the k=3 FFN convolutions; gradients flow
    (numerical equality with the reference: tests/models/test_fastspeech2_conformer.py)."""
    torch.manual_seed(0)
    pre = ConformerBlock(16, 2, 32, kernel_size=5, dropout=0.0)
    post = ConformerBlock(16, 2, 32, kernel_size=5, dropout=0.0, ffn_kind="conv", ffn_kernel=3, pre_norm=False)
    assert list(pre.state_dict()) == list(post.state_dict())
    assert post.ffn1.fc1.weight.shape == (32, 16, 3)
    enc = ConformerEncoder(16, depth=2, num_heads=2, kernel_size=5, dropout=0.0, ffn_kind="conv", pre_norm=False).eval()
    x = torch.randn(2, 9, 16)
    x[1, 6:] = 50.0
    with torch.no_grad():
        y, _ = enc(x, torch.tensor([9, 6]))
        alone, _ = enc(x[1:, :6])
    torch.testing.assert_close(y[1, :6], alone[0], atol=1e-5, rtol=1e-5)
    enc.train()
    y, _ = enc(torch.randn(2, 9, 16), torch.tensor([9, 7]))
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    with pytest.raises(ConfigError):
        ConformerBlock(16, 2, ffn_kind="mlp")
    with pytest.raises(ConfigError):
        ConformerBlock(16, 2, ffn_kind="conv", ffn_kernel=4)
