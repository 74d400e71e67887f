"""Parameter-efficient transfer learning (PETL) for :class:`~audiozoo.nn.transformer.TransformerBlock` stacks.

The four families compared on AST by Cappellazzo et al. 2024, "Parameter-Efficient Transfer Learning of
Audio Spectrogram Transformers" (PETL-AST, arXiv:2312.03694, github.com/umbertocappellazzo/PETL_AST):

- bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021; parallel: He et al. 2022),
- LoRA (Hu et al. 2021, arXiv:2106.09685),
- prompt tuning, shallow and deep (Lester et al. 2021; VPT, Jia et al. 2022),
- prefix tuning (Li & Liang 2021, arXiv:2101.00190).

Everything works in place on any module containing ``TransformerBlock``/``MultiHeadAttention`` and keeps
the base weights under their original state-dict names, so a base checkpoint still loads
(``strict=False``). Bottleneck adapters and LoRA are exactly the identity at initialisation. Typical use::

    add_lora(model, r=8)                      # or add_bottleneck_adapters / add_prefix_tuning / add_prompt_tuning
    mark_only_adapters_trainable(model, extra=("head",))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AudioError, ConfigError
from .attention import MultiHeadAttention
from .conv import get_activation
from .transformer import TransformerBlock, TransformerEncoder

__all__ = [
    "BottleneckAdapter", "LoRALinear", "PrefixTuning", "PromptTuning", "PromptedEncoder",
    "add_bottleneck_adapters", "add_lora", "add_prefix_tuning", "add_prompt_tuning", "count_trainable",
    "mark_only_adapters_trainable",
]


def _blocks(model: nn.Module) -> list[TransformerBlock]:
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    if not blocks:
        raise ConfigError(f"{type(model).__name__} contains no TransformerBlock to adapt")
    return blocks


def _attentions(model: nn.Module) -> list[MultiHeadAttention]:
    attns = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not attns:
        raise ConfigError(f"{type(model).__name__} contains no MultiHeadAttention to adapt")
    return attns


def _xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


# --------------------------------------------------------------------------- bottleneck adapters
class BottleneckAdapter(nn.Module):
    """Bottleneck adapter ``down -> act -> up`` called as ``adapter(h, x) -> h'`` on ``(B, N, D)`` tensors.

    Sequential (Houlsby/Pfeiffer): ``h + scale * up(act(down(h)))`` on the sub-layer output ``h``.
    Parallel (He et al. 2022): ``h + scale * up(act(down(x)))`` on the sub-layer input ``x``.

    ``up`` starts at zero (weights and bias), so the adapter is exactly the identity at initialisation;
    ``down`` keeps PyTorch's Linear init (He et al.'s "mam" init). (PETL-AST zero-initialises ``down`` too,
    which leaves ``down`` without gradient until ``up`` moves.) The width is ``bottleneck`` or
    ``round(dim / reduction)`` (PETL-AST's reduction rate; default reduction 16, AdapterHub's). Default
    activation GELU (PETL-AST); ``scale`` 1 (He et al. used 4 for parallel FFN adapters).
    """

    def __init__(self, dim: int, bottleneck: int | None = None, reduction: float | None = None,
                 act: str | nn.Module = "gelu", parallel: bool = False, scale: float = 1.0,
                 dropout: float = 0.0):
        super().__init__()
        if bottleneck is not None and reduction is not None:
            raise ConfigError("give either bottleneck or reduction, not both")
        if bottleneck is None:
            reduction = 16 if reduction is None else reduction
            if reduction <= 0:
                raise ConfigError(f"reduction must be > 0, got {reduction}")
            bottleneck = max(1, round(dim / reduction))
        if bottleneck < 1:
            raise ConfigError(f"bottleneck must be >= 1, got {bottleneck}")
        self.parallel = parallel
        self.scale = scale
        self.down = nn.Linear(dim, bottleneck)
        self.act = get_activation(act)
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor, x: Tensor | None = None) -> Tensor:
        if self.parallel and x is None:
            raise ConfigError("a parallel adapter needs the sub-layer input x: call adapter(h, x)")
        src = x if self.parallel else h
        return h + self.scale * self.up(self.dropout(self.act(self.down(src))))

    def extra_repr(self) -> str:
        return f"parallel={self.parallel}, scale={self.scale}"


def add_bottleneck_adapters(model: nn.Module, kind: str = "houlsby", placement: str = "sequential",
                            bottleneck: int | None = None, reduction: float | None = None,
                            act: str = "gelu", scale: float = 1.0, dropout: float = 0.0) -> nn.Module:
    """Insert bottleneck adapters into every ``TransformerBlock`` of ``model`` (in place; returns ``model``).

    ``kind="houlsby"``: one adapter after the attention sub-layer and one after the FFN (``adapter_attn`` and
    ``adapter_mlp``); ``kind="pfeiffer"``: after the FFN only. ``placement`` is ``"sequential"`` or
    ``"parallel"`` (see :class:`BottleneckAdapter`). With pre-LN blocks the parallel adapter reads the
    LayerNorm output, as in PETL-AST.
    """
    kind, placement = kind.lower(), placement.lower()
    if kind not in ("houlsby", "pfeiffer"):
        raise ConfigError(f"kind must be 'houlsby' or 'pfeiffer', got {kind!r}")
    if placement not in ("sequential", "parallel"):
        raise ConfigError(f"placement must be 'sequential' or 'parallel', got {placement!r}")
    for blk in _blocks(model):
        if blk.adapter_attn is not None or blk.adapter_mlp is not None:
            raise ConfigError("a TransformerBlock already has adapters; add them once")
        args = (blk.attn.qkv.in_features, bottleneck, reduction, act, placement == "parallel", scale, dropout)
        if kind == "houlsby":
            blk.adapter_attn = BottleneckAdapter(*args)
        blk.adapter_mlp = BottleneckAdapter(*args)
    return model


# --------------------------------------------------------------------------- LoRA
_QKV = ("q", "k", "v")


class LoRALinear(nn.Module):
    """``y = x W^T + b + (alpha / r) * x A^T B^T`` (Hu et al. 2021) around a frozen ``nn.Linear``.

    ``A`` ``(r, in)`` gets PyTorch's Linear (Kaiming-uniform) init and ``B`` ``(out, r)`` zeros, as Microsoft's
    loralib, so the layer is exactly ``base`` at initialisation. ``targets`` (a subset of ``"q", "k", "v"``)
    adapts only those thirds of a fused ``qkv`` projection (the LoRA paper adapts W_q and W_v); ``None``
    adapts the whole matrix. The base ``weight``/``bias`` Parameters are re-registered here (shared, not
    copied), keeping their state-dict names (``...qkv.weight``); LoRA adds ``lora_A`` ``(n, r, in)`` and
    ``lora_B`` ``(n, out_n, r)``, one slice per target. Input ``(..., in)``, output ``(..., out)``.
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 8.0, dropout: float = 0.0,
                 targets: Sequence[str] | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if torch.nn.utils.parametrize.is_parametrized(base):
            raise ConfigError("LoRALinear cannot wrap a parametrized Linear (remove weight norm first)")
        if r < 1:
            raise ConfigError(f"LoRA rank r must be >= 1, got {r}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        if targets is None:
            self.groups, self.index = 1, [0]
        else:
            targets = tuple(targets)
            if not targets or len(set(targets)) != len(targets) or any(t not in _QKV for t in targets):
                raise ConfigError(f"targets must be distinct names among {_QKV}, got {targets}")
            if self.out_features % 3:
                raise ConfigError(f"q/k/v targets need a fused qkv Linear (out_features divisible by 3), "
                                  f"got out_features={self.out_features}")
            self.groups, self.index = 3, sorted(_QKV.index(t) for t in targets)
        self.targets = None if targets is None else tuple(_QKV[i] for i in self.index)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        size = self.out_features // self.groups
        self.lora_A = nn.Parameter(torch.empty(len(self.index), r, self.in_features, device=base.weight.device,
                                               dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(len(self.index), size, r, device=base.weight.device,
                                               dtype=base.weight.dtype))
        if not self.lora_A.is_meta:
            for a in self.lora_A.data:
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout)
        self.merged = False

    def _spread(self, d: Tensor) -> Tensor:
        """``(..., n, size)`` per-target outputs -> ``(..., out)`` with zeros for untouched slices."""
        if len(self.index) == self.groups:
            return d.flatten(-2)
        full = d.new_zeros(*d.shape[:-2], self.groups, d.shape[-1])
        full[..., self.index, :] = d
        return full.flatten(-2)

    def delta_weight(self) -> Tensor:
        """The low-rank update ``(alpha / r) B A`` as an ``(out, in)`` matrix."""
        d = torch.matmul(self.lora_B, self.lora_A) * self.scaling  # (n, size, in)
        full = d.new_zeros(self.groups, d.shape[1], self.in_features)
        full[self.index] = d
        return full.reshape(self.out_features, self.in_features)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``weight`` (no extra cost at inference). Idempotent."""
        if not self.merged:
            self.weight.add_(self.delta_weight().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (to keep training the LoRA factors). Idempotent."""
        if self.merged:
            self.weight.sub_(self.delta_weight().to(self.weight.dtype))
            self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.merged:
            return y
        z = torch.einsum("...i,nri->...nr", self.lora_dropout(x), self.lora_A)
        d = torch.einsum("...nr,nor->...no", z, self.lora_B) * self.scaling
        return y + self._spread(d)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha}, targets={self.targets}, merged={self.merged}")


def add_lora(model: nn.Module, r: int = 8, alpha: float = 8.0, targets: Sequence[str] = ("q", "v"),
             dropout: float = 0.0) -> nn.Module:
    """Wrap linear layers of ``model`` with :class:`LoRALinear` (in place; returns ``model``).

    ``"q"``, ``"k"``, ``"v"`` in ``targets`` select slices of the fused ``attn.qkv`` of every
    ``MultiHeadAttention`` (default q and v, as Hu et al.); any other entry names ``nn.Linear`` modules by
    qualified name or dotted suffix (``"proj"``, ``"mlp.fc1"``, ``"head"``) and adapts their whole weight.
    ``alpha = r`` by default (scaling 1: Hu et al. set alpha to the first r tried and keep it).
    """
    targets = tuple(targets)
    qkv = [t for t in targets if t in _QKV]
    names = [t for t in targets if t not in _QKV]
    if not targets:
        raise ConfigError("add_lora needs at least one target")
    if qkv:
        for attn in _attentions(model):
            if isinstance(attn.qkv, LoRALinear):
                raise ConfigError("attn.qkv already has LoRA; add it once")
            attn.qkv = LoRALinear(attn.qkv, r, alpha, dropout, qkv)
    for name in names:
        hits = [(q, m) for q, m in model.named_modules()
                if isinstance(m, nn.Linear) and (q == name or q.endswith("." + name))]
        if not hits:
            raise ConfigError(f"no nn.Linear named {name!r} in {type(model).__name__}")
        for qual, lin in hits:
            parent_name, _, leaf = qual.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, leaf, LoRALinear(lin, r, alpha, dropout, None))
    return model


# --------------------------------------------------------------------------- prompt tuning
class PromptTuning(nn.Module):
    """Learned prompt tokens: ``num_sets`` sets of ``(num_prompts, dim)`` (1 shallow, ``depth`` deep).

    Init as VPT / PETL-AST: uniform in ``±sqrt(6 / (fan_in + dim))`` with ``fan_in`` the patch embedding's
    input size (VPT uses ``3 * 16 * 16`` for ViT-B/16 = ``dim``; default ``fan_in = dim``). Dropout on the
    prompts as VPT (default 0).
    """

    def __init__(self, num_sets: int, num_prompts: int, dim: int, dropout: float = 0.0,
                 fan_in: int | None = None):
        super().__init__()
        if num_prompts < 1 or num_sets < 1:
            raise ConfigError(f"num_prompts ({num_prompts}) and num_sets ({num_sets}) must be >= 1")
        self.prompts = nn.Parameter(torch.empty(num_sets, num_prompts, dim))
        bound = _xavier_bound(dim if fan_in is None else fan_in, dim)
        nn.init.uniform_(self.prompts, -bound, bound)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_prompts(self) -> int:
        return self.prompts.shape[1]

    def forward(self, index: int, batch: int) -> Tensor:
        """Prompt set ``index`` expanded to ``(batch, num_prompts, dim)``."""
        return self.dropout(self.prompts[index]).expand(batch, -1, -1)


class PromptedEncoder(nn.Module):
    """Prompt tuning around a :class:`TransformerEncoder`; same call signature, prompts stripped from outputs.

    Shallow (``deep=False``, Lester et al. 2021 / VPT-shallow): ``num_prompts`` tokens are inserted once,
    after the first ``num_prefix_tokens`` tokens (cls/dist stay in place, as PETL-AST/VPT do), before the
    first block. Deep (VPT-deep): each block gets its own fresh prompts, replacing the previous block's
    outputs at the prompt positions. Prompts are never padding: ``key_padding_mask`` ``(B, N)`` gets False at
    the prompt positions. ``forward(x (B, N, D), key_padding_mask=None, return_hidden=False)`` returns
    ``(B, N, D)`` (and each block's output without prompts, before the final norm).
    """

    def __init__(self, encoder: TransformerEncoder, num_prompts: int, deep: bool = False,
                 num_prefix_tokens: int = 0, dropout: float = 0.0, fan_in: int | None = None):
        super().__init__()
        if not hasattr(encoder, "blocks") or not hasattr(encoder, "norm"):
            raise ConfigError(f"PromptedEncoder wraps a TransformerEncoder (with .blocks and .norm), "
                              f"got {type(encoder).__name__}")
        if num_prefix_tokens < 0:
            raise ConfigError(f"num_prefix_tokens must be >= 0, got {num_prefix_tokens}")
        self.encoder = encoder
        self.deep = deep
        self.num_prefix_tokens = num_prefix_tokens
        dim = encoder.blocks[0].attn.qkv.in_features
        self.prompt = PromptTuning(len(encoder.blocks) if deep else 1, num_prompts, dim, dropout, fan_in)

    def _insert(self, x: Tensor, p: Tensor) -> Tensor:
        k = self.num_prefix_tokens
        return torch.cat([x[:, :k], p.to(x.dtype), x[:, k:]], dim=1)

    def _strip(self, x: Tensor) -> Tensor:
        k, n = self.num_prefix_tokens, self.prompt.num_prompts
        return torch.cat([x[:, :k], x[:, k + n:]], dim=1)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                return_hidden: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        b, n, _ = x.shape
        if n < self.num_prefix_tokens:
            raise AudioError(f"sequence of {n} tokens is shorter than num_prefix_tokens={self.num_prefix_tokens}")
        if key_padding_mask is not None:
            if key_padding_mask.shape != (b, n):
                raise AudioError(f"key_padding_mask must be (B, N) = {(b, n)}, got {tuple(key_padding_mask.shape)}")
            key_padding_mask = self._insert(
                key_padding_mask, key_padding_mask.new_zeros(b, self.prompt.num_prompts))
        k, p = self.num_prefix_tokens, self.prompt.num_prompts
        x = self._insert(x, self.prompt(0, b))
        hidden = []
        for i, blk in enumerate(self.encoder.blocks):
            if self.deep and i > 0:
                x = torch.cat([x[:, :k], self.prompt(i, b).to(x.dtype), x[:, k + p:]], dim=1)
            x = blk(x, key_padding_mask)
            if return_hidden:
                hidden.append(self._strip(x))
        x = self._strip(self.encoder.norm(x))
        return (x, hidden) if return_hidden else x


def add_prompt_tuning(model: nn.Module, num_prompts: int, deep: bool = False,
                      num_prefix_tokens: int | None = None, dropout: float = 0.0) -> nn.Module:
    """Wrap every :class:`TransformerEncoder` inside ``model`` in a :class:`PromptedEncoder` (in place).

    ``num_prefix_tokens`` defaults to ``model.num_prefix_tokens`` (e.g. 2 for AST's cls + dist), else 0.
    Returns ``model``, or the wrapper when ``model`` is itself a ``TransformerEncoder``.
    """
    if num_prefix_tokens is None:
        num_prefix_tokens = int(getattr(model, "num_prefix_tokens", 0))
    if isinstance(model, TransformerEncoder):
        return PromptedEncoder(model, num_prompts, deep, num_prefix_tokens, dropout)
    hits = [(q, m) for q, m in model.named_modules() if isinstance(m, TransformerEncoder)]
    if not hits:
        raise ConfigError(f"{type(model).__name__} contains no TransformerEncoder to prompt")
    for qual, enc in hits:
        parent_name, _, leaf = qual.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(parent, PromptedEncoder):
            raise ConfigError("this encoder already has prompt tuning")
        setattr(parent, leaf, PromptedEncoder(enc, num_prompts, deep, num_prefix_tokens, dropout))
    return model


# --------------------------------------------------------------------------- prefix tuning
class PrefixTuning(nn.Module):
    """Learned attention prefix (Li & Liang 2021): ``forward(batch) -> (k, v)``, each ``(B, length, D)``.

    Set as ``MultiHeadAttention.prefix``, which prepends ``k``/``v`` to every sequence's keys/values (after
    the key projection, so they are free vectors; never masked). With ``hidden`` set, the prefix is
    re-parameterised as Li & Liang: ``[k | v] = MLP(P')`` with ``P'`` ``(length, D)`` and
    ``MLP = Linear(D, hidden) -> tanh -> Linear(hidden, 2D)`` (as PEFT's ``PrefixEncoder``), which they found
    more stable; :meth:`materialize` drops the MLP after training. Without ``hidden``, ``k``/``v`` are free
    parameters initialised as PETL-AST (uniform ``±sqrt(6 / (2D))``). PETL-AST splits its token budget
    between keys and values (``length / 2`` each); here ``length`` keys *and* ``length`` values.
    """

    def __init__(self, dim: int, num_heads: int, length: int, hidden: int | None = None, dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if length < 1:
            raise ConfigError(f"prefix length must be >= 1, got {length}")
        self.dim, self.num_heads, self.length = dim, num_heads, length
        bound = _xavier_bound(dim, dim)
        self.dropout = nn.Dropout(dropout)
        if hidden is None:
            self.mlp = None
            self.embedding = None
            self.prefix_k = nn.Parameter(torch.empty(length, dim).uniform_(-bound, bound))
            self.prefix_v = nn.Parameter(torch.empty(length, dim).uniform_(-bound, bound))
        else:
            self.prefix_k = self.prefix_v = None
            self.embedding = nn.Parameter(torch.empty(length, dim).uniform_(-bound, bound))
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * dim))

    def _kv(self) -> tuple[Tensor, Tensor]:
        if self.mlp is None:
            return self.prefix_k, self.prefix_v
        k, v = self.mlp(self.embedding).chunk(2, dim=-1)
        return k, v

    def forward(self, batch: int) -> tuple[Tensor, Tensor]:
        k, v = self._kv()
        return self.dropout(k).expand(batch, -1, -1), self.dropout(v).expand(batch, -1, -1)

    @torch.no_grad()
    def materialize(self) -> None:
        """Replace the re-parameterisation MLP by the prefixes it currently produces (same outputs)."""
        if self.mlp is None:
            return
        k, v = self._kv()
        self.prefix_k, self.prefix_v = nn.Parameter(k.clone()), nn.Parameter(v.clone())
        self.mlp = None
        self.embedding = None

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, length={self.length}, mlp={self.mlp is not None}"


def add_prefix_tuning(model: nn.Module, length: int, hidden: int | None = None,
                      dropout: float = 0.0) -> nn.Module:
    """Give every ``MultiHeadAttention`` in ``model`` its own :class:`PrefixTuning` (in place; returns model)."""
    for attn in _attentions(model):
        if attn.prefix is not None:
            raise ConfigError("an attention layer already has a prefix; add prefix tuning once")
        attn.prefix = PrefixTuning(attn.num_heads * attn.head_dim, attn.num_heads, length, hidden, dropout)
    return model


# --------------------------------------------------------------------------- freezing
_ADAPTER_MODULES = (BottleneckAdapter, PromptTuning, PrefixTuning)


def _matches(name: str, pattern: str) -> bool:
    # ``pattern`` matches whole dotted components: "head" matches "head.weight" and "cls.head.bias",
    # not "head_norm.weight".
    return f".{pattern}." in f".{name}."


def mark_only_adapters_trainable(model: nn.Module, extra: Sequence[str] = ("head",)) -> list[str]:
    """Freeze every parameter except adapter ones (bottleneck, LoRA ``lora_A``/``lora_B``, prompts, prefixes)
    and those whose dotted name contains a component path in ``extra`` (default the classifier ``head``;
    PETL-AST also trains the LayerNorms next to adapters: add ``"norm1", "norm2"``).

    Returns the names of the trainable parameters. Raises :class:`ConfigError` if nothing is left trainable.
    Note: frozen modules keep their train/eval mode (set dropout yourself).
    """
    model.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, _ADAPTER_MODULES):
            m.requires_grad_(True)
        elif isinstance(m, LoRALinear):
            m.lora_A.requires_grad_(True)
            m.lora_B.requires_grad_(True)
    for name, p in model.named_parameters():
        if any(_matches(name, e) for e in extra):
            p.requires_grad_(True)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ConfigError(f"no adapter parameters in {type(model).__name__} and nothing in extra={tuple(extra)} "
                          "matched: nothing would train")
    return names


def count_trainable(model: nn.Module) -> int:
    """Number of trainable (``requires_grad``) parameter elements; shared parameters count once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
