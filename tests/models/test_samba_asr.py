"""Samba-ASR: padding invariance, recurrent decoding = teacher forcing, CTC head, Mamba-block parity with
transformers' MambaBlock, configs."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.dsp.features import utterance_cmvn
from audiozoo.errors import ConfigError
from audiozoo.models.asr.samba_asr import SambaASR, right_align

TINY = dict(dim=32, enc_layers=2, dec_layers=2, d_state=4, expand=2, n_mels=16, conv_strides=(2, 2), ctc=True)


def _model(**kw) -> SambaASR:
    torch.manual_seed(0)
    return audiozoo.create_model("samba_asr_small", **{**TINY, **kw}).eval()


def _inputs(b=3, frames=41, n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 16, frames, generator=g)
    lengths = torch.tensor([frames, frames - 9, frames - 20][:b])
    tokens = torch.randint(5, 33, (b, n), generator=g)
    tokens[:, 0] = 2
    return x, lengths, tokens


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_does_not_change_valid_outputs(bidirectional):
    m = _model(bidirectional=bidirectional)
    x, lengths, tokens = _inputs()
    with torch.no_grad():
        batch = m(x, lengths, tokens)
        mem, mem_len = m.encode(x, lengths)
        ctc = m.ctc_log_probs(mem)
        for i in range(3):
            alone = m(x[i : i + 1, :, : int(lengths[i])], None, tokens[i : i + 1])
            assert (batch[i] - alone[0]).abs().max() < 1e-5
            mem_i, _ = m.encode(x[i : i + 1, :, : int(lengths[i])])
            assert (ctc[i, : int(mem_len[i])] - m.ctc_log_probs(mem_i)[0]).abs().max() < 1e-5
    assert mem_len.tolist() == m.encoder.output_lengths(lengths).tolist() == [11, 8, 6]


def test_recurrent_decoding_equals_teacher_forcing():
    m = _model(bidirectional=True)
    x, lengths, _ = _inputs()
    with torch.no_grad():
        toks, lens = m.generate(x, lengths, max_len=6)
        mem, mem_len = m.encode(x, lengths)
        state = [layer.prefill(mem, mem_len) for layer in m.layers]
        inp = torch.cat([torch.full((3, 1), m.bos_id), toks], 1)
        full = m.decode(mem, mem_len, inp)
        for n in range(inp.shape[1]):  # one recurrent step per token gives the teacher-forced logits
            logits, state = m._step(inp[:, : n + 1], state)
            assert (logits - full[:, n]).abs().max() < 1e-4
    # greedy output = argmax of the teacher-forced logits until eos
    for i in range(3):
        want = []
        for n in range(6):
            tok = int(full[i, n].argmax())
            if tok == m.eos_id:
                break
            want.append(tok)
            if n + 1 >= inp.shape[1] or int(inp[i, n + 1]) != tok:
                break
        assert toks[i, : int(lens[i])].tolist()[: len(want)] == want


def test_beam_search_runs_and_is_batch_invariant():
    m = _model()
    x, lengths, _ = _inputs()
    with torch.no_grad():
        toks, lens = m.generate(x, lengths, method="beam", beam_size=3, max_len=5)
        one, one_len = m.generate(x[1:2, :, : int(lengths[1])], method="beam", beam_size=3, max_len=5)
    assert toks.shape[0] == 3 and lens.shape == (3,) and bool((lens <= 5).all())
    assert toks[1, : int(lens[1])].tolist() == one[0, : int(one_len[0])].tolist()
    with pytest.raises(ConfigError, match="greedy"):
        m.generate(x, lengths, method="sample")


def test_joint_loss_reaches_every_parameter():
    m = _model().train()
    x, lengths, tokens = _inputs()
    mem, mem_len = m.encode(x, lengths)
    loss = m.decode(mem, mem_len, tokens).logsumexp(-1).mean() + m.ctc_log_probs(mem).exp().pow(2).mean()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_helpers():
    x = torch.arange(12.0).view(2, 3, 2)  # (B, M, D)
    y = right_align(x, torch.tensor([3, 1]))
    assert torch.equal(y[0], x[0]) and torch.equal(y[1, 2], x[1, 0])
    f = torch.randn(2, 4, 10) * 3 + 5
    n = utterance_cmvn(f, torch.tensor([10, 6]))
    assert n[1, :, 6:].abs().max() == 0
    assert n[1, :, :6].mean(-1).abs().max() < 1e-5 and (n[1, :, :6].std(-1, unbiased=False) - 1).abs().max() < 1e-3


def test_configs_and_errors():
    cfg = audiozoo.create_model("samba_asr_base", enc_layers=1, dec_layers=1).config
    assert (cfg.dim, cfg.d_state, cfg.d_conv, cfg.expand, cfg.n_mels, cfg.conv_strides) == (512, 16, 4, 2, 80, (1, 2))
    assert not cfg.bidirectional and cfg.tie_embeddings
    small = audiozoo.create_model("samba_asr_small")
    assert small.vocab_size == 33 and small.blank_id == 4 and small.frame_shift == pytest.approx(0.04)
    assert small.head.weight is small.embed.weight
    with pytest.raises(ConfigError, match="conv_strides"):
        audiozoo.create_model("samba_asr_small", conv_strides=(2,))
    with pytest.raises(ConfigError, match="CTC head"):
        _model(ctc=False).ctc_log_probs(torch.zeros(1, 2, 32))
    with pytest.raises(ConfigError, match="log-mel"):
        _model().encode(torch.zeros(1, 80, 20))


@pytest.mark.parity
def test_mamba_blocks_match_transformers():
    """The encoder's (causal) blocks and the decoder layer's mixer are transformers' MambaBlock / MambaMixer
    with the same weights: the decoder layer = residual + MambaMixer over [cross(memory); RMSNorm(text)]."""
    hf = pytest.importorskip("transformers.models.mamba.modeling_mamba")
    from transformers import MambaConfig

    m = _model(bidirectional=False)
    d = m.config.dim
    cfg = MambaConfig(hidden_size=d, state_size=m.config.d_state, conv_kernel=m.config.d_conv, expand=m.config.expand,
                      time_step_rank=m.layers[0].mixer.dt_rank, num_hidden_layers=1, use_conv_bias=True,
                      use_bias=False, use_mambapy=False, layer_norm_epsilon=1e-5)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref_block = hf.MambaBlock(cfg, layer_idx=0).eval()
    ref_block.load_state_dict(m.encoder.blocks[0].state_dict(), strict=True)
    h = torch.randn(2, 9, d)
    with torch.no_grad():
        assert (m.encoder.blocks[0](h) - ref_block(h)).abs().max() < 1e-5
    ref_mixer = hf.MambaMixer(cfg, layer_idx=0).eval()
    layer = m.layers[1]
    ref_mixer.load_state_dict(layer.mixer.state_dict(), strict=True)
    mem, text = torch.randn(1, 6, d), torch.randn(1, 4, d)
    with torch.no_grad():
        ours = layer(text, mem, None)
        ref = text + ref_mixer(torch.cat([layer.cross(mem), layer.norm(text)], 1))[:, 6:]
    assert (ours - ref).abs().max() < 1e-5
