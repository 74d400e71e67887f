"""BEATs: Audio Pre-Training with Acoustic Tokenizers.

Paper: Sanyuan Chen, Yu Wu, Chengyi Wang, Shujie Liu, Daniel Tompkins, Zhuo Chen, Furu Wei, "BEATs: Audio
Pre-Training with Acoustic Tokenizers", ICML 2023, arXiv:2212.09058. Official code (inference only):
https://github.com/microsoft/unilm/tree/master/beats (MIT): ``BEATs.py`` (``BEATsConfig``, ``BEATs``),
``backbone.py`` (fairseq/WavLM transformer), ``Tokenizers.py``; the same network in espnet 202511
(``espnet2.asr.encoder.beats_encoder.BeatsEncoder``) and speechbrain 1.1.2 (``speechbrain.lobes.models.beats``).

Encoder (Sec. 3.1, ``BEATs.py``): a 128-bin Kaldi fbank (Povey window, 25/10 ms) of the waveform scaled to int16
range, normalised ``(x - 15.41663) / (2 * 6.55582)``; 16x16 non-overlapping patches on the (time, frequency)
image by a bias-free Conv2d to 512 channels, LayerNorm, Linear 512 -> 768, then a 12-layer post-LN transformer
(768-d, 12 heads, FFN 3072) with a grouped convolutional position embedding (kernel 128, 16 groups), WavLM's
gated relative position bias (320 buckets) and DeepNet residual scaling. Tokens are in time-major order
(``t * 8 + f`` for 8 frequency patches).

Pretraining, iteration 1 (Sec. 3.2-3.3): a random-projection tokenizer (frozen random projection of each
flattened 16x16 fbank patch and a frozen random codebook of 1024 vectors, nearest neighbour; here both are
l2-normalised, so the nearest neighbour is the highest cosine) labels every patch; 75 % of the patches are
masked and the model predicts the labels of the masked ones, cross-entropy.

Departures: (1) the paper feeds only the unmasked patches to the encoder and a label predictor sees them with
the masked positions; its predictor could not be read offline, so here masked patches are replaced in the
encoder input by a learned mask embedding and a linear layer predicts the labels (BEiT / HuBERT style).
(2) Padding: the official ``forward_padding_mask`` reshapes a sample-level mask onto the time-major patch
sequence, which does not line up with patch columns when there are several frequency patches; here a patch is
padding iff its time column lies past the item's valid frames, and padded columns never receive a mask.
(3) Layer drop, layer-wise gradient decay and the fine-tuned AudioSet classifier are not implemented.

Iterations 2+ (Sec. 3.2): the self-distilled tokenizer (``beats_tokenizer.py``) is distilled from this encoder's
per-patch outputs (:meth:`BEATs.distill_targets`) and its labels replace the random projection's
(``forward(labels=...)``); the ``ssl`` task wires both (``teacher:`` / ``tokenizer:``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.kaldi import NormalizedKaldiFbank
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.masking import patch_mask_indices
from ...nn.relpos import ConvPositionalEmbedding, RelativePositionBias, RelPosTransformerLayer, init_relpos_weights_
from ...registry import register_model
from ..contracts import SSLModel

FBANK_MEAN = 15.41663  # BEATs.preprocess defaults (int16-scaled fbank statistics)
FBANK_STD = 6.55582


@dataclass
class BEATsConfig:
    n_mels: int = 128
    patch_size: int = 16  # input_patch_size (square patches, stride = patch)
    patch_embed_dim: int = 512  # embed_dim: Conv2d channels before the projection to embed_dim
    embed_dim: int = 768  # encoder_embed_dim
    depth: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True  # the released checkpoints' cfg (transformers PR defaults; unverified)
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    deep_norm: bool = True
    layer_norm_first: bool = False
    layer_norm_eps: float = 1e-5
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    # iteration-1 random-projection tokenizer and masked label prediction
    codebook_size: int = 1024
    codebook_dim: int = 256
    tokenizer_seed: int = 0  # the frozen projection and codebook are drawn from this seed
    mask_ratio: float = 0.75
    # front end
    sample_rate: int = 16000
    window_type: str = "povey"
    input_scale: float = 32768.0  # waveform * 2^15 before the fbank (BEATs.preprocess)
    norm_mean: float = FBANK_MEAN
    norm_std: float = FBANK_STD


class BEATsFrontend(NormalizedKaldiFbank):
    """Waveform ``(B, T)`` at 16 kHz -> normalised Kaldi fbank ``(B, n_mels, L)``, frame lengths: ``BEATs.preprocess``
    (waveform x 2^15, Povey window, ``(x - 15.41663) / (2 * 6.55582)``); padded frames hold ``-mean / (2 std)``."""

    config_class = BEATsConfig
    config_fields = ("sample_rate", "n_mels", "window_type", "input_scale", "norm_mean", "norm_std")

    def __init__(self, config: BEATsConfig):
        c = config
        super().__init__(c.sample_rate, c.n_mels, c.window_type, c.norm_mean, c.norm_std, None, c.input_scale)
        self.config = config


class RandomProjectionTokenizer(nn.Module):
    """BEATs iteration-1 acoustic tokenizer: flattened patches ``(B, N, P)`` -> labels ``(B, N)`` in ``[0, K)``.

    ``W x`` with a frozen random projection ``W (P -> d)``, then the index of the nearest of ``K`` frozen random
    codebook vectors after l2-normalising both (cosine). Buffers, not parameters: saved with the model, never trained.
    """

    def __init__(self, patch_dim: int, codebook_size: int, codebook_dim: int, seed: int = 0):
        super().__init__()
        self.register_buffer("projection", torch.empty(codebook_dim, patch_dim))
        self.register_buffer("codebook", torch.empty(codebook_size, codebook_dim))
        if not self.projection.is_meta:
            g = torch.Generator().manual_seed(int(seed))
            self.projection.copy_(torch.randn(codebook_dim, patch_dim, generator=g) * patch_dim ** -0.5)
            self.codebook.copy_(F.normalize(torch.randn(codebook_size, codebook_dim, generator=g), dim=-1))

    @torch.no_grad()
    def forward(self, patches: Tensor) -> Tensor:
        z = F.normalize(patches.float() @ self.projection.float().T, dim=-1)
        return (z @ F.normalize(self.codebook.float(), dim=-1).T).argmax(-1)


class BEATs(SSLModel):
    """BEATs encoder, iteration-1 tokenizer and masked label predictor.

    ``encode(features (B, n_mels, L))`` -> official token outputs ``(B, gt * gf, D)``; ``extract_features`` ->
    ``depth + 1`` hidden states ``(B, gt, D)`` (the ``gf`` frequency patches of each time column averaged);
    ``forward`` is the pretext task.
    """

    def __init__(self, config: BEATsConfig):
        super().__init__()
        c = self.config = config
        if c.n_mels % c.patch_size:
            raise ConfigError(f"BEATs n_mels ({c.n_mels}) must be a multiple of patch_size ({c.patch_size})")
        if not 0.0 < c.mask_ratio < 1.0:
            raise ConfigError(f"BEATs mask_ratio must be in (0, 1), got {c.mask_ratio}")
        self.frontend = BEATsFrontend(c)
        self.num_layers, self.embed_dim = c.depth, c.embed_dim
        self.gf = c.n_mels // c.patch_size
        self.patch_embedding = nn.Conv2d(1, c.patch_embed_dim, c.patch_size, c.patch_size, bias=False)
        self.layer_norm = nn.LayerNorm(c.patch_embed_dim, eps=c.layer_norm_eps)
        self.post_extract_proj = nn.Linear(c.patch_embed_dim, c.embed_dim) if c.patch_embed_dim != c.embed_dim else None
        self.dropout_input = nn.Dropout(c.dropout_input)
        self.pos_conv = ConvPositionalEmbedding(c.embed_dim, c.conv_pos, c.conv_pos_groups)
        self.relative_position = (RelativePositionBias(c.num_buckets, c.num_heads, c.max_distance)
                                  if c.relative_position_embedding else None)
        self.layers = nn.ModuleList(
            RelPosTransformerLayer(c.embed_dim, c.num_heads, c.ffn_dim, num_layers=c.depth, deep_norm=c.deep_norm,
                                   norm_first=c.layer_norm_first, gated=c.gru_rel_pos, dropout=c.dropout,
                                   attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout,
                                   eps=c.layer_norm_eps)
            for _ in range(c.depth))
        self.encoder_layer_norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)  # official encoder.layer_norm
        self.drop = nn.Dropout(c.dropout)
        self.tokenizer = RandomProjectionTokenizer(c.patch_size ** 2, c.codebook_size, c.codebook_dim, c.tokenizer_seed)
        self.mask_embed = nn.Parameter(torch.zeros(c.embed_dim))
        self.label_predictor = nn.Linear(c.embed_dim, c.codebook_size)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.mask_embed.is_meta:
            return
        # fairseq init_bert_params: Linear / Embedding N(0, 0.02), zero biases; then DeepNet's Xavier gains.
        init_relpos_weights_(self, self.layers, self.config.deep_norm)
        nn.init.normal_(self.mask_embed, std=0.02)

    # ---- shapes ---------------------------------------------------------------------------------------
    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Patch columns whose frames are all valid (at least 1): ``(B,)``."""
        return torch.clamp(torch.as_tensor(lengths) // self.config.patch_size, min=1).long()

    def _check(self, features: Tensor) -> None:
        c = self.config
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"BEATs expects features (B, {c.n_mels}, L), got shape {tuple(features.shape)}")
        if features.shape[-1] < c.patch_size:
            raise AudioError(f"BEATs needs at least {c.patch_size} frames (one patch), got {features.shape[-1]}")

    def _valid_columns(self, lengths: Tensor | None, batch: int, gt: int, device: torch.device) -> Tensor:
        if lengths is None:
            return torch.full((batch,), gt, dtype=torch.long, device=device)
        return self.output_lengths(lengths.to(device)).clamp(max=gt)

    def patches(self, features: Tensor) -> Tensor:
        """Flattened ``p x p`` patches ``(B, gt * gf, p * p)`` in token order (time-major; each patch time x freq)."""
        p = self.config.patch_size
        return F.unfold(features.transpose(1, 2).unsqueeze(1), p, stride=p).transpose(1, 2)

    def _padding_mask(self, valid: Tensor, gt: int) -> Tensor | None:
        if not bool((valid < gt).any()):
            return None
        cols = torch.arange(gt * self.gf, device=valid.device) // self.gf
        return cols[None, :] >= valid[:, None]  # (B, N) True = padding

    # ---- encoder --------------------------------------------------------------------------------------
    def encode(self, features: Tensor, lengths: Tensor | None = None, mask: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor], Tensor]:
        """``features (B, n_mels, L)`` -> ``(tokens (B, N, D), hidden states, valid columns (B,))``, ``N = gt * gf``.

        ``mask (B, N)`` bool replaces those patches by the mask embedding. ``hidden`` (when asked for) holds the
        input of the first layer (after the convolutional positions and the LayerNorm) and every layer's output.
        """
        self._check(features)
        b = features.shape[0]
        x = self.patch_embedding(features.transpose(1, 2).unsqueeze(1))  # (B, C, gt, gf): the official (T, F) image
        gt = x.shape[2]
        x = self.layer_norm(x.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        x = self.dropout_input(x)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_embed.to(x.dtype), x)
        valid = self._valid_columns(lengths, b, gt, x.device)
        pad = self._padding_mask(valid, gt)
        if pad is not None:
            x = x.masked_fill(pad[..., None], 0.0)
        x = x + self.pos_conv(x)
        if not self.config.layer_norm_first:
            x = self.encoder_layer_norm(x)
        x = self.drop(x)
        bias = self.relative_position(x.shape[1]) if self.relative_position is not None else None
        hidden = [x] if return_hidden else []
        for layer in self.layers:
            x = layer(x, bias, pad)
            if return_hidden:
                hidden.append(x)
        if self.config.layer_norm_first:
            x = self.encoder_layer_norm(x)
            if return_hidden:
                hidden[-1] = x
        return x, hidden, valid

    def _columns(self, tokens: Tensor, valid: Tensor) -> Tensor:
        """``(B, gt * gf, D)`` -> ``(B, gt, D)``: mean over each column's frequency patches, zero past ``valid``."""
        b, n, d = tokens.shape
        x = tokens.reshape(b, n // self.gf, self.gf, d).mean(2)
        keep = torch.arange(x.shape[1], device=x.device)[None, :] < valid[:, None]
        return x * keep[..., None].to(x.dtype)

    def extract_features(self, x: Tensor, lengths: Tensor | None = None,
                         layers: list[int] | None = None) -> list[Tensor]:
        """Features ``(B, n_mels, L)`` (or a 16 kHz waveform ``(B, T)``) -> ``depth + 1`` states ``(B, gt, D)``.

        Entry 0 is the first layer's input, entry ``i`` layer ``i``'s output; ``layers`` picks entries by index.
        Positions past :meth:`output_lengths` are zero. :meth:`encode` gives the per-patch tokens.
        """
        if x.ndim == 2:
            x, lengths = self.frontend(x, lengths)
        _, hidden, valid = self.encode(x, lengths, return_hidden=True)
        if layers is not None:
            hidden = [hidden[i] for i in layers]
        return [self._columns(h, valid) for h in hidden]

    # ---- pretext task ---------------------------------------------------------------------------------
    def draw_mask(self, valid: Tensor, gt: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
        """``(B, gt * gf)`` bool in token order: ``ratio`` of the shortest item's patches, drawn uniformly among each
        item's valid patches (:func:`audiozoo.nn.patch_mask_indices`; padding is never masked, same count per item)."""
        least = int(valid.min()) * self.gf
        count = max(1, min(least - 1, math.floor(ratio * least)))
        idx = patch_mask_indices((self.gf, gt), count, valid.cpu(), strategy="random", generator=generator)
        idx = (idx % gt) * self.gf + idx // gt  # frequency-major (f * gt + t) -> BEATs' time-major (t * gf + f)
        return torch.zeros(valid.shape[0], gt * self.gf, dtype=torch.bool).scatter_(1, idx, True).to(valid.device)

    @torch.no_grad()
    def distill_targets(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The teacher targets of a self-distilled tokenizer: last-layer outputs ``(B, gt * gf, D)`` of every patch
        (unmasked input; padded patches included, the student ignores them)."""
        return self.encode(features, lengths)[0]

    def forward(self, features: Tensor, lengths: Tensor | None = None, *, mask_ratio: float | None = None,
                generator: torch.Generator | None = None, labels: Tensor | None = None) -> dict[str, Tensor]:
        """Masked label prediction on ``features (B, n_mels, L)``: ``{"loss", "acc"}``.

        The tokenizer labels every patch — the built-in random projection (iteration 1), or ``labels (B, gt * gf)``
        in ``[0, codebook_size)`` given by a self-distilled tokenizer (iterations 2+: the ssl task's ``tokenizer:``);
        ``mask_ratio`` (default the config's 0.75) of the patches are masked and the cross-entropy of the predicted
        labels is averaged over the masked patches; ``acc`` is their top-1 accuracy. ``eval()`` mode draws the mask
        from a fixed seed unless a ``generator`` is given.
        """
        c = self.config
        self._check(features)
        ratio = float(c.mask_ratio if mask_ratio is None else mask_ratio)
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"BEATs mask_ratio must be in (0, 1), got {ratio}")
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(0)
        gt = features.shape[-1] // c.patch_size
        valid = self._valid_columns(lengths, features.shape[0], gt, features.device)
        if labels is None:
            labels = self.tokenizer(self.patches(features[..., :gt * c.patch_size]))  # (B, N)
        elif labels.shape != (features.shape[0], gt * self.gf):
            raise ConfigError(f"BEATs labels must be (B, gt * gf) = {(features.shape[0], gt * self.gf)} (the "
                              f"tokenizer's patches), got {tuple(labels.shape)}")
        elif labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c.codebook_size):
            raise ConfigError(f"BEATs labels must lie in [0, {c.codebook_size}) (config.codebook_size: the "
                              f"tokenizer's codebook), got [{int(labels.min())}, {int(labels.max())}]")
        labels = labels.to(features.device).long()
        mask = self.draw_mask(valid, gt, ratio, generator)
        tokens, _, _ = self.encode(features, lengths, mask=mask)
        logits = self.label_predictor(tokens[mask]).float()  # (M_total, K)
        target = labels[mask]
        loss = F.cross_entropy(logits, target)
        acc = (logits.argmax(-1) == target).float().mean().detach()
        return {"loss": loss, "acc": acc}



# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: BEATs) -> dict[str, Tensor]:
    """Official BEATs checkpoint state (the ``"model"`` entry of the released file, or the whole dict with
    ``"model"``/``"cfg"``; read it with ``torch.load(path, weights_only=True)`` or from a safetensors conversion;
    the same layout as espnet's ``BeatsEncoder`` and speechbrain's ``BEATs``) -> audiozoo keys.

    ``encoder.layers.{i}.*`` -> ``layers.{i}.*``; ``encoder.pos_conv.0.weight_g/_v/bias`` -> ``pos_conv.*``; the
    relative position table (shared by every layer, stored under each) is taken from layer 0; ``encoder.layer_norm``
    -> ``encoder_layer_norm``. The fine-tuned classifier (``predictor.*``) is dropped. The tokenizer buffers, mask
    embedding and label predictor are not in official encoder checkpoints: they keep the model's own values.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not any(k.startswith("encoder.") for k in state):
        return state  # already audiozoo keys
    out: dict[str, Tensor] = {}
    rel = "self_attn.relative_attention_bias.weight"
    for k, v in state.items():
        if k.startswith("predictor."):
            continue
        if k.startswith("encoder.pos_conv.0.parametrizations.weight.original"):  # torch's new weight_norm
            out["pos_conv.weight_" + ("g" if k.endswith("0") else "v")] = v
        elif k.startswith("encoder.pos_conv.0."):
            out["pos_conv." + k[len("encoder.pos_conv.0."):]] = v
        elif k == "encoder.layer_norm.weight" or k == "encoder.layer_norm.bias":
            out["encoder_layer_norm." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("encoder.layers."):
            rest = k[len("encoder.layers."):]
            i, name = rest.split(".", 1)
            if name == rel:
                if i == "0":
                    out["relative_position.relative_attention_bias.weight"] = v
                continue
            out["layers." + rest] = v
        else:
            out[k] = v
    for k in ("pos_conv.weight_g",):
        if k in out and out[k].ndim != 3:
            raise CheckpointError(f"BEATs checkpoint: {k} has shape {tuple(out[k].shape)}, expected (1, 1, kernel)")
    own = model.state_dict()
    for k in own:
        if k.startswith(("tokenizer.", "mask_embed", "label_predictor.")) and k not in out:
            out[k] = own[k]
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
             conv_pos_groups=4, num_buckets=16, max_distance=32, codebook_size=32, codebook_dim=16)
_SMALL = dict(patch_embed_dim=512, embed_dim=384, depth=6, num_heads=6, ffn_dim=1536)


@register_model(params=91_100_016, verified="AP", tiny=_TINY, params_source=(
    "encoder 90,311,792 = the official BEATs network with the released checkpoints' cfg (counted on meta; paper "
    "Table 1: 90M; speechbrain's BEATs 90.3M) + pretext head 788,224 (mask embedding 768, linear 768 -> 1024)"),
    **_PAPER)
def beats_base(**overrides) -> BEATs:
    """BEATs (paper size): 12 x 768-d, 12 heads, 16x16 patches, iteration-1 random-projection tokenizer (1024 codes)."""
    return BEATs(build_config(BEATsConfig, {}, **overrides))


@register_model(params=12_556_500, verified="A", tiny=_TINY, params_source=(
    "audiozoo small config (not in the paper): 6 x 384-d, 6 heads, FFN 1536, 512-channel patch embedding: "
    "encoder 12,161,876 + pretext head 394,624, counted on meta"), **_PAPER)
def beats_small(**overrides) -> BEATs:
    """A small BEATs for CPU pretraining: 6 x 384-d, 6 heads (same front end, patches and tokenizer)."""
    return BEATs(build_config(BEATsConfig, _SMALL, **overrides))
