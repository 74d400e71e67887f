"""The SV2TTS recipes (recipes/tts/prepare_sv2tts_voices.py, init_sv2tts_from_tacotron2.py; issue #16)."""

from __future__ import annotations

import pytest
import torch
from recipe_modules import load_recipe

import audiozoo


def test_voice_draws_are_seeded_in_range_and_heldout_differs():
    prep = load_recipe("tts", "prepare_sv2tts_voices")
    a, b = prep.draw_voices(20, 0, "v"), prep.draw_voices(20, 0, "v")
    assert a == b and len(a) == 20
    for f0, warp, rng in a.values():
        assert 0.72 <= f0 <= 2.0 and 0.86 <= warp <= 1.24 and 0.6 <= rng <= 1.4
    held = prep.draw_voices(3, 1000, "h")
    assert not set(held.values()) & set(a.values())
    assert not set(prep.ADASPEECH_TARGETS.values()) & set(a.values())


def test_widened_synthesizer_equals_the_tacotron2_then_learns_to_use_the_speaker():
    init = load_recipe("tts", "init_sv2tts_from_tacotron2")
    torch.manual_seed(0)
    tiny = dict(vocab_size=40, embed_dim=16, encoder_conv_layers=2, encoder_conv_channels=16, encoder_kernel=3,
                encoder_dim=16, attention_dim=8, attention_filters=4, attention_kernel=5, prenet_units=16,
                decoder_dim=24, postnet_layers=2, postnet_channels=16, n_mels=20, n_fft=256, win_length=256,
                reduction_factor=2)
    src = audiozoo.create_model("tacotron2_small", **tiny).eval()
    dst = init.widen(src, speaker_dim=8).eval()
    assert dst.config.speaker_embed_dim == 8 and dst.config.reduction_factor == 2
    tok = torch.randint(1, 40, (2, 7))
    mel = torch.randn(2, 20, 10)
    spk = torch.randn(2, 8)
    with torch.no_grad():
        a = src(tok, mel=mel)
        b = dst(tok, mel=mel, speaker_embedding=spk)
    assert torch.allclose(a.mel, b.mel, atol=1e-6) and torch.allclose(a.stop_logits, b.stop_logits, atol=1e-6)
    # the new columns take gradient: the speaker can start to matter
    dst.train()
    out = dst(tok, mel=mel, speaker_embedding=spk)
    out.mel.sum().backward()
    g = dst.attention.memory_layer.weight.grad
    assert g[:, 16:].abs().sum() > 0
    assert dst.decoder_lstm[0].cell.weight_ih.grad[:, 16:24].abs().sum() > 0
    with pytest.raises(Exception, match="speaker"):
        dst(tok, mel=mel)
