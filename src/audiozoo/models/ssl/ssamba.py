"""SSAMBA: Self-Supervised Audio Mamba.

Paper: Siavash Shams, Sukru Samet Dindar, Xilin Jiang, Nima Mesgarani, "SSAMBA: Self-Supervised Audio
Representation Learning with Mamba State Space Model", IEEE SLT 2024, arXiv:2405.11831. Official code:
https://github.com/SiavashShams/ssamba (BSD-3-Clause as its LICENSE; @019b276), ``src/models/both_models.py::AMBAModel``
(methods ``mpc`` / ``mpg``) over Vision Mamba's ``VisionMamba`` (Zhu et al. 2024, arXiv:2401.09417,
``hustvl/Vim`` ``vim/models_mamba.py``), recipe ``src/pretrain/run_mask_patch_amba.sh``.

SSAST's masked spectrogram patch modelling (same Kaldi fbank, 16x16 patches, cluster masking, InfoNCE +
10 x MSE with two passes of independent masks, ``traintest_mask.py``) with the DeiT encoder replaced by Vim's
bidirectional Mamba: a cls token in front (``use_middle_cls_token=false``), learned absolute position embedding,
24 blocks "Add -> LayerNorm -> BiMamba v2 mixer" (:class:`audiozoo.nn.MambaAddNormBlock`; ``rms_norm=false``,
``fused_add_norm=false``, eps 1e-5, expand 2, d_state 16, d_conv 4, the two scan directions averaged:
``if_devide_out=true``), stochastic depth 0 .. 0.1. With ``if_bidirectional=true`` the recipe also runs the blocks
in pairs: block ``2i`` on the sequence, block ``2i + 1`` on the reversed sequence, both from the same input,
their outputs and residual streams *summed* (``AMBAModel.mpc``; Vim's own loop halves the sums) — so the
residual stream doubles at every pair, as officially. The final LayerNorm ``norm_f`` is applied twice (once in
Vim's closing add-and-norm, once more by ``AMBAModel``); kept, as the official weights expect it.

Departures (none in the forward pass of a full-length batch): Vim's unused 1000-class ImageNet head is dropped;
inputs shorter than the position grid use its first columns, longer ones a bilinear resize; time columns holding
only padding are taken out of the scans (each item's valid tokens are packed to the front, so both directions see
exactly what the item alone would give) and never masked; cluster masks stop at the grid edge
(:func:`audiozoo.nn.patch_mask_indices`, as SSAST here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.kaldi import NormalizedKaldiFbank
from ...errors import ConfigError
from ...nn import MambaAddNormBlock, PatchEmbed, resample_pos_embed, reverse_padded
from ...nn.transformer import DropPath
from ...registry import register_model
from ..contracts import MaskedPatchSSLModel

AUDIOSET_MEAN = -4.2677393  # AudioSet + LibriSpeech statistics of the pretraining recipe
AUDIOSET_STD = 4.5689974


@dataclass
class SSAMBAConfig:
    n_mels: int = 128
    max_length: int = 1024  # frames (10 ms) the position grid is built for
    patch_f: int = 16
    patch_t: int = 16
    fstride: int = 16  # pretraining: no overlap; fine-tuning recipes use 10
    tstride: int = 16
    embed_dim: int = 768
    depth: int = 24  # Vim blocks (12 forward/backward pairs when pair_blocks)
    d_state: int = 16
    d_conv: int = 4
    expand: float = 2.0
    norm: str = "layer"  # rms_norm=false in every SSAMBA recipe
    norm_eps: float = 1e-5
    pair_blocks: bool = True  # if_bidirectional: block 2i forward, block 2i+1 on the reversed sequence
    pair_merge: str = "sum"  # "sum" (AMBAModel) | "mean" (Vim's forward_features)
    mixer_merge: str = "mean"  # bimamba v2 directions: if_devide_out=true -> mean
    drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    scan_mode: str = "fused"
    # masked spectrogram patch modelling (as SSAST)
    num_mask_patches: int = 400  # released: 250 / 300 / 400 (the recipe file has 300)
    mask_strategy: str = "cluster"
    cluster_size: tuple[int, int] = (3, 6)
    mse_weight: float = 10.0
    separate_passes: bool = True
    # front-end
    sample_rate: int = 16000
    window_type: str = "hanning"
    norm_mean: float = AUDIOSET_MEAN
    norm_std: float = AUDIOSET_STD


class SSAMBAFrontend(NormalizedKaldiFbank):
    """Waveform ``(B, T)`` at 16 kHz -> normalised Kaldi fbank ``(B, n_mels, L)`` and frame lengths (SSAST's
    dataloader, shared by the SSAMBA code)."""

    config_class = SSAMBAConfig
    config_fields = ("sample_rate", "n_mels", "window_type", "norm_mean", "norm_std")

    def __init__(self, config: SSAMBAConfig):
        c = config
        super().__init__(c.sample_rate, c.n_mels, c.window_type, c.norm_mean, c.norm_std, None)
        self.config = config


class SSAMBA(MaskedPatchSSLModel):
    """SSAMBA encoder with its two pretext heads.

    ``extract_features(features (B, n_mels, L), lengths)`` -> ``num_layers + 1`` hidden states ``(B, gt, D)``
    (``num_layers`` = block pairs, or blocks without pairing): the embedding output, the residual stream after
    every pair, the last one after the final norm; the ``gf`` patch tokens of each time column are averaged.
    ``forward`` is SSAST's pretext task (:class:`audiozoo.models.contracts.MaskedPatchSSLModel`).
    """

    def __init__(self, config: SSAMBAConfig):
        super().__init__()
        c = self.config = config
        if c.pair_merge not in ("sum", "mean"):
            raise ConfigError(f"SSAMBAConfig.pair_merge must be 'sum' or 'mean', got {c.pair_merge!r}")
        if c.pair_blocks and c.depth % 2:
            raise ConfigError(f"paired blocks need an even depth, got {c.depth}")
        self.frontend = SSAMBAFrontend(c)
        self.patch_embed = PatchEmbed((c.n_mels, c.max_length), (c.patch_f, c.patch_t), (c.fstride, c.tstride), 1,
                                      c.embed_dim)
        self.num_layers = c.depth // 2 if c.pair_blocks else c.depth
        self.embed_dim, self.num_prefix_tokens = c.embed_dim, 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, c.embed_dim))
        self.pos_drop = nn.Dropout(c.drop_rate)
        # Vim: inter_dpr = [0] + linspace(0, rate, depth); block i gets inter_dpr[i] on its incoming branch
        dpr = [0.0] + [c.drop_path_rate * i / max(c.depth - 1, 1) for i in range(c.depth)]
        self.layers = nn.ModuleList(
            MambaAddNormBlock(c.embed_dim, bidirectional=True, norm=c.norm, eps=c.norm_eps, drop_path=dpr[i],
                              d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, merge=c.mixer_merge,
                              scan_mode=c.scan_mode)
            for i in range(c.depth))
        self.drop_path = DropPath(c.drop_path_rate)  # Vim's closing add uses the full rate
        self.norm_f = nn.LayerNorm(c.embed_dim, eps=c.norm_eps) if c.norm == "layer" else nn.RMSNorm(
            c.embed_dim, eps=c.norm_eps)
        self._init_pretext(c.embed_dim)  # mask_embed, disc_head (official cpredlayer), gen_head (gpredlayer)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed.is_meta:
            return
        # Vim: truncated normal (0.02) cls token and position embedding; mamba_ssm's _init_weights zeroes the
        # Linear biases of the blocks (not dt_proj's) and rescales out_proj by 1/sqrt(depth) (GPT-2 scheme); the
        # patch projection and pretext heads (created by AMBAModel after Vim) keep PyTorch's defaults.
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for layer in self.layers:
            out = layer.mixer.out_proj
            nn.init.kaiming_uniform_(out.weight, a=math.sqrt(5))
            with torch.no_grad():
                out.weight /= math.sqrt(self.config.depth)
            for lin in (layer.mixer.in_proj, out):
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        nn.init.xavier_normal_(self.mask_embed)

    # ---- encoder --------------------------------------------------------------------------------------
    def _blocks(self, x: Tensor, seq_lens: Tensor | None, return_hidden: bool) -> tuple[Tensor, list[Tensor]]:
        """The Vim stack on ``x (B, 1 + N, D)``, right-padded to ``seq_lens``: returns the final-norm output and the
        residual stream after every pair (block)."""
        pad = None if seq_lens is None else torch.arange(x.shape[1], device=x.device)[None] >= seq_lens[:, None]
        hidden, residual, states = x, None, []
        if self.config.pair_blocks:
            half = 0.5 if self.config.pair_merge == "mean" else 1.0
            for i in range(0, len(self.layers), 2):
                h_f, r_f = self.layers[i](hidden, residual, pad)
                flip = (reverse_padded(hidden, seq_lens, dim=1),
                        None if residual is None else reverse_padded(residual, seq_lens, dim=1))
                h_b, r_b = self.layers[i + 1](*flip, pad)
                hidden = (h_f + reverse_padded(h_b, seq_lens, dim=1)) * half
                residual = (r_f + reverse_padded(r_b, seq_lens, dim=1)) * half
                if return_hidden:
                    states.append(residual + hidden)
        else:
            for layer in self.layers:
                hidden, residual = layer(hidden, residual, pad)
                if return_hidden:
                    states.append(residual + hidden)
        out = self.norm_f(residual + self.drop_path(hidden))
        return self.norm_f(out), states  # AMBAModel applies norm_f once more

    def encode(self, features: Tensor, lengths: Tensor | None = None, mask_index: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor], tuple[int, int], Tensor]:
        """``features (B, n_mels, L)`` -> ``(tokens (B, 1 + N, D) after the final norm, hidden states, grid,
        valid columns (B,))``; ``mask_index (B, M)`` replaces those patches by the mask embedding. ``hidden``
        holds the embedding output and the residual stream after every pair (when asked for)."""
        self._check(features)
        b = features.shape[0]
        gf, gt = grid = self.grid(features.shape[-1])
        x = self._mask_tokens(self.patch_embed(features.unsqueeze(1)), mask_index)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = self.pos_drop(x + self._pos_embed_for(grid))
        valid = self._valid_columns(lengths, b, gt, x.device)
        order, seq_lens = None, None
        if bool((valid < gt).any()):
            # frequency-major tokens put padded columns inside the sequence: pack each item's valid tokens
            # (cls, then f * gt + t for t < valid) to the front, so the scans never cross padding
            t_idx = torch.arange(gf * gt, device=x.device) % gt
            pad_tok = torch.cat([t_idx.new_zeros(b, 1, dtype=torch.bool), t_idx[None] >= valid[:, None]], dim=1)
            order = torch.sort(pad_tok.to(torch.int8), dim=1, stable=True).indices  # (B, 1 + N)
            seq_lens = 1 + gf * valid
            x = torch.gather(x, 1, order[..., None].expand_as(x))
        emb = x
        tokens, states = self._blocks(x, seq_lens, return_hidden)
        hidden = [emb] + states if return_hidden else []
        if order is not None:
            inv = torch.argsort(order, dim=1)[..., None]
            tokens = torch.gather(tokens, 1, inv.expand_as(tokens))
            hidden = [torch.gather(h, 1, inv.expand_as(h)) for h in hidden]
        return tokens, hidden, grid, valid


# --------------------------------------------------------------------------- checkpoint converter
_RENAME = (("v.layers.", "layers."), ("v.norm_f.", "norm_f."), ("v.", ""), ("cpredlayer.", "disc_head."),
           ("gpredlayer.", "gen_head."))


def checkpoint_filter_fn(state: dict[str, Tensor], model: SSAMBA) -> dict[str, Tensor]:
    """Official checkpoint (``AMBAModel(pretrain_stage=True)`` saved through DataParallel: ``module.v.*``,
    ``module.cpredlayer.*``, ``module.gpredlayer.*``, ``module.mask_embed``, ``module.p_input_*``) -> audiozoo keys.
    Vim's unused ``head`` and the input-size entries are dropped; a position embedding for another grid is resized
    bilinearly (:func:`audiozoo.nn.resample_pos_embed`)."""
    pre = "module." if any(k.startswith("module.") for k in state) else ""
    state = {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
    src_grid = None
    if "p_input_fdim" in state and "v.patch_embed.proj.weight" in state:
        pf, pt = state["v.patch_embed.proj.weight"].shape[-2:]
        src_grid = ((int(state["p_input_fdim"]) - pf) // pf + 1, (int(state["p_input_tdim"]) - pt) // pt + 1)
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith(("v.head.", "p_input_", "mlp_head.")):
            continue
        for old, new in _RENAME:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    pos = out.get("pos_embed")
    if pos is not None and pos.shape != model.pos_embed.shape:
        n = pos.shape[1] - 1
        if src_grid is None:  # an audiozoo checkpoint: assume the model's frequency grid
            gf = model.patch_embed.grid_size[0]
            src_grid = (gf, n // gf)
        if src_grid[0] * src_grid[1] != n:
            raise ConfigError(f"position embedding has {n} grid tokens, not the {src_grid} grid of the checkpoint")
        out["pos_embed"] = resample_pos_embed(pos, src_grid, model.patch_embed.grid_size, 1)
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="ssl",
    paper="SSAMBA: Self-Supervised Audio Representation Learning with Mamba State Space Model (Shams, Dindar, "
          "Jiang & Mesgarani, IEEE SLT 2024)",
    arxiv="2405.11831",
    official_repo="https://github.com/SiavashShams/ssamba",
    license="BSD-3-Clause",
    converter=checkpoint_filter_fn,
)
_TINY = dict(n_mels=32, max_length=64, patch_f=8, patch_t=8, fstride=8, tstride=8, embed_dim=32, depth=4,
             num_mask_patches=20, drop_path_rate=0.0)
_SRC = ("official AMBAModel(pretrain_stage=True, 128 x 1024 input, 16x16 patches) with the recipe's Vim config "
        "(run_mask_patch_amba.sh: depth 24, embed {d}, bimamba v2, LayerNorm, cls token, abs. position embedding), "
        "counted from the module definitions: {total} minus Vim's unused 1000-class head ({head}) and the two "
        "input-size entries; the paper gives no count")


def _ssamba(dim: int, overrides: dict) -> SSAMBA:
    return SSAMBA(build_config(SSAMBAConfig, dict(embed_dim=dim), **overrides))


@register_model(params=7_095_296, params_source=_SRC.format(d=192, total="7,288,298", head="193,000"),
                verified="A", tiny=_TINY, **_PAPER)
def ssamba_tiny(**overrides) -> SSAMBA:
    """SSAMBA-Tiny: 24 bidirectional Mamba blocks of width 192, 16x16 patches, cluster masking."""
    return _ssamba(192, overrides)


@register_model(params=25_839_104, params_source=_SRC.format(d=384, total="26,224,106", head="385,000"),
                verified="A", tiny=_TINY, **_PAPER)
def ssamba_small(**overrides) -> SSAMBA:
    """SSAMBA-Small: 24 bidirectional Mamba blocks of width 384."""
    return _ssamba(384, overrides)


@register_model(params=98_273_792, params_source=_SRC.format(d=768, total="99,042,794", head="769,000"),
                verified="A", tiny=_TINY, **_PAPER)
def ssamba_base(**overrides) -> SSAMBA:
    """SSAMBA-Base: 24 bidirectional Mamba blocks of width 768 (the recipe's default)."""
    return _ssamba(768, overrides)
