"""SSAST: Self-Supervised Audio Spectrogram Transformer.

Paper: Yuan Gong, Cheng-I Jeff Lai, Yu-An Chung, James Glass, "SSAST: Self-Supervised Audio Spectrogram
Transformer", AAAI 2022, arXiv:2110.09784. Official code: https://github.com/YuanGongND/ssast (BSD-3-Clause),
``src/models/ast_models.py::ASTModel`` (``pretrain_stage=True``: methods ``mpc`` and ``mpg``), training loop
``src/traintest_mask.py``; network class also in s3prl 0.4.18 (``s3prl.upstream.ssast.ast_models``).

An AST (DeiT encoder with cls + distillation tokens over a 128-bin Kaldi fbank) pretrained by masked
spectrogram patch modelling (MSPM, Sec. 2.2): ``count`` patches (400 of 512 at 10.24 s) are replaced by a
learnable mask embedding, then

- the discriminative objective (``mpc``): a 2-layer MLP maps each masked token to the ``P = f x t`` flattened
  input patch space and an InfoNCE picks the true patch among the item's masked patches (Eq. 1);
- the generative objective (``mpg``): a second 2-layer MLP reconstructs the patch, mean squared error;
- joint loss ``nce + 10 * mse`` (``traintest_mask.py``: two forward passes with independent masks).

Patch variant: 16x16 patches without overlap during pretraining (8 x 64 grid), cluster masking (squares of
c x c patches, c uniform in [3, 6)); frame variant: 128x2 "frames" (1 x 512), plain random masking. For
fine-tuning the patches may overlap (strides 10x10 / 128x1): the patch embedding is reused and the position
embedding adapted by :func:`adapt_pos_embed` (centre cut or bilinear resize, as the official fine-tuning code).

Departures (none in the forward pass): the DeiT ImageNet heads of the official module are dropped (never
used); inputs shorter than the position grid use its first columns and longer ones a bilinear resize (the
official model takes one fixed length); time columns that hold only padding are masked out of attention and
never masked for prediction, so a batch gives each item what it would get alone. Cluster squares stop at the
grid edge (the official index arithmetic wraps into the next frequency row) and the last square is trimmed at
random to exactly ``count`` (officially: the lowest indices are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.kaldi import NormalizedKaldiFbank
from ...errors import ConfigError
from ...nn import PatchEmbed, TransformerEncoder
from ...registry import register_model
from ..contracts import MaskedPatchSSLModel

AUDIOSET_MEAN = -4.2677393  # AudioSet + LibriSpeech statistics of the official pretraining (README)
AUDIOSET_STD = 4.5689974


@dataclass
class SSASTConfig:
    n_mels: int = 128
    max_length: int = 1024  # frames (10 ms) the position grid is built for
    patch_f: int = 16
    patch_t: int = 16
    fstride: int = 16  # pretraining: no overlap (stride = patch); fine-tuning may overlap (10)
    tstride: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6  # timm DeiT
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # masked spectrogram patch modelling
    num_mask_patches: int = 400  # at the full grid; shorter inputs mask the same fraction
    mask_strategy: str = "cluster"  # "cluster" (patch variant) | "random" (frame variant)
    cluster_size: tuple[int, int] = (3, 6)  # c x c squares, c in [3, 6)
    mse_weight: float = 10.0  # loss = nce + 10 * mse (traintest_mask.py)
    separate_passes: bool = True  # one forward pass per objective with its own mask (official)
    # front-end
    sample_rate: int = 16000
    window_type: str = "hanning"
    norm_mean: float = AUDIOSET_MEAN
    norm_std: float = AUDIOSET_STD


class SSASTFrontend(NormalizedKaldiFbank):
    """Waveform ``(B, T)`` at 16 kHz -> normalised Kaldi fbank ``(B, n_mels, L)`` and frame lengths, as the
    official dataloader (:class:`audiozoo.dsp.NormalizedKaldiFbank`); ``L`` is the longest item's frame count
    (the model takes any length), padded frames hold ``-mean / (2 std)``."""

    config_class = SSASTConfig
    config_fields = ("sample_rate", "n_mels", "window_type", "norm_mean", "norm_std")

    def __init__(self, config: SSASTConfig):
        c = config
        super().__init__(c.sample_rate, c.n_mels, c.window_type, c.norm_mean, c.norm_std, None)
        self.config = config


def adapt_pos_embed(grid_pos: Tensor, old: tuple[int, int], new: tuple[int, int]) -> Tensor:
    """The official fine-tuning adaptation of a pretrained grid position embedding ``(1, gf*gt, D)``.

    Time first, then frequency: a smaller axis keeps its centre (``p // 2 - n // 2``, ``n`` columns), a larger
    one is resized bilinearly (``ast_models.py``, ``pretrain_stage=False``; the official frequency cut also adds
    ``t_dim`` instead of ``f_dim`` to the end index, a slip that only matters when the frequency grid shrinks).
    """
    (pf, pt), (nf, nt) = old, new
    d = grid_pos.shape[-1]
    x = grid_pos.reshape(1, pf, pt, d).permute(0, 3, 1, 2)
    if nt < pt:
        s = pt // 2 - nt // 2
        x = x[..., s:s + nt]
    else:
        x = F.interpolate(x.float(), size=(pf, nt), mode="bilinear").to(grid_pos.dtype)
    if nf < pf:
        s = pf // 2 - nf // 2
        x = x[..., s:s + nf, :]
    else:
        x = F.interpolate(x.float(), size=(nf, nt), mode="bilinear").to(grid_pos.dtype)
    return x.permute(0, 2, 3, 1).reshape(1, nf * nt, d)


class SSAST(MaskedPatchSSLModel):
    """SSAST encoder with its two pretext heads.

    ``extract_features(features (B, n_mels, L), lengths)`` -> ``depth + 1`` hidden states ``(B, gt, D)``: the
    embedding output, every block's output, the last one after the final LayerNorm; the ``gf`` patch tokens of
    each time column are averaged (the frame variant has one per column). ``forward`` is the pretext task
    (:class:`audiozoo.models.contracts.MaskedPatchSSLModel`, shared with SSAMBA).
    """

    def __init__(self, config: SSASTConfig):
        super().__init__()
        c = self.config = config
        self.frontend = SSASTFrontend(c)
        self.patch_embed = PatchEmbed((c.n_mels, c.max_length), (c.patch_f, c.patch_t), (c.fstride, c.tstride), 1,
                                      c.embed_dim)
        self.num_layers, self.embed_dim, self.num_prefix_tokens = c.depth, c.embed_dim, 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 2, c.embed_dim))
        self.pos_drop = nn.Dropout(c.drop_rate)
        self.encoder = TransformerEncoder(c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, True, norm_first=True,
                                          eps=c.layer_norm_eps, drop=c.drop_rate, attn_drop=c.attn_drop_rate,
                                          drop_path=c.drop_path_rate)
        self._init_pretext(c.embed_dim)  # mask_embed, disc_head (official cpredlayer), gen_head (gpredlayer)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed.is_meta:
            return
        # timm DeiT: truncated normal (0.02) tokens, position embedding and encoder Linear weights, zero biases;
        # the heads and the patch projection keep PyTorch's defaults, the mask embedding is Xavier-normal.
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.encoder.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.xavier_normal_(self.mask_embed)

    def encode(self, features: Tensor, lengths: Tensor | None = None, mask_index: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor], tuple[int, int], Tensor]:
        """``features (B, n_mels, L)`` -> ``(tokens (B, 2 + N, D) after the final norm, hidden states, grid,
        valid columns (B,))``; ``mask_index (B, M)`` replaces those patches by the mask embedding. ``hidden``
        holds the embedding output and every block's output before the final norm (when asked for)."""
        self._check(features)
        b, gf_gt = features.shape[0], self.grid(features.shape[-1])
        gf, gt = gf_gt
        x = self._mask_tokens(self.patch_embed(features.unsqueeze(1)), mask_index)
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        x = self.pos_drop(x + self._pos_embed_for(gf_gt))
        valid = self._valid_columns(lengths, b, gt, x.device)
        kpm = None
        if bool((valid < gt).any()):
            pad_t = torch.arange(gt, device=x.device)[None] >= valid[:, None]  # (B, gt)
            kpm = torch.cat([pad_t.new_zeros(b, 2), pad_t[:, None, :].expand(b, gf, gt).reshape(b, -1)], dim=1)
        emb = x
        x, hidden = self.encoder(x, kpm, return_hidden=True)
        return x, ([emb] + hidden if return_hidden else []), gf_gt, valid


# --------------------------------------------------------------------------- checkpoint converter
_HEADS = {"cpredlayer.": "disc_head.", "gpredlayer.": "gen_head."}


def checkpoint_filter_fn(state: dict[str, Tensor], model: SSAST) -> dict[str, Tensor]:
    """Official pretraining checkpoint (``ASTModel(pretrain_stage=True)``, usually saved through DataParallel:
    ``module.v.*``, ``module.cpredlayer.*``, ``module.gpredlayer.*``, ``module.mask_embed``, ``module.p_input_*``)
    -> audiozoo keys. DeiT's unused ImageNet heads are dropped. A position embedding for another grid (a
    fine-tuning length or overlapping strides) is adapted as the official fine-tuning code does
    (:func:`adapt_pos_embed`); the source grid comes from ``p_input_fdim``/``p_input_tdim``.
    """
    pre = "module." if any(k.startswith("module.") for k in state) else ""
    state = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
    c = model.config
    src_grid = None
    if "v.pos_embed" in state:
        out: dict[str, Tensor] = {}
        pf_, pt_ = state["v.patch_embed.proj.weight"].shape[-2:]
        if "p_input_fdim" in state:  # pretraining never overlaps patches: stride = patch shape
            src_grid = ((int(state["p_input_fdim"]) - pf_) // pf_ + 1, (int(state["p_input_tdim"]) - pt_) // pt_ + 1)
        for k, v in state.items():
            if k.startswith(("v.head.", "v.head_dist.", "mlp_head.")) or k.startswith("p_input_"):
                continue
            if k.startswith("v.blocks."):
                out["encoder.blocks." + k[len("v.blocks."):]] = v
            elif k.startswith("v.norm."):
                out["encoder.norm." + k[len("v.norm."):]] = v
            elif k.startswith("v."):
                out[k[2:]] = v
            elif k[:11] in _HEADS:
                out[_HEADS[k[:11]] + k[11:]] = v
            else:
                out[k] = v
        state = out
    pos = state.get("pos_embed")
    if pos is not None and pos.shape != model.pos_embed.shape:
        new = model.patch_embed.grid_size
        n = pos.shape[1] - model.num_prefix_tokens
        if src_grid is None:  # an audiozoo checkpoint: assume the pretraining (non-overlapping) frequency grid
            gf0 = (c.n_mels - c.patch_f) // c.patch_f + 1
            gf = gf0 if n % gf0 == 0 else new[0]
            src_grid = (gf, n // gf)
        if src_grid[0] * src_grid[1] != n:
            raise ConfigError(f"position embedding has {n} grid tokens, not the {src_grid} grid of the checkpoint")
        state["pos_embed"] = torch.cat([pos[:, :2], adapt_pos_embed(pos[:, 2:], src_grid, new)], dim=1)
    return state


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="ssl",
    paper="SSAST: Self-Supervised Audio Spectrogram Transformer (Gong, Lai, Chung & Glass, AAAI 2022)",
    arxiv="2110.09784",
    official_repo="https://github.com/YuanGongND/ssast",
    license="BSD-3-Clause",
    converter=checkpoint_filter_fn,
)
_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}
_PATCH = dict(patch_f=16, patch_t=16, fstride=16, tstride=16, mask_strategy="cluster")
_FRAME = dict(patch_f=128, patch_t=2, fstride=128, tstride=2, mask_strategy="random")
_TINY_PATCH = dict(n_mels=32, max_length=64, patch_f=8, patch_t=8, fstride=8, tstride=8, embed_dim=32, depth=2,
                   num_heads=2, num_mask_patches=20)
_TINY_FRAME = dict(n_mels=32, max_length=64, patch_f=32, patch_t=2, fstride=32, tstride=2, embed_dim=32, depth=2,
                   num_heads=2, num_mask_patches=20)
_SRC = ("official ASTModel(pretrain_stage=True, 128 x 1024 input) counted with s3prl 0.4.18's copy: {} minus "
        "DeiT's unused ImageNet heads ({}) and the two input-size entries; README rounds it to {}")


def _ssast(size: str, variant: dict, overrides: dict) -> SSAST:
    d, h = _SIZES[size]
    return SSAST(build_config(SSASTConfig, dict(variant, embed_dim=d, num_heads=h), **overrides))


@register_model(params=5_660_288, params_source=_SRC.format("6,046,290", "386,000", "6M"), verified="A",
                tiny=_TINY_PATCH, **_PAPER)
def ssast_tiny_patch(**overrides) -> SSAST:
    """SSAST-Tiny, 16x16 patches (DeiT-Tiny: 12 x 192-d, 3 heads), 400 masked patches, cluster masking."""
    return _ssast("tiny", _PATCH, overrides)


@register_model(params=22_084_352, params_source=_SRC.format("22,854,354", "770,000", "23M"), verified="A",
                tiny=_TINY_PATCH, **_PAPER)
def ssast_small_patch(**overrides) -> SSAST:
    """SSAST-Small, 16x16 patches (DeiT-Small: 12 x 384-d, 6 heads)."""
    return _ssast("small", _PATCH, overrides)


@register_model(params=87_225_344, params_source=_SRC.format("88,763,346", "1,538,000", "89M"), verified="A",
                tiny=_TINY_PATCH, **_PAPER)
def ssast_base_patch(**overrides) -> SSAST:
    """SSAST-Base, 16x16 patches (DeiT-Base: 12 x 768-d, 12 heads): the paper's main patch model."""
    return _ssast("base", _PATCH, overrides)


@register_model(params=5_660_288, params_source=_SRC.format("6,046,290", "386,000", "6M"), verified="A",
                tiny=_TINY_FRAME, **_PAPER)
def ssast_tiny_frame(**overrides) -> SSAST:
    """SSAST-Tiny, 128x2 frames, random masking."""
    return _ssast("tiny", _FRAME, overrides)


@register_model(params=22_084_352, params_source=_SRC.format("22,854,354", "770,000", "23M"), verified="A",
                tiny=_TINY_FRAME, **_PAPER)
def ssast_small_frame(**overrides) -> SSAST:
    """SSAST-Small, 128x2 frames."""
    return _ssast("small", _FRAME, overrides)


@register_model(params=87_225_344, params_source=_SRC.format("88,763,346", "1,538,000", "89M"), verified="A",
                tiny=_TINY_FRAME, **_PAPER)
def ssast_base_frame(**overrides) -> SSAST:
    """SSAST-Base, 128x2 frames: the paper's main frame model."""
    return _ssast("base", _FRAME, overrides)
