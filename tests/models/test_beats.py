"""BEATs: parity with espnet's copy of the official network, parameter count, tokenizer, pretext loss."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.models.ssl.beats import BEATs, BEATsConfig, checkpoint_filter_fn
from audiozoo.nn.relpos import relative_position_bucket

TINY = audiozoo.model_info("beats_base").tiny


def _tiny(**kw) -> BEATs:
    torch.manual_seed(0)
    return audiozoo.create_model("beats_base", **{**TINY, **kw}).eval()


def test_param_count_on_meta():
    with torch.device("meta"):
        m = audiozoo.create_model("beats_base")
    head = m.mask_embed.numel() + sum(p.numel() for p in m.label_predictor.parameters())
    encoder = sum(p.numel() for p in m.parameters()) - head
    # the official network with the released cfg: 90,311,792 (paper Table 1: 90M; speechbrain's BEATs: 90.3M)
    assert encoder == 90_311_792
    assert abs(encoder - 90e6) <= 0.01 * 90e6
    assert head == 768 + 768 * 1024 + 1024
    assert not any(b.requires_grad for b in m.tokenizer.buffers())


def test_relative_position_bucket():
    rel = torch.arange(-2000, 2001)
    b = relative_position_bucket(rel, 320, 800)
    assert int(b.min()) == 0 and int(b.max()) == 319
    k = torch.arange(1, 80)
    assert int(b[2000]) == 0 and torch.equal(b[2000 - k], k)  # offsets -1..-79: their own low-half buckets
    assert torch.equal(b[2000 + k], 160 + k)  # positive offsets: the high half
    assert bool((b[2001:].diff() >= 0).all()) and int(b[-1]) == 319 and int(b[0]) == 159  # log-spaced, open end


def _espnet_reference(monkeypatch, cfg: dict):
    """espnet 202511's BeatsEncoder (the official BEATs.py / backbone.py network) with torchaudio stubbed."""
    pytest.importorskip("espnet2")
    for name in ("torchaudio", "torchaudio.compliance", "torchaudio.compliance.kaldi"):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
            monkeypatch.setitem(sys.modules, name, mod)
    # its optional transformers adapter import is not needed: make it fail fast (the module catches ImportError)
    if "transformers.models.bart.modeling_bart" not in sys.modules:
        monkeypatch.setitem(sys.modules, "transformers.models.bart.modeling_bart", None)
    mod = pytest.importorskip("espnet2.asr.encoder.beats_encoder")
    ref = mod.BeatsEncoder(input_size=1, beats_config=cfg)
    ref.reload_pretrained_parameters()
    return ref


def _official_cfg(c: BEATsConfig) -> dict:
    return dict(input_patch_size=c.patch_size, embed_dim=c.patch_embed_dim, encoder_layers=c.depth,
                encoder_embed_dim=c.embed_dim, encoder_ffn_embed_dim=c.ffn_dim, encoder_attention_heads=c.num_heads,
                conv_pos=c.conv_pos, conv_pos_groups=c.conv_pos_groups, relative_position_embedding=True,
                num_buckets=c.num_buckets, max_distance=c.max_distance, gru_rel_pos=True, deep_norm=True,
                layer_norm_first=False, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)


@pytest.mark.parity
def test_parity_with_espnet_beats(monkeypatch):
    ours = _tiny(max_distance=24)
    ref = _espnet_reference(monkeypatch, _official_cfg(ours.config)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move every weight off its init (LayerNorms, gates, biases) so each one matters
        for p in ref.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    state = checkpoint_filter_fn({"model": ref.state_dict(), "cfg": {}}, ours)
    ours.load_state_dict(state, strict=True)

    feats = torch.randn(2, ours.config.n_mels, 8 * 23 + 5, generator=g)  # 23 x 4 = 92 tokens (> max_distance)
    ref.preprocess = lambda source: feats.transpose(1, 2)  # the same normalised fbank (B, T, F) into both
    with torch.no_grad():
        want, _ = ref.extract_features(torch.zeros(2, 4000))
        x = ref.patch_embedding(feats.transpose(1, 2)[:, None])
        x = ref.post_extract_proj(ref.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)))
        _, layers = ref.encoder(x, padding_mask=None, layer=ours.config.depth - 1)
        got, hidden, _ = ours.encode(feats, return_hidden=True)
    assert got.shape == want.shape == (2, 23 * 4, ours.config.embed_dim)
    err = (got - want).abs().max().item()
    print(f"BEATs vs espnet: max abs diff {err:.2e}")
    assert err < 1e-5, err  # measured 1.4e-6 (fp32; the official max-shifted, alpha-scaled softmax vs SDPA)
    for h, (x, _) in zip(hidden, layers, strict=True):
        assert (h - x.transpose(0, 1)).abs().max().item() < 1e-5


def test_converter_accepts_new_weight_norm_keys():
    ours = _tiny()
    sd = ours.state_dict()
    official = {"encoder.pos_conv.0.parametrizations.weight.original0": sd["pos_conv.weight_g"],
                "encoder.pos_conv.0.parametrizations.weight.original1": sd["pos_conv.weight_v"],
                "encoder.pos_conv.0.bias": sd["pos_conv.bias"],
                "encoder.layer_norm.weight": sd["encoder_layer_norm.weight"],
                "encoder.layer_norm.bias": sd["encoder_layer_norm.bias"], "predictor.weight": torch.zeros(3, 3)}
    for k, v in sd.items():
        if k.startswith("layers."):
            official["encoder." + k] = v
        elif k.startswith("relative_position."):
            for i in range(ours.config.depth):
                official[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = v
        elif not k.startswith(("pos_conv.", "encoder_layer_norm.")):
            official[k] = v
    back = checkpoint_filter_fn(official, ours)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_tokenizer_is_frozen_cosine_nearest_neighbour():
    m = _tiny()
    x = torch.randn(2, 7, 64)
    labels = m.tokenizer(x)
    assert labels.shape == (2, 7) and labels.dtype == torch.long
    z = torch.nn.functional.normalize(x @ m.tokenizer.projection.T, dim=-1)
    cos = z @ torch.nn.functional.normalize(m.tokenizer.codebook, dim=-1).T
    assert torch.equal(labels, cos.argmax(-1))
    assert torch.equal(m.tokenizer(3.0 * x), labels)  # cosine: scale-free
    assert torch.equal(_tiny().tokenizer.codebook, m.tokenizer.codebook)  # drawn from the config's seed
    assert not torch.equal(_tiny(tokenizer_seed=1).tokenizer.codebook, m.tokenizer.codebook)


def test_padding_does_not_change_an_item():
    m = _tiny()
    x = torch.randn(2, 32, 61)
    lengths = torch.tensor([61, 35])
    both = m.extract_features(x, lengths)
    alone = m.extract_features(x[1:, :, :35], lengths[1:])
    n = int(m.output_lengths(lengths)[1])
    assert n == 4 and both[-1].shape[1] == 7
    assert torch.allclose(both[-1][1, :n], alone[-1][0], atol=1e-5)
    assert both[-1][1, n:].abs().max() == 0


def test_mask_ratio_and_padding_in_the_mask():
    m = _tiny()
    valid = torch.tensor([10, 6])
    mask = m.draw_mask(valid, 10, 0.75, torch.Generator().manual_seed(0))
    assert mask.shape == (2, 40) and (mask.sum(1) == int(0.75 * 6 * 4)).all()
    assert not mask[1, 6 * 4:].any()


def test_waveform_front_end_matches_kaldi_native_fbank():
    knf = pytest.importorskip("kaldi_native_fbank")
    m = _tiny(n_mels=80, patch_size=8)
    t = np.arange(8000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    o = knf.FbankOptions()
    o.frame_opts.dither, o.frame_opts.samp_freq, o.frame_opts.window_type = 0.0, 16000, "povey"
    o.mel_opts.num_bins = 80
    f = knf.OnlineFbank(o)
    f.accept_waveform(16000, (wav * 32768.0).tolist())  # BEATs.preprocess: waveform * 2^15
    f.input_finished()
    ref = np.stack([f.get_frame(i) for i in range(f.num_frames_ready)]).T
    ref = (ref - 15.41663) / (2 * 6.55582)
    feats, frames = m.frontend(torch.from_numpy(wav)[None], torch.tensor([8000]))
    assert int(frames[0]) == ref.shape[1] == 48
    assert np.abs(feats[0].numpy() - ref).max() < 2e-5


def test_pretext_loss_falls():
    torch.manual_seed(0)
    m = audiozoo.create_model("beats_base", **TINY).train()
    g = torch.Generator().manual_seed(0)
    # each item repeats one random 8-frame pattern over time: a masked patch's label is that of the visible patches
    # in its frequency row, so it is predictable from context but not from the label frequencies alone
    feats = torch.randn(4, 32, 8, generator=g).repeat(1, 1, 8) + 0.05 * torch.randn(4, 32, 64, generator=g)
    labels = m.tokenizer(m.patches(feats)).flatten()
    p = torch.bincount(labels).float() / labels.numel()
    marginal_entropy = float(-(p[p > 0] * p[p > 0].log()).sum())  # the best loss without context (2.66 nats)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for step in range(20):
        out = m(feats, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert np.isfinite(losses).all()
    # measured: 3.46 (ln 32 = 3.47) -> 0.46 in 20 steps, masked-label accuracy 0.92
    assert np.mean(losses[-3:]) < 0.5 * marginal_entropy, losses
    assert losses[0] > 0.9 * np.log(TINY["codebook_size"])
    assert out["acc"] > 0.6
