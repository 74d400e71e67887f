"""MERT: parity with transformers' HubertModel, parameter count, converter, teachers, pretext loss that learns."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError
from audiozoo.models.ssl.mert import MERT, checkpoint_filter_fn
from audiozoo.nn.wav2vec import ConvFeatureEncoder, hubert_span_mask

TINY = audiozoo.model_info("mert_base").tiny


def _tiny(**kw) -> MERT:
    torch.manual_seed(0)
    return audiozoo.create_model("mert_base", **{**TINY, **kw}).eval()


def _hubert(m: MERT):
    """A randomly initialised transformers HubertModel with the architecture of ``m`` (MERT-v1-95M's options)."""
    transformers = pytest.importorskip("transformers")
    c = m.config
    cfg = transformers.HubertConfig(
        hidden_size=c.embed_dim, num_hidden_layers=c.depth, num_attention_heads=c.num_heads,
        intermediate_size=c.ffn_dim, conv_dim=list(c.conv_dim), conv_kernel=list(c.conv_kernel),
        conv_stride=list(c.conv_stride), conv_bias=c.conv_bias, feat_extract_norm="group", feat_proj_layer_norm=True,
        num_conv_pos_embeddings=c.conv_pos, num_conv_pos_embedding_groups=c.conv_pos_groups,
        layer_norm_eps=c.layer_norm_eps, do_stable_layer_norm=False, hidden_act="gelu", mask_time_prob=0.05)
    torch.manual_seed(1)
    ref = transformers.HubertModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in ref.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return ref


def test_param_count_on_meta():
    with torch.device("meta"):
        m = audiozoo.create_model("mert_base")
    heads = sum(p.numel() for k, p in m.named_parameters() if k.startswith(("final_proj", "label_embs", "cqt_head")))
    encoder = sum(p.numel() for p in m.parameters()) - heads
    # MERT-v1-95M = HuBERT base: transformers HubertModel(HubertConfig(conv_bias=False)) counts 94,371,712 on meta
    assert encoder == 94_371_712
    assert heads == (768 * 8 * 64 + 8 * 64) + 8 * 1024 * 64 + (768 * 336 + 336)
    assert m.hop_length == 320 and m.frontend.min_samples == 400  # 75 frames/s at 24 kHz
    assert not any(b.requires_grad for b in m.teacher.buffers())


def test_parity_with_hubert_model():
    m = _tiny()
    ref = _hubert(m)
    sd = checkpoint_filter_fn(ref.state_dict(), m)
    missing = set(m.state_dict()) - set(sd)
    assert not missing, missing
    m.load_state_dict(sd)
    torch.manual_seed(2)
    wav = 0.1 * torch.randn(3, 1200)
    lengths = torch.tensor([1200, 1000, 713])
    with torch.no_grad():
        ours = m.extract_features(wav)
        theirs = ref(wav, output_hidden_states=True).hidden_states
        assert len(ours) == len(theirs) == m.num_layers + 1
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        # padded batch: transformers' attention_mask; compare the valid frames
        att = (torch.arange(1200)[None] < lengths[:, None]).long()
        theirs = ref(wav * att, attention_mask=att, output_hidden_states=True).hidden_states
        ours = m.extract_features(wav * att, lengths)
        valid = m.output_lengths(lengths)
        assert valid.tolist() == ref._get_feat_extract_output_lengths(lengths).tolist()
        for a, b in zip(ours, theirs):
            for i, n in enumerate(valid.tolist()):
                torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-5, rtol=1e-4)
            assert float(a[2, int(valid[2]):].abs().max()) == 0.0


def test_converter_parametrized_weight_norm_and_fairseq_layout():
    m = _tiny()
    ref = _hubert(m)
    sd = ref.state_dict()
    # newer torch stores weight norm as parametrizations.weight.original0/1; legacy checkpoints as weight_g/_v
    legacy = {}
    for k, v in sd.items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        legacy["mert_model." + k] = v
    a, b = checkpoint_filter_fn(sd, m), checkpoint_filter_fn(legacy, m)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # fairseq MERTModel names for the same tensors, with its pretext heads
    m.load_state_dict(a)
    own = m.state_dict()
    fs = {"mask_emb": own["mask_emb"], "layer_norm.weight": own["layer_norm.weight"],
          "layer_norm.bias": own["layer_norm.bias"], "label_embs_concat": torch.randn_like(own["label_embs"]),
          "encoder_cqt_model.fc.weight": torch.randn_like(own["cqt_head.weight"]),
          "encoder_cqt_model.fc.bias": own["cqt_head.bias"], "final_proj.weight": own["final_proj.weight"],
          "final_proj.bias": own["final_proj.bias"], "post_extract_proj.weight": own["post_extract_proj.weight"],
          "post_extract_proj.bias": own["post_extract_proj.bias"],
          "encoder.layer_norm.weight": own["encoder_layer_norm.weight"],
          "encoder.layer_norm.bias": own["encoder_layer_norm.bias"],
          "encoder.pos_conv.0.weight_g": own["pos_conv.weight_g"],
          "encoder.pos_conv.0.weight_v": own["pos_conv.weight_v"],
          "encoder.pos_conv.0.bias": own["pos_conv.bias"]}
    for i in range(len(m.config.conv_dim)):
        fs[f"feature_extractor.conv_layers.{i}.0.weight"] = own[f"feature_encoder.conv_layers.{i}.conv.weight"]
    fs["feature_extractor.conv_layers.0.2.weight"] = own["feature_encoder.conv_layers.0.layer_norm.weight"]
    fs["feature_extractor.conv_layers.0.2.bias"] = own["feature_encoder.conv_layers.0.layer_norm.bias"]
    for k, v in own.items():
        if k.startswith("layers."):
            fs["encoder." + k] = v
    got = checkpoint_filter_fn({"model": fs}, m)
    assert got.keys() == own.keys()
    assert torch.equal(got["label_embs"], fs["label_embs_concat"])
    assert torch.equal(got["cqt_head.weight"], fs["encoder_cqt_model.fc.weight"])
    assert all(torch.equal(got[k], own[k]) for k in own if not k.startswith(("label_embs", "cqt_head.weight")))
    # a checkpoint whose projection also reads CQT features (feature_extractor_cqt=True) is refused
    bad = dict(sd, **{"feature_projection.projection.weight": torch.zeros(m.embed_dim, 16 + 12)})
    with pytest.raises(CheckpointError, match="feature_extractor_cqt"):
        checkpoint_filter_fn(bad, m)


def test_conv_encoder_and_span_mask():
    enc = ConvFeatureEncoder((8,) * 7, (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2))
    assert enc.total_stride == 320 and enc.receptive_field == 400
    assert enc(torch.randn(2, 24000)).shape == (2, 8, 74)  # 1 s at 24 kHz: 74 frames (as HuBERT's 49 at 16 kHz)
    assert enc.output_lengths(24000) == 74 and enc.output_lengths(399) == 0
    with pytest.raises(AudioError):
        enc(torch.randn(2, 399))
    g = torch.Generator().manual_seed(0)
    valid = torch.tensor([200, 150, 37])
    mask = hubert_span_mask(valid, 200, 0.8, 5, generator=g)
    assert mask.shape == (3, 200) and len(set(mask.sum(1).tolist())) == 1  # same count for every item
    assert not mask[1, 150:].any() and not mask[2, 37:].any() and int(mask[2].sum()) >= 2
    frac = mask[0].float().mean()  # ~1 - exp(-0.8) = 0.55 of the frames, before the batch-wide cut
    assert 0.1 < float(frac) < 0.7


def test_teacher_codes_and_cqt_targets():
    m = _tiny()
    torch.manual_seed(3)
    wav = 0.1 * torch.randn(2, 1000)
    m.fit_teacher(wav)
    assert bool(m.teacher.fitted)
    codes = m.teacher(wav)
    assert codes.shape == (2, m.config.num_codebooks, 1000 // m.hop_length + 1)
    assert int(codes.max()) < m.config.codebook_size and int(codes[:, 0].unique().numel()) > 4
    cents = m.teacher.centroids.clone()
    m.fit_teacher(wav)  # seeded: refitting on the same audio gives the same codebooks
    assert torch.equal(cents, m.teacher.centroids)
    c = m.cqt_targets(wav)
    assert c.shape == (2, 1000 // m.hop_length + 1, m.config.cqt_bins) and bool((c >= 0).all())


def test_mixture_adds_other_items_audio():
    m = _tiny()
    wav = torch.zeros(3, 500)
    wav[1:] = 1.0
    g = torch.Generator().manual_seed(0)
    mixed = m.mix_in_batch(wav, 1.0, generator=g)
    added = mixed[0]  # item 0 only gets segments of the others: 1 to 3 of 8 to 40 samples (the tiny config)
    assert 8 <= int((added > 0).sum()) <= 3 * 40 and float(added.max()) <= 3.0
    assert bool((mixed[1:] >= 1.0).all())
    assert torch.equal(m.mix_in_batch(wav, 0.0), wav)


def test_pretext_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = _tiny(dropout=0.0, attention_dropout=0.0, dropout_input=0.0).train()
    t = torch.arange(1500) / 24000.0
    tones = (1100.0, 1500.0, 2200.0, 3000.0)
    wav = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) + 0.02 * torch.randn(1500) for f in tones])
    batch = {"audio": wav, "lengths": torch.tensor([1500, 1500, 1400, 1200])}
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    hist = []
    for step in range(30):
        out = m.pretrain_loss(batch, generator=torch.Generator().manual_seed(step), mixture_prob=0.0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append({k: float(v.detach()) for k, v in out.items()})

    def mean(key, part):
        return sum(h[key] for h in part) / len(part)

    first, last = hist[:3], hist[-3:]
    assert mean("loss", last) < 0.6 * mean("loss", first), hist
    # each term learns, not only the conv-feature penalty: measured 7.6 -> 4.9 (below chance 2 ln 16 = 5.5) and
    # 0.41 -> 0.30
    assert mean("acoustic", last) < 0.75 * mean("acoustic", first), hist
    assert mean("musical", last) < 0.85 * mean("musical", first), hist
    # each teacher can be switched off (ablation), the other term still reported
    out = m.eval()(wav[:, None], batch["lengths"], acoustic_weight=0.0)
    assert torch.isfinite(out["loss"]) and "musical" in out and "acoustic" in out


def test_codebook_nce_equals_fairseq_compute_nce():
    from audiozoo.train.losses.ssl import codebook_nce_loss

    g = torch.Generator().manual_seed(0)
    proj, embs = torch.randn(7, 5, generator=g), torch.randn(11, 5, generator=g)
    targets = torch.randint(0, 11, (7,), generator=g)
    # fairseq HubertModel.compute_nce: [positive, every code] cosine / temp, the code equal to the positive -> -inf,
    # cross-entropy with target 0 (hubert criterion)
    pos = embs[targets]
    negs = embs[:, None].expand(-1, 7, -1)
    logits = torch.cosine_similarity(proj, torch.cat([pos[None], negs]), dim=-1) / 0.1
    logits[1:][(pos == negs).all(-1)] = float("-inf")
    ref = torch.nn.functional.cross_entropy(logits.T, torch.zeros(7, dtype=torch.long))
    loss, acc = codebook_nce_loss(proj, embs, targets, 0.1)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    assert 0.0 <= float(acc) <= 1.0


def test_pretrains_through_the_ssl_task(tmp_path):
    import json

    from torch.utils.data import DataLoader

    from audiozoo.train.engine import Trainer
    from audiozoo.train.tasks import SSLTask

    m = _tiny(dropout=0.0, attention_dropout=0.0, dropout_input=0.0)
    assert {"mask_prob", "mask_length", "mixture_prob", "acoustic_weight", "musical_weight"} <= set(
        SSLTask.model_options(m))
    g = torch.Generator().manual_seed(0)
    t = torch.arange(2000) / 24000.0
    audio = [0.3 * torch.sin(2 * torch.pi * (800 + 2000 * float(torch.rand((), generator=g))) * t)
             + 0.01 * torch.randn(2000, generator=g) for _ in range(24)]
    items = [{"audio": a, "lengths": torch.tensor(2000)} for a in audio]
    task = SSLTask(masking={"mask_prob": 0.65, "mixture_prob": 0.5}, optim={"name": "adamw", "lr": 3e-3})
    train, valid = DataLoader(items[:16], batch_size=8, shuffle=True), DataLoader(items[16:], batch_size=8)
    Trainer(task, {"model": m}, train, valid, epochs=6, out_dir=tmp_path, progress=False, device="cpu", seed=0,
            log_every=1).fit()
    valid = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["split"] == "valid"]
    assert bool(m.teacher.fitted) and len(valid) == 6
    # measured (validation after epochs 1 -> 6): loss 8.82 -> 5.59, acoustic 6.34 -> 4.95 (chance 2 ln 16 = 5.55)
    assert valid[-1]["loss"] < 0.8 * valid[0]["loss"] and valid[-1]["acoustic"] < valid[0]["acoustic"], valid
