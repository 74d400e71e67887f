"""WavTokenizer: one codebook of 4096 codes at 40 or 75 tokens per second of 24 kHz audio.

Paper: Shengpeng Ji et al., "WavTokenizer: an Efficient Acoustic Discrete Codec Tokenizer for Audio Language
Modeling", arXiv:2408.16532 (ICLR 2025). Official code: https://github.com/jishengpeng/WavTokenizer (MIT):
``wavtokenizer/decoder/feature_extractors.py`` (``EncodecFeatures``), ``encoder/quantization/core_vq.py``,
``decoder/models.py`` (``VocosBackbone`` with ``pos_net``), ``decoder/heads.py`` (``ISTFTHead``), ``decoder/
experiment.py`` (losses), ``configs/wavtokenizer_smalldata_frame{75,40}_3s_nq1_code4096_dim512_kmeans200_attn.yaml``.
Read for the facts; nothing is copied. The blocks live in ``audiozoo.nn``.

Architecture (the official configs):

- Encoder: EnCodec's SEANet (:class:`audiozoo.nn.seanet.SEANetEncoder`), **non-causal**, weight norm, 32 filters,
  2 LSTM layers, latent dimension **512**; ratios (8, 5, 4, 2) -> hop 320, **75 tokens/s** (``frame75``) or
  (6, 5, 5, 4) -> hop 600, **40 tokens/s** (``frame40``).
- Quantiser: a single EMA codebook (``num_quantizers: 1``) of **4096** entries, k-means init with **200**
  iterations (``vq_kmeans``), decay 0.99, codes whose EMA count falls below 2 replaced by batch vectors
  (:class:`audiozoo.nn.ResidualVQ` with one layer). Bitrate 12 bits x 75 = 900 bit/s (480 bit/s at 40 tokens/s).
- Decoder: Vocos backbone (:class:`audiozoo.nn.vocos.VocosBackbone`: dim 768, intermediate 2304, 12 ConvNeXt
  layers, AdaLayerNorm with 4 bandwidth embeddings -- WavTokenizer decodes with id 0 and trains with a random id
  in 0..3 --, the attention ``pos_net`` after the input conv) and an iSTFT head with n_fft = 4 x hop (1280 / 2400),
  hop 320 / 600, "same" padding.
- Training (``experiment.py``; :mod:`audiozoo.train.tasks.codec`): mel L1 x 45, commitment x 1000, multi-period +
  multi-resolution discriminators (x 1) and DAC's multi-scale STFT discriminator, AdamW 2e-4, cosine schedule.

Departures: the official ``EncodecFeatures`` also builds an EnCodec SEANet *decoder* (8,802,274 parameters) that is
never called; it is not built here (the converter drops its weights). Codebook k-means uses k-means++ seeds.

Parameter counts (weight-norm ``g`` and ``v`` both counted; the codebook is a buffer): ``wavtokenizer_frame75``
71,750,146 = encoder 8,802,816 (the official SEANet, measured on ``encodec.modules.SEANetEncoder`` with this
config) + backbone 61,961,472 (``vocos.models.VocosBackbone(512, 768, 2304, 12, adanorm_num_embeddings=4)``:
45,421,824, measured, + ``pos_net`` 16,539,648: four ResNet blocks of 3,543,552, the attention block 2,363,904, the
GroupNorm 1,536, counted from the official layer list) + head 985,858 (Linear 768 -> 1282). ``wavtokenizer_frame40``:
72,111,714 (encoder 8,303,104, head 1,847,138). With the unused SEANet decoder the official generator holds 8,802,274
more (80,552,420 / 80,913,988).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...config import build_config
from ...errors import AudioError, ConfigError
from ...nn.quantize import ResidualVQ
from ...nn.seanet import SEANetEncoder
from ...nn.vocos import ISTFTHead, VocosBackbone
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ..contracts import CodecModel, CodecOutput

__all__ = ["WavTokenizer", "WavTokenizerConfig", "WavTokenizerOutput", "checkpoint_filter_fn"]


@dataclass
class WavTokenizerConfig:
    sample_rate: int = 24000
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    dimension: int = 512
    n_filters: int = 32
    lstm: int = 2
    codebook_size: int = 4096
    num_quantizers: int = 1
    kmeans_iters: int = 200
    decay: float = 0.99
    dead_code_threshold: float = 2.0
    # DAC-style factorised codes (Kumar et al. 2023, Section 3.2): lookup in a `codebook_dim`-d projection, cosine
    # nearest code with `l2_normalize`; `quantizer_dropout`: fraction of items trained with the first n_q ~ U{1..N}
    codebook_dim: int | None = None
    l2_normalize: bool = False
    quantizer_dropout: float = 0.0
    replace_interp: float = 1.0  # dead codes restart at e(x) + r (x - e(x)) (r < 1: split busy codes; nn.quantize)
    count_decay: float | None = None  # decay of the usage counts that find dead codes (None: `decay`)
    standardize: bool = False  # look codes up for standardised latents (nn.quantize.VectorQuantizer; fixes collapse)
    standardize_input: bool = False  # quantise and decode standardised latents (nn.quantize.ResidualVQ)
    backbone_dim: int = 768
    intermediate_dim: int = 2304
    num_layers: int = 12
    adanorm_num_embeddings: int | None = 4
    pos_net: bool = True
    pos_net_dropout: float = 0.1
    pos_net_groups: int = 32
    n_fft: int = 0  # 0: 4 x hop (the official configs)
    padding: str = "same"


WavTokenizerOutput = CodecOutput  # the codec family's forward output (models/contracts.py)


class WavTokenizer(CodecModel):
    """WavTokenizer codec (see the module docstring): ``encode(wav (B, T)) -> codes (B, 1, ceil(T / hop))``,
    ``decode(codes) -> wav (B, L * hop)``; ``forward(wav) -> WavTokenizerOutput``."""

    def __init__(self, config: WavTokenizerConfig):
        super().__init__()
        c = self.config = config
        hop = int(math.prod(c.ratios))
        n_fft = c.n_fft or 4 * hop
        if n_fft < hop or (n_fft - hop) % 2:
            raise ConfigError(f"WavTokenizer needs n_fft >= hop with n_fft - hop even, got n_fft={n_fft}, hop={hop}")
        self.encoder = SEANetEncoder(channels=1, dimension=c.dimension, n_filters=c.n_filters, ratios=c.ratios,
                                     norm="weight_norm", causal=False, pad_mode="reflect", lstm=c.lstm)
        self.quantizer = ResidualVQ(c.dimension, c.num_quantizers, c.codebook_size, decay=c.decay, kmeans_init=True,
                                    kmeans_iters=c.kmeans_iters, dead_code_threshold=c.dead_code_threshold,
                                    codebook_dim=c.codebook_dim, l2_normalize=c.l2_normalize,
                                    quantizer_dropout=c.quantizer_dropout, replace_interp=c.replace_interp,
                                    count_decay=c.count_decay, standardize=c.standardize,
                                    standardize_input=c.standardize_input)
        self.backbone = VocosBackbone(c.dimension, c.backbone_dim, c.intermediate_dim, c.num_layers,
                                      adanorm_num_embeddings=c.adanorm_num_embeddings, pos_net=c.pos_net,
                                      pos_net_dropout=c.pos_net_dropout, pos_net_groups=c.pos_net_groups)
        self.head = ISTFTHead(c.backbone_dim, n_fft, hop, c.padding)
        self.sample_rate = c.sample_rate
        self.hop_length = hop
        self.frame_rate = c.sample_rate / hop
        self.num_codebooks = c.num_quantizers
        self.codebook_size = c.codebook_size

    def _wav(self, wav: Tensor) -> Tensor:
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.ndim != 2 or wav.shape[-1] < 1:
            raise AudioError(f"WavTokenizer expects a mono waveform (B, T) or (B, 1, T), got {tuple(wav.shape)}")
        return wav

    def _bandwidth_id(self, bandwidth_id: int | Tensor | None, device: torch.device) -> Tensor | None:
        if self.config.adanorm_num_embeddings is None:
            return None
        bid = torch.as_tensor(0 if bandwidth_id is None else bandwidth_id, dtype=torch.long, device=device)
        bid = bid.reshape(-1)
        if bool(((bid < 0) | (bid >= self.config.adanorm_num_embeddings)).any()):
            raise ConfigError(f"bandwidth_id must be in [0, {self.config.adanorm_num_embeddings - 1}]")
        return bid

    def encode(self, wav: Tensor, n_q: int | None = None) -> Tensor:
        """Waveform ``(B, T)`` at ``sample_rate`` -> codes ``(B, num_quantizers, ceil(T / hop_length))`` int64."""
        return self.quantizer.encode(self.encoder(self._wav(wav)[:, None]), n_q)

    def features(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` -> the decoder's input features ``(B, dimension, L)`` (official
        ``codes_to_features``: the sum of the codebook vectors)."""
        if codes.ndim == 2:
            codes = codes[:, None]
        if codes.ndim != 3 or codes.is_floating_point():
            raise AudioError(f"WavTokenizer.decode expects integer codes (B, Q, L), got {tuple(codes.shape)}")
        return self.quantizer.decode(codes)

    def decode_features(self, features: Tensor, bandwidth_id: int | Tensor | None = None) -> Tensor:
        """Features ``(B, dimension, L)`` -> waveform ``(B, L * hop_length)``."""
        return self.head(self.backbone(features, self._bandwidth_id(bandwidth_id, features.device)))

    def decode(self, codes: Tensor, bandwidth_id: int | Tensor | None = None) -> Tensor:
        """Codes ``(B, Q, L)`` -> waveform ``(B, L * hop_length)``."""
        return self.decode_features(self.features(codes), bandwidth_id)

    def forward(self, wav: Tensor, bandwidth_id: int | Tensor | None = None) -> WavTokenizerOutput:
        """Encode, quantise (straight-through; EMA codebook updates in training) and decode ``wav (B, T)``."""
        wav = self._wav(wav)
        z = self.encoder(wav[:, None])
        q = self.quantizer(z)
        audio = self.decode_features(q.quantized, bandwidth_id)[:, : wav.shape[-1]]
        return WavTokenizerOutput(audio, q.codes, q, z)


# --------------------------------------------------------------------------- checkpoint converter
_QUANT = re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.(inited|cluster_size|embed|embed_avg)$")
_DROP = re.compile(r"^(encodec\.decoder\.|head\.istft\.window$)")


def checkpoint_filter_fn(state: dict[str, Any], model: WavTokenizer) -> dict[str, Tensor]:
    """Official WavTokenizer checkpoint (the Lightning ``.ckpt``'s ``state_dict`` or the released
    ``pytorch_model.bin``) -> this layout.

    ``feature_extractor.encodec.encoder.*`` -> ``encoder.*``; ``feature_extractor.encodec.quantizer.vq.layers.i.
    _codebook.*`` -> ``quantizer.layers.i.*`` (``inited`` -> ``initted``); ``backbone.*`` and ``head.out.*`` keep
    their names; the unused SEANet decoder, the head's window, the discriminators and loss modules are dropped;
    legacy weight-norm keys become parametrizations.
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith("feature_extractor."):
            k = k[len("feature_extractor."):]
            if _DROP.match(k):
                continue
            if k.startswith("encodec.encoder."):
                out[k[len("encodec."):]] = v
                continue
            m = _QUANT.match(k[len("encodec."):]) if k.startswith("encodec.") else None
            if m:
                out[f"quantizer.layers.{m.group(1)}.{'initted' if m.group(2) == 'inited' else m.group(2)}"] = v
        elif k.startswith("backbone.") or (k.startswith("head.") and not _DROP.match(k)):
            out[k] = v
    return convert_legacy_weight_norm_keys(out)


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="codec",
    paper="WavTokenizer: an Efficient Acoustic Discrete Codec Tokenizer for Audio Language Modeling "
          "(Ji et al., ICLR 2025)",
    arxiv="2408.16532",
    official_repo="https://github.com/jishengpeng/WavTokenizer",
    license="MIT (official code); released weights: see the official repository",
    converter=checkpoint_filter_fn,
)

_TINY = dict(sample_rate=8000, ratios=(4, 2), dimension=8, n_filters=2, lstm=1, codebook_size=32, kmeans_iters=2,
             backbone_dim=8, intermediate_dim=12, num_layers=2, pos_net_groups=4)
_SOURCE = ("official configs wavtokenizer_smalldata_frame{}_3s_nq1_code4096_dim512_kmeans200_attn.yaml: encoder "
           "{:,} (encodec.modules.SEANetEncoder with this config, measured) + vocos VocosBackbone(512, 768, 2304, 12, "
           "adanorm 4) 45,421,824 (measured) + pos_net 16,539,648 (counted from decoder/models.py) + ISTFTHead "
           "{:,}; weight-norm g and v counted; the codebook is a buffer; the official EncodecFeatures' unused SEANet "
           "decoder (8,802,274) is not built; measured here on meta")


@register_model(params=71_750_146, params_source=_SOURCE.format(75, 8_802_816, 985_858), verified="A", tiny=_TINY,
                **_PAPER)
def wavtokenizer_frame75(**overrides) -> WavTokenizer:
    """WavTokenizer, 75 tokens/s (hop 320, n_fft 1280), one 4096-entry codebook: 900 bit/s at 24 kHz."""
    return WavTokenizer(build_config(WavTokenizerConfig, {}, **overrides))


@register_model(params=72_111_714, params_source=_SOURCE.format(40, 8_303_104, 1_847_138), verified="A", tiny=_TINY,
                **_PAPER)
def wavtokenizer_frame40(**overrides) -> WavTokenizer:
    """WavTokenizer, 40 tokens/s (hop 600, n_fft 2400), one 4096-entry codebook: 480 bit/s at 24 kHz."""
    return WavTokenizer(build_config(WavTokenizerConfig, {"ratios": (6, 5, 5, 4)}, **overrides))


# A small 16 kHz speech codec in WavTokenizer's layout, trained here (recipes/codec/wavtokenizer_small_speech.yaml,
# docs/models/wavtokenizer.md): 8 residual codebooks of 256 codes at 50 frames/s = 3.2 kbit/s (n_q codebooks:
# n_q x 400 bit/s, quantizer dropout), factorised standardised codes (nn.quantize), no attention block, no AdaLN.
_SMALL16K = dict(sample_rate=16000, ratios=(8, 5, 4, 2), dimension=128, n_filters=16, lstm=1, codebook_size=256,
                 num_quantizers=8, kmeans_iters=20, decay=0.95, dead_code_threshold=0.5, codebook_dim=8,
                 l2_normalize=True, quantizer_dropout=0.5, standardize_input=True, replace_interp=0.2, count_decay=0.8,
                 backbone_dim=256, intermediate_dim=768, num_layers=6, adanorm_num_embeddings=None, pos_net=False)


@register_model(params=4_408_130, params_source="audiozoo's own small configuration (no official counterpart): "
                "encoder 1,448,192 + quantiser projections 17,472 + backbone 2,612,992 + head 329,474, weight-norm g "
                "and v counted; measured here", verified="A",
                tiny=dict(_TINY, num_quantizers=2, codebook_dim=4, l2_normalize=True, standardize_input=True,
                          replace_interp=0.2, count_decay=0.8, adanorm_num_embeddings=None, pos_net=False),
                **_PAPER)
def wavtokenizer_small16k(**overrides) -> WavTokenizer:
    """Small 16 kHz speech codec (WavTokenizer layout): 8 x 256 codes at 50 frames/s, 0.4-3.2 kbit/s."""
    return WavTokenizer(build_config(WavTokenizerConfig, _SMALL16K, **overrides))
