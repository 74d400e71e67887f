"""Autoregressive decoding (audiozoo.nn.autoregressive): logits processors against transformers' warpers, KV-cached
incremental decoding of the attention/transformer blocks equal to the uncached forward, the sampling loop."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.attention import MultiHeadAttention, causal_mask
from audiozoo.nn.autoregressive import (
    KVCache,
    apply_repetition_penalty,
    cfg_logits,
    generate,
    process_logits,
    sample_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)
from audiozoo.nn.transformer import TransformerDecoder, TransformerEncoder


def _logits(b: int = 4, v: int = 50, seed: int = 0) -> torch.Tensor:
    return 3.0 * torch.randn(b, v, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- logits processing
@pytest.mark.parity
def test_processors_match_transformers_warpers():
    tr = pytest.importorskip("transformers")
    ids = torch.randint(0, 50, (4, 7), generator=torch.Generator().manual_seed(1))
    for seed in range(5):
        x = _logits(seed=seed)
        assert torch.equal(temperature_scale(x, 0.7), tr.TemperatureLogitsWarper(0.7)(ids, x.clone()))
        for k in (1, 5, 50, 80):
            assert torch.equal(top_k_filter(x, k), tr.TopKLogitsWarper(k)(ids, x.clone())), k
        for p in (0.0, 0.3, 0.9, 0.99, 1.0):
            for keep in (1, 3):
                ref = tr.TopPLogitsWarper(p, min_tokens_to_keep=keep)(ids, x.clone())
                assert torch.equal(top_p_filter(x, p, keep), ref), (p, keep)
        for pen in (1.3, 0.8):
            ref = tr.RepetitionPenaltyLogitsProcessor(pen)(ids, x.clone())
            assert torch.equal(apply_repetition_penalty(x, ids, pen), ref)


def test_processing_chain_and_sampling():
    x = _logits()
    out = process_logits(x, temperature=0.5, top_k=10, top_p=0.8)
    kept = torch.isfinite(out).sum(-1)
    assert ((kept >= 1) & (kept <= 10)).all()
    assert torch.equal(sample_tokens(x, temperature=0), x.argmax(-1))
    draws = torch.stack([sample_tokens(x, top_k=3, generator=torch.Generator().manual_seed(s)) for s in range(50)])
    top3 = x.topk(3, -1).indices
    assert all(bool((top3[i] == draws[:, i, None]).any(-1).all()) for i in range(4))
    torch.testing.assert_close(cfg_logits(x, x - 1.0, 3.0), x + 2.0)
    assert torch.equal(cfg_logits(x, torch.zeros_like(x), 1.0), x)
    with pytest.raises(ConfigError):
        top_p_filter(x, 1.5)
    with pytest.raises(ConfigError):
        sample_tokens(x, temperature=-1.0)


# --------------------------------------------------------------------------- KV cache
def _decoder(cross: bool) -> TransformerDecoder:
    torch.manual_seed(0)
    return TransformerDecoder(32, 3, 4, mlp_ratio=2.0, cross_attention=cross, memory_dim=24).eval()


@pytest.mark.parametrize("cross,max_length", [(False, None), (True, None), (True, 20)])
def test_cached_incremental_decode_equals_full_forward(cross: bool, max_length: int | None):
    dec = _decoder(cross)
    x = torch.randn(2, 11, 32)
    mem = torch.randn(2, 9, 24) if cross else None
    mem_pad = torch.tensor([[False] * 9, [False] * 6 + [True] * 3]) if cross else None
    with torch.no_grad():
        full = dec(x, mem, memory_padding_mask=mem_pad)
        cache = KVCache(max_length)
        parts = [dec(x[:, :4], mem, memory_padding_mask=mem_pad, cache=cache)]  # prefill 4 positions
        for i in range(4, 11):  # then one position at a time (memory keys/values reused from the cache)
            parts.append(dec(x[:, i:i + 1], None, memory_padding_mask=mem_pad, cache=cache))
    inc = torch.cat(parts, 1)
    assert len(cache) == 11
    # same maths, different GEMM shapes: float32 reassociation only (measured 4.8e-7)
    torch.testing.assert_close(inc, full, rtol=0, atol=1e-5)
    # causality: changing the future does not change the past
    with torch.no_grad():
        x2 = x.clone()
        x2[:, 7:] += 1.0
        assert torch.equal(dec(x2, mem, memory_padding_mask=mem_pad)[:, :7], full[:, :7])


def test_encoder_blocks_accept_a_cache_and_default_calls_are_unchanged():
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, final_norm=True).eval()
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        plain = enc(x)
        causal = enc(x, causal=True)
        cache = KVCache()
        steps = torch.cat([enc(x[:, i:i + 1], cache=cache, causal=True) for i in range(6)], 1)
        # causal=True equals an explicit additive mask through the plain attention maths
        mha = enc.blocks[0].attn
        ref = mha(x, causal=True)
        b, n, d = x.shape
        q, k, v = (t.view(b, n, 2, 8).transpose(1, 2) for t in mha.qkv(x).split(d, -1))
        att = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~causal_mask(n, n), float("-inf")).softmax(-1)
        manual = mha.proj((att @ v).transpose(1, 2).reshape(b, n, d))
    assert not torch.allclose(plain, causal)
    torch.testing.assert_close(steps, causal, rtol=0, atol=1e-5)
    torch.testing.assert_close(ref, manual, rtol=0, atol=1e-5)


def test_kv_cache_mechanics_and_errors():
    c = KVCache(max_length=5)
    k = torch.randn(1, 2, 3, 4)
    kk, vv = c.update(0, k, k + 1)
    assert kk.shape == (1, 2, 3, 4) and len(c) == 3
    kk, _ = c.update(0, k[:, :, :2], k[:, :, :2])
    assert torch.equal(kk[:, :, 3:], k[:, :, :2])
    with pytest.raises(ConfigError, match="full"):
        c.update(0, k, k)
    c.crop(2)
    assert c.get_length(0) == 2
    c.reorder(torch.tensor([0, 0]))
    assert c.update(0, k.repeat(2, 1, 1, 1)[:, :, :1], k.repeat(2, 1, 1, 1)[:, :, :1])[0].shape == (2, 2, 3, 4)
    c.reset()
    assert len(c) == 0
    with pytest.raises(ConfigError):
        c.update(0, k, k[..., :2])
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ConfigError, match="cover every key"):
        mha(torch.randn(1, 3, 8), torch.zeros(1, 2, dtype=torch.bool), cache=KVCache())


# --------------------------------------------------------------------------- sampling loop
class _TinyLM(torch.nn.Module):
    """Embedding + learned positions + causal TransformerDecoder + head: a decoder-only LM."""

    def __init__(self, vocab: int = 12, dim: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.pos = torch.nn.Embedding(vocab, dim), torch.nn.Embedding(64, dim)
        self.dec = TransformerDecoder(dim, 2, 2)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        start = 0 if cache is None else len(cache)
        pos = torch.arange(start, start + tokens.shape[1])
        return self.head(self.dec(self.emb(tokens) + self.pos(pos), cache=cache))


def test_generate_greedy_equals_uncached_greedy_and_stops_at_eos():
    lm = _TinyLM().eval()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with torch.no_grad():
        toks, lengths = generate(lm, prompt, 8, temperature=0)
        ref = prompt
        for _ in range(8):  # no cache: the whole sequence every time
            ref = torch.cat([ref, lm(ref)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(toks, ref) and lengths.tolist() == [11, 11]
    eos = int(ref[0, 5])  # the token item 0 emits at its third step
    with torch.no_grad():
        toks, lengths = generate(lm, prompt, 8, temperature=0, eos_id=eos, pad_id=0)
    first = [int((ref[i, 3:] == eos).nonzero()[0]) + 4 if (ref[i, 3:] == eos).any() else 11 for i in range(2)]
    assert lengths.tolist() == first
    assert (toks[0, first[0]:] == 0).all()
    with torch.no_grad():
        a = generate(lm, prompt, 6, top_p=0.9, generator=torch.Generator().manual_seed(3))[0]
        b = generate(lm, prompt, 6, top_p=0.9, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, b)
    with pytest.raises(ConfigError):
        generate(lm, torch.zeros(2, 0, dtype=torch.long), 3)
