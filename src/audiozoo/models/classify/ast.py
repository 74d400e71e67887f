"""AST: Audio Spectrogram Transformer.

Paper: Yuan Gong, Yu-An Chung, James Glass, "AST: Audio Spectrogram Transformer", Interspeech 2021,
arXiv:2104.01778. Official code: https://github.com/YuanGongND/ast (BSD-3-Clause),
``src/models/ast_models.py::ASTModel``; HF port: ``transformers.ASTForAudioClassification``.

A ViT/DeiT encoder on overlapping 16x16 patches of a 128-bin Kaldi log-mel spectrogram (25 ms / 10 ms
frames, Hanning window, 16 kHz), with DeiT's two prefix tokens (cls + distillation). The clip embedding
is the mean of the two tokens after the final LayerNorm; the head is LayerNorm + Linear (Sec. 2.1).

Front-end (official ``dataloader.py`` / HF ``ASTFeatureExtractor``): fbank of the waveform, zero-padded
or cut to ``max_length`` frames, then normalised with the AudioSet statistics ``(x - mean) / (2 std)``
(mean -4.2677393, std 4.5689974). Padding happens before normalisation, so padded frames hold
``-mean / (2 std)``.

Departures: none in the forward pass. The official module keeps DeiT's unused ImageNet heads
(``v.head``, ``v.head_dist``: +1.54M parameters); like HF we drop them (86.59M for 527 classes).
Inputs whose frame count differs from ``max_length`` get a bilinearly resampled position embedding
(the official code resamples the same way when adapting DeiT; HF refuses other lengths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.kaldi import NormalizedKaldiFbank
from ...errors import ConfigError
from ...nn import PatchEmbed, TransformerEncoder, resample_pos_embed, vit_head
from ...registry import WeightSet, register_model
from ..contracts import ClassifierModel

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


@dataclass
class ASTConfig:
    num_classes: int = 527
    n_mels: int = 128
    max_length: int = 1024  # frames (10 ms) the position grid is built for
    patch_size: int = 16
    fstride: int = 10
    tstride: int = 10
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-12  # HF ASTConfig default (the timm DeiT original uses 1e-6)
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # "tokens": mean of the cls and distillation tokens (paper, Sec. 2.1); "mean": mean of all patch tokens
    # (not in the paper; converges faster when training from scratch on small data, see the FSDD recipe).
    pooling: str = "tokens"
    # front-end
    sample_rate: int = 16000
    window_type: str = "hanning"
    norm_mean: float = AUDIOSET_MEAN
    norm_std: float = AUDIOSET_STD
    pad_to_max_length: bool = True


class ASTFrontend(NormalizedKaldiFbank):
    """Waveform ``(B, T)`` at ``sample_rate`` -> normalised fbank ``(B, n_mels, L)`` and frame lengths
    (:class:`audiozoo.dsp.NormalizedKaldiFbank`). With ``pad_to_max_length`` (the official/HF behaviour)
    ``L == max_length``; otherwise ``L`` is the longest item's frame count."""

    config_class = ASTConfig
    config_fields = ("sample_rate", "n_mels", "max_length", "window_type", "norm_mean", "norm_std",
                     "pad_to_max_length")

    def __init__(self, config: ASTConfig):
        c = config
        super().__init__(c.sample_rate, c.n_mels, c.window_type, c.norm_mean, c.norm_std,
                         c.max_length if c.pad_to_max_length else None)
        self.config = config


class AST(ClassifierModel):
    """AST classifier: ``forward(features (B, n_mels, L), lengths=None) -> logits (B, num_classes)``.

    ``lengths`` is accepted for the classify contract; as in the official model, every patch (padding
    included) is attended to, because AST was trained on fixed-length padded inputs.
    """

    def __init__(self, config: ASTConfig):
        super().__init__()
        if config.pooling not in ("tokens", "mean"):
            raise ConfigError(f"ASTConfig.pooling must be 'tokens' or 'mean', got {config.pooling!r}")
        self.config = c = config
        self.num_classes = c.num_classes
        self.frontend = ASTFrontend(c)
        self.patch_embed = PatchEmbed((c.n_mels, c.max_length), c.patch_size, (c.fstride, c.tstride), 1, c.embed_dim)
        self.num_prefix_tokens = 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 2, c.embed_dim))
        self.pos_drop = nn.Dropout(c.drop_rate)
        self.encoder = TransformerEncoder(
            c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.qkv_bias, norm_first=True, eps=c.layer_norm_eps,
            drop=c.drop_rate, attn_drop=c.attn_drop_rate, drop_path=c.drop_path_rate,
        )
        self.head_norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.head = nn.Linear(c.embed_dim, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.pos_embed.is_meta:
            return
        for p in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        return resample_pos_embed(self.pos_embed, self.patch_embed.grid_size, grid, self.num_prefix_tokens)

    def forward_features(self, features: Tensor, lengths: Tensor | None = None, return_hidden: bool = False):
        """``(B, n_mels, L)`` -> token sequence ``(B, 2 + N, D)`` after the final LayerNorm."""
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise ValueError(
                f"AST expects features (B, {self.config.n_mels}, L), got shape {tuple(features.shape)}"
            )
        x = self.patch_embed(features.unsqueeze(1))
        grid = self.patch_embed.grid(features.shape[1], features.shape[2])
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        x = self.pos_drop(x + self._pos_embed_for(grid))
        return self.encoder(x, return_hidden=return_hidden)

    def forward_head(self, tokens: Tensor) -> Tensor:
        if self.config.pooling == "mean":
            pooled = tokens[:, self.num_prefix_tokens:].mean(1)
        else:
            pooled = (tokens[:, 0] + tokens[:, 1]) / 2
        return self.head(self.head_norm(pooled))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def export_length(self, length: int | None) -> int:
        """Example frames for export: one time patch more than ``max_length``, so the traced graph contains
        the position-embedding resampling (at the native grid it would be skipped and only that grid work)."""
        c = self.config
        if length is None:
            length = c.max_length + c.tstride
        if self.patch_embed.grid(c.n_mels, length)[1] == self.patch_embed.grid_size[1]:
            raise ConfigError(f"AST example length {length} has the native patch grid; the traced graph "
                              "would skip position-embedding resampling and accept only that grid")
        return int(length)

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.head = vit_head(self.config.embed_dim, num_classes, self.head_norm.weight.device)


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: AST) -> dict[str, Tensor]:
    """Map an HF ``ASTForAudioClassification`` or official ``ASTModel`` state dict to audiozoo keys.

    HF keeps q/k/v separate (fused here); the official code is timm's DeiT under ``module.v.``; both
    drop nothing but the official DeiT heads (``v.head``, ``v.head_dist``), which the model never uses.
    A position embedding for another grid is resampled (the official ImageNet -> AudioSet adaptation).
    """
    out: dict[str, Tensor] = {}
    if any(k.startswith("audio_spectrogram_transformer.") for k in state):
        p = "audio_spectrogram_transformer."
        emb = p + "embeddings."
        out["cls_token"] = state[emb + "cls_token"]
        out["dist_token"] = state[emb + "distillation_token"]
        out["pos_embed"] = state[emb + "position_embeddings"]
        out["patch_embed.proj.weight"] = state[emb + "patch_embeddings.projection.weight"]
        out["patch_embed.proj.bias"] = state[emb + "patch_embeddings.projection.bias"]
        # transformers >= 5 names layers ``layers.{i}.attention.q_proj``/``mlp.fc1``; 4.x used
        # ``encoder.layer.{i}.attention.attention.query``/``intermediate.dense``. Accept both.
        v5 = any(".layers.0." in k for k in state)
        names = (("layers.{i}.", "attention.{n}_proj", "attention.o_proj", "mlp.fc1", "mlp.fc2") if v5 else
                 ("encoder.layer.{i}.", "attention.attention.{n}", "attention.output.dense",
                  "intermediate.dense", "output.dense"))
        qkv = ("q", "k", "v") if v5 else ("query", "key", "value")
        for i in range(model.config.depth):
            s, d = p + names[0].format(i=i), f"encoder.blocks.{i}."
            for t in ("weight", "bias"):
                out[d + f"attn.qkv.{t}"] = torch.cat([state[s + names[1].format(n=n) + f".{t}"] for n in qkv])
                out[d + f"attn.proj.{t}"] = state[s + f"{names[2]}.{t}"]
                out[d + f"norm1.{t}"] = state[s + f"layernorm_before.{t}"]
                out[d + f"norm2.{t}"] = state[s + f"layernorm_after.{t}"]
                out[d + f"mlp.fc1.{t}"] = state[s + f"{names[3]}.{t}"]
                out[d + f"mlp.fc2.{t}"] = state[s + f"{names[4]}.{t}"]
        for t in ("weight", "bias"):
            out[f"encoder.norm.{t}"] = state[f"{p}layernorm.{t}"]
            out[f"head_norm.{t}"] = state[f"classifier.layernorm.{t}"]
            out[f"head.{t}"] = state[f"classifier.dense.{t}"]
    elif any(k.startswith(("module.v.", "v.")) for k in state):
        pre = "module." if any(k.startswith("module.") for k in state) else ""
        for k, v in state.items():
            k = k[len(pre):]
            if k.startswith(("v.head.", "v.head_dist.")):
                continue
            if k.startswith("mlp_head.0."):
                out["head_norm." + k[len("mlp_head.0."):]] = v
            elif k.startswith("mlp_head.1."):
                out["head." + k[len("mlp_head.1."):]] = v
            elif k.startswith("v.blocks."):
                out["encoder.blocks." + k[len("v.blocks."):]] = v
            elif k.startswith("v.norm."):
                out["encoder.norm." + k[len("v.norm."):]] = v
            elif k.startswith("v."):
                out[k[2:]] = v
    else:
        return state
    pos = out.get("pos_embed")
    if pos is not None and pos.shape != model.pos_embed.shape:
        # Infer the checkpoint's grid: frequency rows are fixed by n_mels, the rest is time.
        gf = model.patch_embed.grid_size[0]
        n = pos.shape[1] - model.num_prefix_tokens
        old = (gf, n // gf) if n % gf == 0 else (int(math.isqrt(n)),) * 2
        out["pos_embed"] = resample_pos_embed(pos, old, model.patch_embed.grid_size, model.num_prefix_tokens)
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="AST: Audio Spectrogram Transformer (Gong, Chung & Glass, Interspeech 2021)",
    arxiv="2104.01778",
    official_repo="https://github.com/YuanGongND/ast",
    license="BSD-3-Clause",
    converter=checkpoint_filter_fn,
)


_TINY = dict(n_mels=32, max_length=48, patch_size=8, fstride=6, tstride=6, embed_dim=32, depth=2, num_heads=2)


def _ast(base: dict, overrides: dict) -> AST:
    return AST(build_config(ASTConfig, base, **overrides))


@register_model(params=86_594_063, params_source="HF ASTForAudioClassification, 527 classes (official "
                "ASTModel minus DeiT's unused heads)", verified="APU", tiny=_TINY, **_PAPER)
def ast_base_p16(**overrides) -> AST:
    """Canonical AST-Base/16 (stride 10, AudioSet 527 classes, 1024 frames = 10.24 s)."""
    return _ast({}, overrides)


@register_model(params=5_411_914, params_source="computed from this config (DeiT-Tiny dims: 192-d, 12 layers, "
                "3 heads, as SSAST-Tiny), 10 classes, 101 frames", verified="ATU",
                tiny=_TINY, weights={
                    "fsdd_digits": WeightSet(
                        "spoken digits 0-9 (FSDD): 4 layers x 128-d, mean pooling; 98.4 % on the FSDD test split",
                        sha256="4797fd181aa34e1c47106a345089cb6e82cf1f70e7d3f6812cf138a14756ef5d",
                        recipe="recipes/classify/ast_tiny_fsdd.yaml", commit="7c96bb5", license="CC-BY-SA-4.0 (FSDD)",
                        metrics={"held_out": "FSDD test split", "accuracy": 0.984}),
                    "sonicpi_family": WeightSet(
                        "instrument family of a sample, 14 Sonic Pi families: 4 layers x 128-d, 64 mels; weak (below "
                        "a logistic regression on mean+std log-mel, 38.2 %)",
                        sha256="b92dfd8310fdefcfb500f659954b4c7350baa5e58a8e2323728a66ad6d19d72c",
                        recipe="recipes/classify/ast_tiny_sonicpi_family.yaml", commit="8d8bf46",
                        metrics={"held_out": "34 stratified test samples", "accuracy": 0.294, "macro_f1": 0.245,
                                 "majority_accuracy": 0.147})},
                **_PAPER)
def ast_tiny(**overrides) -> AST:
    """DeiT-Tiny sized AST for CPU recipes: 1.01 s inputs (101 frames), 10 classes by default."""
    return _ast(dict(embed_dim=192, depth=12, num_heads=3, max_length=101, num_classes=10), overrides)
