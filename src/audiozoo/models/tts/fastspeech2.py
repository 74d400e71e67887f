"""FastSpeech 2: non-autoregressive acoustic model with a variance adaptor (duration, pitch, energy).

Paper: Yi Ren, Chenxu Hu, Xu Tan, Tao Qin, Sheng Zhao, Zhou Zhao, Tie-Yan Liu, "FastSpeech 2: Fast and
High-Quality End-to-End Text to Speech", ICLR 2021, arXiv:2006.04558. No official code; the reference
implementation followed here is ming024/FastSpeech2 (MIT), ``config/LJSpeech_paper`` ("closest to the
paper"), ``model/fastspeech2.py``, ``model/modules.py``, ``transformer/``.

Architecture (Section 2 and Appendix A; blocks in :mod:`audiozoo.nn.fastspeech`):

- phoneme embedding + sinusoidal positions -> encoder of 4 feed-forward Transformer (FFT) blocks (hidden 256,
  2 heads, conv FFN 1024 with kernels 9 and 1, dropout 0.2);
- variance adaptor (Section 2.3): duration predictor (log-domain, ``log(d + 1)`` as ming024), length
  regulator, pitch and energy predictors (2 x [conv k3 256 -> ReLU -> LN -> dropout 0.5] -> linear), each
  value quantised into 256 buckets (log-spaced for pitch) whose embedding is added to the hidden sequence;
  ground-truth duration / pitch / energy in training, predictions at inference;
- mel decoder of 4 FFT blocks -> linear to 80 mels -> Tacotron 2 post-net (5 conv, 512 channels, kernel 5;
  ming024 has it, the paper does not mention one).

Pitch comes in three variants. ``pitch_level="cwt"`` is the paper's (Section 2.3, Appendix D; constants of
the authors' NATSpeech ``fs2_orig`` / ``utils/audio/cwt.py``): the per-utterance normalised, interpolated ln F0
contour is decomposed by a Mexican-hat continuous wavelet transform into a 10-scale *pitch spectrogram*
(:mod:`audiozoo.dsp.cwt`); the pitch predictor outputs that spectrogram ``(B, L, 10)`` (its last linear has 10
outputs) and, from the frame-level hidden sequence averaged over time (2 ReLU layers + linear, as NATSpeech's
``cwt_stats_layers``), the utterance mean and std of ln F0; at inference the inverse CWT
(:func:`~audiozoo.dsp.cwt.pitch_icwt`, Suni et al.'s weighted sum) gives the normalised contour, which the
predicted mean / std de-normalise before the bucket embedding. Mean and std are in the corpus units below
(``((mu - mean) / std, sigma / std)`` of an utterance's ln F0 ``mu, sigma``). ``"frame"`` (ming024's option)
predicts the frame-level contour directly; ``"phoneme"`` (ming024's default) its token averages. Energy is
``"frame"`` or ``"phoneme"``. Targets are normalised: pitch is ``(ln F0 - mean) / std`` with unvoiced frames
interpolated, energy ``(E - mean) / std`` (E = L2 norm of the STFT magnitude per frame); the corpus statistics
live in the persistent buffers ``pitch_stats`` / ``energy_stats`` (``[mean, std]``, set by the ``tts`` training
task from the training data). Buckets are uniform in the normalised units over ``[pitch_min, pitch_max]``, i.e.
log-spaced in Hz for pitch, as ming024's ``pitch_quantization: log``.

Output mels are the natural-log mel of HiFi-GAN (:class:`audiozoo.dsp.VocoderMel`: 22.05 kHz, n_fft 1024,
hop 256, 80 mels, 0-8 kHz), channels first ``(B, 80, L)``, so any ``hifigan_v1`` weight set vocodes them;
frames past an item's length hold the log floor ``ln(1e-5)`` (silence).

Tokens: the ids of the model's ``text`` scheme, recorded in the config. ``"piper"``: Piper's phoneme ids
(``^ _ p1 _ p2 _ ... pn _ $`` over espeak-ng IPA code points, the voice's ``phoneme_id_map``; the
``piper-speech`` corpus gives these ids with the voice's own durations per id). ``_`` (id 0) is a real token
there (the gap between phonemes), so padding is carried by ``lengths`` only and the embedding has no padding
row.

Departure (inference path only): when durations / pitch / energy are *predicted* (no targets given) and the
predictions require a gradient, the bucket embeddings and the length regulator pass straight-through gradients
to the predictors (forward values unchanged). The paper never back-propagates through them (it trains on
targets; the predictors learn from their own MSE losses, :mod:`audiozoo.train.losses.tts`), so training is
unaffected; it lets a loss on predicted outputs reach every parameter.

FastSpeech 2s (Section 2.4, Appendix A; :class:`FastSpeech2s`, registered ``fastspeech2s``; no official code and
no reference implementation of 2s: the paper's text, Parallel WaveGAN (Yamamoto et al. 2020, arXiv:1910.11480)
where the paper defers to it, espnet2's JETS read for engineering facts only; ``docs/models/fastspeech2s.md`` says
which number comes from where): the encoder and variance adaptor above (CWT pitch, no post-net) also feed a
waveform decoder -- the frame-level hidden sequence ``(B, L, 256)`` -> one transposed 1-D convolution to 64
channels at the sample rate ("filter size 64"; kernel = stride = hop, so frame ``i`` writes samples ``[i hop,
(i + 1) hop)``, HiFi-GAN's frame grid) -> 30 non-causal gated dilated residual blocks (kernel 3, skip 64;
Parallel WaveGAN's gate 128, 3 cycles of dilations 1..512, 1x1 local conditioning of every block on the
upsampled sequence; :class:`~audiozoo.nn.noncausal_wavenet.NonCausalWaveNet`) -> 1 channel. In training the mel
decoder runs on the full sequence (it helps the text feature extraction) and the waveform decoder on a random
slice of ``segment_frames`` frames (whole utterances do not fit in memory), with the multi-resolution STFT and
LSGAN losses against Parallel WaveGAN's discriminator (the ``tts`` task's ``waveform`` option); at inference the
mel decoder is dropped (:meth:`FastSpeech2s.synthesize` returns the waveform).

License of this implementation: the project's. ming024/FastSpeech2 is MIT (read for layout, not copied).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.cwt import CWT_NUM_SCALES, pitch_icwt
from ...errors import ConfigError
from ...nn.alignment import length_regulate
from ...nn.fastspeech import FFTStack, PostNet, VariancePredictor, bucketize, bucketize_embed, padding_mask
from ...nn.noncausal_wavenet import NonCausalWaveNet
from ...nn.segments import random_segment_starts, slice_segments
from ...registry import WeightSet, register_model
from ..contracts import VarianceTTSModel

LOG_FLOOR = math.log(1e-5)  # HiFi-GAN's log-mel of silence (ln of its amplitude floor)
LEVELS = ("frame", "phoneme")
PITCH_LEVELS = (*LEVELS, "cwt")  # "cwt": the paper's continuous-wavelet pitch spectrogram (frame level)


@dataclass
class FastSpeech2Config:
    """FastSpeech 2 hyper-parameters (defaults: ming024 ``LJSpeech_paper`` = paper Appendix A)."""

    vocab_size: int = 256  # Piper's num_symbols (ids of the 'piper' text scheme)
    hidden: int = 256
    encoder_layers: int = 4
    decoder_layers: int = 4
    heads: int = 2
    ffn_dim: int = 1024
    ffn_kernels: tuple[int, int] = (9, 1)
    dropout: float = 0.2
    variance_filter: int = 256
    variance_kernel: int = 3
    variance_dropout: float = 0.5
    n_bins: int = 256
    pitch_level: str = "frame"
    energy_level: str = "frame"
    # bucket ranges in normalised units ((x - mean) / std of the training corpus)
    pitch_min: float = -4.0
    pitch_max: float = 4.0
    energy_min: float = -2.5
    energy_max: float = 5.0
    postnet: bool = True
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_layers: int = 5
    max_positions: int = 1000
    n_speakers: int = 0
    # output: HiFi-GAN's mel (dsp.VocoderMel defaults)
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    # text front end the ids come from: {"scheme": "piper", "language": "en-us", "phoneme_id_map": {...}}
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for k, allowed in (("pitch_level", PITCH_LEVELS), ("energy_level", LEVELS)):
            if getattr(self, k) not in allowed:
                raise ConfigError(f"FastSpeech2Config.{k} must be one of {allowed}, got {getattr(self, k)!r}")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.n_bins < 2 or not (self.pitch_min < self.pitch_max and self.energy_min < self.energy_max):
            raise ConfigError("need n_bins >= 2, pitch_min < pitch_max and energy_min < energy_max")


class FastSpeech2Output(NamedTuple):
    """What :class:`FastSpeech2` returns (a tuple: ``mel`` first, per the tts contract).

    mel: ``(B, n_mels, L)`` log-mel after the post-net; padded frames at ``ln(1e-5)``.
    mel_lengths: ``(B,)`` valid frames.
    durations: ``(B, N)`` frames per token used by the length regulator (targets or rounded predictions).
    log_durations: ``(B, N)`` predicted ``ln(d + 1)``.
    pitch: predicted normalised pitch, ``(B, L)`` (frame level) or ``(B, N)`` (phoneme level).
    energy: predicted normalised energy, same layout.
    mel_before: ``(B, n_mels, L)`` decoder output before the post-net (FastSpeech 2 trains both).
    """

    mel: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    mel_before: Tensor


# FastSpeech2Output's 7 fields + the CWT pitch predictor's raw outputs (built from its fields: one list to keep)
FastSpeech2CWTOutput = NamedTuple("FastSpeech2CWTOutput", [  # type: ignore[misc]
    *((f, Tensor) for f in FastSpeech2Output._fields), ("pitch_spectrogram", Tensor), ("pitch_moments", Tensor)])
FastSpeech2CWTOutput.__doc__ = """:class:`FastSpeech2Output` of a ``pitch_level="cwt"`` model, plus two fields.

    pitch: ``(B, L)`` predicted normalised pitch (the inverse CWT of ``pitch_spectrogram``, de-normalised with
        ``pitch_moments``), the value whose bucket is embedded at inference.
    pitch_spectrogram: ``(B, L, 10)`` predicted CWT pitch spectrogram (0 at padded frames).
    pitch_moments: ``(B, 2)`` predicted utterance ``[mean, std]`` of ln F0 in corpus-normalised units.
    """


class VarianceAdapted(NamedTuple):
    """What :meth:`FastSpeech2.adapt` returns: the variance adaptor's output, before any decoder.

    frames: ``(B, L, D)`` frame-level hidden sequence (length-regulated, pitch and energy embeddings added).
    fmask: ``(B, L)`` True at padded frames.
    mel_lengths, durations, log_durations, pitch, energy: as :class:`FastSpeech2Output`.
    pitch_spectrogram, pitch_moments: as :class:`FastSpeech2CWTOutput` (None unless ``pitch_level="cwt"``).
    """

    frames: Tensor
    fmask: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    pitch_spectrogram: Tensor | None
    pitch_moments: Tensor | None


class PitchSpectrogramPredictor(VariancePredictor):
    """FastSpeech 2's CWT pitch predictor: ``(B, L, D)`` frames -> ``(spectrogram (B, L, S), moments (B, 2))``.

    The variance predictor's conv stack with an ``S``-output linear (the pitch spectrogram), and an MLP on the
    hidden sequence averaged over valid frames for the utterance mean / std of ln F0 (NATSpeech's
    ``cwt_stats_layers``: 2 x [linear D -> ReLU] -> linear 2).
    """

    def __init__(self, dim: int, filter_size: int, kernel_size: int, dropout: float,
                 num_scales: int = CWT_NUM_SCALES):
        super().__init__(dim, filter_size, kernel_size, dropout)
        self.linear = nn.Linear(filter_size, num_scales)
        self.moments = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 2))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        spec = super().forward(x)  # (B, L, S); the parent masks hidden layers only at its output
        keep = torch.ones_like(x[..., :1]) if mask is None else (~mask)[..., None].to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return spec * keep, self.moments(pooled)


class FastSpeech2(VarianceTTSModel):
    """FastSpeech 2 acoustic model: ``forward(tokens (B, N), lengths (B,), ...) -> FastSpeech2Output``.

    Training passes ground-truth ``durations (B, N)``, ``pitch`` and ``energy`` (normalised; ``(B, L)`` at frame
    level with ``L = durations.sum(1).max()`` or ``(B, N)`` at phoneme level); inference passes none and may set
    ``alpha`` (FastSpeech's speed factor on durations: > 1 slower), ``pitch_shift`` (semitones) and
    ``energy_scale`` (multiplies the linear energy).
    """

    def __init__(self, config: FastSpeech2Config):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        self.encoder = FFTStack(c.hidden, c.encoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout,
                                c.max_positions)
        self.speaker_embed = nn.Embedding(c.n_speakers, c.hidden) if c.n_speakers > 0 else None
        vp = (c.hidden, c.variance_filter, c.variance_kernel, c.variance_dropout)
        self.duration_predictor = VariancePredictor(*vp)
        self.pitch_predictor = PitchSpectrogramPredictor(*vp) if c.pitch_level == "cwt" else VariancePredictor(*vp)
        self.energy_predictor = VariancePredictor(*vp)
        self.pitch_embed = nn.Embedding(c.n_bins, c.hidden)
        self.energy_embed = nn.Embedding(c.n_bins, c.hidden)
        self.register_buffer("pitch_bins", torch.linspace(c.pitch_min, c.pitch_max, c.n_bins - 1), persistent=False)
        self.register_buffer("energy_bins", torch.linspace(c.energy_min, c.energy_max, c.n_bins - 1),
                             persistent=False)
        # [mean, std] of ln F0 (Hz) and of the frame energy over the training corpus; std 0 = not set yet
        self.register_buffer("pitch_stats", torch.zeros(2))
        self.register_buffer("energy_stats", torch.zeros(2))
        self.decoder = FFTStack(c.hidden, c.decoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout,
                                c.max_positions)
        self.mel_linear = nn.Linear(c.hidden, c.n_mels)
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers) if c.postnet else None

    # ---- variance helpers -------------------------------------------------------------------------------
    def _variance(self, x: Tensor, mask: Tensor, predictor: VariancePredictor, embedding: nn.Embedding, bins: Tensor,
                  target: Tensor | None, offset: float = 0.0, gain: float = 1.0) -> tuple[Tensor, Tensor]:
        pred = predictor(x, mask)
        if target is not None:
            if target.shape != pred.shape:
                raise ConfigError(f"variance target shape {tuple(target.shape)} != prediction {tuple(pred.shape)}")
            emb = embedding(bucketize(target, bins))
        else:
            emb = bucketize_embed(pred * gain + offset, bins, embedding, straight_through=torch.is_grad_enabled())
        # padded positions get no embedding (ming024 adds one there; the next predictor's convolution would then
        # see it at an item's last valid positions, so a batched item would differ from the same item alone)
        return pred, emb.masked_fill(mask[..., None], 0.0)

    def _cwt_pitch(self, frames: Tensor, fmask: Tensor, mel_lengths: Tensor, target: Tensor | None,
                   offset: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """CWT pitch at frame level: ``(pitch (B, L), embedding (B, L, D), spectrogram (B, L, S), moments (B, 2))``.

        The embedded value is ``target`` (normalised frame pitch, teacher forcing) or the prediction: inverse CWT
        of the spectrogram, times the predicted std plus the predicted mean (plus ``offset``, the pitch shift).
        """
        spec, moments = self.pitch_predictor(frames, fmask)
        big_l = frames.shape[1]
        contour = pitch_icwt(spec, mel_lengths.clamp(1, max(big_l, 1))) if big_l else spec[..., 0]
        pred = (contour * moments[:, 1:2] + moments[:, :1]).masked_fill(fmask, 0.0)
        if target is not None:
            if target.shape != pred.shape:
                raise ConfigError(f"pitch target shape {tuple(target.shape)} != prediction {tuple(pred.shape)}")
            emb = self.pitch_embed(bucketize(target, self.pitch_bins))
        else:
            emb = bucketize_embed(pred + offset, self.pitch_bins, self.pitch_embed,
                                  straight_through=torch.is_grad_enabled())
        return pred, emb.masked_fill(fmask[..., None], 0.0), spec, moments

    # ---- forward ----------------------------------------------------------------------------------------
    def adapt(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
              pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
              alpha: float = 1.0, pitch_shift: float = 0.0, energy_scale: float = 1.0,
              max_frames: int | None = None) -> VarianceAdapted:
        """Encoder and variance adaptor (Sec. 2.1-2.3): the frame-level hidden sequence the decoders take.

        Arguments as :meth:`forward`; returns :class:`VarianceAdapted` (``frames (B, L, D)``, zero past each
        item's ``mel_lengths``).
        """
        c = self.config
        lengths = self._token_lengths(tokens, lengths)
        b, n = tokens.shape
        mask = padding_mask(lengths, n)
        x = self.encoder(self.embed(tokens), mask)
        if self.speaker_embed is not None:
            if speaker is None:
                raise ConfigError(f"this FastSpeech2 has {c.n_speakers} speakers: pass speaker ids (B,)")
            x = x + self.speaker_embed(speaker.long())[:, None]
        p_off, e_gain, e_off = self._controls(pitch_shift, energy_scale)
        log_d = self.duration_predictor(x, mask)
        p_pred = e_pred = p_spec = p_moments = None
        if c.pitch_level == "phoneme":
            p_pred, emb = self._variance(x, mask, self.pitch_predictor, self.pitch_embed, self.pitch_bins, pitch, p_off)
            x = x + emb
        if c.energy_level == "phoneme":
            e_pred, emb = self._variance(x, mask, self.energy_predictor, self.energy_embed, self.energy_bins, energy,
                                         e_off, e_gain)
            x = x + emb
        if durations is None:
            d_float = (torch.exp(log_d) - 1.0).clamp(min=0.0) * alpha
            d = torch.round(d_float.detach()).long().masked_fill(mask, 0)
            # every utterance gets at least one frame (a model that predicts 0 everywhere still returns a mel)
            empty = d.sum(1) == 0
            d[empty, 0] = 1
            if torch.is_grad_enabled() and d_float.requires_grad:  # straight-through (module docstring)
                x = x * (1.0 + d_float - d_float.detach())[..., None]
        else:
            if durations.shape != (b, n):
                raise ConfigError(f"durations must be (B, N) = {(b, n)}, got {tuple(durations.shape)}")
            d = durations.long().masked_fill(mask, 0)
        frames, mel_lengths = length_regulate(x, d, 1.0, lengths, max_frames)
        fmask = padding_mask(mel_lengths, frames.shape[1])
        if c.pitch_level == "frame":
            p_pred, emb = self._variance(frames, fmask, self.pitch_predictor, self.pitch_embed, self.pitch_bins, pitch,
                                         p_off)
            frames = frames + emb
        elif c.pitch_level == "cwt":
            p_pred, emb, p_spec, p_moments = self._cwt_pitch(frames, fmask, mel_lengths, pitch, p_off)
            frames = frames + emb
        if c.energy_level == "frame":
            e_pred, emb = self._variance(frames, fmask, self.energy_predictor, self.energy_embed, self.energy_bins,
                                         energy, e_off, e_gain)
            frames = frames + emb
        assert p_pred is not None and e_pred is not None
        return VarianceAdapted(frames, fmask, mel_lengths, d, log_d, p_pred, e_pred, p_spec, p_moments)

    def decode_mel(self, frames: Tensor, fmask: Tensor) -> tuple[Tensor, Tensor]:
        """Mel decoder (+ post-net): ``frames (B, L, D)``, padding mask ``(B, L)`` -> ``(mel, mel_before)``, each
        ``(B, n_mels, L)`` with padded frames at ``ln(1e-5)``."""
        h = self.decoder(frames, fmask)
        mel_before = self.mel_linear(h).transpose(1, 2)
        mel = mel_before + self.postnet(mel_before) if self.postnet is not None else mel_before
        pad = fmask[:, None]
        return mel.masked_fill(pad, LOG_FLOOR), mel_before.masked_fill(pad, LOG_FLOOR)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
                alpha: float = 1.0, pitch_shift: float = 0.0, energy_scale: float = 1.0,
                max_frames: int | None = None) -> FastSpeech2Output:
        """See the class docstring. ``max_frames`` pads/crops the frame axis (targets' ``L``)."""
        a = self.adapt(tokens, lengths, durations, pitch, energy, speaker, alpha, pitch_shift, energy_scale,
                       max_frames)
        mel, mel_before = self.decode_mel(a.frames, a.fmask)
        head = (mel, a.mel_lengths, a.durations, a.log_durations, a.pitch, a.energy, mel_before)
        if self.config.pitch_level == "cwt":
            return FastSpeech2CWTOutput(*head, a.pitch_spectrogram, a.pitch_moments)
        return FastSpeech2Output(*head)


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="FastSpeech 2: Fast and High-Quality End-to-End Text to Speech (Ren et al., ICLR 2021)",
    arxiv="2006.04558",
    official_repo="https://github.com/ming024/FastSpeech2 (unofficial reference implementation, MIT)",
    license="MIT (ming024 reference implementation); this code: the project's",
)
# the small CPU config (recipes/tts/fastspeech2_small_piper.yaml): same architecture, narrower and shallower
_SMALL = dict(hidden=128, encoder_layers=3, decoder_layers=3, heads=2, ffn_dim=256, variance_filter=128,
              postnet=False, dropout=0.1)
_TINY = dict(hidden=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, ffn_kernels=(3, 1),
             variance_filter=16, n_bins=16, postnet_channels=16, postnet_layers=2, n_mels=20, vocab_size=40,
             max_positions=64, n_fft=256, win_length=256)


def _fastspeech2(base: dict, overrides: dict) -> FastSpeech2:
    return FastSpeech2(build_config(FastSpeech2Config, base, **overrides))


@register_model(params=28_845_635, verified="A", tiny=_TINY,
                params_source="[calc] ming024 FastSpeech2 config/LJSpeech_paper (4 + 4 FFT blocks, hidden 256, "
                              "conv FFN 1024 k9/k1, 3 variance predictors, 2 x 256 bucket embeddings, 5-layer "
                              "post-net) with Piper's 256-symbol table: 28,845,635 weights + biases, of which the "
                              "post-net (not in the paper) is 4,348,144; the paper reports about 27M (unverified)",
                **_PAPER)
def fastspeech2_base(**overrides) -> FastSpeech2:
    """FastSpeech 2 at the paper's sizes as ming024's ``LJSpeech_paper`` config: frame-level pitch and energy
    (ming024's pitch variant; the paper's CWT pitch spectrogram is :func:`fastspeech2_base_cwt`)."""
    return _fastspeech2({}, overrides)


@register_model(params=28_980_046, verified="A", tiny=dict(_TINY, pitch_level="cwt"),
                params_source="[calc] fastspeech2_base with the paper's CWT pitch predictor (Appendix D; NATSpeech "
                              "fs2_orig): the pitch predictor's linear has 10 outputs (+2,313) and a 256-256-256-2 "
                              "MLP predicts the utterance mean / std (+132,098): 28,980,046; the paper reports "
                              "about 27M (unverified)",
                **_PAPER)
def fastspeech2_base_cwt(**overrides) -> FastSpeech2:
    """FastSpeech 2 as the paper describes it: ``fastspeech2_base`` with the continuous-wavelet pitch spectrogram
    (``pitch_level="cwt"``: 10 scales + utterance mean / std, inverse CWT at inference)."""
    return _fastspeech2({"pitch_level": "cwt"}, overrides)


_SMALL_WEIGHTS = {
    "piper_joe": WeightSet(
        "FastSpeech 2 small trained here on 0.36 h of the Piper voice en_US-joe-medium (piper-speech, its own "
        "durations; 2,800 steps, ~1 h on 2 shared CPU cores); speaks through hifigan_v1.universal. 34 held-out "
        "sentences, Whisper tiny.en: WER 17.8 % (the Piper voice itself 8.0 %, espeak-ng 34.7 %); weights float16",
        sha256="ddda5ad2c680887bacc0c04c6bafd230c7f4b57dbef0a0df6d1a032e02e2aaf7",
        recipe="recipes/tts/fastspeech2_small_piper.yaml", commit="6730286",
        license="weights: trained on Piper en_US-joe-medium output (voice MIT, joe data CC0; fine-tuned from "
                "lessac, CSTR research licence, see docs/weights.md)",
        metrics={"held_out": "piper-speech test split, 34 sentences, 224 words", "wer": 0.178, "cer": 0.100,
                 "dnsmos_ovrl": 2.73, "piper_wer": 0.080, "espeak_wer": 0.347, "rtf_fp32_1_thread": 0.90}),
}


@register_model(params=2_773_971, verified="ATU", tiny=_TINY, weights=_SMALL_WEIGHTS,
                params_source="[calc] audiozoo's CPU config: hidden 128, 3 + 3 FFT blocks, conv FFN 256 k9/k1, "
                              "variance filter 128, no post-net (as the paper), 256-symbol table",
                **_PAPER)
def fastspeech2_small(**overrides) -> FastSpeech2:
    """A small FastSpeech 2 that trains on CPU (hidden 128, 3 + 3 FFT blocks, FFN 256, no post-net)."""
    return _fastspeech2(_SMALL, overrides)


# ================================================================================================ FastSpeech 2s
# FastSpeech 2 + a waveform decoder, text to waveform end to end (Section 2.4, Appendix A); see the module docstring.
@dataclass
class FastSpeech2sConfig(FastSpeech2Config):
    """FastSpeech 2s hyper-parameters: :class:`FastSpeech2Config` (paper defaults: CWT pitch, no post-net) plus the
    waveform decoder's (Appendix A: transposed conv to 64 channels, 30 dilated residual blocks, skip 64, kernel 3;
    the rest Parallel WaveGAN's)."""

    pitch_level: str = "cwt"
    postnet: bool = False
    mel_decoder: bool = True  # the auxiliary mel decoder of training (False: waveform decoder only)
    wave_channels: int = 64  # transposed conv output = residual channels ("filter size 64")
    wave_layers: int = 30
    wave_stacks: int = 3  # dilation cycles (Parallel WaveGAN: 30 layers, 3 stacks -> 1, 2, ..., 512)
    wave_kernel: int = 3
    wave_gate_channels: int = 128  # Parallel WaveGAN
    wave_skip_channels: int = 64
    wave_condition: bool = True  # 1x1 local conditioning of every block on the upsampled sequence
    wave_dropout: float = 0.0
    upsample_kernel: int = 0  # 0: = hop_length (non-overlapping); else a multiple m * hop (centred frames)

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.upsample_kernel or self.hop_length
        if k < self.hop_length or k % self.hop_length or (k - self.hop_length) % 2:
            raise ConfigError(f"upsample_kernel must be 0 or a multiple m * hop_length ({self.hop_length}) with "
                              f"(m - 1) * hop_length even, got {self.upsample_kernel}")
        if self.wave_layers % self.wave_stacks:
            raise ConfigError(f"wave_layers {self.wave_layers} is not divisible by wave_stacks {self.wave_stacks}")


class FastSpeech2sOutput(NamedTuple):
    """What :class:`FastSpeech2s` returns (waveform first).

    wav: ``(B, T)`` waveform, ``T = segment_frames * hop`` when decoding slices, else ``L * hop``; zero past each
        item's ``wav_lengths``.
    wav_lengths: ``(B,)`` valid samples.
    mel, mel_lengths, durations, log_durations, pitch, energy, mel_before: as
        :class:`~audiozoo.models.tts.fastspeech2.FastSpeech2Output` (``mel`` / ``mel_before`` None when the mel
        decoder did not run).
    segment_starts: ``(B,)`` first frame of each decoded slice (zeros for full decoding); the matching audio is
        ``[start * hop, (start + segment_frames) * hop)``.
    pitch_spectrogram, pitch_moments: the CWT pitch predictor's outputs (None unless ``pitch_level="cwt"``).
    """

    wav: Tensor
    wav_lengths: Tensor
    mel: Tensor | None
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    mel_before: Tensor | None
    segment_starts: Tensor
    pitch_spectrogram: Tensor | None
    pitch_moments: Tensor | None


class WaveformDecoder(nn.Module):
    """FastSpeech 2s's waveform decoder: ``(B, L, D)`` frames -> ``(B, L * hop)`` waveform.

    Transposed conv ``D -> C`` (stride ``hop``, kernel ``hop`` or a multiple ``m * hop`` with padding
    ``(m - 1) hop / 2``, so the output has exactly ``L * hop`` samples and frame ``i`` is centred on its own hop)
    then :class:`~audiozoo.nn.noncausal_wavenet.NonCausalWaveNet` to one channel.
    """

    def __init__(self, c: FastSpeech2sConfig):
        super().__init__()
        hop = int(c.hop_length)
        k = int(c.upsample_kernel or hop)
        self.hop_length = hop
        self.upsample = nn.ConvTranspose1d(c.hidden, c.wave_channels, k, stride=hop, padding=(k - hop) // 2)
        self.wavenet = NonCausalWaveNet(c.wave_channels, c.wave_gate_channels, c.wave_skip_channels, 1, c.wave_layers,
                                        c.wave_stacks, c.wave_kernel, c.wave_channels if c.wave_condition else 0,
                                        c.wave_dropout)
        self.condition = bool(c.wave_condition)

    def forward(self, frames: Tensor) -> Tensor:
        x = self.upsample(frames.transpose(1, 2))  # (B, C, L * hop)
        return self.wavenet(x, x if self.condition else None)[:, 0]


class FastSpeech2s(FastSpeech2):
    """FastSpeech 2s: ``forward(tokens (B, N), lengths (B,), ...) -> FastSpeech2sOutput`` (waveform first).

    Training passes the targets of :class:`~audiozoo.models.tts.fastspeech2.FastSpeech2` and ``segment_frames``
    (decode a random slice of that many frames per item; ``segment_starts (B,)`` fixes the slices); without
    ``segment_frames`` the whole utterance is decoded. :meth:`synthesize` returns ``(wav, wav_lengths)`` from
    predicted durations, pitch and energy, without the mel decoder.
    """

    outputs_waveform = True  # synthesize() returns audio: no vocoder to add

    def __init__(self, config: FastSpeech2sConfig):
        super().__init__(config)
        if not config.mel_decoder:  # FastSpeech2 built them; an inference-only model holds no such weights
            self.decoder = self.mel_linear = self.postnet = None  # type: ignore[assignment]
        self.waveform_decoder = WaveformDecoder(config)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,  # type: ignore[override]
                pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
                alpha: float = 1.0, pitch_shift: float = 0.0, energy_scale: float = 1.0,
                max_frames: int | None = None, segment_frames: int | None = None,
                segment_starts: Tensor | None = None, decode_mel: bool | None = None) -> FastSpeech2sOutput:
        """See the class docstring. ``decode_mel`` (default: whether the model has a mel decoder) runs the mel
        decoder on the full sequence."""
        a = self.adapt(tokens, lengths, durations, pitch, energy, speaker, alpha, pitch_shift, energy_scale,
                       max_frames)
        has_mel = self.decoder is not None
        decode_mel = has_mel if decode_mel is None else bool(decode_mel)
        if decode_mel and not has_mel:
            raise ConfigError("this FastSpeech2s has no mel decoder (mel_decoder=False)")
        mel = mel_before = None
        if decode_mel:
            mel, mel_before = self.decode_mel(a.frames, a.fmask)
        hop = int(self.hop_length)
        if segment_frames is not None:
            seg = int(segment_frames)
            starts = random_segment_starts(a.mel_lengths, seg) if segment_starts is None else segment_starts.long()
            if starts.shape != a.mel_lengths.shape:
                raise ConfigError(f"segment_starts must be (B,) = {tuple(a.mel_lengths.shape)}, got "
                                  f"{tuple(starts.shape)}")
            starts = starts.to(a.frames.device)
            h = slice_segments(a.frames, starts, seg, dim=1)
            valid = (a.mel_lengths - starts).clamp(0, seg)
        else:
            starts = torch.zeros_like(a.mel_lengths)
            h, valid = a.frames, a.mel_lengths
        wav = self.waveform_decoder(h)
        wav_lengths = valid * hop
        wav = wav.masked_fill(torch.arange(wav.shape[-1], device=wav.device)[None] >= wav_lengths[:, None], 0.0)
        return FastSpeech2sOutput(wav, wav_lengths, mel, a.mel_lengths, a.durations, a.log_durations, a.pitch,
                                  a.energy, mel_before, starts, a.pitch_spectrogram, a.pitch_moments)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0,  # type: ignore[override]
                   pitch_shift: float = 0.0, energy_scale: float = 1.0,
                   speaker: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inference (Sec. 2.4: the mel decoder is discarded): ``(wav (B, T), wav_lengths (B,))`` at
        ``sample_rate`` from predicted durations, pitch and energy."""
        return self._eval_forward(tokens, lengths, speaker=speaker, alpha=alpha, pitch_shift=pitch_shift,
                                  energy_scale=energy_scale, decode_mel=False)

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "output": f"waveform (B, T) at {self.sample_rate} Hz, T = frames x "
                                                  f"{self.hop_length}"}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "tokens") -> dict[str, Any]:
        """As FastSpeech 2's, with the waveform as output (``synthesize``: no mel decoder)."""
        spec = super().export_signature(batch, length, on)
        spec["output_names"] = ["wav", "wav_lengths"]
        spec["dynamic_axes"] = {**{k: v for k, v in spec["dynamic_axes"].items() if not k.startswith("mel")},
                                "wav": {0: "batch", 1: "samples"}, "wav_lengths": {0: "batch"}}
        return spec


_PAPER_2S = dict(
    family="tts",
    paper="FastSpeech 2: Fast and High-Quality End-to-End Text to Speech (Ren et al., ICLR 2021), FastSpeech 2s",
    arxiv="2006.04558",
    official_repo="none (no official code; no reference implementation of FastSpeech 2s)",
    license="this code: the project's",
)
# tiny: FastSpeech 2's tiny sizes, hop 64, a 4-block waveform decoder; no mel decoder, so that the registry's
# generic "every parameter gets a gradient from the first output" check sees only parameters the waveform reaches
_TINY_S = dict(_TINY, pitch_level="cwt", hop_length=64, wave_channels=8, wave_layers=4, wave_stacks=2,
               wave_gate_channels=16, wave_skip_channels=8, mel_decoder=False)


@register_model(params=30_062_815, verified="A", tiny=_TINY_S,
                params_source="[calc] fastspeech2_base_cwt's encoder, variance adaptor (CWT pitch) and mel decoder "
                              "without the post-net: 24,631,902 (mel decoder 11,568,208 of it) + waveform decoder "
                              "5,430,913: transposed conv 256 -> 64, kernel = stride = hop 256 (4,194,368), 30 "
                              "gated residual blocks of 64 residual / 128 gate / 64 skip channels, kernel 3, with "
                              "1x1 local conditioning (41,216 each; the last has no residual 1x1: 37,056), output "
                              "head 4,225; Piper's 256-symbol table. Inference drops the mel decoder: 18,494,607. "
                              "The paper gives no count for 2s",
                **_PAPER_2S)
def fastspeech2s(**overrides) -> FastSpeech2s:
    """FastSpeech 2s at the paper's sizes (Appendix A; the waveform decoder's unstated sizes from Parallel
    WaveGAN): FastSpeech 2 (CWT pitch, no post-net) + transposed conv to 64 channels + 30 gated dilated residual
    blocks; trained with the ``tts`` task's ``waveform`` option (MR-STFT + LSGAN vs Parallel WaveGAN's
    discriminator)."""
    return FastSpeech2s(build_config(FastSpeech2sConfig, {}, **overrides))
