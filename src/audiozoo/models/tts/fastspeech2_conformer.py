"""FastSpeech 2 with Conformer encoder and decoder (ESPnet's LJSpeech model, transformers' ``FastSpeech2Conformer``).

Paper: Yi Ren, Chenxu Hu, Xu Tan, Tao Qin, Sheng Zhao, Zhou Zhao, Tie-Yan Liu, "FastSpeech 2: Fast and
High-Quality End-to-End Text to Speech", ICLR 2021, arXiv:2006.04558; the conformer variant is ESPnet's
(Hayashi et al., "ESPnet2-TTS", arXiv:2110.07840; Gulati et al., Conformer, arXiv:2005.08100) with FastPitch's
token-averaged continuous pitch and energy (Łańcucki 2021, arXiv:2006.06873). Reference code:
``espnet2.tts.fastspeech2.FastSpeech2`` (Apache-2.0) with ``encoder_type = decoder_type = "conformer"``, ported to
transformers as ``FastSpeech2ConformerModel`` (Apache-2.0; checkpoint ``espnet/fastspeech2_conformer``). Read
for facts, not copied.

Architecture (defaults = ``FastSpeech2ConformerConfig()`` of transformers, 70,262,259 parameters):

- token embedding (78 symbols, hidden 384) -> encoder: input ``* sqrt(384)`` + dropout, relative sinusoidal
  positions (ESPnet's ``RelPositionalEncoding``), 4 conformer blocks (2 heads, relative-position attention with
  Transformer-XL's ``u, v`` biases; macaron feed-forward = FastSpeech's conv1d FFN, 1536 units, kernel 3, ReLU;
  convolution module with kernel 7, BatchNorm, biases on) in ESPnet's **post-norm** form
  (``normalize_before=False``: every LayerNorm after its residual sum, then the block's final LayerNorm);
  :class:`audiozoo.nn.conformer.ConformerBlock` with ``pre_norm=False, ffn_kind="conv"``;
- variance adaptor at **token level**: duration predictor (2 x [conv k3 256, ReLU, LN, dropout 0.2] -> linear, in
  ``ln(d + 1)``; inference ``clamp(round(exp(x) - 1), 0)``), pitch predictor (5 layers 256 k5, dropout 0.5, fed a
  detached copy of the encoder output: ``stop_gradient_from_pitch_predictor``), energy predictor (2 layers 256 k3);
  both values embedded by ``Conv1d(1, 384, k=1)`` and added to the encoder output before the length regulator
  (FastPitch's continuous embedding; no buckets);
- length regulator (speed ``alpha`` rounds the rounded durations again, as ESPnet's ``LengthRegulator``) ->
  decoder: the same conformer stack (input ``* sqrt(384)``, depthwise kernel 31, no embedding) -> linear to 80
  mels -> Tacotron 2 post-net (5 conv k5 256, no bias, BatchNorm, tanh but the last, dropout 0.5), residual.

Departures (none changes the reference's outputs for unpadded inputs; the parity test checks it):

- padding is masked everywhere: the reference masks attention keys in the encoder only, runs the decoder unmasked
  at inference and lets its convolutions (FFN, convolution module, predictors) read padded positions, so a batched
  item differs from the same item alone; here padded positions are zeroed before every convolution and masked in
  every attention, so an item's output does not depend on its batch;
- an utterance whose predicted durations are all zero gets one frame on its first token (the reference gives
  every token of such a row, padding included, one frame);
- when durations are *predicted* and a gradient is required, the length regulator passes a straight-through
  gradient to the duration predictor (forward values unchanged), as :mod:`audiozoo.models.tts.fastspeech2`.

Units: pitch and energy are normalised values, ``(B, N)`` per token (``config.pitch_level = "phoneme"``); for
training here the ``tts`` task normalises ``ln F0`` and frame energy with the corpus statistics kept in the
``pitch_stats`` / ``energy_stats`` buffers. Output mels are those of HiFi-GAN (:class:`audiozoo.dsp.VocoderMel`:
natural-log mel, 22.05 kHz, n_fft 1024, hop 256, 80 mels, 0-8 kHz), channels first ``(B, 80, L)``, padded frames
at ``ln(1e-5)``. The official ESPnet checkpoint instead predicts ESPnet's ``LogMelFbank`` (log10 amplitude mel,
fmin 80, fmax 7600) normalised by global mean/variance (its HiFi-GAN de-normalises): converted weights reproduce
those values, not HiFi-GAN V1's input.

License of this implementation: the project's (ESPnet / transformers: Apache-2.0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ...config import build_config
from ...errors import CheckpointError, ConfigError
from ...nn.alignment import length_regulate
from ...nn.conformer import ConformerBlock, relative_positional_encoding
from ...nn.fastspeech import PostNet, VariancePredictor, padding_mask
from ...registry import register_model
from ..contracts import VarianceTTSModel

LOG_FLOOR = math.log(1e-5)  # HiFi-GAN's log-mel of silence


@dataclass
class FastSpeech2ConformerConfig:
    """Hyper-parameters (defaults: transformers' ``FastSpeech2ConformerConfig()`` = ESPnet's LJSpeech model)."""

    vocab_size: int = 78
    hidden: int = 384
    encoder_layers: int = 4
    decoder_layers: int = 4
    encoder_heads: int = 2
    decoder_heads: int = 2
    encoder_ffn_dim: int = 1536
    decoder_ffn_dim: int = 1536
    ffn_kernel: int = 3  # FastSpeech's conv1d feed-forward ("positionwise_conv_kernel_size")
    encoder_kernel: int = 7  # conformer convolution module
    decoder_kernel: int = 31
    pre_norm: bool = False  # ESPnet's normalize_before
    conv_bias: bool = True
    dropout: float = 0.2
    attn_dropout: float = 0.2
    pos_dropout: float = 0.2
    duration_layers: int = 2
    duration_filter: int = 256
    duration_kernel: int = 3
    duration_dropout: float = 0.2
    pitch_layers: int = 5
    pitch_filter: int = 256
    pitch_kernel: int = 5
    pitch_dropout: float = 0.5
    pitch_embed_kernel: int = 1
    energy_layers: int = 2
    energy_filter: int = 256
    energy_kernel: int = 3
    energy_dropout: float = 0.5
    energy_embed_kernel: int = 1
    variance_embed_dropout: float = 0.0
    stop_gradient_pitch: bool = True
    stop_gradient_energy: bool = False
    postnet: bool = True
    postnet_channels: int = 256
    postnet_kernel: int = 5
    postnet_layers: int = 5
    postnet_dropout: float = 0.5
    n_speakers: int = 0
    # token-level variances (read by the tts task); the only level this model has
    pitch_level: str = "phoneme"
    energy_level: str = "phoneme"
    # output: HiFi-GAN's mel (dsp.VocoderMel defaults)
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pitch_level != "phoneme" or self.energy_level != "phoneme":
            raise ConfigError("the conformer FastSpeech 2 predicts token-level pitch and energy: pitch_level and "
                              f"energy_level must be 'phoneme', got {self.pitch_level!r}, {self.energy_level!r}")
        for heads in (self.encoder_heads, self.decoder_heads):
            if self.hidden % heads:
                raise ConfigError(f"hidden {self.hidden} is not divisible by {heads} heads")
        for k in ("pitch_embed_kernel", "energy_embed_kernel"):
            if getattr(self, k) % 2 == 0:
                raise ConfigError(f"{k} must be odd ('same' padding), got {getattr(self, k)}")


class FastSpeech2ConformerOutput(NamedTuple):
    """What :class:`FastSpeech2Conformer` returns (``mel`` first, per the tts contract).

    mel: ``(B, n_mels, L)`` after the post-net; padded frames at ``ln(1e-5)``. mel_lengths: ``(B,)``.
    durations: ``(B, N)`` frames per token used (targets or rounded predictions). log_durations: ``(B, N)``
    predicted ``ln(d + 1)``. pitch, energy: ``(B, N)`` predicted normalised values. mel_before: ``(B, n_mels, L)``
    before the post-net.
    """

    mel: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    mel_before: Tensor


class ConformerStack(nn.Module):
    """ESPnet's conformer encoder as FastSpeech 2 uses it: ``(x (B, L, D), pad (B, L)) -> (B, L, D)``.

    ``x * sqrt(D)`` -> dropout, relative sinusoids -> dropout (``RelPositionalEncoding``), ``depth`` conformer
    blocks; padded frames zeroed on input and output, masked in attention and before every convolution.
    """

    def __init__(self, dim: int, depth: int, heads: int, ffn_dim: int, kernel: int, ffn_kernel: int, dropout: float,
                 attn_dropout: float, pos_dropout: float, pre_norm: bool, conv_bias: bool):
        super().__init__()
        self.dim, self.scale = dim, math.sqrt(dim)
        self.drop = nn.Dropout(pos_dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(dim, heads, ffn_dim, kernel, dropout, attn_dropout, "relative", "batch", conv_bias,
                           ffn_kind="conv", ffn_kernel=ffn_kernel, pre_norm=pre_norm) for _ in range(depth))

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        n = x.shape[1]
        x = self.drop(x.masked_fill(pad[..., None], 0.0) * self.scale)
        pos = self.drop(relative_positional_encoding(n, self.dim, x.device, x.dtype))
        mask = pad if torch.jit.is_tracing() or bool(pad.any()) else None
        for block in self.blocks:
            x = block(x, mask, pos)
        return x.masked_fill(pad[..., None], 0.0)


class FastSpeech2Conformer(VarianceTTSModel):
    """Conformer FastSpeech 2: ``forward(tokens (B, N), lengths (B,), ...) -> FastSpeech2ConformerOutput``.

    Training passes ground-truth ``durations (B, N)``, ``pitch`` and ``energy`` (normalised, ``(B, N)``);
    inference passes none and may set ``alpha`` (speed: durations ``round(d * alpha)``, > 1 slower),
    ``pitch_shift`` (semitones; needs ``pitch_stats``) and ``energy_scale`` (multiplies the linear energy).
    """

    def __init__(self, config: FastSpeech2ConformerConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        common = dict(ffn_kernel=c.ffn_kernel, dropout=c.dropout, attn_dropout=c.attn_dropout,
                      pos_dropout=c.pos_dropout, pre_norm=c.pre_norm, conv_bias=c.conv_bias)
        self.encoder = ConformerStack(c.hidden, c.encoder_layers, c.encoder_heads, c.encoder_ffn_dim, c.encoder_kernel,
                                      **common)
        self.speaker_embed = nn.Embedding(c.n_speakers, c.hidden) if c.n_speakers > 0 else None
        self.duration_predictor = VariancePredictor(c.hidden, c.duration_filter, c.duration_kernel, c.duration_dropout,
                                                    mask_hidden=True, layers=c.duration_layers)
        self.pitch_predictor = VariancePredictor(c.hidden, c.pitch_filter, c.pitch_kernel, c.pitch_dropout,
                                                 mask_hidden=True, layers=c.pitch_layers)
        self.energy_predictor = VariancePredictor(c.hidden, c.energy_filter, c.energy_kernel, c.energy_dropout,
                                                  mask_hidden=True, layers=c.energy_layers)
        self.pitch_embed = nn.Conv1d(1, c.hidden, c.pitch_embed_kernel, padding=c.pitch_embed_kernel // 2)
        self.energy_embed = nn.Conv1d(1, c.hidden, c.energy_embed_kernel, padding=c.energy_embed_kernel // 2)
        self.embed_drop = nn.Dropout(c.variance_embed_dropout)
        # [mean, std] of ln F0 (Hz) and of the frame energy over the training corpus; std 0 = not set yet
        self.register_buffer("pitch_stats", torch.zeros(2))
        self.register_buffer("energy_stats", torch.zeros(2))
        self.decoder = ConformerStack(c.hidden, c.decoder_layers, c.decoder_heads, c.decoder_ffn_dim, c.decoder_kernel,
                                      **common)
        self.mel_linear = nn.Linear(c.hidden, c.n_mels)
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers, c.postnet_dropout,
                               bias=False) if c.postnet else None

    def _embed_value(self, conv: nn.Conv1d, value: Tensor, mask: Tensor) -> Tensor:
        """``value (B, N)`` -> ``(B, N, D)`` by ``conv`` over the value sequence; zero at padded tokens."""
        h = conv(value.masked_fill(mask, 0.0)[:, None].to(conv.weight.dtype)).transpose(1, 2)
        return self.embed_drop(h).masked_fill(mask[..., None], 0.0)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
                alpha: float = 1.0, pitch_shift: float = 0.0, energy_scale: float = 1.0,
                max_frames: int | None = None) -> FastSpeech2ConformerOutput:
        """See the class docstring. ``max_frames`` pads/crops the frame axis (the targets' ``L``)."""
        c = self.config
        lengths = self._token_lengths(tokens, lengths)
        b, n = tokens.shape
        for name, t in (("durations", durations), ("pitch", pitch), ("energy", energy)):
            if t is not None and t.shape != (b, n):
                raise ConfigError(f"{name} must be (B, N) = {(b, n)} (token level), got {tuple(t.shape)}")
        mask = padding_mask(lengths, n)
        x = self.encoder(self.embed(tokens), mask)
        if self.speaker_embed is not None:
            if speaker is None:
                raise ConfigError(f"this model has {c.n_speakers} speakers: pass speaker ids (B,)")
            x = x + self.speaker_embed(speaker.long().view(-1))[:, None]
        log_d = self.duration_predictor(x, mask)
        p_pred = self.pitch_predictor(x.detach() if c.stop_gradient_pitch else x, mask)
        e_pred = self.energy_predictor(x.detach() if c.stop_gradient_energy else x, mask)
        p_off, e_gain, e_off = self._controls(pitch_shift, energy_scale)
        p_val = pitch if pitch is not None else p_pred + p_off
        e_val = energy if energy is not None else e_pred * e_gain + e_off
        x = x + self._embed_value(self.energy_embed, e_val, mask) + self._embed_value(self.pitch_embed, p_val, mask)
        if durations is None:
            d_exp = (torch.exp(log_d) - 1.0).clamp(min=0.0)
            d = torch.round(d_exp.detach()).long().masked_fill(mask, 0)
            if alpha != 1.0:  # ESPnet: the speed factor rounds the rounded durations again
                d = torch.round(d.double() * alpha).long()
            empty = d.sum(1) == 0
            d[:, 0] = torch.where(empty, torch.ones_like(d[:, 0]), d[:, 0])
            if torch.is_grad_enabled() and d_exp.requires_grad:  # straight-through (module docstring)
                x = x * (1.0 + d_exp - d_exp.detach())[..., None]
        else:
            d = durations.long().masked_fill(mask, 0)
        frames, mel_lengths = length_regulate(x, d, 1.0, lengths, max_frames)
        fmask = padding_mask(mel_lengths, frames.shape[1])
        h = self.decoder(frames, fmask)
        mel_before = self.mel_linear(h).transpose(1, 2)
        if self.postnet is None:
            mel = mel_before
        else:
            mel = mel_before + self.postnet(mel_before, fmask if torch.jit.is_tracing() or bool(fmask.any()) else None)
        pad = fmask[:, None]
        return FastSpeech2ConformerOutput(mel.masked_fill(pad, LOG_FLOOR), mel_lengths, d, log_d, p_pred, e_pred,
                                          mel_before.masked_fill(pad, LOG_FLOOR))


# ------------------------------------------------------------------------------------------------ converter
# transformers FastSpeech2ConformerModel key -> audiozoo key (first match wins); predictor layers: _rename
_RULES = [
    (r"^encoder\.embed\.weight$", "embed.weight"),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.self_attn\.linear_([qkv])\.", r"\1.blocks.\2.attn.\3_proj."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.self_attn\.linear_out\.", r"\1.blocks.\2.attn.out_proj."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.self_attn\.linear_pos\.", r"\1.blocks.\2.attn.pos_proj."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.self_attn\.(pos_bias_[uv])$", r"\1.blocks.\2.attn.\3"),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.feed_forward_macaron\.conv([12])\.", r"\1.blocks.\2.ffn1.fc\3."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.feed_forward\.conv([12])\.", r"\1.blocks.\2.ffn2.fc\3."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.ff_macaron_layer_norm\.", r"\1.blocks.\2.ffn1.norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.self_attn_layer_norm\.", r"\1.blocks.\2.attn_norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.conv_layer_norm\.", r"\1.blocks.\2.conv.norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.ff_layer_norm\.", r"\1.blocks.\2.ffn2.norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.final_layer_norm\.", r"\1.blocks.\2.final_norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.conv_module\.norm\.", r"\1.blocks.\2.conv.conv_norm."),
    (r"^(encoder|decoder)\.conformer_layers\.(\d+)\.conv_module\.", r"\1.blocks.\2.conv."),
    (r"^(duration|pitch|energy)_predictor\.linear\.", r"\1_predictor.linear."),
    (r"^(pitch|energy)_embed\.conv\.", r"\1_embed."),
    (r"^speech_decoder_postnet\.feat_out\.", "mel_linear."),
    (r"^speech_decoder_postnet\.layers\.(\d+)\.conv\.", r"postnet.convs.\1.0."),
    (r"^speech_decoder_postnet\.layers\.(\d+)\.batch_norm\.", r"postnet.convs.\1.1."),
    (r"^speaker_id_embedding\.", "speaker_embed."),
]


def _rename(key: str) -> str | None:
    m = re.match(r"^(duration|pitch|energy)_predictor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(.*)$", key)
    if m:
        kind = "conv" if m.group(3) == "conv" else "norm"
        return f"{m.group(1)}_predictor.{kind}{int(m.group(2)) + 1}.{m.group(4)}"
    for pattern, repl in _RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    return None


def checkpoint_filter_fn(state: dict[str, Tensor], model: FastSpeech2Conformer) -> dict[str, Tensor]:
    """transformers' ``FastSpeech2ConformerModel`` state dict (or ``FastSpeech2ConformerWithHifiGan``'s
    ``model.*`` part) -> this model's. The configs must agree (sizes are checked by ``load_state_dict``); language
    ids and external speaker embeddings are not supported."""
    sd = dict(state)
    if any(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if "encoder.embed.weight" not in sd or "speech_decoder_postnet.feat_out.weight" not in sd:
        raise CheckpointError("not a transformers FastSpeech2ConformerModel state dict (encoder.embed / "
                              "speech_decoder_postnet.feat_out missing)")
    if "encoder.conformer_layers.0.concat_linear.weight" in sd:
        raise CheckpointError("concat_after=True conformer layers are not supported")
    if sd["speech_decoder_postnet.feat_out.weight"].shape[0] != model.n_mels:
        raise CheckpointError(f"checkpoint predicts {sd['speech_decoder_postnet.feat_out.weight'].shape[0]} values "
                              f"per step, this model {model.n_mels} (reduction_factor > 1 is not supported)")
    out: dict[str, Tensor] = {}
    unknown = []
    for k, v in sd.items():
        if k.endswith("pos_enc.pos_enc"):
            continue  # the sinusoid table (computed here)
        new = _rename(k)
        if new is None:
            unknown.append(k)
        else:
            out[new] = v
    if unknown:
        raise CheckpointError(f"unsupported keys (language / speaker-embedding projection?): {unknown[:4]}")
    # the reference keeps no corpus statistics (its pitch / energy are normalised outside the model): not set
    out.setdefault("pitch_stats", torch.zeros(2))
    out.setdefault("energy_stats", torch.zeros(2))
    return out


def config_from_transformers(cfg: dict[str, Any]) -> dict[str, Any]:
    """Overrides of :class:`FastSpeech2ConformerConfig` equivalent to a transformers ``FastSpeech2ConformerConfig``
    (its ``to_dict()``); a clear error for what this model does not have."""
    def get(key: str) -> Any:
        if key not in cfg:
            raise ConfigError(f"not a transformers FastSpeech2ConformerConfig: {key!r} missing")
        return cfg[key]

    unsupported = {"use_macaron_style_in_conformer": True, "use_cnn_in_conformer": True, "encoder_concat_after": False,
                   "decoder_concat_after": False, "reduction_factor": 1}
    bad = {k: get(k) for k, v in unsupported.items() if get(k) != v}
    if get("encoder_normalize_before") != get("decoder_normalize_before"):
        bad["normalize_before"] = (get("encoder_normalize_before"), get("decoder_normalize_before"))
    if (cfg.get("num_languages") or 0) > 1 or cfg.get("speaker_embed_dim"):
        bad["languages / speaker_embed_dim"] = (cfg.get("num_languages"), cfg.get("speaker_embed_dim"))
    if get("pitch_embed_dropout") != get("energy_embed_dropout"):
        bad["embed dropouts"] = (get("pitch_embed_dropout"), get("energy_embed_dropout"))
    if bad:
        raise ConfigError(f"unsupported FastSpeech2Conformer settings: {bad}")
    out = dict(vocab_size=get("vocab_size"), hidden=get("hidden_size"), n_mels=get("num_mel_bins"),
               pre_norm=bool(get("encoder_normalize_before")), conv_bias=bool(get("convolution_bias")),
               ffn_kernel=get("positionwise_conv_kernel_size"), dropout=get("encoder_dropout_rate"),
               attn_dropout=get("encoder_attention_dropout_rate"), pos_dropout=get("encoder_positional_dropout_rate"),
               variance_embed_dropout=get("pitch_embed_dropout"),
               stop_gradient_pitch=bool(get("stop_gradient_from_pitch_predictor")),
               stop_gradient_energy=bool(get("stop_gradient_from_energy_predictor")),
               postnet_layers=get("speech_decoder_postnet_layers"),
               postnet_channels=get("speech_decoder_postnet_units"),
               postnet_kernel=get("speech_decoder_postnet_kernel"),
               postnet_dropout=get("speech_decoder_postnet_dropout"),
               n_speakers=int(cfg.get("num_speakers") or 0) if (cfg.get("num_speakers") or 0) > 1 else 0,
               duration_dropout=get("duration_predictor_dropout_rate"))
    for side in ("encoder", "decoder"):
        out.update({f"{side}_layers": get(f"{side}_layers"), f"{side}_heads": get(f"{side}_num_attention_heads"),
                    f"{side}_ffn_dim": get(f"{side}_linear_units"), f"{side}_kernel": get(f"{side}_kernel_size")})
    for v in ("duration", "pitch", "energy"):
        out.update({f"{v}_layers": get(f"{v}_predictor_layers"), f"{v}_filter": get(f"{v}_predictor_channels"),
                    f"{v}_kernel": get(f"{v}_predictor_kernel_size")})
    for v in ("pitch", "energy"):
        out.update({f"{v}_dropout": get(f"{v}_predictor_dropout"), f"{v}_embed_kernel": get(f"{v}_embed_kernel_size")})
    return out


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="FastSpeech 2: Fast and High-Quality End-to-End Text to Speech (Ren et al., ICLR 2021), conformer variant "
          "of ESPnet2-TTS (Hayashi et al. 2021)",
    arxiv="2006.04558",
    official_repo="https://github.com/espnet/espnet (espnet2/tts/fastspeech2; transformers FastSpeech2ConformerModel)",
    license="Apache-2.0 (ESPnet, transformers); this code: the project's",
    converter=checkpoint_filter_fn,
)
# CPU config: same architecture, narrower and shallower, Piper's 256-symbol table
_SMALL = dict(vocab_size=256, hidden=128, encoder_layers=2, decoder_layers=2, encoder_ffn_dim=512, decoder_ffn_dim=512,
              decoder_kernel=15, duration_filter=128, pitch_filter=128, energy_filter=128, pitch_layers=3,
              postnet=False, dropout=0.1, attn_dropout=0.1, pos_dropout=0.1)
_TINY = dict(vocab_size=40, hidden=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
             encoder_kernel=3, decoder_kernel=5, duration_filter=16, pitch_filter=16, energy_filter=16, pitch_layers=2,
             postnet_channels=16, postnet_layers=2, n_mels=20, n_fft=256, win_length=256)


def _build(base: dict, overrides: dict) -> FastSpeech2Conformer:
    return FastSpeech2Conformer(build_config(FastSpeech2ConformerConfig, base, **overrides))


@register_model(params=70_262_259, verified="AP", tiny=_TINY,
                params_source="[code] transformers FastSpeech2ConformerModel(FastSpeech2ConformerConfig()): "
                              "70,262,259 (ESPnet's LJSpeech conformer FastSpeech 2, espnet/fastspeech2_conformer)",
                **_PAPER)
def fastspeech2_conformer(**overrides) -> FastSpeech2Conformer:
    """The conformer FastSpeech 2 of ESPnet / transformers (hidden 384, 4 + 4 post-norm conformer blocks)."""
    return _build({}, overrides)


@register_model(params=4_181_075, verified="A", tiny=_TINY,
                params_source="[calc] audiozoo's CPU config: hidden 128, 2 + 2 conformer blocks (FFN 512 k3, conv "
                              "kernels 7 / 15), predictors 128 (pitch 3 layers), no post-net, 256-symbol table",
                **_PAPER)
def fastspeech2_conformer_small(**overrides) -> FastSpeech2Conformer:
    """A small conformer FastSpeech 2 for CPU training (hidden 128, 2 + 2 blocks, FFN 512, no post-net)."""
    return _build(_SMALL, overrides)
