"""The self-distilled BEATs tokenizer: parameter count vs the official class, the same encoder as BEATs (itself at
parity with espnet's copy of the official network), parity with the official ``Tokenizers`` when its code is given,
converter, labels."""

from __future__ import annotations

import importlib.machinery
import os
import sys
import types
from pathlib import Path

import pytest
import torch

import audiozoo
from audiozoo.models.ssl.beats_tokenizer import checkpoint_filter_fn

TINY = audiozoo.model_info("beats_tokenizer").tiny


def _tiny(**kw):
    torch.manual_seed(0)
    return audiozoo.create_model("beats_tokenizer", **{**TINY, **kw}).eval()


def test_param_count_on_meta():
    with torch.device("meta"):
        m = audiozoo.create_model("beats_tokenizer")
    est = sum(p.numel() for k, p in m.named_parameters() if k.startswith("estimator"))
    # the official Tokenizers' trainable parameters with the released encoders' cfg (measured by building the class
    # from microsoft/unilm@768a3c8 beats/): 91,099,248 = the BEATs encoder 90,311,792 + quantize_layer 787,456
    assert sum(p.numel() for p in m.parameters()) - est == 91_099_248
    assert est == 768 * 256 + 768 + sum(p.numel() for p in m.estimator.parameters()) + 2 * (768 * 768 + 768)
    assert [n for n, _ in m.quantize.named_parameters()] == []  # the codebook is EMA-updated buffers


def _beats_weights_into(tok) -> dict:
    """A tiny BEATs encoder of the tokenizer's shape, and its weights in the tokenizer's layout."""
    torch.manual_seed(1)
    beats = audiozoo.create_model("beats_base", **audiozoo.model_info("beats_base").tiny).eval()
    state = {}
    for k, v in beats.state_dict().items():
        if k.startswith(("pos_conv.", "relative_position.", "layers.")):
            state["encoder." + k] = v
        elif k.startswith("encoder_layer_norm."):
            state["encoder.layer_norm." + k.split(".")[-1]] = v
        elif k.startswith(("patch_embedding.", "layer_norm.", "post_extract_proj.")):
            state[k] = v
    own = tok.state_dict()
    assert set(state) == {k for k in own if k.startswith(("encoder.", "patch_embedding.", "layer_norm.", "post_"))}
    tok.load_state_dict({**own, **state})
    return beats


def test_encoder_is_the_beats_encoder():
    tok = _tiny()
    beats = _beats_weights_into(tok)
    feats, lengths = torch.randn(2, 32, 70), torch.tensor([70, 41])
    with torch.no_grad():
        want, _, _ = beats.encode(feats, lengths)
        got, _, keep = tok.encode(feats, lengths)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert keep.shape == (2, 8 * 4) and int(keep[1].sum()) == 5 * 4


def _official_tokenizers(path: Path):
    for name in ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = mod
    sys.path.insert(0, str(path))
    try:
        import Tokenizers  # noqa: N813
    finally:
        sys.path.remove(str(path))
    return Tokenizers


@pytest.mark.parity
def test_parity_with_official_tokenizers():
    """Needs the official ``beats/`` folder of microsoft/unilm (``AUDIOZOO_UNILM_BEATS=/path/to/unilm/beats``)."""
    path = os.environ.get("AUDIOZOO_UNILM_BEATS")
    if not path or not (Path(path) / "Tokenizers.py").is_file():
        pytest.skip("set AUDIOZOO_UNILM_BEATS to the official beats/ folder (Tokenizers.py, backbone.py, quantizer.py)")
    official = _official_tokenizers(Path(path))
    ours = _tiny()
    c = ours.config
    cfg = dict(input_patch_size=c.patch_size, embed_dim=c.patch_embed_dim, encoder_layers=c.depth,
               encoder_embed_dim=c.embed_dim, encoder_ffn_embed_dim=c.ffn_dim, encoder_attention_heads=c.num_heads,
               conv_pos=c.conv_pos, conv_pos_groups=c.conv_pos_groups, relative_position_embedding=True,
               num_buckets=c.num_buckets, max_distance=c.max_distance, gru_rel_pos=True, deep_norm=True,
               layer_norm_first=False, dropout=0.0, attention_dropout=0.0, quant_n=c.codebook_size,
               quant_dim=c.codebook_dim)
    ref = official.Tokenizers(official.TokenizersConfig(cfg)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if not n.startswith("quantize."):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        ref.quantize.embedding.weight.copy_(
            torch.nn.functional.normalize(torch.randn(c.codebook_size, c.codebook_dim, generator=g), dim=-1))
        ref.quantize.embedding.initted.fill_(1.0)
    ours.load_state_dict(checkpoint_filter_fn({"model": ref.state_dict(), "cfg": cfg}, ours), strict=True)
    feats = torch.randn(3, c.n_mels, 8 * 23 + 5, generator=g)  # 92 patches (> max_distance)
    ref.preprocess = lambda source, **kw: feats.transpose(1, 2)  # the same normalised fbank into both
    with torch.no_grad():
        want = ref.extract_labels(torch.zeros(3, 4000))
        got = ours.tokenize(feats)
    # measured: labels identical; quantiser inputs within 6e-7 (|x| <= 1.8)
    assert torch.equal(got, want.view(got.shape))


def test_converter_maps_the_official_layout():
    ours = _tiny()
    sd = ours.state_dict()
    official = {}
    for k, v in sd.items():
        if k.startswith("encoder.pos_conv."):
            official["encoder.pos_conv.0." + k.split(".")[-1]] = v
        elif k.startswith("encoder.relative_position."):
            for i in range(ours.config.depth):
                official[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = v
        elif k == "quantize.embed":
            official["quantize.embedding.weight"] = v
            official["quantize.embedding.embed_avg"] = v
            official["quantize.embedding.cluster_size"] = torch.zeros(v.shape[0])
        elif k == "quantize.initted":
            official["quantize.embedding.initted"] = v
        elif not k.startswith("estimator"):
            official[k] = v
    back = checkpoint_filter_fn({"model": official, "cfg": {}}, ours)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_labels_are_deterministic_and_padding_free():
    tok = _tiny()
    tok.train()
    x = torch.randn(2, 32, 61)
    tok(x, targets=torch.randn(2, 7 * 4, 32))  # one training step of the codebook: k-means initialisation
    tok.eval()
    assert torch.allclose(tok.quantize.embed.norm(dim=-1), torch.ones(32), atol=1e-5)  # unit codes
    lengths = torch.tensor([61, 35])
    both = tok.tokenize(x, lengths)
    alone = tok.tokenize(x[1:, :, :35], lengths[1:])
    assert both.shape == (2, 7 * 4) and alone.shape == (1, 4 * 4)
    assert torch.equal(both[1, :16], alone[0])  # the padded columns do not change the item's labels
    assert torch.equal(tok.tokenize(x, lengths), both)
    feats = tok.extract_features(x, lengths)
    assert len(feats) == 3 and feats[-1].shape == (2, 7, 32) and feats[-1][1, 4:].abs().max() == 0
