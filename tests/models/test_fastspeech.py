"""FastSpeech (Ren et al. 2019): length regulator with the speed control, duration extraction from a Transformer
TTS teacher's attention (focus rate, argmax counts), and parity with espnet's ``espnet2.tts.fastspeech.FastSpeech``."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import CheckpointError, ConfigError
from audiozoo.hub import load_into
from audiozoo.models.tts.fastspeech import LOG_FLOOR, checkpoint_filter_fn
from audiozoo.nn import durations_from_attention, focus_rate

TINY = dict(audiozoo.model_info("fastspeech_small").tiny)


def _model(**kw):
    torch.manual_seed(0)
    return audiozoo.create_model("fastspeech_small", **{**TINY, **kw}).eval()


def _tokens():
    tokens = torch.tensor([[5, 17, 3, 22, 9, 31, 12, 8], [7, 2, 30, 11, 4, 0, 0, 0]])
    return tokens, torch.tensor([8, 5]), torch.tensor([[2, 3, 1, 4, 2, 2, 3, 1], [3, 1, 2, 2, 4, 0, 0, 0]])


def test_length_regulator_speed_control_and_batching():
    m = _model()
    tokens, lengths, d = _tokens()
    with torch.no_grad():
        out = m(tokens, lengths, durations=d)
        slow = m(tokens, lengths, durations=d, alpha=1.5)
        fast = m(tokens, lengths, durations=d, alpha=0.5)
        alone = m(tokens[1:, :5], durations=d[1:, :5])
    assert out.mel_lengths.tolist() == [18, 12] and out.mel.shape == (2, 20, 18)
    # frames scale with alpha (each duration rounded): 0.5x and 1.5x of the speech
    assert slow.mel_lengths.tolist() == [int(torch.round(d[0] * 1.5).sum()), int(torch.round(d[1] * 1.5).sum())]
    assert fast.mel_lengths.tolist() == [int(torch.round(d[0] * 0.5).sum()), int(torch.round(d[1] * 0.5).sum())]
    torch.testing.assert_close(out.mel[1, :, :12], alone.mel[0], atol=1e-5, rtol=1e-5)
    assert (out.mel[1, :, 12:] == LOG_FLOOR).all()
    mel, n = m.synthesize(tokens, lengths, alpha=2.0)  # predicted durations
    assert mel.shape[-1] == int(n.max()) and (n >= 1).all()
    with pytest.raises(ConfigError):
        m.synthesize(tokens, lengths, pitch_shift=2.0)
    with pytest.raises(ConfigError):
        m(tokens, lengths, durations=d[:, :3])


def test_focus_rate_and_durations_from_attention():
    frames, toks = 12, 4
    sharp = torch.zeros(1, 1, frames, toks)
    true_d = torch.tensor([2, 5, 1, 4])
    sharp[0, 0, torch.arange(frames), torch.repeat_interleave(torch.arange(toks), true_d)] = 1.0
    blurry = 0.6 * sharp + 0.4 / toks
    attn = torch.cat([blurry, sharp, torch.full_like(sharp, 1.0 / toks)], 1)  # 3 heads: the sharp one wins
    rate = focus_rate(attn)
    assert rate[0].tolist() == pytest.approx([0.7, 1.0, 0.25])
    d, head = durations_from_attention(attn, torch.tensor([toks]), torch.tensor([frames]))
    assert head.tolist() == [1] and d[0].tolist() == true_d.tolist()
    # padded frames are not counted and padded tokens get none: durations add up to the valid frames (frame 8,
    # which attends only the padded token 3, goes to the argmax over the valid tokens: token 0)
    d, _ = durations_from_attention(attn, torch.tensor([3]), torch.tensor([9]))
    assert d[0].tolist() == [3, 5, 1, 0]


def test_teacher_attention_gives_durations_for_fastspeech():
    """Transformer TTS teacher -> durations (focus-rate head, argmax counts) -> FastSpeech trains on them."""
    torch.manual_seed(0)
    teacher = audiozoo.create_model("transformer_tts_small", **audiozoo.model_info("transformer_tts_small").tiny)
    tokens, lengths, _ = _tokens()
    mel = torch.randn(2, 20, 30) - 4.0
    mel_lengths = torch.tensor([30, 21])
    d, head = teacher.extract_durations(tokens, lengths, mel, mel_lengths)
    assert d.sum(1).tolist() == [30, 21] and (d[1, 5:] == 0).all()
    assert head.shape == (2,) and int(head.max()) < 4  # 2 layers x 2 heads
    student = _model().train()
    out = student(tokens, lengths, durations=d, max_frames=30)
    assert out.mel.shape == (2, 20, 30) and out.mel_lengths.tolist() == [30, 21]


# ------------------------------------------------------------------------------------------- espnet parity
def _espnet_pair(scaled: bool):
    fs = pytest.importorskip("espnet2.tts.fastspeech.fastspeech")
    torch.manual_seed(0)
    ref = fs.FastSpeech(idim=40, odim=20, adim=32, aheads=2, elayers=1, eunits=64, dlayers=1, dunits=64,
                        postnet_layers=2, postnet_chans=16, postnet_filts=5, positionwise_layer_type="conv1d",
                        positionwise_conv_kernel_size=3, use_scaled_pos_enc=scaled, encoder_normalize_before=False,
                        decoder_normalize_before=False, duration_predictor_chans=16).eval()
    with torch.no_grad():
        for mod in ref.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
        for name, p in ref.named_parameters():
            if name.endswith(".bias") and p.ndim == 1 and p.abs().sum() == 0:
                p.uniform_(-0.1, 0.1)  # espnet zero-initialises biases: make them count
        ref.duration_predictor.linear.bias.fill_(1.2)  # ~2-3 frames per token at inference
    ours = audiozoo.create_model("fastspeech_small", **{**TINY, "postnet": True, "postnet_channels": 16,
                                                        "postnet_layers": 2, "norm_eps": 1e-12}).eval()
    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    return ref, ours


@pytest.mark.parity
@pytest.mark.parametrize("scaled", [False, True])
def test_parity_with_espnet(scaled):
    """Same weights through the converter (plain positions: sqrt(d) folded into the weights; scaled ones with
    alpha 1): teacher-forced durations and predicted ones, item by item (espnet's convolutions see the padding).
    Bound: max abs error < 1e-4 (measured ~1e-6)."""
    ref, ours = _espnet_pair(scaled)
    tokens, lengths, d = _tokens()
    with torch.no_grad():
        out = ours(tokens, lengths, durations=d)
        inf_mel, inf_len = ours.synthesize(tokens, lengths)
        for i in range(2):
            n = int(lengths[i])
            f = int(d[i].sum())
            before, after, log_d = ref._forward(tokens[i:i + 1, :n], lengths[i:i + 1], None,
                                                torch.tensor([f]), d[i:i + 1, :n])
            torch.testing.assert_close(out.mel[i, :, :f], after[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.mel_before[i, :, :f], before[0].T, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.log_durations[i, :n], log_d[0], atol=1e-4, rtol=1e-4)
            before, after, d_pred = ref._forward(tokens[i:i + 1, :n], lengths[i:i + 1], is_inference=True)
            assert int(inf_len[i]) == after.shape[1] == int(d_pred.sum())
            torch.testing.assert_close(inf_mel[i, :, :int(inf_len[i])], after[0].T, atol=1e-4, rtol=1e-4)


def test_converter_refuses_what_it_cannot_express():
    m = _model()
    with pytest.raises(CheckpointError, match="espnet"):
        checkpoint_filter_fn({"x": torch.zeros(1)}, m)
    with pytest.raises(CheckpointError, match="post-LN"):
        checkpoint_filter_fn({"feat_out.weight": torch.zeros(20, 32), "encoder.embed.0.weight": torch.zeros(40, 32),
                              "encoder.after_norm.weight": torch.zeros(32)}, m)


def test_tts_task_trains_fastspeech_on_given_durations():
    """The tts task's duration-only path (mel + duration loss; durations from the manifest, e.g. the teacher's)."""
    import math

    from audiozoo.train.tasks.tts import TTSTask

    toks, durs = [[5, 17, 3, 22, 9, 31], [7, 2, 30, 11]], [[3, 2, 4, 3, 2, 5], [4, 3, 2, 5]]
    wavs = []
    for t, d in zip(toks, durs):
        f0 = torch.cat([torch.full((n * 256,), 110.0 + 8.0 * k) for k, n in zip(t, d)])
        wavs.append(sum(torch.sin(h * 2 * math.pi * torch.cumsum(f0, 0) / 22050) / h for h in range(1, 5)) * 0.3)
    n_max = max(w.shape[-1] for w in wavs)
    batch = {"audio": torch.stack([torch.nn.functional.pad(w, (0, n_max - w.shape[-1])) for w in wavs]),
             "lengths": torch.tensor([w.shape[-1] for w in wavs]), "phoneme_ids": toks, "durations": durs,
             "audio_filepath": ["a.wav", "b.wav"]}
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech_small", **TINY).train()
    task = TTSTask()
    task.models = {"model": model}
    task.on_fit_start()  # no pitch / energy statistics for FastSpeech
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    hist = []
    for _ in range(20):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append({k: float(v.detach()) for k, v in out.items()})
    assert set(hist[0]) == {"loss", "mel_l1", "mel_before", "duration"}
    # measured: mel L1 8.24 -> 2.79 (ln units), duration MSE 1.75 -> 0.03 in 20 Adam steps
    assert hist[-1]["mel_l1"] < 0.45 * hist[0]["mel_l1"], (hist[0], hist[-1])
    assert hist[-1]["duration"] < 0.2 * hist[0]["duration"]
