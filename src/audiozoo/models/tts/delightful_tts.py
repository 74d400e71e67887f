"""DelightfulTTS: conformer acoustic model with utterance- and phoneme-level prosody encoders and predictors.

Paper: Yanqing Liu, Zhihang Xu, Gang Wang, Kuan Chen, Bohan Li, Xu Tan, Jinzhu Li, Lei He, Sheng Zhao,
"DelightfulTTS: The Microsoft Speech Synthesis System for Blizzard Challenge 2021", arXiv:2110.12612. No official
code; the peer implementation followed (for its computation and its weights' layout) is coqui-tts 0.28.0
``TTS/tts/models/delightful_tts.py`` + ``TTS/tts/layers/delightful_tts/*`` (MPL-2.0, after dunky11/voicesmith); the
blocks are :mod:`audiozoo.nn.delightful`, written here.

Architecture (paper Section 3; sizes of coqui's ``DelightfulTtsArgs``, the ``delightful_tts`` config):

- token embedding -> conformer encoder (6 blocks, 512, 8 heads, conv kernel 7; each block ``0.5 x conv-FFN -> conv
  module -> relative-position self-attention -> conv module``, LeakyReLU 0.3);
- implicit prosody (paper 3.1.2): an *utterance-level* vector from the reference mel (reference encoder of 6 convs +
  GRU 32 -> global style tokens (32) -> 512 bottleneck), predicted at inference from the encoder output (conv
  predictor averaged over tokens); a *phoneme-level* 4-dim vector per token from cross-attention of the tokens over the
  reference encoder's frames, predicted at inference by a conv predictor. Both are normalised per vector (zero mean,
  unit variance over their dimensions), projected to 512 and added to the hidden sequence; training uses the
  reference vectors (the predictors learn from an L1 loss on them, returned here);
- explicit variance: phoneme-level pitch and energy (conv predictors, values embedded by a 1-d conv of kernel 3 and
  added), duration predictor on the (detached) prosody-conditioned encoder output, length regulator;
- conformer decoder (6 blocks, 512, 8 heads, kernel 11) -> linear to the mel.

Speakers (``n_speakers > 0``): an L2-normalised speaker embedding (384) drives a Deep Voice 3 conv-GLU at the start
of every conformer block (coqui's multi-speaker mode). Language ID (paper) is not implemented.

Inputs / outputs follow :mod:`~audiozoo.models.tts.fastspeech2` so the ``tts`` task can train it: token ids, targets
``durations (B, N)``, phoneme-level normalised ``pitch`` / ``energy (B, N)`` (``pitch_level = energy_level =
"phoneme"``; :func:`~audiozoo.nn.delightful.average_nonzero` averages frame values as coqui does), corpus statistics
in ``pitch_stats`` / ``energy_stats``. Output: natural-log mel ``(B, n_mels, L)`` of :meth:`mel_extractor`, padded
frames at ``ln(1e-5)``. ``mel`` / ``mel_lengths`` is the reference (the target mel in training, another utterance
of the voice at inference); without it the prosody vectors are predicted.

Departures from coqui-tts 0.28.0 (stated in the card): its learned aligner (``AlignmentNetwork`` + MAS, 1.74 M
weights) is not included — durations are inputs; its style-token layer receives the GRU state as ``(1, B, H)`` so its
softmax runs over the *batch* (for one utterance every token weight is 1 and the vector ignores the mel) — here the
softmax runs over the tokens (Global Style Tokens as intended; the parity test feeds coqui ``(B, H)``); the unused
``Conv1d`` weight of its CoordConv and the speaker conv-GLUs of single-speaker models are not created; at inference
padded tokens get 0 frames (coqui: 1). As coqui, padded positions of the hidden sequence carry the prosody vectors
and the normalisations of the reference encoder / conv modules see the padding, so a padded batch item differs
slightly from the item alone.

License of this implementation: the project's. coqui-tts is MPL-2.0 (read, not copied).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...errors import CheckpointError, ConfigError
from ...nn.alignment import length_regulate
from ...nn.delightful import ConvPredictor, DelightfulConformer, ReferenceEncoder, StyleTokenLayer, XLRelPosAttention
from ...nn.embeddings import sinusoidal_positions
from ...nn.fastspeech import padding_mask
from ...registry import WeightSet, register_model
from ..contracts import TTSModel

LOG_FLOOR = math.log(1e-5)  # natural-log mel of silence


@dataclass
class DelightfulTTSConfig:
    """DelightfulTTS hyper-parameters (defaults: coqui-tts 0.28.0 ``DelightfulTtsArgs`` and audio config)."""

    pitch_level: ClassVar[str] = "phoneme"  # read by the tts task: targets are per token
    energy_level: ClassVar[str] = "phoneme"
    postnet: ClassVar[bool] = False

    vocab_size: int = 100  # coqui's num_chars default
    hidden: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_heads: int = 8
    decoder_heads: int = 8
    encoder_kernel: int = 7
    decoder_kernel: int = 11
    dropout: float = 0.1
    lrelu_slope: float = 0.3
    variance_channels: int = 512
    variance_kernel: int = 5
    variance_dropout: float = 0.5
    variance_embed_kernel: int = 3
    # implicit prosody (utterance / phoneme level)
    prosody: bool = True
    ref_filters: tuple[int, ...] = (32, 32, 64, 64, 128, 128)
    ref_kernel: int = 3
    ref_strides: tuple[int, ...] = (1, 2, 1, 2, 1)
    ref_gru: int = 32
    style_tokens: int = 32
    utterance_bottleneck: int = 512
    phoneme_bottleneck: int = 4
    prosody_kernel: int = 5
    n_speakers: int = 0
    speaker_dim: int = 384
    # output mel (coqui: 22.05 kHz, hop 256, 100 mels, 0-8 kHz, ln of the magnitude mel)
    n_mels: int = 100
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for heads in (self.encoder_heads, self.decoder_heads):
            if self.hidden % heads:
                raise ConfigError(f"hidden {self.hidden} is not divisible by heads {heads}")
        if self.prosody and self.hidden % 2:
            raise ConfigError("the style-token layer needs an even hidden size")


class DelightfulTTSOutput(NamedTuple):
    """What :class:`DelightfulTTS` returns (``mel`` first, per the tts contract).

    mel / mel_before: ``(B, n_mels, L)`` (the same tensor: no post-net); mel_lengths ``(B,)``; durations ``(B, N)``
    used; log_durations ``(B, N)`` predicted ``ln(d + 1)``; pitch / energy ``(B, N)`` predicted (normalised);
    u_prosody_ref / u_prosody_pred ``(B, 1, U)`` and p_prosody_ref / p_prosody_pred ``(B, N, P)``: the normalised
    reference and predicted prosody vectors (the refs ``None`` without a reference mel, all ``None`` without prosody).
    """

    mel: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    mel_before: Tensor
    u_prosody_ref: Tensor | None
    u_prosody_pred: Tensor | None
    p_prosody_ref: Tensor | None
    p_prosody_pred: Tensor | None


def _vector_norm(x: Tensor) -> Tensor:
    """Zero mean, unit (biased) variance over the last dim, eps 1e-5 (coqui's InstanceNorm1d on ``(B, T, D)``)."""
    # written out rather than F.layer_norm(x, x.shape[-1:]): a traced shape would make the ONNX export fail
    mean = x.mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)


class UtterancePriorEncoder(nn.Module):
    """Reference mel -> utterance vector ``(B, 1, bottleneck)``: reference encoder's last GRU state -> linear to
    ``hidden / 2`` -> style tokens -> linear to the bottleneck -> dropout."""

    def __init__(self, c: DelightfulTTSConfig):
        super().__init__()
        self.reference = ReferenceEncoder(c.n_mels, c.ref_filters, c.ref_kernel, c.ref_strides, c.ref_gru)
        self.proj = nn.Linear(c.ref_gru, c.hidden // 2)
        self.stl = StyleTokenLayer(c.hidden, c.style_tokens)
        self.bottleneck = nn.Linear(c.hidden, c.utterance_bottleneck)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, mel: Tensor, mel_lengths: Tensor) -> Tensor:
        _, last, _ = self.reference(mel, mel_lengths)
        return self.dropout(self.bottleneck(self.stl(self.proj(last))))[:, None]


class PhonemePriorEncoder(nn.Module):
    """Tokens ``(B, N, hidden)`` attend over the reference encoder's frames -> ``(B, N, bottleneck)``."""

    def __init__(self, c: DelightfulTTSConfig):
        super().__init__()
        self.reference = ReferenceEncoder(c.n_mels, c.ref_filters, c.ref_kernel, c.ref_strides, c.ref_gru)
        self.proj = nn.Linear(c.ref_gru, c.hidden)
        self.attn = XLRelPosAttention(c.hidden, c.encoder_heads, c.dropout)
        self.bottleneck = nn.Linear(c.hidden, c.phoneme_bottleneck)

    def forward(self, x: Tensor, mask: Tensor, mel: Tensor, mel_lengths: Tensor, pos: Tensor) -> Tensor:
        states, _, ref_len = self.reference(mel, mel_lengths)
        kv = self.proj(states)
        h = self.attn(x, kv, pos, padding_mask(ref_len, kv.shape[1]))
        return self.bottleneck(h).masked_fill(mask[..., None], 0.0)


class DelightfulTTS(TTSModel):
    """DelightfulTTS acoustic model: ``forward(tokens (B, N), lengths (B,), ...) -> DelightfulTTSOutput``.

    Training passes ``durations (B, N)``, phoneme-level normalised ``pitch`` / ``energy (B, N)`` and the target
    ``mel (B, n_mels, L)`` with ``mel_lengths`` (the prosody reference); inference passes none (or a reference mel)
    and may set ``alpha`` (speed factor on durations, > 1 slower), ``pitch_shift`` (semitones), ``energy_scale``.
    """

    def __init__(self, config: DelightfulTTSConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        nn.init.normal_(self.embed.weight, 0.0, math.sqrt(2.0 / c.hidden))
        spk = c.speaker_dim if c.n_speakers > 0 else 0
        self.speaker_embed = nn.Embedding(c.n_speakers, c.speaker_dim) if spk else None
        self.encoder = DelightfulConformer(c.hidden, c.encoder_layers, c.encoder_heads, c.encoder_kernel, c.dropout,
                                           c.lrelu_slope, spk)
        if c.prosody:
            self.utterance_encoder = UtterancePriorEncoder(c)
            self.utterance_predictor = ConvPredictor(c.hidden, c.hidden, c.utterance_bottleneck, c.prosody_kernel,
                                                     c.dropout, c.lrelu_slope, mask_output=False)
            self.utterance_out = nn.Linear(c.utterance_bottleneck, c.hidden)
            self.phoneme_encoder = PhonemePriorEncoder(c)
            self.phoneme_predictor = ConvPredictor(c.hidden, c.hidden, c.phoneme_bottleneck, c.prosody_kernel,
                                                   c.dropout, c.lrelu_slope, mask_output=False)
            self.phoneme_out = nn.Linear(c.phoneme_bottleneck, c.hidden)
        vp = (c.hidden, c.variance_channels, 1, c.variance_kernel, c.variance_dropout, c.lrelu_slope)
        self.pitch_predictor = ConvPredictor(*vp)
        self.energy_predictor = ConvPredictor(*vp)
        self.duration_predictor = ConvPredictor(*vp)
        k = c.variance_embed_kernel
        self.pitch_embed = nn.Conv1d(1, c.hidden, k, padding=(k - 1) // 2)
        self.energy_embed = nn.Conv1d(1, c.hidden, k, padding=(k - 1) // 2)
        # [mean, std] of ln F0 (Hz) and of the frame energy over the training corpus; std 0 = not set yet
        self.register_buffer("pitch_stats", torch.zeros(2))
        self.register_buffer("energy_stats", torch.zeros(2))
        self.decoder = DelightfulConformer(c.hidden, c.decoder_layers, c.decoder_heads, c.decoder_kernel, c.dropout,
                                           c.lrelu_slope, spk)
        self.to_mel = nn.Linear(c.hidden, c.n_mels)

    # ---- helpers ----------------------------------------------------------------------------------------
    def _speaker(self, speaker: Tensor | None, b: int) -> Tensor | None:
        if self.speaker_embed is None:
            return None
        if speaker is None:
            raise ConfigError(f"this DelightfulTTS has {self.config.n_speakers} speakers: pass speaker ids (B,)")
        if speaker.shape != (b,):
            raise ConfigError(f"speaker ids must be (B,) = ({b},), got {tuple(speaker.shape)}")
        return F.normalize(self.speaker_embed(speaker.long()), dim=-1)

    def _target(self, value: Tensor | None, name: str, b: int, n: int) -> Tensor | None:
        if value is not None and value.shape != (b, n):
            raise ConfigError(f"{name} targets must be phoneme level (B, N) = {(b, n)}, got {tuple(value.shape)} "
                              "(average frame values with audiozoo.nn.delightful.average_nonzero)")
        return value

    def _controls(self, pitch_shift: float, energy_scale: float) -> tuple[float, float, float]:
        """``(pitch offset, energy gain, energy offset)`` in normalised units (as FastSpeech 2's)."""
        p_std = float(self.pitch_stats[1]) or 1.0
        e_mean, e_std = float(self.energy_stats[0]), float(self.energy_stats[1]) or 1.0
        return pitch_shift * math.log(2.0) / 12.0 / p_std, energy_scale, (energy_scale - 1.0) * e_mean / e_std

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
                mel: Tensor | None = None, mel_lengths: Tensor | None = None, alpha: float = 1.0,
                pitch_shift: float = 0.0, energy_scale: float = 1.0, max_frames: int | None = None
                ) -> DelightfulTTSOutput:
        """See the class docstring. ``max_frames`` pads / crops the frame axis (the targets' ``L``)."""
        c = self.config
        if tokens.ndim != 2:
            raise ConfigError(f"DelightfulTTS takes token ids (B, N), got shape {tuple(tokens.shape)}")
        b, n = tokens.shape
        dev = tokens.device
        lengths = torch.full((b,), n, dtype=torch.long, device=dev) if lengths is None else lengths.to(dev).long()
        if int(tokens.max()) >= c.vocab_size or int(tokens.min()) < 0:
            raise ConfigError(f"token ids must lie in [0, {c.vocab_size}), got [{int(tokens.min())}, "
                              f"{int(tokens.max())}]")
        if mel is not None:
            if mel.ndim != 3 or mel.shape[:2] != (b, c.n_mels):
                raise ConfigError(f"reference mel must be (B, {c.n_mels}, L) = ({b}, {c.n_mels}, L), got "
                                  f"{tuple(mel.shape)}")
            mel_lengths = (torch.full((b,), mel.shape[-1], device=dev) if mel_lengths is None
                           else mel_lengths.to(dev)).long()
        pitch, energy = self._target(pitch, "pitch", b, n), self._target(energy, "energy", b, n)
        mask = padding_mask(lengths, n)
        spk = self._speaker(speaker, b)
        n_pos = max(n, mel.shape[-1] if mel is not None else 0,
                    int(durations.sum(1).max()) if durations is not None else 0, max_frames or 0)
        pos = sinusoidal_positions(n_pos, c.hidden, device=dev)
        x = self.embed(tokens).masked_fill(mask[..., None], 0.0)
        x = self.encoder(x, mask, pos, spk)
        u_ref = u_pred = p_ref = p_pred = None
        if c.prosody:
            u_all = self.utterance_predictor(x, mask)  # coqui averages over every position (padding: the bias)
            u_pred = _vector_norm(u_all.sum(1, keepdim=True) / lengths[:, None, None].to(x.dtype))
            if mel is not None:
                u_ref = _vector_norm(self.utterance_encoder(mel, mel_lengths))
            x = x + self.utterance_out(u_ref if u_ref is not None else u_pred)
            p_pred = _vector_norm(self.phoneme_predictor(x, mask))
            if mel is not None:
                p_ref = _vector_norm(self.phoneme_encoder(x, mask, mel, mel_lengths, pos))
            x = x + self.phoneme_out(p_ref if p_ref is not None else p_pred)
        p_off, e_gain, e_off = self._controls(pitch_shift, energy_scale)
        p_hat = self.pitch_predictor(x, mask, squeeze=True)
        e_hat = self.energy_predictor(x, mask, squeeze=True)
        p_val = pitch if pitch is not None else p_hat + p_off
        e_val = energy if energy is not None else e_hat * e_gain + e_off
        log_d = self.duration_predictor(x.detach(), mask, squeeze=True)
        x = x + (self.pitch_embed(p_val[:, None]) + self.energy_embed(e_val[:, None])).transpose(1, 2)
        if durations is None:
            d_float = ((torch.exp(log_d) - 1.0) * alpha).clamp(min=1.0)
            d = torch.round(d_float.detach()).long().masked_fill(mask, 0)
            if torch.is_grad_enabled() and d_float.requires_grad:  # straight-through (fastspeech2's docstring)
                x = x * (1.0 + d_float - d_float.detach())[..., None]
        else:
            if durations.shape != (b, n):
                raise ConfigError(f"durations must be (B, N) = {(b, n)}, got {tuple(durations.shape)}")
            d = durations.to(dev).long().masked_fill(mask, 0)
        frames, out_lengths = length_regulate(x, d, 1.0, lengths, max_frames)
        fmask = padding_mask(out_lengths, frames.shape[1])
        if pos.shape[0] < frames.shape[1]:
            pos = sinusoidal_positions(frames.shape[1], c.hidden, device=dev)
        h = self.decoder(frames, fmask, pos, spk)
        out = self.to_mel(h).transpose(1, 2).masked_fill(fmask[:, None], LOG_FLOOR)
        return DelightfulTTSOutput(out, out_lengths, d, log_d, p_hat, e_hat, out, u_ref, u_pred, p_ref, p_pred)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0, speaker: Tensor | None = None, ref_mel: Tensor | None = None,
                   ref_lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inference: ``(mel (B, n_mels, L), mel_lengths (B,))``; prosody predicted, or taken from ``ref_mel``."""
        return self._eval_forward(tokens, lengths, speaker=speaker, mel=ref_mel, mel_lengths=ref_lengths, alpha=alpha,
                                  pitch_shift=pitch_shift, energy_scale=energy_scale)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        args, kwargs = super().example_inputs(length, batch, seed)
        if self.speaker_embed is not None:
            kwargs["speaker"] = torch.arange(batch) % self.config.n_speakers
        return args, kwargs

    def mel_extractor(self) -> VocoderMel:
        """The front end whose log-mel this model predicts (training targets and prosody references)."""
        keys = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max")
        return VocoderMel(**{k: getattr(self.config, k) for k in keys})

    def input_spec(self) -> dict[str, Any]:
        c = self.config
        mel = f"log-mel (B, {c.n_mels}, L), hop {c.hop_length}"
        return {**super().input_spec(), "tokens": f"(B, N) ids of the {c.text.get('scheme', 'caller')!r} scheme",
                "reference": f"optional {mel}", "output": mel, "hop_length": c.hop_length, "vocab_size": c.vocab_size,
                "speakers": c.n_speakers}


# ------------------------------------------------------------------------------------------------ converter
_PRED = r"(?:layers\.(0|4)\.conv\.(pointwise|depthwise)|layers\.(2|6)|linear_layer|predictor_bottleneck)"
_RULES = [  # coqui-tts AcousticModel key -> ours (applied in order, first match wins)
    (r"^(encoder|decoder)\.layer_stack\.(\d+)\.(.*)$", None),  # conformer blocks: _block_key
    (r"^pitch_adaptor\.pitch_emb\.(.*)$", r"pitch_embed.\1"),
    (r"^energy_adaptor\.energy_emb\.(.*)$", r"energy_embed.\1"),
    (r"^(utterance|phoneme)_prosody_encoder\.encoder\.convs\.0\.conv\.(.*)$", r"\1_encoder.reference.convs.0.\2"),
    (r"^(utterance|phoneme)_prosody_encoder\.encoder\.(convs\.[1-9]\d*|norms\.\d+|gru)\.(.*)$",
     r"\1_encoder.reference.\2.\3"),
    (r"^(utterance|phoneme)_prosody_encoder\.encoder_prj\.(.*)$", r"\1_encoder.proj.\2"),
    (r"^(utterance|phoneme)_prosody_encoder\.encoder_bottleneck\.(.*)$", r"\1_encoder.bottleneck.\2"),
    (r"^utterance_prosody_encoder\.stl\.embed$", "utterance_encoder.stl.tokens"),
    (r"^utterance_prosody_encoder\.stl\.attention\.W_(query|key|value)\.weight$", r"utterance_encoder.stl.\1.weight"),
    (r"^phoneme_prosody_encoder\.attention\.attention\.(\w+?)(?:_proj)?\.(weight|bias)$",
     r"phoneme_encoder.attn.\1.\2"),
    (r"^phoneme_prosody_encoder\.attention\.attention\.([uv]_bias)$", r"phoneme_encoder.attn.\1"),
    (r"^u_bottle_out\.(.*)$", r"utterance_out.\1"),
    (r"^p_bottle_out\.(.*)$", r"phoneme_out.\1"),
    (r"^to_mel\.(.*)$", r"to_mel.\1"),
    (r"^emb_g\.weight$", "speaker_embed.weight"),
]
_PREDICTORS = {"pitch_adaptor.pitch_predictor": "pitch_predictor",
               "energy_adaptor.energy_predictor": "energy_predictor", "duration_predictor": "duration_predictor",
               "utterance_prosody_predictor": "utterance_predictor",
               "phoneme_prosody_predictor": "phoneme_predictor"}
_BLOCK = [(r"^conditioning\.conv\.(.*)$", r"speaker.conv.\1"),
          (r"^conditioning\.embedding_proj\.(.*)$", r"speaker.proj.\1"),
          (r"^ff\.ln\.(.*)$", r"ff.norm.\1"), (r"^ff\.conv_(\d)\.(.*)$", r"ff.conv\1.\2"),
          (r"^conformer_conv_(\d)\.ln_1\.(.*)$", r"conv\1.norm.\2"),
          (r"^conformer_conv_(\d)\.conv_1\.conv\.(.*)$", r"conv\1.pointwise_in.\2"),
          (r"^conformer_conv_(\d)\.depthwise\.conv\.(.*)$", r"conv\1.depthwise.\2"),
          (r"^conformer_conv_(\d)\.ln_2\.(.*)$", r"conv\1.group_norm.\2"),
          (r"^conformer_conv_(\d)\.conv_2\.conv\.(.*)$", r"conv\1.pointwise_out.\2"),
          (r"^ln\.(.*)$", r"attn_norm.\1"), (r"^slf_attn\.attention\.(\w+?)(?:_proj)?\.(weight|bias)$", r"attn.\1.\2"),
          (r"^slf_attn\.attention\.([uv]_bias)$", r"attn.\1")]
# coqui keys with no counterpart here: its aligner, buffers, the CoordConv's unused Conv1d weight, the energy scaler
_DROP = re.compile(r"^(aligner\.|src_word_emb\.padding_mult$|energy_scaler\.|.*\.conditioning\.sqrt$|"
                   r"(utterance|phoneme)_prosody_encoder\.encoder\.convs\.0\.(weight|bias)$)")


def _rename(key: str) -> str | None:
    m = re.match(_RULES[0][0], key)
    if m:
        for pattern, repl in _BLOCK:
            if re.match(pattern, m.group(3)):
                return f"{m.group(1)}.blocks.{m.group(2)}.{re.sub(pattern, repl, m.group(3))}"
        return None
    for prefix, ours in _PREDICTORS.items():
        if key.startswith(prefix + "."):
            m = re.match(_PRED + r"\.(weight|bias)$", key[len(prefix) + 1:])
            if not m:
                return None
            if m.group(1):
                return f"{ours}.convs.{int(m.group(1)) // 4}.{m.group(2)}.{m.group(4)}"
            if m.group(3):
                return f"{ours}.norms.{int(m.group(3)) // 4}.{m.group(4)}"
            return f"{ours}.proj.{m.group(4)}"
    for pattern, repl in _RULES[1:]:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def checkpoint_filter_fn(state: dict[str, Tensor], model: DelightfulTTS) -> dict[str, Tensor]:
    """coqui-tts ``DelightfulTTS`` state dict (``acoustic_model.*``; its vocoder / discriminator are dropped) or an
    ``AcousticModel`` state dict -> this model's. The padding token's embedding row is zeroed (coqui multiplies it by
    0 in every forward); the energy scaler's running mean / variance become ``energy_stats``; optional ``pitch_mean`` /
    ``pitch_std`` entries become ``pitch_stats`` (coqui's stats are of F0 in Hz: set them for this model's ln-F0
    convention when fine-tuning). The aligner's weights are dropped (durations are inputs here)."""
    sd = dict(state)
    if any(k.startswith("acoustic_model.") for k in sd):
        sd = {k[len("acoustic_model."):]: v for k, v in sd.items() if k.startswith("acoustic_model.")}
    if "src_word_emb.embeddings" not in sd or "to_mel.weight" not in sd:
        raise CheckpointError("not a coqui-tts DelightfulTTS state dict (src_word_emb.embeddings / to_mel missing)")
    out: dict[str, Tensor] = {}
    unknown = []
    emb = sd["src_word_emb.embeddings"]
    if "src_word_emb.padding_mult" in sd:
        emb = emb * sd["src_word_emb.padding_mult"].to(emb.dtype)
    out["embed.weight"] = emb
    for k, v in sd.items():
        if k == "src_word_emb.embeddings" or _DROP.match(k):
            continue
        if model.speaker_embed is None and (".conditioning." in k or k.startswith("emb_g.")):
            continue  # coqui builds the speaker conv-GLUs even without speakers (unused)
        new = _rename(k)
        if new is None:
            unknown.append(k)
        else:
            out[new] = v
    if unknown:
        raise CheckpointError(f"unsupported coqui DelightfulTTS keys: {unknown[:4]}")
    if "energy_scaler.running_mean" in sd:
        var = sd["energy_scaler.running_var"].reshape(()).float()
        out["energy_stats"] = torch.stack([sd["energy_scaler.running_mean"].reshape(()).float(),
                                           torch.sqrt(var + 1e-5)])
    out.setdefault("energy_stats", torch.zeros(2))
    if "pitch_mean" in sd and "pitch_std" in sd:
        out["pitch_stats"] = torch.tensor([float(sd["pitch_mean"]), float(sd["pitch_std"])])
    out.setdefault("pitch_stats", torch.zeros(2))
    return out


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="DelightfulTTS: The Microsoft Speech Synthesis System for Blizzard Challenge 2021 (Liu et al., 2021)",
    arxiv="2110.12612",
    official_repo="no official code; peer: coqui-tts 0.28.0 TTS/tts/models/delightful_tts.py (MPL-2.0)",
    license="MPL-2.0 (coqui-tts reference implementation); this code: the project's",
)
# the paper's 16 kHz mel (80 bins, 12.5 ms hop: hifinet's input), a CPU-sized network
_SMALL = dict(hidden=128, encoder_layers=3, decoder_layers=3, encoder_heads=2, decoder_heads=2, variance_channels=128,
              utterance_bottleneck=128, vocab_size=256, n_mels=80, sample_rate=16000, hop_length=200, win_length=800)
_TINY = dict(hidden=32, encoder_layers=1, decoder_layers=1, encoder_heads=2, decoder_heads=2, encoder_kernel=3,
             decoder_kernel=3, variance_channels=32, variance_kernel=3, prosody=False, n_mels=20, vocab_size=40,
             n_fft=256, win_length=256)


def _delightful(base: dict, overrides: dict) -> DelightfulTTS:
    return DelightfulTTS(build_config(DelightfulTTSConfig, base, **overrides))


@register_model(params=110_093_807, verified="AP", tiny=_TINY, converter=checkpoint_filter_fn,
                params_source="[code] coqui-tts 0.28.0 AcousticModel with its default DelightfulTtsArgs (100 "
                              "symbols, 100 mels) counts 118,290,107 weights; less its learned aligner (1,744,268; "
                              "durations are inputs here), the speaker conv-GLUs it builds without speakers "
                              "(6,432,768, unused) and its CoordConvs' unused Conv1d weights (2 x 9,632) = "
                              "110,093,807, checked against the package by tests/models/test_delightful_tts.py; the "
                              "paper gives no count",
                **_PAPER)
def delightful_tts(**overrides) -> DelightfulTTS:
    """DelightfulTTS acoustic model with coqui-tts' default configuration (22.05 kHz, 100-bin mel)."""
    return _delightful({}, overrides)


_SMALL_WEIGHTS = {
    "piper_joe": WeightSet(
        "DelightfulTTS small trained here on 0.36 h of the Piper voice en_US-joe-medium (piper-speech, its own "
        "durations, coqui's prosody losses; 2,000 steps, ~45 min on one shared CPU thread) on HiFi-GAN's 22.05 kHz "
        "mel (not the paper's 16 kHz); speaks through hifigan_v1.universal. 34 held-out sentences, Whisper tiny.en: "
        "WER 11.1 % (the Piper voice itself 8.0 %, FastSpeech small 9.3 %, FastSpeech 2 small 17.8 %, espeak-ng "
        "38.2 %); weights float16",
        sha256="da23fd818b2561a41533ed8a38b6fa356a553549b1741e0a36f724effa7055d6",
        recipe="recipes/tts/delightful_tts_small_piper.yaml", commit="f021b90",
        license="weights: trained on Piper en_US-joe-medium output (voice MIT, joe data CC0; fine-tuned from "
                "lessac, CSTR research licence, see docs/weights.md)",
        metrics={"held_out": "piper-speech test split, 34 sentences, 224 words", "wer": 0.111, "cer": 0.046,
                 "dnsmos_ovrl": 2.84, "mcd_dtw_vs_piper": 23.4, "piper_wer": 0.080, "espeak_wer": 0.382,
                 "rtf_fp32_1_thread": 0.82}),
}


@register_model(params=3_946_523, verified="ATU", tiny=_TINY, converter=checkpoint_filter_fn, weights=_SMALL_WEIGHTS,
                params_source="[calc] audiozoo's CPU config: hidden 128, 3 + 3 conformer blocks (2 heads), variance "
                              "channels 128, utterance bottleneck 128, 256 Piper symbols; the paper's 16 kHz mel "
                              "(80 bins, hop 200 = 12.5 ms: hifinet's input); the piper_joe weights use HiFi-GAN's "
                              "22.05 kHz mel (hop 256, win 1024), same count",
                **_PAPER)
def delightful_tts_small(**overrides) -> DelightfulTTS:
    """A small DelightfulTTS on the paper's 16 kHz, 80-bin mel (vocoded by ``hifinet``); ``.piper_joe``: trained on
    HiFi-GAN's 22.05 kHz mel (vocoded by ``hifigan_v1.universal``)."""
    return _delightful(_SMALL, overrides)
