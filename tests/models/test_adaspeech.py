"""AdaSpeech: paper sizes, phoneme-level condition (teacher vs predictor, stop-gradient),
padding invariance, a tiny model that learns a fixed utterance, and adaptation that moves only the CLN linears and
the new speaker's embedding row."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.models.tts.adaspeech import LOG_FLOOR, AdaSpeechOutput
from audiozoo.registry import from_pretrained
from audiozoo.train.losses.tts import masked_mel_loss, masked_value_loss, sequence_mask

# the registry's tiny config, with the phoneme-level condition switched on
TINY = {**audiozoo.model_info("adaspeech_base").tiny, "phoneme_condition": True}


def _model(**kw):
    torch.manual_seed(0)
    return audiozoo.create_model("adaspeech_small", **{**TINY, **kw})


def _batch(b: int = 2, n: int = 7, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 40, (b, n), generator=g)
    lengths = torch.tensor([n] + [n - 2] * (b - 1))
    durations = torch.randint(1, 4, (b, n), generator=g) * (torch.arange(n)[None] < lengths[:, None])
    frames = durations.sum(1)
    big = int(frames.max())
    mel = torch.randn(b, TINY["n_mels"], big, generator=g) - 4.0
    mel = mel.masked_fill(~sequence_mask(frames, big)[:, None], LOG_FLOOR)
    return dict(tokens=tokens, lengths=lengths, durations=durations, mel=mel, mel_lengths=frames,
                pitch=torch.randn(b, big, generator=g), energy=torch.randn(b, big, generator=g),
                speaker=torch.arange(b) % TINY["n_speakers"], max_frames=big)


def _run(m, t, **kw):
    return m(t["tokens"], t["lengths"], durations=t["durations"], pitch=t["pitch"], energy=t["energy"],
             speaker=t["speaker"], mel=t["mel"], mel_lengths=t["mel_lengths"], max_frames=t["max_frames"], **kw)


def test_paper_config_and_adaptation_count() -> None:
    with torch.device("meta"):
        m = audiozoo.create_model("adaspeech_base")
    c = m.config
    assert (c.hidden, c.encoder_layers, c.decoder_layers, c.heads, c.ffn_dim, c.ffn_kernels) == \
        (256, 4, 4, 2, 1024, (9, 1))
    assert (c.utterance_channels, c.utterance_kernel, c.phoneme_channels, c.phoneme_kernel, c.phoneme_latent) == \
        (256, 5, 256, 3, 4)
    assert sum(p.numel() for p in m.parameters()) == 27_264_091 and not c.postnet
    # C = 2 LayerNorms x 4 decoder blocks; H = S = 256
    size, cc, h = m.adaptation_size(), 8, 256
    assert size == {"fine_tuned": cc * 2 * (h * h + h) + h, "stored": cc * 2 * h + h, "norms": cc}
    assert size["fine_tuned"] == 1_052_928 and size["stored"] == 4_352  # paper: "about 5K" stored per speaker


def test_teacher_and_predictor_paths() -> None:
    m = _model().train()
    t = _batch()
    out = _run(m, t)
    assert isinstance(out, AdaSpeechOutput) and out.mel.shape == t["mel"].shape
    assert out.mel_lengths.tolist() == t["mel_lengths"].tolist()
    assert out.phoneme_pred.shape == out.phoneme_target.shape == (2, 7, 4) and not out.phoneme_target.requires_grad
    # the mel loss reaches the phoneme-level encoder (teacher) but not the predictor
    masked_mel_loss(out.mel, t["mel"], t["mel_lengths"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.phoneme_encoder.parameters())
    assert all(p.grad is None for p in m.phoneme_predictor.parameters())
    # the predictor's MSE reaches the predictor, never the encoder whose output is its target (stop-gradient)
    m.zero_grad(set_to_none=True)
    out = _run(m, t)
    valid = sequence_mask(t["lengths"], 7)[..., None].expand_as(out.phoneme_pred)
    masked_value_loss(out.phoneme_pred, out.phoneme_target, valid).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.phoneme_predictor.parameters())
    assert all(p.grad is None for p in m.phoneme_encoder.parameters())
    # inference: the predictor supplies the vectors; a reference mel is required
    m.eval()
    ref = t["mel"]
    mel, lens = m.synthesize(t["tokens"], t["lengths"], speaker=t["speaker"], ref_mel=ref, ref_lengths=t["mel_lengths"])
    assert mel.shape[:2] == (2, TINY["n_mels"]) and torch.isfinite(mel).all() and (lens >= 1).all()
    with pytest.raises(ConfigError):
        m.synthesize(t["tokens"], t["lengths"], speaker=t["speaker"])
    with pytest.raises(ConfigError):
        m.synthesize(t["tokens"], t["lengths"], speaker=torch.tensor([0, 5]), ref_mel=ref)


def test_item_does_not_depend_on_batch_padding() -> None:
    m = _model().eval()
    t = _batch()
    with torch.no_grad():
        both = _run(m, t)
        n1, f1 = int(t["lengths"][1]), int(t["mel_lengths"][1])
        one = {k: (v[1:2] if torch.is_tensor(v) else v) for k, v in t.items()}
        one.update(tokens=t["tokens"][1:2, :n1], durations=t["durations"][1:2, :n1], mel=t["mel"][1:2, :, :f1],
                   pitch=t["pitch"][1:2, :f1], energy=t["energy"][1:2, :f1], max_frames=f1)
        alone = _run(m, one)
    assert torch.allclose(both.mel[1, :, :f1], alone.mel[0], atol=1e-5)
    assert torch.allclose(both.utterance[1], alone.utterance[0], atol=1e-5)
    assert (both.mel[1, :, f1:] == LOG_FLOOR).all()


def _fit(m, t, params, steps: int, lr: float, speaker=None) -> list[float]:
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        out = _run(m, t) if speaker is None else _run(m, {**t, "speaker": speaker})
        loss = masked_mel_loss(out.mel, t["mel"], t["mel_lengths"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _structured_mel(t):
    """A fixed utterance whose mel depends on the token (each phoneme its own spectral shape)."""
    b, n = t["tokens"].shape
    g = torch.Generator().manual_seed(7)
    table = torch.randn(40, TINY["n_mels"], generator=g)
    per_frame, _ = audiozoo.nn.length_regulate(table[t["tokens"]], t["durations"], 1.0, t["lengths"],
                                               t["max_frames"])
    mel = per_frame.transpose(1, 2) - 4.0
    return mel.masked_fill(~sequence_mask(t["mel_lengths"], mel.shape[-1])[:, None], LOG_FLOOR)


def test_tiny_model_learns_a_fixed_utterance() -> None:
    m = _model(dropout=0.0, condition_dropout=0.0, variance_dropout=0.0).train()
    t = _batch(b=1, n=9, seed=3)
    t["mel"] = _structured_mel(t)
    losses = _fit(m, t, m.parameters(), steps=60, lr=3e-3)
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_adaptation_moves_only_cln_and_new_speaker(tmp_path) -> None:
    m = _model(dropout=0.0, condition_dropout=0.0, variance_dropout=0.0).train()
    t = _batch(b=1, n=9, seed=4)
    t["mel"] = _structured_mel(t) + 0.5  # a "new voice": a shifted spectrum
    sid = m.add_speaker()
    assert sid == TINY["n_speakers"] and m.config.n_speakers == sid + 1
    names = m.freeze_for_adaptation()
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert sorted(trainable) == names and "speaker_embed.weight" in names
    assert all(".norm" in n for n in names if n.startswith("decoder."))
    size = m.adaptation_size()
    h = TINY["hidden"]
    assert size["fine_tuned"] == size["norms"] * 2 * (h * h + h) + h == \
        sum(p.numel() for n, p in m.named_parameters() if n.startswith("decoder.") and ".norm" in n) + h
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    losses = _fit(m, t, [p for p in m.parameters() if p.requires_grad], steps=40, lr=1e-2,
                  speaker=torch.tensor([sid]))
    assert losses[-1] < 0.8 * losses[0], losses[::10]
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(names)
    emb_moved = (m.speaker_embed.weight != before["speaker_embed.weight"]).any(1)
    assert emb_moved.tolist() == [False] * sid + [True]  # only the new voice's row
    moved = sum(int((p != before[n]).sum()) for n, p in m.named_parameters() if n != "speaker_embed.weight")
    assert moved + h >= 0.9 * size["fine_tuned"]  # (almost) every CLN weight adapts
    # the adapted model (one more speaker) saves and loads as any checkpoint
    save_pretrained(m, tmp_path / "adapted")
    loaded = from_pretrained(tmp_path / "adapted").eval()
    assert loaded.config.n_speakers == sid + 1
    with torch.no_grad():
        assert torch.equal(_run(m.eval(), {**t, "speaker": torch.tensor([sid])}).mel,
                           _run(loaded, {**t, "speaker": torch.tensor([sid])}).mel)
