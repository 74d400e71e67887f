"""BEATs acoustic tokenizer, iterations 2+: the self-distilled tokenizer.

Paper: Sanyuan Chen, Yu Wu, Chengyi Wang, Shujie Liu, Daniel Tompkins, Zhuo Chen, Furu Wei, "BEATs: Audio
Pre-Training with Acoustic Tokenizers", ICML 2023, arXiv:2212.09058, Sec. 3.2. Official code (inference only):
https://github.com/microsoft/unilm/tree/master/beats (MIT): ``Tokenizers.py`` (``TokenizersConfig``,
``Tokenizers.extract_labels``), ``quantizer.py`` (``NormEMAVectorQuantizer``), ``backbone.py``.

Iteration 1 labels patches with a frozen random projection (``RandomProjectionTokenizer`` in ``beats.py``). From
iteration 2 on, the tokenizer is *distilled* from the previous iteration's BEATs encoder (the teacher): a
Transformer **tokenizer encoder** maps the 16x16 fbank patches to vectors, ``Linear -> Tanh -> Linear`` projects them
to 256-d, and a **normalised EMA codebook** of 1024 codes (l2-normalised vectors and codes, k-means initialised, EMA
updates: :class:`audiozoo.nn.NormEMAVectorQuantizer`) turns each into a label; a 3-layer Transformer **tokenizer
estimator** reconstructs the teacher's last-layer output of every patch from the quantised vectors, and the tokenizer
is trained on ``1 - cos(estimate, teacher)`` plus the commitment ``||l2(z) - sg[e]||^2`` (VQ-KD of BEiT v2, Peng et
al. 2022, arXiv:2208.06366). The next BEATs encoder then predicts these labels (``beats.py``: ``forward(labels=...)``).
Both steps are options of the one ``ssl`` task (``teacher:`` / ``tokenizer:``; ``audiozoo.train.tasks.ssl``).

Layout as the official ``Tokenizers`` (its checkpoints load through :func:`checkpoint_filter_fn`): bias-free Conv2d
patch embedding to 512 channels, LayerNorm, Linear 512 -> 768, the BEATs ``TransformerEncoder`` (12 x 768-d, 12 heads,
FFN 3072, grouped conv positions 128/16, gated relative position bias, DeepNet; :class:`audiozoo.nn.
RelPosTransformerEncoder`), ``quantize_layer`` 768 -> 768 -> 256, codebook 1024 x 256, decay 0.99.

Departures / unverified: (1) the estimator is not in the released (inference) code; here it is ``Linear(256 -> 768)``,
a 3-layer encoder of the same kind and BEiT v2's ``decode_task_layer`` (``Linear -> Tanh -> Linear`` to the teacher's
width). (2) The released tokenizers' ``cfg`` could not be read offline: relative positions, gating and DeepNet are
taken as in the released BEATs encoders (``TokenizersConfig``'s class defaults turn them off; the parameter count
differs by 10,224). (3) Padding: a patch is padding iff its time column lies past the item's valid frames (as in
``beats.py``); padded patches neither train the codebook nor count in the losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.kaldi import NormalizedKaldiFbank
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.quantize import NormEMAVectorQuantizer
from ...nn.relpos import RelPosTransformerEncoder
from ...registry import register_model
from ...train.losses.quantize import commitment_loss
from ...train.losses.ssl import cosine_distance_loss
from ..contracts import SSLModel


@dataclass
class BEATsTokenizerConfig:
    n_mels: int = 128
    patch_size: int = 16  # input_patch_size
    patch_embed_dim: int = 512  # embed_dim (Conv2d channels)
    conv_bias: bool = False
    embed_dim: int = 768  # encoder_embed_dim
    depth: int = 12  # encoder_layers
    num_heads: int = 12
    ffn_dim: int = 3072
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True  # as the released BEATs encoders (TokenizersConfig default: False)
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    deep_norm: bool = True
    layer_norm_first: bool = False
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1  # TokenizersConfig defaults
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    # quantizer (NormEMAVectorQuantizer(n_embed=quant_n, embedding_dim=quant_dim, beta=1.0, kmeans_init, decay=0.99))
    codebook_size: int = 1024  # quant_n
    codebook_dim: int = 256  # quant_dim
    ema_decay: float = 0.99
    commitment_weight: float = 1.0  # beta
    # estimator (training only)
    estimator_depth: int = 3
    teacher_dim: int = 768  # width of the teacher's last-layer output
    # front end (Tokenizers.preprocess = BEATs.preprocess)
    sample_rate: int = 16000
    window_type: str = "povey"
    input_scale: float = 32768.0
    norm_mean: float = 15.41663
    norm_std: float = 6.55582


class BEATsTokenizer(SSLModel):
    """Self-distilled BEATs tokenizer: features ``(B, n_mels, L)`` -> one label in ``[0, codebook_size)`` per patch.

    ``tokenize(features, lengths)`` -> labels ``(B, gt * gf)`` in BEATs' time-major token order (no codebook update);
    ``forward(features, lengths, targets=...)`` is the self-distillation objective against the teacher's per-patch
    outputs ``targets (B, gt * gf, teacher_dim)``; ``extract_features`` -> the tokenizer encoder's ``depth + 1`` hidden
    states ``(B, gt, D)`` (each time column's frequency patches averaged).
    """

    def __init__(self, config: BEATsTokenizerConfig):
        super().__init__()
        c = self.config = config
        if c.n_mels % c.patch_size:
            raise ConfigError(f"BEATs tokenizer n_mels ({c.n_mels}) must be a multiple of patch_size ({c.patch_size})")
        # Tokenizers.preprocess = BEATs.preprocess: waveform x 2^15, Povey window, (x - 15.41663) / (2 * 6.55582)
        self.frontend = NormalizedKaldiFbank(c.sample_rate, c.n_mels, c.window_type, c.norm_mean, c.norm_std, None,
                                             c.input_scale)
        self.num_layers, self.embed_dim, self.gf = c.depth, c.embed_dim, c.n_mels // c.patch_size
        self.patch_embedding = nn.Conv2d(1, c.patch_embed_dim, c.patch_size, c.patch_size, bias=c.conv_bias)
        self.layer_norm = nn.LayerNorm(c.patch_embed_dim, eps=c.layer_norm_eps)
        self.post_extract_proj = nn.Linear(c.patch_embed_dim, c.embed_dim) if c.patch_embed_dim != c.embed_dim else None
        self.dropout_input = nn.Dropout(c.dropout_input)
        self.encoder = self._transformer(c.depth)
        self.quantize_layer = nn.Sequential(nn.Linear(c.embed_dim, c.embed_dim), nn.Tanh(),
                                            nn.Linear(c.embed_dim, c.codebook_dim))
        self.quantize = NormEMAVectorQuantizer(c.codebook_dim, c.codebook_size, decay=c.ema_decay)
        self.estimator_proj = nn.Linear(c.codebook_dim, c.embed_dim)
        self.estimator = self._transformer(c.estimator_depth)
        self.estimator_head = nn.Sequential(nn.Linear(c.embed_dim, c.embed_dim), nn.Tanh(),
                                            nn.Linear(c.embed_dim, c.teacher_dim))

    def _transformer(self, depth: int) -> RelPosTransformerEncoder:
        c = self.config
        return RelPosTransformerEncoder(
            c.embed_dim, depth, c.num_heads, c.ffn_dim, conv_pos=c.conv_pos, conv_pos_groups=c.conv_pos_groups,
            relative_position=c.relative_position_embedding, num_buckets=c.num_buckets, max_distance=c.max_distance,
            gated=c.gru_rel_pos, deep_norm=c.deep_norm, norm_first=c.layer_norm_first, dropout=c.dropout,
            attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout, eps=c.layer_norm_eps)

    # ---- shapes ---------------------------------------------------------------------------------------
    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Patch columns whose frames are all valid (at least 1): ``(B,)``."""
        return torch.clamp(torch.as_tensor(lengths) // self.config.patch_size, min=1).long()

    def _check(self, features: Tensor) -> None:
        c = self.config
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"BEATs tokenizer expects features (B, {c.n_mels}, L), got shape {tuple(features.shape)}")
        if features.shape[-1] < c.patch_size:
            raise AudioError(f"BEATs tokenizer needs at least {c.patch_size} frames (one patch), "
                             f"got {features.shape[-1]}")

    def _valid_patches(self, lengths: Tensor | None, batch: int, gt: int,
                       device: torch.device) -> tuple[Tensor, Tensor]:
        """``(valid columns (B,), valid patches (B, gt * gf) bool)``."""
        if lengths is None:
            valid = torch.full((batch,), gt, dtype=torch.long, device=device)
        else:
            valid = self.output_lengths(lengths.to(device)).clamp(max=gt)
        cols = torch.arange(gt * self.gf, device=device) // self.gf
        return valid, cols[None, :] < valid[:, None]

    # ---- tokenizer encoder ----------------------------------------------------------------------------
    def encode(self, features: Tensor, lengths: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor], Tensor]:
        """``features (B, n_mels, L)`` -> ``(tokens (B, N, D), hidden states, valid patches (B, N) bool)``,
        ``N = gt gf`` (the official ``extract_labels`` up to the quantiser's input)."""
        self._check(features)
        x = self.patch_embedding(features.transpose(1, 2).unsqueeze(1))  # (B, C, gt, gf): the official (T, F) image
        b, gt = x.shape[0], x.shape[2]
        x = self.layer_norm(x.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.dropout_input(x)
        valid, keep = self._valid_patches(lengths, b, gt, x.device)
        x, hidden = self.encoder(x, None if bool(keep.all()) else ~keep, return_hidden=return_hidden)
        return x, hidden, keep

    @torch.no_grad()
    def tokenize(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Labels ``(B, gt * gf)`` int64 of ``features (B, n_mels, L)`` (``Tokenizers.extract_labels``); never updates
        the codebook. Padded patches get labels too (a consumer ignores them)."""
        tokens, _, _ = self.encode(features, lengths)
        return self.quantize.encode(self.quantize_layer(tokens).transpose(1, 2))

    def extract_features(self, x: Tensor, lengths: Tensor | None = None,
                         layers: list[int] | None = None) -> list[Tensor]:
        """Features ``(B, n_mels, L)`` (or a 16 kHz waveform ``(B, T)``) -> ``depth + 1`` states ``(B, gt, D)`` of the
        tokenizer encoder (zero past :meth:`output_lengths`); ``layers`` picks entries by index."""
        if x.ndim == 2:
            x, lengths = self.frontend(x, lengths)
        _, hidden, keep = self.encode(x, lengths, return_hidden=True)
        if layers is not None:
            hidden = [hidden[i] for i in layers]
        b, n, d = hidden[0].shape
        cols = keep.reshape(b, n // self.gf, self.gf)[..., 0]
        return [h.reshape(b, n // self.gf, self.gf, d).mean(2) * cols[..., None].to(h.dtype) for h in hidden]

    # ---- self-distillation ----------------------------------------------------------------------------
    def forward(self, features: Tensor, lengths: Tensor | None = None, *,
                targets: Tensor | None = None) -> dict[str, Tensor]:
        """Self-distillation on ``features (B, n_mels, L)`` against the teacher's last-layer outputs ``targets
        (B, N, teacher_dim)`` of the same patches: ``{"loss", "cosine", "commitment", "usage"}``.

        ``loss = cosine + commitment_weight * commitment``: ``cosine`` is ``1 - cos(estimate, target)`` averaged over
        the valid patches, ``commitment`` the mean ``||l2(z) - sg[e]||^2``; ``usage`` is the share of the codebook
        the batch's labels use. In training the codebook is k-means initialised on the first batch and EMA-updated.
        """
        c = self.config
        if targets is None:
            raise ConfigError("the BEATs tokenizer learns from a teacher: pass targets (B, N, teacher_dim), the "
                              "teacher's per-patch outputs (the ssl task's `teacher:` option computes them)")
        tokens, _, keep = self.encode(features, lengths)
        if targets.shape != (*tokens.shape[:2], c.teacher_dim):
            raise ConfigError(f"teacher targets must be (B, N, teacher_dim) = {(*tokens.shape[:2], c.teacher_dim)}, "
                              f"got {tuple(targets.shape)}: the teacher must share the tokenizer's patches and "
                              "config.teacher_dim its width")
        vq = self.quantize(self.quantize_layer(tokens).transpose(1, 2), mask=keep)
        pad = None if bool(keep.all()) else ~keep
        est, _ = self.estimator(self.estimator_proj(vq.quantized.transpose(1, 2)), pad)
        cosine = cosine_distance_loss(self.estimator_head(est), targets, keep)
        commit = commitment_loss(vq, keep)
        usage = vq.codes[keep].unique().numel() / float(c.codebook_size)
        return {"loss": cosine + c.commitment_weight * commit, "cosine": cosine.detach(), "commitment": commit.detach(),
                "usage": torch.tensor(usage)}

    # ---- contract: the pretext needs a teacher's targets -------------------------------------------------
    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        args, kwargs = super().example_inputs(length, batch, seed)
        n = (length // self.config.patch_size) * self.gf
        g = torch.Generator().manual_seed(seed + 1)
        return args, {**kwargs, "targets": torch.randn(batch, n, self.config.teacher_dim, generator=g)}

    def check_outputs(self, args: tuple, kwargs: dict, out: object) -> None:
        super().check_outputs(args, {k: v for k, v in kwargs.items() if k != "targets"}, out)


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: BEATsTokenizer) -> dict[str, Tensor]:
    """Official ``Tokenizers`` state (the ``"model"`` entry of a released ``Tokenizer_iter*.pt``, or the whole dict;
    read it with ``torch.load(path, weights_only=True)``) -> audiozoo keys.

    ``encoder.pos_conv.0.*`` -> ``encoder.pos_conv.*`` (legacy ``weight_g``/``weight_v`` or torch's parametrisation);
    the relative position table stored under every layer -> ``encoder.relative_position.*`` (layer 0's);
    ``quantize.embedding.weight`` -> ``quantize.embed``, ``quantize.embedding.initted`` -> ``quantize.initted``
    (its unused ``cluster_size``/``embed_avg`` copies are dropped). The estimator is not in released tokenizers: it
    keeps the model's own values.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not any(k.startswith("encoder.pos_conv.0") or k.startswith("quantize.embedding.") for k in state):
        return state  # already audiozoo keys
    out: dict[str, Tensor] = {}
    rel = "self_attn.relative_attention_bias.weight"
    for k, v in state.items():
        if k.startswith("encoder.pos_conv.0.parametrizations.weight.original"):
            out["encoder.pos_conv.weight_" + ("g" if k.endswith("0") else "v")] = v
        elif k.startswith("encoder.pos_conv.0."):
            out["encoder.pos_conv." + k[len("encoder.pos_conv.0."):]] = v
        elif k.startswith("encoder.layers.") and k.endswith(rel):
            if k.split(".")[2] == "0":
                out["encoder.relative_position.relative_attention_bias.weight"] = v
        elif k == "quantize.embedding.weight":
            out["quantize.embed"] = v
        elif k == "quantize.embedding.initted":
            out["quantize.initted"] = v.reshape(1).float()
        elif k.startswith("quantize.embedding."):
            continue
        else:
            out[k] = v
    if "encoder.pos_conv.weight_g" in out and out["encoder.pos_conv.weight_g"].ndim != 3:
        raise CheckpointError(f"BEATs tokenizer checkpoint: pos_conv weight_g has shape "
                              f"{tuple(out['encoder.pos_conv.weight_g'].shape)}, expected (1, 1, kernel)")
    for k, v in model.state_dict().items():
        if k.startswith("estimator") and k not in out:
            out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="ssl",
    paper="BEATs: Audio Pre-Training with Acoustic Tokenizers (Chen, Wu, Wang, Liu, Tompkins, Chen & Wei, ICML 2023)",
    arxiv="2212.09058",
    official_repo="https://github.com/microsoft/unilm/tree/master/beats",
    license="MIT",
    converter=checkpoint_filter_fn,
)
_TINY = dict(n_mels=32, patch_size=8, patch_embed_dim=24, embed_dim=32, depth=2, num_heads=2, ffn_dim=64, conv_pos=8,
             conv_pos_groups=4, num_buckets=16, max_distance=32, codebook_size=32, codebook_dim=16, estimator_depth=1,
             teacher_dim=32, dropout=0.0, attention_dropout=0.0)
_SMALL = dict(patch_embed_dim=512, embed_dim=384, depth=6, num_heads=6, ffn_dim=1536, teacher_dim=384)


@register_model(params=118_467_884, verified="AP", tiny=_TINY, params_source=(
    "tokenizer 91,099,248 = the trainable parameters of the official Tokenizers class (unilm@768a3c8) built with the "
    "released BEATs encoders' cfg (class defaults: 91,089,024; its EMA codebook adds 525,312 frozen nn.Parameters, "
    "buffers here) + estimator 27,368,636 (not in the released code: Linear 256 -> 768, 3 layers, head 768 -> 768), "
    "counted on meta; the paper gives no tokenizer size"), **_PAPER)
def beats_tokenizer(**overrides) -> BEATsTokenizer:
    """Self-distilled BEATs tokenizer (paper size): 12 x 768-d encoder, 1024 x 256 normalised EMA codebook, 3-layer
    estimator of a 768-d teacher."""
    return BEATsTokenizer(build_config(BEATsTokenizerConfig, {}, **overrides))


@register_model(params=19_310_462, verified="A", tiny=_TINY, params_source=(
    "audiozoo small config (not in the paper), the width of beats_small: tokenizer 12,408,276 + estimator "
    "6,902,186, counted on meta"), **_PAPER)
def beats_tokenizer_small(**overrides) -> BEATsTokenizer:
    """A small self-distilled tokenizer for ``beats_small`` teachers: 6 x 384-d encoder, 3 x 384-d estimator."""
    return BEATsTokenizer(build_config(BEATsTokenizerConfig, _SMALL, **overrides))
