"""Tacotron 2 / SV2TTS synthesizer: parameter counts and parity with espnet's ``espnet2.tts.tacotron2.Tacotron2``
(with and without its concatenated speaker embedding), padding independence, reduction factor, learning on a fixed
utterance through the tts task, and zero-shot conditioning on speaker embeddings."""

from __future__ import annotations

import pytest
import torch
from ar_tts_checks import (
    check_causal_and_batch_independent,
    harmonic_utterances,
    padded_batch,
    randomise_batchnorm,
    train_tts_task,
)

import audiozoo
from audiozoo.errors import CheckpointError, ConfigError
from audiozoo.models.tts.tacotron2 import checkpoint_filter_fn

TINY = dict(vocab_size=40, embed_dim=16, encoder_conv_layers=2, encoder_conv_channels=16, encoder_kernel=3,
            encoder_dim=16, attention_dim=8, attention_filters=4, attention_kernel=5, prenet_units=16,
            decoder_layers=2, decoder_dim=24, postnet_layers=2, postnet_channels=16, n_mels=20, n_fft=256,
            win_length=256)


def _model(name="tacotron2", **kw):
    torch.manual_seed(0)
    m = audiozoo.create_model(name, **{**TINY, **kw}).eval()
    randomise_batchnorm(m)
    return m


def _meta_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, spk", [("tacotron2", None), ("sv2tts_synthesizer", 256)])
def test_param_count_equals_espnet_at_the_paper_config(name, spk):
    t2 = pytest.importorskip("espnet2.tts.tacotron2.tacotron2")
    with torch.device("meta"):
        ours = audiozoo.create_model(name)
        ref = t2.Tacotron2(idim=256, odim=80, adim=128, spk_embed_dim=spk)
    assert _meta_count(ours) == _meta_count(ref) == audiozoo.model_info(name).params
    assert audiozoo.model_info(name).params == {"tacotron2": 26_147_202, "sv2tts_synthesizer": 27_249_282}[name]


# ------------------------------------------------------------------------------------------- espnet parity
def _espnet_pair(spk=None, r=1):
    t2 = pytest.importorskip("espnet2.tts.tacotron2.tacotron2")
    torch.manual_seed(0)
    # dropout_rate 0: espnet's pre-net dropout is always on (F.dropout with training=True), even in eval()
    ref = t2.Tacotron2(idim=40, odim=20, embed_dim=16, elayers=1, eunits=16, econv_layers=2, econv_chans=16,
                       econv_filts=3, adim=8, aconv_chans=4, aconv_filts=2, dlayers=2, dunits=24, prenet_units=16,
                       postnet_layers=2, postnet_chans=16, postnet_filts=5, reduction_factor=r, spk_embed_dim=spk,
                       dropout_rate=0.0, zoneout_rate=0.1, use_guided_attn_loss=False).eval()
    randomise_batchnorm(ref, affine=True)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("bias") and p.abs().sum() == 0:
                p.uniform_(-0.1, 0.1)  # make zero-initialised biases count
    ours = audiozoo.create_model("sv2tts_synthesizer" if spk else "tacotron2", **TINY, attention_scale=2.0,
                                 attention_init="uniform", reduction_factor=r,
                                 **({"speaker_embed_dim": spk} if spk else {})).eval()
    from audiozoo.hub import load_into

    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    return ref, ours


@pytest.mark.parity
@pytest.mark.parametrize("spk, r", [(None, 1), (6, 1), (6, 2)])
def test_parity_teacher_forced_with_espnet(spk, r):
    """Same weights through the converter, eval mode, no dropout: our padded batch == espnet item by item (its
    convolutions see the padding). Bound: max abs error < 1e-4 (measured ~1e-6)."""
    ref, ours = _espnet_pair(spk, r)
    tokens, lengths, mel, mel_lengths = padded_batch()
    mel_lengths = mel_lengths - mel_lengths % r  # espnet trims targets to a multiple of r
    emb = torch.randn(2, spk, generator=torch.Generator().manual_seed(3)) * 3.0 if spk else None
    with torch.no_grad():
        out = ours(tokens, lengths, mel=mel, mel_lengths=mel_lengths, speaker_embedding=emb, return_attention=True)
        for i in range(2):
            n, f = int(lengths[i]), int(mel_lengths[i])
            ys = mel[i:i + 1, :, :f].transpose(1, 2)
            after, before, logits, att = ref._forward(tokens[i:i + 1, :n], lengths[i:i + 1], ys, mel_lengths[i:i + 1],
                                                      None if emb is None else emb[i:i + 1], None, None)
            torch.testing.assert_close(out.mel[i, :, :f], after[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.mel_before[i, :, :f], before[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.stop_logits[i, :f], logits[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.attention[i, 0, 0, r - 1:f:r, :n], att[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parity
def test_parity_greedy_inference_with_espnet():
    """espnet's ``inference`` (it appends its eos id ``idim - 1``; threshold 1 so both run to ``maxlenratio``)."""
    ref, ours = _espnet_pair(spk=6)
    text = torch.tensor([5, 17, 3, 22, 9, 31, 12])
    emb = torch.randn(6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        r = ref.inference(text, spembs=emb, threshold=1.0, maxlenratio=1.5)
    mel, n, stop, _, _ = ours.synthesize(torch.cat([text, torch.tensor([39])])[None], speaker_embedding=emb[None],
                                         threshold=0.999999, max_len_ratio=1.5, prenet_dropout=False,
                                         return_details=True)
    assert int(n[0]) == r["feat_gen"].shape[0] == 12
    torch.testing.assert_close(mel[0], r["feat_gen"].T, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(stop[0], r["prob"], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("r", [1, 2])
def test_teacher_forcing_is_causal_and_batch_independent(r):
    check_causal_and_batch_independent(_model(reduction_factor=r))


@pytest.mark.parametrize("r", [1, 3])
def test_synthesis_equals_teacher_forcing_on_its_own_frames(r):
    m = _model(reduction_factor=r)
    tokens, lengths, _, _ = padded_batch()
    mel, n, stop, before, att = m.synthesize(tokens, lengths, threshold=0.999999, max_len_ratio=1.5,
                                             prenet_dropout=False, return_details=True)
    steps = -(-13 // r)
    assert n.tolist() == [steps * r, -(-9 // r) * r] and mel.shape == (2, 20, steps * r)
    assert att.shape == (2, steps, 9) and stop.shape == (2, steps * r)
    with torch.no_grad():
        tf = m(tokens, lengths, mel=before, mel_lengths=n)
    torch.testing.assert_close(tf.mel, mel, atol=1e-4, rtol=1e-4)
    # the pre-net dropout is on by default (paper): two syntheses differ; off, decoding repeats itself
    assert torch.equal(m.synthesize(tokens, lengths, threshold=0.999999, max_len_ratio=1.5, prenet_dropout=False)[0],
                       mel)
    assert not torch.equal(m.synthesize(tokens, lengths, threshold=0.999999, max_len_ratio=1.5)[0], mel)


def test_zero_shot_speaker_embeddings_change_the_voice():
    """Two different speaker embeddings give different mels from the same text; the same embedding (any scale:
    it is L2-normalised) gives the same mel with the pre-net dropout off."""
    m = _model("sv2tts_synthesizer", speaker_embed_dim=8)
    tokens = torch.randint(1, 39, (1, 7), generator=torch.Generator().manual_seed(0))
    a, b = torch.randn(2, 1, 8, generator=torch.Generator().manual_seed(1))
    kw = dict(max_len_ratio=2.0, threshold=0.999999, prenet_dropout=False)
    mel_a, n_a = m.synthesize(tokens, speaker_embedding=a, **kw)
    mel_a2, _ = m.synthesize(tokens, speaker_embedding=a, **kw)
    mel_a3, _ = m.synthesize(tokens, speaker_embedding=2.5 * a, **kw)
    mel_b, _ = m.synthesize(tokens, speaker_embedding=b, **kw)
    assert int(n_a[0]) == 14 and torch.equal(mel_a, mel_a2)
    torch.testing.assert_close(mel_a3, mel_a, atol=1e-5, rtol=1e-5)
    assert (mel_a - mel_b).abs().mean() > 1e-3
    with pytest.raises(ConfigError, match="speaker_embedding"):
        m.synthesize(tokens)
    with pytest.raises(ConfigError, match="speaker_embedding"):
        m.synthesize(tokens, speaker_embedding=torch.randn(1, 5))
    with pytest.raises(ConfigError, match="no speaker input"):
        _model().synthesize(tokens, speaker_embedding=a)


def test_centred_speaker_embedding_statistics_and_save_load(tmp_path):
    """``speaker_norm="center"``: the memory's speaker part is (L2-normalised d-vector - corpus mean) x scale, the
    centred corpus has unit RMS per dimension, and the statistics survive save / load (they are buffers)."""
    from audiozoo.hub import save_pretrained
    from audiozoo.registry import from_pretrained

    m = _model("sv2tts_synthesizer", speaker_embed_dim=8, speaker_norm="center")
    g = torch.Generator().manual_seed(3)
    corpus = torch.randn(1, 8, generator=g) * 4 + torch.randn(50, 8, generator=g)  # a large shared part
    m.set_speaker_statistics(corpus)
    unit = torch.nn.functional.normalize(corpus.double(), dim=-1)
    torch.testing.assert_close(m.speaker_center.double(), unit.mean(0), atol=1e-6, rtol=0)
    centred = (unit - unit.mean(0)) * float(m.speaker_scale)
    assert abs(float(centred.pow(2).mean().sqrt()) - 1.0) < 1e-4
    tokens = torch.randint(1, 39, (2, 6), generator=g)
    memory, _ = m.encode(tokens, torch.tensor([6, 6]), corpus[:2] * 3.0)  # any scale: L2-normalised first
    torch.testing.assert_close(memory[:, 0, -8:].double(), centred[:2], atol=1e-5, rtol=1e-5)
    save_pretrained(m, tmp_path / "m")
    back = from_pretrained(tmp_path / "m").eval()
    assert torch.equal(back.speaker_center, m.speaker_center) and torch.equal(back.speaker_scale, m.speaker_scale)
    with pytest.raises(ConfigError, match="alike"):
        m.set_speaker_statistics(torch.ones(4, 8))
    with pytest.raises(ConfigError, match="speaker_norm='center'"):
        _model("sv2tts_synthesizer", speaker_embed_dim=8).set_speaker_statistics(corpus)
    with pytest.raises(ConfigError, match="speaker_norm must be"):
        _model("sv2tts_synthesizer", speaker_embed_dim=8, speaker_norm="zscore")


def test_bad_inputs_and_checkpoints_raise():
    m = _model()
    tokens, lengths, mel, _ = padded_batch()
    with pytest.raises(ConfigError, match="teacher-forced"):
        m(tokens, lengths)
    with pytest.raises(ConfigError, match="token ids"):
        m(tokens + 40, lengths, mel=mel)
    with pytest.raises(ConfigError, match="no speed"):
        m.synthesize(tokens, lengths, alpha=0.5)
    with pytest.raises(CheckpointError, match="espnet Tacotron 2"):
        checkpoint_filter_fn({"x": torch.zeros(1)}, m)
    with pytest.raises(ConfigError, match="attention_init"):
        audiozoo.create_model("tacotron2", **TINY, attention_init="ones")


def test_tts_task_trains_sv2tts_on_a_fixed_utterance():
    """The tts task's autoregressive path (mel + stop + guided attention) with the batch's speaker embedding."""
    batch = harmonic_utterances(1)
    batch["speaker_embedding"] = torch.randn(1, 8, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    model = audiozoo.create_model("sv2tts_synthesizer", **TINY, speaker_embed_dim=8)
    hist = train_tts_task(model, batch, steps=25, lr=2e-2, lambda_guided_attn=1.0)
    assert set(hist[0]) == {"loss", "mel_l1", "mel_before", "mel_postnet", "stop", "guided_attn"}
    # measured: mel L1 7.40 -> 1.53 (ln units), stop BCE 0.85 -> 0.55 in 25 Adam steps (~3-4 s on 1 thread)
    assert hist[-1]["mel_l1"] < 0.3 * hist[0]["mel_l1"], (hist[0], hist[-1])
    assert hist[-1]["stop"] < 0.8 * hist[0]["stop"]


def test_zero_shot_with_real_ge2e_embeddings(shared_data):
    """SV2TTS end to end at the embedding interface: resemblyzer's real GE2E weights embed one reference clip per
    speaker (CMU ARCTIC aew, axb); the synthesizer (random weights: nothing trained here) conditioned on them gives
    speaker-dependent mels, and the same reference gives the same mel."""
    from importlib import metadata

    try:
        metadata.distribution("resemblyzer")
    except metadata.PackageNotFoundError:
        pytest.skip("resemblyzer is not installed: pip install --no-deps resemblyzer==0.1.4 (scripts/setup.sh)")
    root = shared_data / "speech_sources" / "cmu_arctic"
    files = [root / "cmu_arctic_us_aew_a0001.wav", root / "cmu_arctic_us_aew_a0002.wav",
             root / "cmu_arctic_us_axb_a0004.wav"]
    if not all(f.is_file() for f in files):
        pytest.skip("CMU ARCTIC clips not in ../shared/data/speech_sources")
    enc = audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()
    with torch.no_grad():
        emb = torch.cat([enc.embed(audiozoo.load_audio(f, mono=True)[0].float(), sample_rate=16000) for f in files])
    cos = emb @ emb.T  # L2-normalised d-vectors: the same speaker is closer than the other one
    assert cos[0, 1] > cos[0, 2]
    m = _model("sv2tts_synthesizer", speaker_embed_dim=256)
    tokens = torch.randint(1, 39, (1, 8), generator=torch.Generator().manual_seed(0))
    kw = dict(max_len_ratio=2.0, threshold=0.999999, prenet_dropout=False)
    mels = [m.synthesize(tokens, speaker_embedding=e[None], **kw)[0] for e in (emb[0], emb[2], emb[0])]
    assert torch.equal(mels[0], mels[2])
    assert (mels[0] - mels[1]).abs().mean() > 1e-4


def test_encoder_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from audiozoo.export import export_checked, export_spec

    m = audiozoo.create_model("tacotron2_small", **audiozoo.model_info("tacotron2_small").tiny).eval()
    with pytest.raises(ConfigError, match="autoregressive"):
        export_spec(m, on="tokens")
    ex = export_spec(m, length=16)
    tokens = torch.randint(1, m.vocab_size, (3, 21), generator=torch.Generator().manual_seed(0))
    assert export_checked(m, tmp_path / "enc.onnx", ex, atol=1e-4, check_inputs=(tokens, torch.tensor([21, 9, 15]))) \
        <= 1e-4


def test_shipped_piper_voice_reads_a_held_out_sentence_to_the_end():
    """tacotron2_small.piper_joe on a test-split sentence (never trained): decoding stops by itself (not at the
    length cap), at a plausible duration, and the attention walks the text monotonically to its last tokens."""
    from dataclasses import asdict

    from audiozoo.pipelines.tts import PiperTextEncoder

    try:
        m = audiozoo.create_model("tacotron2_small.piper_joe").eval()
    except Exception as e:  # noqa: BLE001 - the shipped weights are optional in a checkout
        pytest.skip(f"shipped weights not available: {e}")
    try:
        ids, _ = PiperTextEncoder(asdict(m.config)["text"]).encode("The limb of the sextant.")
    except Exception as e:  # noqa: BLE001 - phonemisation needs espeak-ng
        pytest.skip(f"no phonemiser: {e}")
    tokens = torch.tensor(ids[:1])
    mel, n, stop_p, _, att = m.synthesize(tokens, prenet_dropout=False, return_details=True)
    n_tok, frames = tokens.shape[1], int(n[0])
    seconds = frames * m.config.hop_length / m.config.sample_rate
    # measured: 49 tokens -> 111 frames = 1.29 s (Piper reads it in 1.42 s), stop p 0.65 (the cap: 490 frames); the
    # attention argmax climbs 0 -> 48 with no step back
    assert float(stop_p[0, frames - 1]) >= m.config.stop_threshold and 0.8 < seconds < 3.5, seconds
    focus = att[0, : frames // m.config.reduction_factor].argmax(-1)
    assert int(focus[-1]) >= n_tok - 4, (focus[-8:].tolist(), n_tok)
    assert int((focus.diff() < -1).sum()) <= 2, focus.tolist()  # (almost) no jumps back
