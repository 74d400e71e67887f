"""Transformer TTS (Li et al. 2019): teacher forcing, cached autoregressive inference, stop token, padding
independence, attention extraction, and parity with espnet's ``espnet2.tts.transformer.Transformer``."""

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
from audiozoo.errors import CheckpointError, ConfigError, DataError
from audiozoo.models.tts.transformer_tts import LOG_FLOOR, checkpoint_filter_fn

TINY = dict(vocab_size=40, embed_dim=16, prenet_layers=2, prenet_channels=16, prenet_kernel=3, dim=32, heads=2,
            encoder_layers=1, decoder_layers=2, ffn_dim=64, decoder_prenet_units=16, postnet_layers=2,
            postnet_channels=16, postnet_kernel=5, n_mels=20, max_positions=256, n_fft=256, win_length=256)


def _model(**kw):
    torch.manual_seed(0)
    m = audiozoo.create_model("transformer_tts_small", **{**TINY, **kw}).eval()
    randomise_batchnorm(m)
    with torch.no_grad():  # non-trivial alphas
        m.encoder_pos.alpha.fill_(0.7)
        m.decoder_pos.alpha.fill_(1.3)
    return m


def _batch():
    return padded_batch()


def test_teacher_forcing_is_causal_and_batch_independent():
    check_causal_and_batch_independent(_model())


def test_cached_synthesis_equals_teacher_forcing_on_its_own_frames():
    m = _model()
    tokens, lengths, _, _ = _batch()
    mel, n, stop, before = m.synthesize(tokens, lengths, threshold=0.999, max_len_ratio=1.5, prenet_dropout=False,
                                        return_details=True)
    assert n.tolist() == [13, 9] and mel.shape == (2, 20, 13) and stop.shape[0] == 2
    with torch.no_grad():
        tf = m(tokens, lengths, mel=before, mel_lengths=n)
    # feeding the generated frames back in parallel reproduces them: the KV cache is exact
    torch.testing.assert_close(tf.mel_before, before, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tf.mel, mel, atol=1e-4, rtol=1e-4)
    # the stochastic pre-net (paper default) changes the output; deterministic decoding repeats itself
    again = m.synthesize(tokens, lengths, threshold=0.999, max_len_ratio=1.5, prenet_dropout=False)[0]
    assert torch.equal(again, mel)


def test_attention_window_at_inference():
    """``attention_window=(back, forward)``: a window wider than the text is free attention; otherwise every
    cross-attention step sees at most ``back + forward + 1`` tokens, in a window that never moves backwards."""
    from audiozoo.nn.transformer_tts import cross_attention_probs

    m = _model()
    tokens, lengths, _, _ = _batch()
    kw = dict(threshold=0.999, max_len_ratio=3.0, prenet_dropout=False)
    free = m.synthesize(tokens, lengths, **kw)[0]
    assert torch.equal(m.synthesize(tokens, lengths, attention_window=(20, 20), **kw)[0], free)
    seen: list = []
    hook = m.decoder.blocks[0].cross.register_forward_pre_hook(
        lambda mod, args: seen.append(cross_attention_probs(mod, *args[:3])[:, :, -1]))
    try:
        windowed = m.synthesize(tokens, lengths, attention_window=(1, 2), **kw)[0]
    finally:
        hook.remove()
    support = torch.stack(seen, 1).amax(2) > 0  # (B, steps, N): tokens any head could attend
    first = support.float().argmax(-1)
    assert int(support.sum(-1).max()) <= 4 and (first[:, 1:] >= first[:, :-1]).all()
    assert int(first.max()) > 0  # the focus moved
    assert not torch.allclose(windowed[..., : free.shape[-1]], free[..., : windowed.shape[-1]])
    with pytest.raises(ConfigError, match="attention_window"):
        m.synthesize(tokens, lengths, attention_window=(-1, 2))


def test_stop_token_and_length_guards():
    m = _model()
    tokens, lengths, _, _ = _batch()
    with torch.no_grad():
        m.stop_out.bias.fill_(30.0)  # stop probability ~1 at once
    mel, n = m.synthesize(tokens, lengths)
    assert n.tolist() == [1, 1] and mel.shape[-1] == 1
    n = m.synthesize(tokens, lengths, min_len_ratio=0.5)[1]  # not before 0.5 N frames
    assert n.tolist() == [5, 4]
    with torch.no_grad():
        m.stop_out.bias.fill_(-30.0)  # never stops: the guards end it
    assert m.synthesize(tokens, lengths, max_len_ratio=2.0)[1].tolist() == [18, 12]
    assert m.synthesize(tokens, lengths, max_len_ratio=2.0, max_frames=7)[1].tolist() == [7, 7]


def test_every_parameter_learns_and_stop_head_gets_gradient():
    m = _model().train()
    tokens, lengths, mel, mel_lengths = _batch()
    out = m(tokens, lengths, mel=mel, mel_lengths=mel_lengths, return_attention=True)
    assert out.attention.shape == (2, 2, 2, 17, 9)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 2, 2, 17))
    assert (out.attention[1, ..., 6:] == 0).all()  # padded tokens get no attention
    (out.mel.pow(2).mean() + out.stop_logits.pow(2).mean() + out.attention.pow(2).mean()).backward()
    missing = [k for k, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_bad_inputs_raise():
    m = _model()
    tokens, lengths, mel, mel_lengths = _batch()
    with pytest.raises(ConfigError, match="synthesize"):
        m(tokens, lengths)
    with pytest.raises(ConfigError, match="mel must be"):
        m(tokens, lengths, mel=mel[:, :5])
    with pytest.raises(ConfigError, match="token ids"):
        m(tokens + 100, lengths, mel=mel)
    with pytest.raises(ConfigError, match="controls"):
        m.synthesize(tokens, lengths, alpha=1.5)
    with pytest.raises(CheckpointError, match="espnet"):
        checkpoint_filter_fn({"x": torch.zeros(1)}, m)


# ------------------------------------------------------------------------------------------- espnet parity
def _espnet_pair():
    tr = pytest.importorskip("espnet2.tts.transformer.transformer")
    torch.manual_seed(0)
    ref = tr.Transformer(idim=40, odim=20, embed_dim=16, eprenet_conv_layers=2, eprenet_conv_chans=16,
                         eprenet_conv_filts=3, dprenet_layers=2, dprenet_units=16, elayers=1, eunits=64, adim=32,
                         aheads=2, dlayers=2, dunits=64, postnet_layers=2, postnet_chans=16, postnet_filts=5,
                         dprenet_dropout_rate=0.0, use_guided_attn_loss=False).eval()
    randomise_batchnorm(ref, affine=True)
    with torch.no_grad():
        for mod in ref.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        ref.encoder.embed[-1].alpha.fill_(0.7)
        ref.decoder.embed[-1].alpha.fill_(1.3)
        for name, p in ref.named_parameters():
            if name.endswith(".bias") and p.ndim == 1 and "norm" not in name and p.abs().sum() == 0:
                p.uniform_(-0.1, 0.1)  # espnet zero-initialises biases: make them count
    ours = audiozoo.create_model("transformer_tts_small", **TINY, norm_eps=1e-12).eval()
    from audiozoo.hub import load_into

    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    return ref, ours


@pytest.mark.parity
def test_parity_teacher_forced_with_espnet():
    """Same weights through the converter: our padded batch == espnet item by item (its convolutions see the
    padding, so it is compared unpadded). Bound: max abs error < 1e-4 (measured ~1e-6)."""
    ref, ours = _espnet_pair()
    tokens, lengths, mel, mel_lengths = _batch()
    with torch.no_grad():
        out = ours(tokens, lengths, mel=mel, mel_lengths=mel_lengths)
        for i in range(2):
            n, f = int(lengths[i]), int(mel_lengths[i])
            ys = mel[i:i + 1, :, :f].transpose(1, 2)
            after, before, logits = ref._forward(tokens[i:i + 1, :n], lengths[i:i + 1], ys, mel_lengths[i:i + 1],
                                                 None, None, None)
            torch.testing.assert_close(out.mel[i, :, :f], after[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.mel_before[i, :, :f], before[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.stop_logits[i, :f], logits[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parity
def test_parity_greedy_inference_with_espnet():
    """espnet's ``inference`` (it appends its eos id ``idim - 1``; threshold 1 so both run to ``maxlenratio``):
    the same frames and stop probabilities from our KV-cached decoder."""
    ref, ours = _espnet_pair()
    text = torch.tensor([5, 17, 3, 22, 9, 31, 12])
    with torch.no_grad():
        r = ref.inference(text, threshold=1.0, maxlenratio=1.0)
    mel, n, stop, _ = ours.synthesize(torch.cat([text, torch.tensor([39])])[None], threshold=1.0, max_len_ratio=1.0,
                                      prenet_dropout=False, return_details=True)
    assert int(n[0]) == r["feat_gen"].shape[0] == 8
    torch.testing.assert_close(mel[0], r["feat_gen"].T, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(stop[0], r["prob"], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------- training
def test_tts_task_trains_transformer_tts_on_a_fixed_utterance():
    from audiozoo.train.tasks.tts import TTSTask

    batch = harmonic_utterances()
    torch.manual_seed(0)
    model = audiozoo.create_model("transformer_tts_small", **TINY)
    hist = train_tts_task(model, batch, steps=30, lr=1e-2, lambda_guided_attn=1.0)
    torch.manual_seed(0)
    on_path = train_tts_task(audiozoo.create_model("transformer_tts_small", **TINY), batch, steps=30, lr=1e-2,
                             lambda_guided_attn=10.0, guided_attn_target="durations", guided_attn_sigma=1.0)
    # measured: the path term 0.096 -> 0.061 in 30 steps (the mel term as with the diagonal prior)
    assert on_path[-1]["guided_attn"] < 0.8 * on_path[0]["guided_attn"], (on_path[0], on_path[-1])
    assert set(hist[0]) == {"loss", "mel_l1", "mel_before", "mel_postnet", "stop", "guided_attn"}
    # measured: mel L1 7.22 -> 1.46 (ln units), stop BCE 0.68 -> 0.28 in 30 Adam steps (~1.2 s)
    assert hist[-1]["mel_l1"] < 0.3 * hist[0]["mel_l1"], (hist[0], hist[-1])
    assert hist[-1]["stop"] < 0.6 * hist[0]["stop"] and hist[-1]["guided_attn"] < hist[0]["guided_attn"]
    task = TTSTask()
    task.models = {"model": model}
    b = task.prepare_batch(batch)  # targets: sum(durations) frames, silence after each item's end
    assert b["mel_lengths"].tolist() == [sum(d) for d in batch["durations"]]
    assert (b["mel"][0, :, int(b["mel_lengths"][0]):] == LOG_FLOOR).all()


def test_stop_and_guided_attention_losses():
    from audiozoo.train.losses.tts import guided_attention_loss, stop_token_loss

    lengths = torch.tensor([4, 2])
    good = torch.tensor([[-9.0, -9.0, -9.0, 9.0], [-9.0, 9.0, 50.0, 50.0]])  # padding ignored
    assert float(stop_token_loss(good, lengths)) < 1e-3
    late = torch.tensor([[-9.0, -9.0, -9.0, -9.0], [-9.0, -9.0, 0.0, 0.0]])
    # the missed positive frames count pos_weight times: (5 * 9 + 5 * 9) / 6 valid frames
    assert abs(float(stop_token_loss(late, lengths)) - 15.0) < 0.01
    frames, toks = torch.tensor([8]), torch.tensor([4])
    diag = torch.zeros(1, 1, 8, 4)
    diag[0, 0, torch.arange(8), torch.arange(8) // 2] = 1.0
    anti = diag.flip(-1)
    assert float(guided_attention_loss(diag, toks, frames)) < 0.2 * float(guided_attention_loss(anti, toks, frames))
    # the durations' path: frames 0-4 on token 0, 5 on 1, none on 2, 6-7 on 3 (a token with 0 frames is skipped)
    durs = torch.tensor([[5, 1, 0, 2]])
    path = torch.zeros(1, 1, 8, 4)
    path[0, 0, torch.arange(8), torch.tensor([0, 0, 0, 0, 0, 1, 3, 3])] = 1.0
    assert float(guided_attention_loss(path, toks, frames, 0.5, durs)) < 1e-6
    assert float(guided_attention_loss(diag, toks, frames, 0.5, durs)) > 0.05  # the diagonal is off this path
    with pytest.raises(DataError, match="durations must be"):
        guided_attention_loss(path, toks, frames, 0.5, durs[:, :3])


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore::UserWarning")  # espnet's torch.meshgrid call
def test_losses_match_espnet():
    """Stop-token BCE (positive weight 5, valid frames) and L1 mel terms = espnet's TransformerLoss with
    masking; guided attention = its GuidedMultiHeadAttentionLoss."""
    e2e = pytest.importorskip("espnet.nets.pytorch_backend.e2e_tts_transformer")
    from audiozoo.train.losses.tts import guided_attention_loss

    g = torch.Generator().manual_seed(0)
    attn = torch.rand(2, 3, 11, 7, generator=g).softmax(-1)  # (B, heads, frames, tokens)
    toks, frames = torch.tensor([7, 4]), torch.tensor([11, 8])
    ref = e2e.GuidedMultiHeadAttentionLoss(sigma=0.4, alpha=1.0)(attn, toks, frames)
    torch.testing.assert_close(guided_attention_loss(attn, toks, frames, sigma=0.4), ref, atol=1e-6, rtol=1e-5)
    from audiozoo.train.losses.tts import masked_mel_loss, stop_token_loss

    after, before, ys = (torch.randn(2, 11, 5, generator=g) for _ in range(3))
    logits = torch.randn(2, 11, generator=g)
    labels = (torch.arange(11)[None] >= (frames - 1)[:, None]).float()  # espnet: 1 from the last frame on
    l1, _, bce = e2e.TransformerLoss(use_masking=True, bce_pos_weight=5.0)(after, before, logits, ys, labels, frames)
    torch.testing.assert_close(stop_token_loss(logits, frames, 5.0), bce, atol=1e-6, rtol=1e-5)
    ours_l1 = sum(masked_mel_loss(x.transpose(1, 2), ys.transpose(1, 2), frames) for x in (after, before))
    torch.testing.assert_close(ours_l1, l1, atol=1e-6, rtol=1e-5)
