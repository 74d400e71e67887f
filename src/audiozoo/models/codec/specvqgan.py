"""SpecVQGAN's spectrogram codebook: a VQGAN over mel spectrograms (the first stage of SpecVQGAN).

Paper: Vladimir Iashin, Esa Rahtu, "Taming Visually Guided Sound Generation", BMVC 2021, arXiv:2110.08791
(Section 3.1, "Spectrogram codebook"). Official code: https://github.com/v-iashin/SpecVQGAN (MIT):
``specvqgan/models/vqgan.py`` (``VQModel``), ``specvqgan/modules/diffusionmodules/model.py`` (``Encoder``,
``Decoder``, taken from taming-transformers), ``specvqgan/modules/vqvae/quantize.py`` (``VectorQuantizer``),
``configs/vggsound_codebook.yaml`` / ``vas_codebook.yaml``, ``feature_extraction/extract_mel_spectrogram.py``.
Read for the facts; nothing is copied. Blocks: :mod:`audiozoo.nn.autoencoder2d` (encoder, decoder, PatchGAN) and
:class:`audiozoo.nn.VectorQuantizer`; losses (LPAPS, VQGAN loss) in :mod:`audiozoo.train.losses.lpaps` and the
``specvqgan`` task.

Architecture (``configs/vggsound_codebook.yaml``): the mel ``(B, 1, 80, 848)`` is one image; a 2-D conv encoder
(``ch 128``, ``ch_mult (1, 1, 2, 2, 4)``, 2 ResNet blocks per level, attention at the deepest level -- the
official ``attn_resolutions: [53]`` = 848 / 2^4 --, ``z_channels 256``) downsamples both axes 16x to a 5 x 53 grid;
a 1x1 conv, then one learned codebook of **1024 x 256** (VAS: 128 codes), a 1x1 conv and the mirrored decoder.
Front end (``extract_mel_spectrogram.py``): 22.05 kHz, ``|STFT|`` (n_fft 1024, hop 256, Hann, centred), Slaney mel
80 bands 125-7600 Hz, ``20 log10(max(mel, 1e-5)) - 20``, ``+100, /100``, clipped to [0, 1], then ``2x - 1``
(``specvqgan/data/vggsound.py``): network input ``clip(0.4 log10(mel) + 0.6, -1, 1)`` (``norm_scale``,
``norm_offset``, ``norm_clip``). Parameters: **72,137,089** (VAS 71,907,713), measured on the official ``Encoder``,
``Decoder``, ``VectorQuantizer`` and the two 1x1 convs built from the config (the training loss's discriminator,
2,763,585, and LPAPS are not part of the codec).

Codec interface (family ``codec``, what a token language model consumes). The ``Q x L`` code grid is read as
``Q = n_mels / prod(f_freq)`` parallel streams (one per frequency band, row 0 the lowest) of
``L = T // hop_length`` frames, ``hop_length = mel hop x prod(f_time)``: ``encode(wav (B, T)) -> codes (B, Q, L)``.
All rows share one codebook (``codebook_size``). SpecVQGAN's transformer reads the grid column by column
(``ColumnMajor`` permuter: ``codes.transpose(1, 2).reshape(B, L * Q)``). Bitrate ``Q x log2(K) x frame_rate``:
the VGGSound codebook codes 5 x 10 bits x 5.38 frames/s = 269 bit/s. ``encode_mel`` / ``decode_mel`` work on the
front end's log-mel ``(B, n_mels, M)`` (a vocoder's input); ``decode(codes) -> wav (B, L * hop_length)`` inverts
the decoded mel with the built-in Griffin-Lim (``griffin_lim_iters``); a real vocoder is composed outside this
file: ``resolve_model("specvqgan_speech.TAG+hifigan_v1.universal")`` (:mod:`audiozoo.models.codec.system`).

``specvqgan_speech`` (not in the paper): the same VQGAN on ``hifigan_v1.universal``'s mel (22.05 kHz, 80 mels,
n_fft 1024, hop 256, 0-8 kHz, ``ln(max(., 1e-5))``, uncentred: ``dsp.VocoderMel`` defaults), mapped to about
[-1, 1] by ``(ln mel + 4.5) / 7`` (not clipped, so the decoded mel goes back to the vocoder's units exactly),
downsampled 8x in frequency and 4x in time: 10 streams x 21.5 frames/s x 10 bits = **2153 bit/s**; 1/8 of the
paper's width (3,985,817 parameters) and an EMA codebook with the anti-collapse options of ``nn.VectorQuantizer``
(8-d cosine lookup, split restarts of dead codes; docs/models/specvqgan.md has the smoke runs that chose them).

Departures: per-level (freq, time) factors and attention given by level index (options; the paper configs use
the official 2x2 everywhere); the codebook may be an EMA codebook with k-means init and dead-code replacement
(``codebook_ema``; the paper's is learned by its codebook loss, as VQ-VAE). The official quantiser's loss is
``||sg[e] - z||^2 + 0.25 ||e - sg[z]||^2`` -- the 0.25 on the *codebook* term, the reverse of VQ-VAE's beta (a
known taming-transformers quirk); the ``specvqgan`` task reproduces it (``commitment 1, codebook 0.25``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...errors import AudioError, ConfigError
from ...nn.autoencoder2d import Decoder2d, Encoder2d
from ...nn.griffinlim import GriffinLimVocoder
from ...nn.quantize import VectorQuantizer, VQOutput
from ...registry import WeightSet, register_model
from ..contracts import CodecModel

__all__ = ["SpecVQGAN", "SpecVQGANConfig", "SpecVQGANOutput", "checkpoint_filter_fn"]


@dataclass
class SpecVQGANConfig:
    # front end: dsp.VocoderMel (SpecVQGAN: centred |STFT|, Slaney mel 125-7600 Hz, log10 clamped at 1e-5)
    sample_rate: int = 22050
    n_fft: int = 1024
    mel_hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 125.0
    f_max: float | None = 7600.0
    center: bool = True
    mel_log: str = "log10"
    mag_eps: float = 0.0
    amin: float = 1e-5
    # log-mel -> network input: clip(norm_scale * logmel + norm_offset, -norm_clip, norm_clip) (no clip if None)
    norm_scale: float = 0.4
    norm_offset: float = 0.6
    norm_clip: float | None = 1.0
    # 2-D autoencoder (taming "ddconfig")
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (4,)
    factors: tuple[tuple[int, int], ...] | None = None  # per level transition (f_freq, f_time); None: all (2, 2)
    z_channels: int = 256
    dropout: float = 0.0
    norm_groups: int = 32
    # codebook
    codebook_size: int = 1024
    embed_dim: int = 256
    codebook_ema: bool = False
    decay: float = 0.99
    kmeans_init: bool = False
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0
    # anti-collapse options of nn.VectorQuantizer (not in the paper): factorised, cosine, standardised lookup...
    codebook_dim: int | None = None
    l2_normalize: bool = False
    standardize: bool = False
    replace_interp: float = 1.0
    count_decay: float | None = None
    # waveform decoding without a composed vocoder
    griffin_lim_iters: int = 32


class SpecVQGANOutput(NamedTuple):
    """``reconstruction`` and ``input``: network-domain mels ``(B, 1, n_mels, M)``; ``codes (B, Q, L)``; ``vq``: the
    quantiser's :class:`audiozoo.nn.VQOutput` (flattened ``(B, D, Q * L)`` terms for the codebook losses)."""

    reconstruction: Tensor
    input: Tensor
    codes: Tensor
    vq: VQOutput


class SpecVQGAN(CodecModel):
    """Spectrogram VQGAN codebook (see the module docstring). Attributes: ``sample_rate``, ``hop_length`` (samples
    per code frame), ``frame_rate``, ``num_codebooks`` (frequency rows ``Q``), ``codebook_size``, ``bitrate``,
    ``n_mels``, ``mel_hop_length``, ``time_factor`` / ``freq_factor`` (total downsampling), ``frontend``."""

    def __init__(self, config: SpecVQGANConfig):
        super().__init__()
        c = self.config = config
        if c.mel_log not in ("ln", "log10"):
            raise ConfigError(f"SpecVQGAN mel_log must be 'ln' or 'log10', got {c.mel_log!r}")
        if c.codebook_size < 2 or c.embed_dim < 1:
            raise ConfigError(f"SpecVQGAN needs codebook_size >= 2 and embed_dim >= 1, got {c.codebook_size}, "
                              f"{c.embed_dim}")
        if not c.norm_scale > 0:
            raise ConfigError(f"norm_scale must be > 0, got {c.norm_scale}")
        factors = tuple(tuple(f) for f in c.factors) if c.factors is not None else ((2, 2),) * (len(c.ch_mult) - 1)
        self.freq_factor = math.prod(f[0] for f in factors)
        self.time_factor = math.prod(f[1] for f in factors)
        if c.n_mels % self.freq_factor:
            raise ConfigError(f"n_mels ({c.n_mels}) must be divisible by the frequency downsampling "
                              f"({self.freq_factor}) so that decoding restores every band")
        ae = dict(z_channels=c.z_channels, ch=c.ch, ch_mult=c.ch_mult, num_res_blocks=c.num_res_blocks,
                  attn_levels=c.attn_levels, factors=factors, dropout=c.dropout, groups=c.norm_groups)
        self.frontend = VocoderMel(c.sample_rate, c.n_fft, c.mel_hop_length, c.win_length, c.n_mels, c.f_min,
                                   c.f_max, center=c.center, mag_eps=c.mag_eps, log=c.mel_log, amin=c.amin)
        self.encoder = Encoder2d(in_channels=1, **ae)
        self.quant_conv = nn.Conv2d(c.z_channels, c.embed_dim, 1)
        self.quantize = VectorQuantizer(c.embed_dim, c.codebook_size, ema=c.codebook_ema, decay=c.decay,
                                        kmeans_init=c.kmeans_init, kmeans_iters=c.kmeans_iters,
                                        dead_code_threshold=c.dead_code_threshold, codebook_dim=c.codebook_dim,
                                        l2_normalize=c.l2_normalize, standardize=c.standardize,
                                        replace_interp=c.replace_interp, count_decay=c.count_decay)
        self.post_quant_conv = nn.Conv2d(c.embed_dim, c.z_channels, 1)
        self.decoder = Decoder2d(out_channels=1, **ae)
        # parameter-free waveform inversion of the decoded mel (a real vocoder is composed by the resolver)
        self.griffinlim = GriffinLimVocoder(c.sample_rate, c.n_fft, c.mel_hop_length, c.win_length, c.n_mels,
                                            c.f_min, c.f_max, n_iter=c.griffin_lim_iters, center=c.center)
        self.sample_rate = c.sample_rate
        self.n_mels, self.mel_hop_length = c.n_mels, c.mel_hop_length
        self.hop_length = c.mel_hop_length * self.time_factor
        self.frame_rate = c.sample_rate / self.hop_length
        self.num_codebooks = c.n_mels // self.freq_factor
        self.codebook_size = c.codebook_size

    # ---- mel <-> network domain ----------------------------------------------------------------------
    def normalize(self, logmel: Tensor) -> Tensor:
        """Front-end log-mel ``(B, n_mels, M)`` -> network input ``(B, 1, n_mels, M)``."""
        c = self.config
        x = c.norm_scale * logmel + c.norm_offset
        if c.norm_clip is not None:
            x = x.clamp(-c.norm_clip, c.norm_clip)
        return x[:, None]

    def denormalize(self, x: Tensor) -> Tensor:
        """Network-domain mel ``(B, 1, n_mels, M)`` -> the front end's log-mel ``(B, n_mels, M)``."""
        c = self.config
        if c.norm_clip is not None:
            x = x.clamp(-c.norm_clip, c.norm_clip)
        return (x[:, 0] - c.norm_offset) / c.norm_scale

    def mel(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> log-mel ``(B, n_mels, (T // hop_length) * time_factor)`` (trailing frames that
        do not fill a code frame are dropped, so the codes have exactly ``T // hop_length`` frames)."""
        if wav.ndim == 3 and wav.shape[1] == 1:
            wav = wav[:, 0]
        if wav.ndim != 2:
            raise AudioError(f"SpecVQGAN expects a mono waveform (B, T), got {tuple(wav.shape)}")
        n = wav.shape[-1] // self.hop_length
        if n < 1:
            raise AudioError(f"SpecVQGAN needs at least one code frame ({self.hop_length} samples at "
                             f"{self.sample_rate} Hz), got {wav.shape[-1]} samples")
        mel, _ = self.frontend(wav.float())
        return mel[..., : n * self.time_factor].to(wav.dtype)

    def image(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> network input ``(B, 1, n_mels, M)`` (the training task's target)."""
        return self.normalize(self.mel(wav))

    def _check_mel(self, logmel: Tensor) -> Tensor:
        if logmel.ndim != 3 or logmel.shape[1] != self.n_mels:
            raise AudioError(f"SpecVQGAN expects a log-mel (B, {self.n_mels}, M), got {tuple(logmel.shape)}")
        if logmel.shape[-1] < self.time_factor:
            raise AudioError(f"SpecVQGAN needs at least {self.time_factor} mel frames, got {logmel.shape[-1]}")
        if logmel.shape[-1] % self.time_factor:  # (no slice when already whole: an exported graph stays dynamic)
            logmel = logmel[..., : logmel.shape[-1] // self.time_factor * self.time_factor]
        return logmel

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "encode") -> dict[str, Any]:
        """ONNX halves on the mel (the STFT front end and the vocoder are separate modules, as for vocoders):
        ``on="encode"``: log-mel ``(B, n_mels, M) -> codes (B, Q, M / time_factor)`` (``encode_mel``);
        ``on="decode"``: ``codes (B, Q, L) -> log-mel (B, n_mels, L * time_factor)`` (``decode_mel``). ``length`` in
        code frames; batch and frames are dynamic."""
        frames = int(length or 16)
        g = torch.Generator().manual_seed(0)
        if on == "encode":
            c = self.config
            # a plausible log-mel: the network input spans [-1, 1]
            x = 2 * torch.rand(batch, self.n_mels, frames * self.time_factor, generator=g) - 1
            mel = (x - c.norm_offset) / c.norm_scale
            return {"example_inputs": (mel,), "input_names": ["mel"], "output_names": ["codes"],
                    "dynamic_axes": {"mel": {0: "batch", 2: "frames"}, "codes": {0: "batch", 2: "frames"}},
                    "method": "encode_mel"}
        if on == "decode":
            codes = torch.randint(0, self.codebook_size, (batch, self.num_codebooks, frames), generator=g)
            return {"example_inputs": (codes,), "input_names": ["codes"], "output_names": ["mel"],
                    "dynamic_axes": {"codes": {0: "batch", 2: "frames"}, "mel": {0: "batch", 2: "frames"}},
                    "method": "decode_mel"}
        raise ConfigError(f"SpecVQGAN exports on='encode' (mel -> codes) or on='decode' (codes -> mel), got {on!r}")

    # ---- the VQGAN ---------------------------------------------------------------------------------------
    def _latents(self, x: Tensor) -> Tensor:
        """Network input ``(B, 1, F, M)`` -> pre-quantisation latents ``(B, embed_dim, Q, L)``."""
        return self.quant_conv(self.encoder(x))

    def _quantize(self, h: Tensor) -> tuple[VQOutput, Tensor, Tensor]:
        """Latents ``(B, D, Q, L)`` -> (VQ output on the flattened grid, quantised ``(B, D, Q, L)``, codes)."""
        b, d, q, length = h.shape
        vq = self.quantize(h.reshape(b, d, q * length))
        return vq, vq.quantized.reshape(b, d, q, length), vq.codes.reshape(b, q, length)

    def _decode_latents(self, zq: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(zq))

    def forward_image(self, x: Tensor) -> SpecVQGANOutput:
        """Network-domain mel ``(B, 1, n_mels, M)`` (``M`` a multiple of ``time_factor``) -> reconstruction,
        codes and the quantiser output (straight-through; an EMA codebook updates in training)."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels or x.shape[-1] % self.time_factor:
            raise AudioError(f"SpecVQGAN.forward_image expects (B, 1, {self.n_mels}, M) with M a multiple of "
                             f"{self.time_factor}, got {tuple(x.shape)}")
        vq, zq, codes = self._quantize(self._latents(x))
        return SpecVQGANOutput(self._decode_latents(zq), x, codes, vq)

    def forward(self, wav: Tensor) -> SpecVQGANOutput:
        """Waveform ``(B, T)`` -> :class:`SpecVQGANOutput` (its mel reconstruction in the network domain)."""
        return self.forward_image(self.image(wav))

    # ---- codec interface ---------------------------------------------------------------------------------
    def encode_mel(self, logmel: Tensor) -> Tensor:
        """Front-end log-mel ``(B, n_mels, M)`` -> codes ``(B, Q, M // time_factor)`` int64."""
        h = self._latents(self.normalize(self._check_mel(logmel)))
        b, d, q, length = h.shape
        return self.quantize.encode(h.reshape(b, d, q * length)).reshape(b, q, length)

    def decode_mel(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` -> log-mel ``(B, n_mels, L * time_factor)`` in the front end's units (a vocoder's
        input when the front end is the vocoder's)."""
        if codes.ndim != 3 or codes.is_floating_point() or codes.shape[1] != self.num_codebooks:
            raise AudioError(f"SpecVQGAN.decode expects integer codes (B, {self.num_codebooks}, L), got "
                             f"{tuple(codes.shape)} {codes.dtype}")
        b, q, length = codes.shape
        zq = self.quantize.decode(codes.reshape(b, q * length)).reshape(b, -1, q, length)
        return self.denormalize(self._decode_latents(zq))

    def encode(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> codes ``(B, Q, T // hop_length)`` int64."""
        return self.encode_mel(self.mel(wav))

    def vocode(self, logmel: Tensor) -> Tensor:
        """The built-in Griffin-Lim inverse of a log-mel ``(B, n_mels, M)`` -> ``(B, M * mel_hop_length)``."""
        ln = logmel * math.log(10.0) if self.config.mel_log == "log10" else logmel
        wav, _ = self.griffinlim(ln.float())
        return F.pad(wav, (0, max(0, logmel.shape[-1] * self.mel_hop_length - wav.shape[-1])))[
            ..., : logmel.shape[-1] * self.mel_hop_length]

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` -> waveform ``(B, L * hop_length)`` through the decoded mel and Griffin-Lim."""
        return self.vocode(self.decode_mel(codes))


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Any], model: SpecVQGAN) -> dict[str, Tensor]:
    """Official ``VQModel`` checkpoint (Lightning ``{"state_dict": ...}``) -> this layout: the encoder, decoder and
    1x1 convs share names; ``quantize.embedding.weight`` -> ``quantize.embed``; the training loss (``loss.*``:
    LPAPS and the discriminator) is dropped. The quantiser's ``initted`` / ``cluster_size`` buffers (not in the
    official model) keep their initial values."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k == "quantize.embedding.weight":
            out["quantize.embed"] = v
        elif k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")):
            out[k] = v
    own = model.state_dict()
    for k in ("quantize.initted", "quantize.cluster_size"):
        if k in own and k not in out:
            out[k] = own[k]
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="codec",
    paper="Taming Visually Guided Sound Generation (Iashin & Rahtu, BMVC 2021): spectrogram codebook",
    arxiv="2110.08791",
    official_repo="https://github.com/v-iashin/SpecVQGAN",
    license="MIT (official code); this reimplementation: the project's license",
    converter=checkpoint_filter_fn,
)

_MEASURED = ("measured on the official v-iashin/SpecVQGAN modules (specvqgan/modules/diffusionmodules/model.py "
             "Encoder + Decoder, vqvae/quantize.py VectorQuantizer, the two 1x1 convs of VQModel) built from "
             "configs/{}_codebook.yaml: encoder 29,295,872 + decoder 42,447,489 + 1x1 convs 131,584 + codebook {} "
             "(training-loss discriminator and LPAPS excluded); here on meta")

_TINY = dict(n_fft=256, mel_hop_length=64, win_length=256, n_mels=16, f_min=0.0, f_max=8000.0, ch=8, ch_mult=(1, 2),
             attn_levels=(1,), z_channels=8, norm_groups=4, codebook_size=16, embed_dim=8, codebook_ema=True,
             griffin_lim_iters=2)
_TINY_SPEECH = dict(_TINY, factors=((2, 1),), kmeans_iters=2)  # the speech layout: time kept at the last transition

# hifigan_v1.universal's mel (dsp.VocoderMel defaults) and its natural-log range [-11.5, ~2.5] mapped to ~[-1, 1]
_SPEECH = dict(f_min=0.0, f_max=8000.0, center=False, mel_log="ln", mag_eps=1e-9, norm_scale=1 / 7,
               norm_offset=4.5 / 7, norm_clip=None, ch=16, ch_mult=(1, 2, 4, 8), norm_groups=8, attn_levels=(3,),
               factors=((2, 2), (2, 2), (2, 1)), z_channels=64, embed_dim=64, codebook_ema=True, kmeans_init=True,
               kmeans_iters=20, decay=0.95, dead_code_threshold=0.5, codebook_dim=8, l2_normalize=True,
               replace_interp=0.2, count_decay=0.8)


@register_model(params=72_137_089, params_source=_MEASURED.format("vggsound", "262,144 (1024 x 256)"),
                verified="AP", tiny=_TINY, **_PAPER)
def specvqgan_vggsound(**overrides) -> SpecVQGAN:
    """SpecVQGAN codebook trained on VGGSound in the paper (80 x 848 mels -> 5 x 53 codes of 1024)."""
    return SpecVQGAN(build_config(SpecVQGANConfig, {}, **overrides))


@register_model(params=71_907_713, params_source=_MEASURED.format("vas", "32,768 (128 x 256)"),
                verified="AP", tiny=_TINY, **_PAPER)
def specvqgan_vas(**overrides) -> SpecVQGAN:
    """SpecVQGAN codebook of the VAS experiments (128 codes)."""
    return SpecVQGAN(build_config(SpecVQGANConfig, {"codebook_size": 128}, **overrides))


_SPEECH_WEIGHTS = {
    "speech_mix": WeightSet(
        "Speech codec trained here: 4,000 steps (~45 min on shared CPU threads; L1 + codebook loss, no GAN/LPAPS) on "
        "cache/codec_speech (real SiSec 2011 speech of 8 speakers + espeak-ng/flite/Piper speech). Decode with "
        "+hifigan_v1.universal. Held-out real speech (6 CMU ARCTIC + 3 LibriSpeech, never trained on) at 2153 bit/s: "
        "PESQ-NB 1.68, STOI 0.828, Whisper WER 22.2 % (recording 7.4 %); Codec2 2400: 2.42 / 0.858 / 13.0 % - it "
        "does NOT reach Codec2 yet (docs/models/codec_baselines.md)",
        sha256="92ec4938974042cf31170c433046dcd1c2e4a7e701991a89cbe46dc4d17f5b10",
        recipe="recipes/codec/specvqgan_speech.yaml (trainer.max_steps=2200, then resumed to 4000; "
               "task.disc_start=100000)", commit="b27c79b",
        license="weights: trained on SiSec 2011 speech (research use, ../shared/data/README) + project-made speech",
        metrics={"held_out": "6 CMU ARCTIC + 3 LibriSpeech clips, 64.8 s (recipes/codec/eval_codecs.py)",
                 "bitrate": 2153, "pesq_nb": 1.68, "pesq_wb": 1.20, "stoi": 0.828, "dnsmos_ovrl": 2.73, "wer": 0.222,
                 "codec2_2400_pesq_nb": 2.42, "codec2_2400_stoi": 0.858, "codec2_2400_wer": 0.130}),
}


@register_model(params=3_985_817, params_source="not a paper config: counted here (the EMA codebook, 1024 x 8, is a "
                "buffer; see docs/models/specvqgan.md)",
                verified="ATU", tiny=_TINY_SPEECH, weights=_SPEECH_WEIGHTS, **_PAPER)
def specvqgan_speech(**overrides) -> SpecVQGAN:
    """Speech codec on hifigan_v1.universal's mel: 8x frequency, 4x time downsampling, 10 x 21.5 codes/s of 1024
    (2153 bit/s); EMA codebook (k-means init, 8-d cosine lookup, split restarts). Decode with
    ``+hifigan_v1.universal`` for real speech."""
    return SpecVQGAN(build_config(SpecVQGANConfig, dict(_SPEECH), **overrides))
