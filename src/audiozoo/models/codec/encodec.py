"""EnCodec: SEANet encoder, residual vector quantiser, SEANet decoder -- the shared base of the codec family.

Paper: Alexandre Défossez, Jade Copet, Gabriel Synnaeve, Yossi Adi, "High Fidelity Neural Audio Compression",
arXiv:2210.13438 (2022). Official code: https://github.com/facebookresearch/encodec (PyPI ``encodec`` 0.1.1, code
CC BY-NC 4.0: read for the facts -- shapes, padding, defaults -- and used only as a test-time reference; nothing
is copied). The blocks live in ``audiozoo.nn`` (:mod:`audiozoo.nn.seanet`, :class:`audiozoo.nn.ResidualVQ`) so
WavTokenizer and Language-Codec reuse them.

Architecture (``encodec_24khz``, Section 3 and ``EncodecModel._get_model``): mono 24 kHz; SEANet with 32 base
filters, ratios (8, 5, 4, 2) (hop 320, 75 frames/s), latent dimension 128, 2 LSTM layers, causal convolutions with
weight norm, reflect padding; an RVQ of 32 codebooks of 1024 entries (10 bits; ``n_q = 1000 * 24 kbps // (75 *
10)``), EMA updates (decay 0.99), k-means init (50 iterations), dead codes (EMA count < 2) replaced by batch vectors.
A target bandwidth ``b`` kbps uses ``n_q = max(1, floor(1000 b / (10 * 75)))`` codebooks: 1.5 / 3 / 6 / 12 / 24 kbps
-> 2 / 4 / 8 / 16 / 32 (Section 3.2; the same rule as ``ResidualVectorQuantizer.get_num_quantizers_for_bandwidth``).

Interface (family ``codec``): ``encode(wav (B, T)) -> codes (B, n_q, ceil(T / 320))``, ``decode(codes) -> wav
(B, L * 320)``, ``forward(wav) -> EnCodecOutput(audio (B, T), codes, vq)`` (the quantiser's output for the
commitment loss; in training the codebooks update). ``n_q`` / ``bandwidth`` choose the number of codebooks.

Departures: mono only (the 48 kHz stereo model, with its time-group norm, per-segment volume normalisation and
1 s overlap-add segments, is not registered; the blocks support its ``time_group_norm``); no entropy-coding LM;
k-means init uses k-means++ seeds (:func:`audiozoo.nn.quantize.kmeans`; EnCodec samples random seeds).

Parameter count (``encodec_24khz``): 14,851,810 (measured on the official
``EncodecModel.encodec_model_24khz(pretrained=False)``: weight-norm ``g`` and ``v`` both counted, codebooks are
buffers, not parameters).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ...config import build_config
from ...errors import AudioError, ConfigError
from ...nn.quantize import ResidualVQ
from ...nn.seanet import SEANetDecoder, SEANetEncoder
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ..contracts import CodecModel, CodecOutput

__all__ = ["EnCodec", "EnCodecConfig", "EnCodecOutput", "checkpoint_filter_fn"]


@dataclass
class EnCodecConfig:
    sample_rate: int = 24000
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    lstm: int = 2
    causal: bool = True
    norm: str = "weight_norm"
    pad_mode: str = "reflect"
    true_skip: bool = False
    compress: int = 2
    num_quantizers: int = 32
    codebook_size: int = 1024
    target_bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0)
    decay: float = 0.99
    kmeans_iters: int = 50
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


EnCodecOutput = CodecOutput  # the codec family's forward output (models/contracts.py)


class EnCodec(CodecModel):
    """EnCodec-style codec (see the module docstring). Attributes: ``sample_rate``, ``hop_length``, ``frame_rate``,
    ``num_codebooks``, ``codebook_size``, ``bitrate`` (all codebooks), ``target_bandwidths`` (kbps)."""

    def __init__(self, config: EnCodecConfig):
        super().__init__()
        c = self.config = config
        if c.codebook_size < 2 or c.num_quantizers < 1:
            raise ConfigError(f"EnCodec needs codebook_size >= 2 and num_quantizers >= 1, got {c.codebook_size}, "
                              f"{c.num_quantizers}")
        kw = dict(channels=1, dimension=c.dimension, n_filters=c.n_filters, n_residual_layers=c.n_residual_layers,
                  ratios=c.ratios, norm=c.norm, causal=c.causal, pad_mode=c.pad_mode, true_skip=c.true_skip,
                  compress=c.compress, lstm=c.lstm)
        self.encoder = SEANetEncoder(**kw)
        self.quantizer = ResidualVQ(c.dimension, c.num_quantizers, c.codebook_size, decay=c.decay,
                                    kmeans_init=True, kmeans_iters=c.kmeans_iters,
                                    dead_code_threshold=c.dead_code_threshold,
                                    codebook_dim=c.codebook_dim, l2_normalize=c.l2_normalize,
                                    quantizer_dropout=c.quantizer_dropout, replace_interp=c.replace_interp,
                                    count_decay=c.count_decay, standardize=c.standardize,
                                    standardize_input=c.standardize_input)
        self.decoder = SEANetDecoder(**kw)
        self.sample_rate = c.sample_rate
        self.hop_length = int(math.prod(c.ratios))
        self.frame_rate = c.sample_rate / self.hop_length
        self.num_codebooks = c.num_quantizers
        self.codebook_size = c.codebook_size
        self.target_bandwidths = tuple(c.target_bandwidths)

    # ---- bandwidth -> number of codebooks ------------------------------------------------------------
    def num_quantizers_for(self, bandwidth: float | None = None, n_q: int | None = None) -> int:
        """Codebooks used for ``n_q`` (wins) or a target ``bandwidth`` in kbps (EnCodec's rule: ``max(1, floor(
        1000 b / (log2(K) * ceil(frame_rate))))``); all of them when both are None."""
        if n_q is not None:
            if not 1 <= int(n_q) <= self.num_codebooks:
                raise ConfigError(f"n_q must be in [1, {self.num_codebooks}], got {n_q}")
            return int(n_q)
        if bandwidth is None or bandwidth <= 0:
            return self.num_codebooks
        per_q = math.log2(self.codebook_size) * math.ceil(self.frame_rate) / 1000
        n = max(1, math.floor(bandwidth / per_q))
        if n > self.num_codebooks:
            raise ConfigError(f"bandwidth {bandwidth} kbps needs {n} codebooks; this model has {self.num_codebooks} "
                              f"(max {self.num_codebooks * per_q:g} kbps)")
        return n

    # ---- codec interface -----------------------------------------------------------------------------
    def _wav(self, wav: Tensor) -> Tensor:
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.ndim != 2:
            raise AudioError(f"{type(self).__name__} expects a mono waveform (B, T) or (B, 1, T), got "
                             f"{tuple(wav.shape)}")
        if wav.shape[-1] < 1:
            raise AudioError(f"{type(self).__name__} got an empty waveform")
        return wav

    def encode_latents(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> continuous latents ``(B, dimension, ceil(T / hop))``."""
        return self.encoder(self._wav(wav)[:, None])

    def encode(self, wav: Tensor, n_q: int | None = None, bandwidth: float | None = None) -> Tensor:
        """Waveform ``(B, T)`` -> codes ``(B, n_q, ceil(T / hop_length))`` int64."""
        return self.quantizer.encode(self.encode_latents(wav), self.num_quantizers_for(bandwidth, n_q))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` (``Q <= num_codebooks``: the first ``Q`` codebooks) -> waveform ``(B, L * hop)``."""
        if codes.ndim == 2:
            codes = codes[:, None]
        if codes.ndim != 3 or codes.is_floating_point():
            raise AudioError(f"{type(self).__name__}.decode expects integer codes (B, Q, L), got "
                             f"{tuple(codes.shape)} {codes.dtype}")
        return self.decoder(self.quantizer.decode(codes))[:, 0]

    def forward(self, wav: Tensor, n_q: int | None = None, bandwidth: float | None = None) -> EnCodecOutput:
        """Encode, quantise (straight-through; EMA codebook updates in training) and decode ``wav (B, T)``."""
        wav = self._wav(wav)
        z = self.encoder(wav[:, None])
        q = self.quantizer(z, n_q=self.num_quantizers_for(bandwidth, n_q))
        audio = self.decoder(q.quantized)[:, 0, : wav.shape[-1]]
        return EnCodecOutput(audio, q.codes, q, z)

    def pad_to_hop(self, wav: Tensor) -> Tensor:
        """``wav (B, T)`` zero-padded on the right to a multiple of ``hop_length``."""
        return F.pad(wav, (0, (-wav.shape[-1]) % self.hop_length))


# --------------------------------------------------------------------------- checkpoint converter
_QUANT = re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\.(inited|cluster_size|embed|embed_avg)$")


def checkpoint_filter_fn(state: dict[str, Any], model: EnCodec) -> dict[str, Tensor]:
    """Official ``encodec`` state dict (``encodec_24khz-d7cc33bc.th`` or ``EncodecModel.state_dict()``) -> this
    layout: ``quantizer.vq.layers.i._codebook.{inited, embed, embed_avg, cluster_size}`` ->
    ``quantizer.layers.i.{initted, ...}``, legacy weight-norm keys -> parametrizations; encoder/decoder names
    are shared. Codebooks beyond the model's ``num_quantizers`` are dropped (a smaller-bandwidth model)."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        m = _QUANT.match(k)
        if m:
            i, name = int(m.group(1)), m.group(2)
            if i >= model.num_codebooks:
                continue
            out[f"quantizer.layers.{i}.{'initted' if name == 'inited' else name}"] = v
        elif k.startswith(("encoder.", "decoder.")):
            out[k] = v
    return convert_legacy_weight_norm_keys(out)


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="codec",
    paper="High Fidelity Neural Audio Compression (Défossez, Copet, Synnaeve & Adi, 2022)",
    arxiv="2210.13438",
    official_repo="https://github.com/facebookresearch/encodec",
    license="CC BY-NC 4.0 (official code and weights; this reimplementation: the project's license)",
    converter=checkpoint_filter_fn,
)

_TINY = dict(sample_rate=8000, dimension=8, n_filters=2, ratios=(4, 2), lstm=1, num_quantizers=3, codebook_size=16,
             target_bandwidths=(1.0, 2.0, 3.0), kmeans_iters=2)


@register_model(params=14_851_810,
                params_source="official encodec 0.1.1 EncodecModel.encodec_model_24khz(pretrained=False): "
                "sum(p.numel()) = 14,851,810 (weight-norm g and v both counted; the 32 x 1024 x 128 codebooks are "
                "buffers); measured on the package and here on meta", verified="AP", tiny=_TINY, **_PAPER)
def encodec_24khz(**overrides) -> EnCodec:
    """EnCodec 24 kHz mono (causal, weight norm, 32 x 1024 RVQ, 1.5-24 kbps at 75 frames/s)."""
    return EnCodec(build_config(EnCodecConfig, {}, **overrides))
