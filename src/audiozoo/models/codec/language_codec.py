"""Language-Codec: masked channel residual VQ (MCRVQ), 8 codebooks of 1024 at 75 frames/s of 24 kHz audio (6 kbit/s).

Paper: Shengpeng Ji et al., "Language-Codec: Bridging Discrete Codec Representations and Speech Language Models",
arXiv:2402.12208 (ACL 2025). Official code: https://github.com/jishengpeng/Languagecodec (MIT, read at f10ffa6):
``languagecodec_decoder/feature_extractors.py`` (``EncodecFeatures``), ``languagecodec_encoder/quantization/
{vq,core_vq}.py`` (``ResidualVectorQuantizer`` -> ``LanguageVectorQuantization``), ``languagecodec_decoder/
{models,heads,modules}.py`` (``VocosBackbone``, ``ISTFTHead``), ``experiment.py`` (losses, discriminators),
``configs/languagecodec_mm.yaml``. Read for the facts; nothing is copied. The blocks live in ``audiozoo.nn``.

Architecture (``configs/languagecodec_mm.yaml`` + ``EncodecFeatures``):

- Encoder: EnCodec's SEANet (:class:`audiozoo.nn.seanet.SEANetEncoder`; Language-Codec's copy of encodec's modules
  computes the same), **non-causal**, weight norm, 32 filters, 2 LSTM layers, ratios (8, 5, 4, 2) -> hop 320, 75
  frames/s, latent dimension **128**, ``true_skip=False``, compress 2.
- Quantiser: :class:`audiozoo.nn.MaskedChannelRVQ` -- 8 EMA codebooks of **1024** (k-means init, 50 iterations,
  decay 0.99, dead-code threshold 2); quantisers 1-3 each code one third of the 128 channels (42/43/43), in
  parallel; 4-8 are RVQ on the residual. In training each step draws ``n_q`` from {3..8} (whole batch), as
  ``ResidualVectorQuantizer.forward``; inference uses all 8. ``n_q = int(6.6 * 1000 / (log2(2048) * 75)) = 8`` in
  the official code: 11 bits per code for 1024-entry codebooks; the real rate is 8 x 10 x 75 = **6,000 bit/s**.
- Decoder ("Fourier decoder"): Vocos backbone (:class:`audiozoo.nn.vocos.VocosBackbone`: input 128, dim 384,
  intermediate 1152, 12 ConvNeXt layers, AdaLayerNorm with 4 embeddings -- ``len(bandwidths)`` of the config, all
  four 6.6 kbps; training draws the id at random in 0..3 independently of ``n_q``, inference uses 0), no attention
  block (the released code has none, although the paper's abstract mentions attention blocks), then an iSTFT head
  (n_fft 1280, hop 320, "same" padding).
- Training (``experiment.py``; :mod:`audiozoo.train.tasks.codec`, recipe ``recipes/codec/language_codec_*.yaml``):
  mel L1 x 45 (n_fft 1024, hop 256, 100 mels), commitment x 1000, multi-period + multi-resolution discriminators
  conditioned on the bandwidth id (hinge loss + L1 feature matching; MRD x 1; :mod:`audiozoo.nn.discriminators_mrd`)
  and DAC's discriminator (least squares; its parameters are in no optimizer); AdamW 2e-4, cosine.

Departures: the official ``EncodecFeatures`` also builds an EnCodec SEANet *decoder* (7,426,018 parameters) that is
never called; it is not built here (the converter drops its weights). The masked codebooks hold only their group's
channels (the official ones are 128 wide with exact zeros elsewhere: :class:`~audiozoo.nn.MaskedChannelRVQ`
explains why that is the same quantiser, and the converter checks the zeros). Codebook k-means uses k-means++ seeds.

Parameter count (weight-norm ``g`` and ``v`` both counted; codebooks are buffers): ``language_codec_8nq``
18,981,250 = encoder 7,425,792 (``encodec.modules.SEANetEncoder`` with the official arguments, measured) +
backbone 11,061,888 (``vocos.models.VocosBackbone(128, 384, 1152, 12, adanorm_num_embeddings=4)``, measured) +
head 493,570 (Linear 384 -> 1282). With the unused SEANet decoder the official generator holds 26,407,268.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...config import build_config
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.quantize import MaskedChannelRVQ
from ...nn.seanet import SEANetEncoder
from ...nn.vocos import ISTFTHead, VocosBackbone
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ..contracts import CodecModel, CodecOutput

__all__ = ["LanguageCodec", "LanguageCodecConfig", "LanguageCodecOutput", "checkpoint_filter_fn"]


@dataclass
class LanguageCodecConfig:
    sample_rate: int = 24000
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    dimension: int = 128
    n_filters: int = 32
    lstm: int = 2
    codebook_size: int = 1024
    num_quantizers: int = 8
    num_masked: int = 3
    min_train_quantizers: int = 3  # training draws n_q in [min, num_quantizers] per step; 0: always all
    kmeans_iters: int = 50
    decay: float = 0.99
    dead_code_threshold: float = 2.0
    codebook_dim: int | None = None  # not in the official model: DAC-style projected codes (small CPU recipes)
    l2_normalize: bool = False  # not in the official model: cosine nearest code
    backbone_dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 12
    adanorm_num_embeddings: int | None = 4
    n_fft: int = 0  # 0: 4 x hop (1280, the official config)
    padding: str = "same"


LanguageCodecOutput = CodecOutput  # the codec family's forward output (models/contracts.py)


class LanguageCodec(CodecModel):
    """Language-Codec (see the module docstring): ``encode(wav (B, T)) -> codes (B, n_q, ceil(T / hop))``,
    ``decode(codes) -> wav (B, L * hop)``; ``forward(wav) -> LanguageCodecOutput``."""

    def __init__(self, config: LanguageCodecConfig):
        super().__init__()
        c = self.config = config
        hop = int(math.prod(c.ratios))
        n_fft = c.n_fft or 4 * hop
        if n_fft < hop or (n_fft - hop) % 2:
            raise ConfigError(f"Language-Codec needs n_fft >= hop with n_fft - hop even, got n_fft={n_fft}, hop={hop}")
        if not 0 <= c.min_train_quantizers <= c.num_quantizers:
            raise ConfigError(f"min_train_quantizers must be in [0, {c.num_quantizers}], got {c.min_train_quantizers}")
        train_n_q = range(c.min_train_quantizers, c.num_quantizers + 1) if c.min_train_quantizers else None
        self.encoder = SEANetEncoder(channels=1, dimension=c.dimension, n_filters=c.n_filters, ratios=c.ratios,
                                     norm="weight_norm", causal=False, pad_mode="reflect", lstm=c.lstm)
        self.quantizer = MaskedChannelRVQ(c.dimension, c.num_quantizers, c.codebook_size, num_masked=c.num_masked,
                                          train_n_q=train_n_q, decay=c.decay, kmeans_init=True,
                                          kmeans_iters=c.kmeans_iters, dead_code_threshold=c.dead_code_threshold,
                                          codebook_dim=c.codebook_dim, l2_normalize=c.l2_normalize)
        self.backbone = VocosBackbone(c.dimension, c.backbone_dim, c.intermediate_dim, c.num_layers,
                                      adanorm_num_embeddings=c.adanorm_num_embeddings)
        self.head = ISTFTHead(c.backbone_dim, n_fft, hop, c.padding)
        self.sample_rate = c.sample_rate
        self.hop_length = hop
        self.frame_rate = c.sample_rate / hop
        self.num_codebooks = c.num_quantizers
        self.codebook_size = c.codebook_size

    # ---- bandwidth -> number of codebooks ------------------------------------------------------------
    def num_quantizers_for(self, bandwidth: float | None = None, n_q: int | None = None) -> int | None:
        """Codebooks for ``n_q`` (wins) or a target ``bandwidth`` in kbps (``max(1, floor(1000 b / (log2(K) *
        frame_rate)))``, with the true 10 bits of a 1024 codebook: 6 kbps -> 8); None (the quantiser's default)
        when both are None."""
        if n_q is not None:
            if not 1 <= int(n_q) <= self.num_codebooks:
                raise ConfigError(f"n_q must be in [1, {self.num_codebooks}], got {n_q}")
            return int(n_q)
        if bandwidth is None or bandwidth <= 0:
            return None
        per_q = math.log2(self.codebook_size) * self.frame_rate / 1000
        n = max(1, math.floor(bandwidth / per_q + 1e-9))
        if n > self.num_codebooks:
            raise ConfigError(f"bandwidth {bandwidth} kbps needs {n} codebooks; this model has {self.num_codebooks} "
                              f"(max {self.num_codebooks * per_q:g} kbps)")
        return n

    # ---- codec interface -----------------------------------------------------------------------------
    def _wav(self, wav: Tensor) -> Tensor:
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.ndim != 2 or wav.shape[-1] < 1:
            raise AudioError(f"Language-Codec expects a mono waveform (B, T) or (B, 1, T), got {tuple(wav.shape)}")
        return wav

    def _bandwidth_id(self, bandwidth_id: int | Tensor | None, device: torch.device) -> Tensor | None:
        if self.config.adanorm_num_embeddings is None:
            return None
        bid = torch.as_tensor(0 if bandwidth_id is None else bandwidth_id, dtype=torch.long, device=device)
        bid = bid.reshape(-1)
        if bool(((bid < 0) | (bid >= self.config.adanorm_num_embeddings)).any()):
            raise ConfigError(f"bandwidth_id must be in [0, {self.config.adanorm_num_embeddings - 1}]")
        return bid

    def encode(self, wav: Tensor, n_q: int | None = None, bandwidth: float | None = None) -> Tensor:
        """Waveform ``(B, T)`` at ``sample_rate`` -> codes ``(B, n_q, ceil(T / hop_length))`` int64 (default all 8;
        ``bandwidth`` in kbps picks ``n_q``)."""
        return self.quantizer.encode(self.encoder(self._wav(wav)[:, None]), self.num_quantizers_for(bandwidth, n_q))

    def features(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` -> the decoder's input features ``(B, dimension, L)`` (official ``codes_to_features``:
        the sum of the codebook vectors, each masked one in its channel group)."""
        if codes.ndim == 2:
            codes = codes[:, None]
        if codes.ndim != 3 or codes.is_floating_point():
            raise AudioError(f"Language-Codec.decode expects integer codes (B, Q, L), got {tuple(codes.shape)}")
        return self.quantizer.decode(codes)

    def decode_features(self, features: Tensor, bandwidth_id: int | Tensor | None = None) -> Tensor:
        """Features ``(B, dimension, L)`` -> waveform ``(B, L * hop_length)``."""
        return self.head(self.backbone(features, self._bandwidth_id(bandwidth_id, features.device)))

    def decode(self, codes: Tensor, bandwidth_id: int | Tensor | None = None) -> Tensor:
        """Codes ``(B, Q, L)`` (any ``Q <= 8``: the first ``Q`` codebooks) -> waveform ``(B, L * hop_length)``."""
        return self.decode_features(self.features(codes), bandwidth_id)

    def forward(self, wav: Tensor, bandwidth_id: int | Tensor | None = None, n_q: int | None = None,
                bandwidth: float | None = None) -> LanguageCodecOutput:
        """Encode, quantise (straight-through; EMA codebook updates and a random ``n_q`` in {3..8} in training unless
        ``n_q``/``bandwidth`` is given) and decode ``wav (B, T)``."""
        wav = self._wav(wav)
        z = self.encoder(wav[:, None])
        q = self.quantizer(z, n_q=self.num_quantizers_for(bandwidth, n_q))
        audio = self.decode_features(q.quantized, bandwidth_id)[:, : wav.shape[-1]]
        return LanguageCodecOutput(audio, q.codes, q, z)


# --------------------------------------------------------------------------- checkpoint converter
_QUANT = re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.(inited|cluster_size|embed|embed_avg)$")
_DROP = re.compile(r"^(encodec\.decoder\.|head\.istft\.window$)")


def checkpoint_filter_fn(state: dict[str, Any], model: LanguageCodec) -> dict[str, Tensor]:
    """Official Language-Codec checkpoint (the Lightning ``.ckpt``'s ``state_dict``, e.g. ``languagecodec_paper_8nq``)
    -> this layout.

    ``feature_extractor.encodec.encoder.*`` -> ``encoder.*``; ``feature_extractor.encodec.quantizer.vq.layers.i.
    _codebook.*`` -> ``quantizer.layers.i.*`` (``inited`` -> ``initted``; the 128-wide ``embed``/``embed_avg`` of
    the masked quantizers cut to their channel group, refused when they are not zero outside it); ``backbone.*`` and
    ``head.out.*`` keep their names; the unused SEANet decoder, the head's window, the discriminators and loss
    modules are dropped; legacy weight-norm keys become parametrizations.
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    q = model.quantizer
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
            if not m:
                continue
            i, name = int(m.group(1)), m.group(2)
            if name in ("embed", "embed_avg") and i < q.num_masked and v.shape[-1] != q.codebook_width(i):
                lo, hi = q.group(i)
                rest = torch.cat([v[:, :lo], v[:, hi:]], 1)
                if rest.numel() and bool(rest.abs().max() > 1e-6 * max(float(v.abs().max()), 1.0)):
                    raise CheckpointError(f"{k}: masked quantizer {i} has non-zero code entries outside its channels "
                                          f"[{lo}, {hi}); not a Language-Codec MCRVQ codebook")
                v = v[:, lo:hi]
            out[f"quantizer.layers.{i}.{'initted' if name == 'inited' else name}"] = v
        elif k.startswith("backbone.") or (k.startswith("head.") and not _DROP.match(k)):
            out[k] = v
    return convert_legacy_weight_norm_keys(out)


# --------------------------------------------------------------------------- registered variants
_TINY = dict(sample_rate=8000, ratios=(4, 2), dimension=9, n_filters=2, lstm=1, codebook_size=32, num_quantizers=5,
             kmeans_iters=2, backbone_dim=8, intermediate_dim=12, num_layers=2)
_SOURCE = ("official configs/languagecodec_mm.yaml + EncodecFeatures: encoder 7,425,792 (encodec.modules."
           "SEANetEncoder with the official arguments, measured) + backbone 11,061,888 (vocos.models."
           "VocosBackbone(128, 384, 1152, 12, adanorm_num_embeddings=4), measured) + ISTFTHead 493,570 (Linear 384 "
           "-> 1282); weight-norm g and v counted; codebooks are buffers; the official EncodecFeatures' unused SEANet "
           "decoder (7,426,018) is not built; measured here on meta")


@register_model(family="codec",
                paper="Language-Codec: Bridging Discrete Codec Representations and Speech Language Models "
                      "(Ji et al., ACL 2025)",
                arxiv="2402.12208", params=18_981_250, params_source=_SOURCE, verified="A", tiny=_TINY,
                official_repo="https://github.com/jishengpeng/Languagecodec",
                license="MIT (official code); released weights: see the official repository",
                converter=checkpoint_filter_fn)
def language_codec_8nq(**overrides) -> LanguageCodec:
    """Language-Codec as released (``languagecodec_paper_8nq``): 8 MCRVQ codebooks of 1024 at 75 frames/s, 6 kbit/s
    at 24 kHz; fewer codebooks (``n_q`` 3..7) at 2.25-5.25 kbit/s."""
    return LanguageCodec(build_config(LanguageCodecConfig, {}, **overrides))
