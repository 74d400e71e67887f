"""Conformer CTC/attention baseline: padding invariance, cached decoding = teacher forcing, beam search, CTC."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.nn.autoregressive import KVCache
from audiozoo.nn.conformer import lengths_to_padding_mask

TINY = dict(dim=32, enc_layers=2, dec_layers=2, heads=2, dec_heads=2, kernel_size=5, n_mels=16, dropout=0.0, ctc=True)


def _model(**kw):
    torch.manual_seed(0)
    return audiozoo.create_model("conformer_aed_small", **{**TINY, **kw}).eval()


def _inputs(b=3, frames=41, n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 16, frames, generator=g)
    lengths = torch.tensor([frames, frames - 9, frames - 20][:b])
    tokens = torch.randint(5, 33, (b, n), generator=g)
    tokens[:, 0] = 2
    return x, lengths, tokens


def test_padding_does_not_change_valid_outputs():
    m = _model()
    x, lengths, tokens = _inputs()
    with torch.no_grad():
        batch = m(x, lengths, tokens)
        mem, mem_len = m.encode(x, lengths)
        ctc = m.ctc_log_probs(mem)
        for i in range(3):
            xi = x[i : i + 1, :, : int(lengths[i])]
            assert (batch[i] - m(xi, None, tokens[i : i + 1])[0]).abs().max() < 1e-4
            mem_i, _ = m.encode(xi)
            assert (ctc[i, : int(mem_len[i])] - m.ctc_log_probs(mem_i)[0]).abs().max() < 1e-4
    assert mem_len.tolist() == [9, 7, 4]


def test_cached_decoding_equals_teacher_forcing_and_beams_are_batch_invariant():
    m = _model()
    x, lengths, _ = _inputs()
    with torch.no_grad():
        toks, lens = m.generate(x, lengths, max_len=6)
        mem, mem_len = m.encode(x, lengths)
        inp = torch.cat([torch.full((3, 1), m.bos_id), toks], 1)
        full = m.decode(mem, mem_len, inp)
        state = (KVCache(), mem, lengths_to_padding_mask(mem_len, mem.shape[1]))
        for n in range(inp.shape[1]):
            logits, state = m._step(inp[:, n : n + 1], state)
            assert (logits - full[:, n]).abs().max() < 1e-4
        btoks, blens = m.generate(x, lengths, method="beam", beam_size=3, max_len=5)
        one, one_len = m.generate(x[2:3, :, : int(lengths[2])], method="beam", beam_size=3, max_len=5)
    assert btoks[2, : int(blens[2])].tolist() == one[0, : int(one_len[0])].tolist()


def test_joint_loss_reaches_every_parameter():
    m = _model().train()
    x, lengths, tokens = _inputs()
    mem, mem_len = m.encode(x, lengths)
    loss = m.decode(mem, mem_len, tokens).logsumexp(-1).mean() + m.ctc_log_probs(mem).exp().pow(2).mean()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_configs_and_errors():
    cfg = audiozoo.create_model("conformer_aed_base", enc_layers=1, dec_layers=1).config
    assert (cfg.dim, cfg.heads, cfg.kernel_size, cfg.ffn_mult, cfg.n_mels) == (256, 4, 31, 4, 80)
    small = audiozoo.create_model("conformer_aed_small")
    assert small.vocab_size == 33 and small.blank_id == 4 and small.frame_shift == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="7 frames"):
        _model().encode(torch.zeros(1, 16, 6))
    with pytest.raises(ConfigError, match="divisible"):
        audiozoo.create_model("conformer_aed_small", dim=30)
