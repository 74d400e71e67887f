"""audiozoo.nn.adapters: identity at init, only adapters train, LoRA merge, prompt/prefix tuning and masks."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from audiozoo.errors import ConfigError
from audiozoo.nn.adapters import (
    BottleneckAdapter,
    LoRALinear,
    PrefixTuning,
    PromptedEncoder,
    add_bottleneck_adapters,
    add_lora,
    add_prefix_tuning,
    add_prompt_tuning,
    count_trainable,
    mark_only_adapters_trainable,
)
from audiozoo.nn.transformer import TransformerEncoder

DIM, DEPTH, HEADS, CLASSES = 32, 3, 4, 5


class Tiny(nn.Module):
    """A cls token + encoder + linear head, like AST/ViT classifiers."""

    num_prefix_tokens = 1

    def __init__(self, norm_first: bool = True):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM))
        self.encoder = TransformerEncoder(DIM, DEPTH, HEADS, mlp_ratio=2.0, norm_first=norm_first)
        self.head = nn.Linear(DIM, CLASSES)

    def tokens(self, x, mask=None):
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        if mask is not None:
            mask = torch.cat([mask.new_zeros(x.shape[0], 1), mask], 1)
        return self.encoder(x, mask)

    def forward(self, x, mask=None):
        return self.head(self.tokens(x, mask)[:, 0])


def _inputs():
    x = torch.randn(4, 9, DIM)
    mask = torch.zeros(4, 9, dtype=torch.bool)
    mask[1, 6:] = True
    mask[3, 2:] = True
    return x, mask


ADD = {
    "houlsby_seq": lambda m: add_bottleneck_adapters(m, "houlsby", "sequential", bottleneck=8),
    "houlsby_par": lambda m: add_bottleneck_adapters(m, "houlsby", "parallel", bottleneck=8, scale=4.0),
    "pfeiffer_seq": lambda m: add_bottleneck_adapters(m, "pfeiffer", "sequential", reduction=4),
    "pfeiffer_par": lambda m: add_bottleneck_adapters(m, "pfeiffer", "parallel", bottleneck=8),
    "lora_qv": lambda m: add_lora(m, r=4, alpha=8),
    "lora_all": lambda m: add_lora(m, r=2, targets=("q", "k", "v", "proj", "fc1", "fc2")),
}
IDENTITY_AT_INIT = list(ADD)
TUNED = [*ADD, "prompt_shallow", "prompt_deep", "prefix", "prefix_mlp"]


def _adapted(kind: str, norm_first: bool = True) -> tuple[Tiny, Tiny]:
    base = Tiny(norm_first).eval()
    model = copy.deepcopy(base)
    if kind in ADD:
        ADD[kind](model)
    elif kind.startswith("prompt"):
        add_prompt_tuning(model, num_prompts=3, deep=kind.endswith("deep"))
    else:
        add_prefix_tuning(model, length=4, hidden=16 if kind.endswith("mlp") else None)
    return base, model.eval()


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("kind", IDENTITY_AT_INIT)
def test_adapters_are_identity_at_init(kind, norm_first):
    base, model = _adapted(kind, norm_first)
    x, mask = _inputs()
    with torch.no_grad():
        for m in (None, mask):
            # Zero-initialised up-projection / LoRA B add exact zeros: expected bit-identical, 1e-6 allowed.
            assert (model(x, m) - base(x, m)).abs().max() <= 1e-6


def _is_adapter_param(name: str) -> bool:
    return any(s in name for s in ("adapter_attn.", "adapter_mlp.", "lora_", "prompt.", "prefix."))


@pytest.mark.parametrize("kind", TUNED)
def test_one_step_changes_only_adapters_and_head(kind):
    _, model = _adapted(kind)
    trainable = mark_only_adapters_trainable(model, extra=("head",))
    expected = sorted(n for n, _ in model.named_parameters() if _is_adapter_param(n) or n.startswith("head."))
    assert sorted(trainable) == expected
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, mask = _inputs()
    with torch.no_grad():
        out0 = model(x, mask)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # all parameters: frozen ones get no grad
    loss = nn.functional.cross_entropy(model(x, mask), torch.arange(4) % CLASSES)
    loss.backward()
    opt.step()
    model.eval()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "nothing was updated"
    assert changed <= set(expected), f"frozen parameters changed: {sorted(changed - set(expected))}"
    assert any(_is_adapter_param(n) for n in changed)
    assert {"head.weight", "head.bias"} <= changed
    with torch.no_grad():
        # Adam's first step moves every parameter with a gradient by ~lr, so outputs move far above 1e-4.
        assert (model(x, mask) - out0).abs().max() > 1e-4


def test_count_trainable_by_hand():
    _, model = _adapted("houlsby_seq")
    mark_only_adapters_trainable(model, extra=("head",))
    # Per adapter: down 32x8 + 8, up 8x32 + 32 = 552; Houlsby = 2 per block x 3 blocks; head 32x5 + 5.
    assert count_trainable(model) == 2 * DEPTH * 552 + DIM * CLASSES + CLASSES
    _, model = _adapted("lora_qv")
    mark_only_adapters_trainable(model, extra=())
    # LoRA r=4 on q and v of each block: A 2x(4x32), B 2x(32x4) -> 512 per block.
    assert count_trainable(model) == DEPTH * 512
    _, model = _adapted("prompt_deep")
    mark_only_adapters_trainable(model, extra=())
    assert count_trainable(model) == DEPTH * 3 * DIM  # one (3, 32) prompt set per block
    _, model = _adapted("prefix")
    mark_only_adapters_trainable(model, extra=())
    assert count_trainable(model) == DEPTH * 2 * 4 * DIM  # keys and values, 4 tokens each, per block


def test_mark_only_extra_matches_whole_components():
    model = Tiny()
    model.head_norm = nn.LayerNorm(DIM)
    names = mark_only_adapters_trainable(model, extra=("head",))
    assert names == ["head.weight", "head.bias"]  # "head" is not a prefix match of "head_norm"
    names = mark_only_adapters_trainable(model, extra=("norm1",))
    assert names and all(".norm1." in n for n in names)
    with pytest.raises(ConfigError):
        mark_only_adapters_trainable(Tiny(), extra=())


@pytest.mark.parametrize("targets", [("q", "v"), ("k",), ("q", "k", "v")])
def test_lora_linear_formula_and_merge(targets):
    base = nn.Linear(16, 48)
    lora = LoRALinear(base, r=3, alpha=6, targets=targets)
    with torch.no_grad():
        lora.lora_B.normal_()
    x = torch.randn(5, 7, 16)
    # Explicit W x + b + (alpha / r) B_t A_t x in the selected thirds only.
    expected = base(x)
    for j, t in enumerate(sorted(targets, key="qkv".index)):
        i = "qkv".index(t)
        expected[..., 16 * i: 16 * (i + 1)] += 2.0 * x @ lora.lora_A[j].T @ lora.lora_B[j].T
    out = lora(x)
    assert (out - expected).abs().max() < 1e-5  # float32 rounding of two evaluation orders
    untouched = [i for i, t in enumerate("qkv") if t not in targets]
    dw = lora.delta_weight().reshape(3, 16, 16)
    assert all(torch.equal(dw[i], torch.zeros(16, 16)) for i in untouched)
    w0 = base.weight.detach().clone()
    lora.merge()
    lora.merge()  # idempotent
    assert (lora(x) - out).abs().max() < 1e-5  # (W + s B A) x vs W x + s B (A x): rounding only
    lora.unmerge()
    assert (base.weight - w0).abs().max() < 1e-6  # add then subtract the same float32 matrix
    assert (lora(x) - out).abs().max() < 1e-5


def test_lora_on_model_merge_and_state_dict():
    _, model = _adapted("lora_all")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.1)
    x, mask = _inputs()
    with torch.no_grad():
        out = model(x, mask)
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.merge()
        merged = model(x, mask)
    # Merged vs unmerged LoRA through 3 blocks: float32 rounding only.
    assert (merged - out).abs().max() < 1e-5
    keys = set(model.state_dict())
    # Base weights keep their names (a base checkpoint still loads) and LoRA adds lora_A / lora_B.
    assert {"encoder.blocks.0.attn.qkv.weight", "encoder.blocks.0.attn.qkv.lora_A",
            "encoder.blocks.2.mlp.fc1.lora_B", "encoder.blocks.1.attn.proj.weight"} <= keys
    missing, unexpected = model.load_state_dict(Tiny().state_dict(), strict=False)
    assert not unexpected and all("lora_" in k for k in missing)


def test_lora_errors():
    with pytest.raises(ConfigError):
        LoRALinear(nn.Linear(4, 8), targets=("q",))  # 8 is not a fused qkv width
    with pytest.raises(ConfigError):
        LoRALinear(nn.Linear(4, 12), targets=("x",))
    with pytest.raises(ConfigError):
        LoRALinear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ConfigError):
        add_lora(Tiny(), targets=("nonexistent",))
    model = add_lora(Tiny())
    with pytest.raises(ConfigError):
        add_lora(model)


def test_bottleneck_adapter_formulas():
    seq = BottleneckAdapter(8, bottleneck=3, act="relu", scale=2.0)
    par = BottleneckAdapter(8, bottleneck=3, act="relu", parallel=True, scale=2.0)
    for a in (seq, par):
        with torch.no_grad():
            a.up.weight.normal_()
            a.up.bias.normal_()
    h, x = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    f = lambda a, s: a.up(torch.relu(a.down(s)))  # noqa: E731
    assert torch.allclose(seq(h, x), h + 2.0 * f(seq, h), atol=1e-6)  # same ops: rounding only
    assert torch.allclose(par(h, x), h + 2.0 * f(par, x), atol=1e-6)
    assert BottleneckAdapter(768, reduction=64).down.out_features == 12  # round(768 / 64), PETL-AST
    assert BottleneckAdapter(768).down.out_features == 48  # default reduction 16
    with pytest.raises(ConfigError):
        par(h)
    with pytest.raises(ConfigError):
        BottleneckAdapter(8, bottleneck=2, reduction=4)


def test_add_bottleneck_adapters_placement_and_errors():
    m = add_bottleneck_adapters(Tiny(), "pfeiffer", bottleneck=4)
    assert all(b.adapter_attn is None and isinstance(b.adapter_mlp, BottleneckAdapter) for b in m.encoder.blocks)
    m = add_bottleneck_adapters(Tiny(), "houlsby", "parallel", bottleneck=4)
    assert all(b.adapter_attn.parallel and b.adapter_mlp.parallel for b in m.encoder.blocks)
    with pytest.raises(ConfigError):
        add_bottleneck_adapters(m)
    with pytest.raises(ConfigError):
        add_bottleneck_adapters(Tiny(), kind="lora")
    with pytest.raises(ConfigError):
        add_bottleneck_adapters(nn.Linear(3, 3))


def _manual_prompted(enc: TransformerEncoder, prompts: torch.Tensor, x, mask, k: int, deep: bool):
    """VPT written out: insert prompts after k prefix tokens; deep replaces them before each later block."""
    b, p = x.shape[0], prompts.shape[1]
    x = torch.cat([x[:, :k], prompts[0].expand(b, -1, -1), x[:, k:]], 1)
    if mask is not None:
        mask = torch.cat([mask[:, :k], torch.zeros(b, p, dtype=torch.bool), mask[:, k:]], 1)
    for i, blk in enumerate(enc.blocks):
        if deep and i > 0:
            x = torch.cat([x[:, :k], prompts[i].expand(b, -1, -1), x[:, k + p:]], 1)
        x = blk(x, mask)
    x = enc.norm(x)
    return torch.cat([x[:, :k], x[:, k + p:]], 1)


@pytest.mark.parametrize("deep", [False, True])
def test_prompted_encoder_matches_manual_and_masks(deep):
    enc = TransformerEncoder(DIM, DEPTH, HEADS).eval()
    pe = PromptedEncoder(enc, num_prompts=3, deep=deep, num_prefix_tokens=1).eval()
    assert pe.prompt.prompts.shape == ((DEPTH if deep else 1), 3, DIM)
    x, mask = _inputs()
    with torch.no_grad():
        for m in (None, mask):
            out = pe(x, m)
            assert out.shape == x.shape
            ref = _manual_prompted(enc, pe.prompt.prompts, x, m, 1, deep)
            assert (out - ref).abs().max() < 1e-6  # same ops in the same order; rounding only
            assert (out - enc(x, m)).abs().max() > 1e-3  # prompts do change the outputs
        out, hidden = pe(x, mask, return_hidden=True)
        assert len(hidden) == DEPTH and all(h.shape == x.shape for h in hidden)
        # Padding: changing padded tokens leaves every valid token's output unchanged.
        x2 = x.clone()
        x2[mask] = 30 * torch.randn(int(mask.sum()), DIM)
        out2 = pe(x2, mask)
        assert (out2 - out)[~mask].abs().max() < 1e-5  # identical valid inputs; rounding only


def test_add_prompt_tuning_wraps_encoder():
    model = add_prompt_tuning(Tiny(), num_prompts=2)
    assert isinstance(model.encoder, PromptedEncoder) and model.encoder.num_prefix_tokens == 1
    x, mask = _inputs()
    assert model(x, mask).shape == (4, CLASSES)
    with pytest.raises(ConfigError):
        add_prompt_tuning(model, 2)
    wrapped = add_prompt_tuning(TransformerEncoder(DIM, 1, HEADS), num_prompts=2)
    assert isinstance(wrapped, PromptedEncoder)
    with pytest.raises(ConfigError):
        PromptedEncoder(nn.Linear(2, 2), 2)


@pytest.mark.parametrize("hidden", [None, 16])
def test_prefix_tuning_masks_and_materialize(hidden):
    _, model = _adapted("prefix_mlp" if hidden else "prefix")
    attn = model.encoder.blocks[0].attn
    assert isinstance(attn.prefix, PrefixTuning)
    x, mask = _inputs()
    with torch.no_grad():
        pk, pv = attn.prefix(4)
        assert pk.shape == pv.shape == (4, 4, DIM)
        # Padded key positions stay invisible with a prefix in front.
        out = model(x, mask)
        x2 = x.clone()
        x2[mask] = 30 * torch.randn(int(mask.sum()), DIM)
        assert (model(x2, mask) - out).abs().max() < 1e-5  # identical valid inputs; rounding only
        if hidden:
            for blk in model.encoder.blocks:
                blk.attn.prefix.materialize()
            assert blk.attn.prefix.mlp is None
            assert (model(x, mask) - out).abs().max() < 1e-6  # same prefixes, now stored directly


def test_prefix_errors():
    model = add_prefix_tuning(Tiny(), length=2)
    with pytest.raises(ConfigError):
        add_prefix_tuning(model, length=2)
    with pytest.raises(ConfigError):
        PrefixTuning(10, 3, 2)
    with pytest.raises(ConfigError):
        add_prefix_tuning(nn.Linear(2, 2), 2)


def test_prompt_init_range():
    pe = PromptedEncoder(TransformerEncoder(DIM, 2, HEADS), num_prompts=50)
    # VPT/PETL-AST Xavier-uniform bound sqrt(6 / (fan_in + dim)) with fan_in = dim here.
    bound = math.sqrt(6 / (2 * DIM))
    p = pe.prompt.prompts
    assert p.abs().max() <= bound and p.abs().max() > 0.8 * bound
