"""FastSpeech: a non-autoregressive feed-forward Transformer with a duration predictor and a length regulator,
trained on durations extracted from an autoregressive teacher's attention.

Paper: Yi Ren, Yangjun Ruan, Xu Tan, Tao Qin, Sheng Zhao, Zhou Zhao, Tie-Yan Liu, "FastSpeech: Fast, Robust and
Controllable Text to Speech", NeurIPS 2019, arXiv:1905.09263. No official code; the peer implementation used for
parity is espnet's ``espnet2.tts.fastspeech.FastSpeech`` (Apache-2.0; read for facts, not copied).

Architecture (Section 3, Figure 1; blocks in :mod:`audiozoo.nn.fastspeech`):

- phoneme embedding + sinusoidal positions -> ``N`` feed-forward Transformer (FFT) blocks (self-attention, then a
  2-layer 1-D convolution with ReLU, each sub-layer with a residual connection, dropout and post-LayerNorm;
  Section 3.1);
- duration predictor (Section 3.3): 2 x [conv1d k3 -> ReLU -> LayerNorm -> dropout] -> linear, predicting
  ``ln(d + 1)`` (the log domain, MSE against the teacher's durations; espnet's offset 1);
- length regulator (Section 3.2): each phoneme's hidden state repeated ``round(d * alpha)`` times; ``alpha`` is
  the speed control (``alpha > 1`` slower, the paper's 0.5 ... 1.5);
- ``N`` FFT blocks on the frames (with positions again) -> linear to the 80 mel bins. The paper has no post-net;
  ``postnet=True`` adds Tacotron 2's (as espnet's default).

Durations come from an autoregressive teacher (Section 3.3): the Transformer TTS teacher runs teacher-forced,
the encoder-decoder attention head with the largest focus rate is picked, and each phoneme gets the frames whose
attention argmax it is (:func:`audiozoo.nn.durations_from_attention`; ``TransformerTTS.extract_durations``). The
mel targets are the teacher's own syntheses (sequence-level knowledge distillation, Section 3.3 / 4.2).

Output: HiFi-GAN's natural-log mel (22.05 kHz, n_fft 1024, hop 256, 80 mels, 0-8 kHz), ``(B, 80, L)``; frames
past an item's length hold ``ln(1e-5)``. Tokens: ids of the config's ``text`` scheme (``"piper"`` by default).

License of this implementation: the project's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ...config import build_config
from ...errors import CheckpointError, ConfigError
from ...nn.alignment import length_regulate
from ...nn.fastspeech import FFTStack, PostNet, VariancePredictor, padding_mask
from ...registry import WeightSet, register_model
from ..contracts import VarianceTTSModel

LOG_FLOOR = math.log(1e-5)  # HiFi-GAN's log-mel of silence


@dataclass
class FastSpeechConfig:
    """FastSpeech hyper-parameters (defaults: the paper's Section 4 / Table of hyper-parameters)."""

    vocab_size: int = 256  # Piper's num_symbols (ids of the 'piper' text scheme)
    hidden: int = 384
    encoder_layers: int = 6
    decoder_layers: int = 6
    heads: int = 2
    ffn_dim: int = 1536
    ffn_kernels: tuple[int, int] = (3, 3)
    dropout: float = 0.1
    duration_filter: int = 256
    duration_kernel: int = 3
    duration_dropout: float = 0.1
    norm_eps: float = 1e-5  # espnet uses 1e-12
    postnet: bool = False
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_layers: int = 5
    max_positions: int = 2000
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not divisible by heads {self.heads}")


class FastSpeechOutput(NamedTuple):
    """What :class:`FastSpeech` returns (``mel`` first, per the tts contract).

    mel: ``(B, n_mels, L)`` (after the post-net if any); padded frames at ``ln(1e-5)``.
    mel_lengths: ``(B,)`` valid frames.
    durations: ``(B, N)`` frames per token used by the length regulator (targets or rounded predictions).
    log_durations: ``(B, N)`` predicted ``ln(d + 1)``.
    mel_before: ``(B, n_mels, L)`` before the post-net (= ``mel`` without one).
    """

    mel: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    mel_before: Tensor


class FastSpeech(VarianceTTSModel):  # mel_extractor and input_spec from the base; its own synthesize
    """``forward(tokens (B, N), lengths (B,), durations (B, N) | None, alpha) -> FastSpeechOutput``.

    Training passes the teacher's ``durations``; inference predicts them (``alpha`` scales them: > 1 slower).
    """

    def __init__(self, config: FastSpeechConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.hidden)
        self.encoder = FFTStack(c.hidden, c.encoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout,
                                c.max_positions)
        self.duration_predictor = VariancePredictor(c.hidden, c.duration_filter, c.duration_kernel, c.duration_dropout,
                                                    mask_hidden=True)
        self.decoder = FFTStack(c.hidden, c.decoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout,
                                c.max_positions)
        self.mel_linear = nn.Linear(c.hidden, c.n_mels)
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers,
                               bias=False) if c.postnet else None
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = c.norm_eps

    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                alpha: float = 1.0, max_frames: int | None = None) -> FastSpeechOutput:
        """See the class docstring. ``max_frames`` pads / crops the frame axis (the targets' ``L``)."""
        c = self.config
        if tokens.ndim != 2:
            raise ConfigError(f"FastSpeech takes token ids (B, N), got shape {tuple(tokens.shape)}")
        if alpha <= 0:
            raise ConfigError(f"alpha (speed factor on durations) must be > 0, got {alpha}")
        b, n = tokens.shape
        if int(tokens.max()) >= c.vocab_size or int(tokens.min()) < 0:
            raise ConfigError(f"token ids must lie in [0, {c.vocab_size}), got [{int(tokens.min())}, "
                              f"{int(tokens.max())}]")
        lengths = (torch.full((b,), n, dtype=torch.long, device=tokens.device) if lengths is None
                   else lengths.to(tokens.device).long())
        mask = padding_mask(lengths, n)
        x = self.encoder(self.embed(tokens), mask)
        log_d = self.duration_predictor(x, mask)
        if durations is None:
            d_float = (torch.exp(log_d) - 1.0).clamp(min=0.0) * alpha
            d = torch.round(d_float.detach()).long().masked_fill(mask, 0)
            d[d.sum(1) == 0, 0] = 1  # every utterance gets at least one frame (as espnet)
            if torch.is_grad_enabled() and d_float.requires_grad:
                # straight-through: forward value unchanged; a loss on the output reaches the predictor
                x = x * (1.0 + d_float - d_float.detach())[..., None]
        else:
            if durations.shape != (b, n):
                raise ConfigError(f"durations must be (B, N) = {(b, n)}, got {tuple(durations.shape)}")
            d = torch.round(durations.float() * alpha).long().masked_fill(mask, 0)
        frames, mel_lengths = length_regulate(x, d, 1.0, lengths, max_frames)
        fmask = padding_mask(mel_lengths, frames.shape[1])
        mel_before = self.mel_linear(self.decoder(frames, fmask)).transpose(1, 2)
        mel_before = mel_before.masked_fill(fmask[:, None], 0.0)
        mel = mel_before if self.postnet is None else mel_before + self.postnet(mel_before, fmask)
        pad = fmask[:, None]
        return FastSpeechOutput(mel.masked_fill(pad, LOG_FLOOR), mel_lengths, d, log_d,
                                mel_before.masked_fill(pad, LOG_FLOOR))

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """Inference from predicted durations: ``(mel (B, n_mels, L), mel_lengths (B,))``. ``alpha`` is the
        paper's speed control; FastSpeech has no pitch / energy input (non-neutral values raise)."""
        if pitch_shift != 0.0 or energy_scale != 1.0:
            raise ConfigError("FastSpeech has no pitch / energy controls; use FastSpeech 2 for them")
        return self._eval_forward(tokens, lengths, alpha=alpha)


# ------------------------------------------------------------------------------------------------ converter
def checkpoint_filter_fn(state: dict[str, Any], model: FastSpeech) -> dict[str, Tensor]:
    """espnet ``espnet2.tts.fastspeech.FastSpeech`` state dict (``tts.`` prefix allowed) -> audiozoo.

    Supported: the paper's layout in espnet terms — transformer encoder / decoder with
    ``encoder_normalize_before=decoder_normalize_before=False`` (post-LN FFT blocks), ``positionwise_layer_type=
    "conv1d"`` (kernel = ``ffn_kernels``), 2-layer duration predictor, ``reduction_factor=1``, no speaker / GST
    embeddings, and either plain positional encodings (``x * sqrt(d) + PE``: the ``sqrt(d)`` is folded into the
    embedding, the last encoder LayerNorm and the duration predictor's first convolution) or scaled ones with
    ``alpha = 1``. Build the model with ``norm_eps=1e-12`` to reproduce espnet's LayerNorm exactly.
    """
    sd = {k.removeprefix("tts."): v for k, v in state.items()}
    if "feat_out.weight" not in sd or "encoder.embed.0.weight" not in sd:
        raise CheckpointError("not an espnet FastSpeech state dict (feat_out / encoder.embed.0 missing)")
    if "encoder.after_norm.weight" in sd:
        raise CheckpointError("espnet model uses pre-LN blocks (normalize_before=True); FastSpeech's FFT blocks are "
                              "post-LN: train it with encoder/decoder_normalize_before=false")
    if sd["feat_out.weight"].shape[0] != model.n_mels:
        raise CheckpointError(f"espnet model predicts {sd['feat_out.weight'].shape[0]} values per step, this model "
                              f"{model.n_mels} (reduction_factor > 1 is not supported)")
    extra = [k for k in sd if k.split(".")[0] in ("gst", "sid_emb", "lid_emb", "projection")]
    if extra:
        raise CheckpointError(f"speaker / language / GST embeddings are not supported: {extra[:4]}")
    c = model.config
    scaled = "encoder.embed.1.alpha" in sd
    if scaled:
        alphas = [float(sd[k]) for k in ("encoder.embed.1.alpha", "decoder.embed.0.alpha") if k in sd]
        if any(abs(a - 1.0) > 1e-6 for a in alphas):
            raise CheckpointError(f"scaled positional encodings with alpha {alphas} != 1 cannot be expressed with "
                                  "FastSpeech's fixed positions")
    xscale = 1.0 if scaled else math.sqrt(c.hidden)
    out: dict[str, Tensor] = {"embed.weight": sd["encoder.embed.0.weight"] * xscale}

    def blocks(src: str, dst: str, n: int) -> None:
        for i in range(n):
            s, d = f"{src}.encoders.{i}", f"{dst}.blocks.{i}"
            a = f"{s}.self_attn"
            out[f"{d}.attn.qkv.weight"] = torch.cat([sd[f"{a}.linear_{z}.weight"] for z in "qkv"], 0)
            out[f"{d}.attn.qkv.bias"] = torch.cat([sd[f"{a}.linear_{z}.bias"] for z in "qkv"], 0)
            for p in ("weight", "bias"):
                out[f"{d}.attn.proj.{p}"] = sd[f"{a}.linear_out.{p}"]
                out[f"{d}.ffn.w_1.{p}"] = sd[f"{s}.feed_forward.w_1.{p}"]
                out[f"{d}.ffn.w_2.{p}"] = sd[f"{s}.feed_forward.w_2.{p}"]
                out[f"{d}.norm1.{p}"] = sd[f"{s}.norm1.{p}"]
                out[f"{d}.norm2.{p}"] = sd[f"{s}.norm2.{p}"]

    blocks("encoder", "encoder", c.encoder_layers)
    blocks("decoder", "decoder", c.decoder_layers)
    last = f"encoder.blocks.{c.encoder_layers - 1}.norm2"
    # the decoder's plain positional encoding multiplies its input (the length-regulated encoder output) by
    # sqrt(d): fold it into the encoder's last LayerNorm, and undo it where the duration predictor reads that output
    out[f"{last}.weight"] = out[f"{last}.weight"] * xscale
    out[f"{last}.bias"] = out[f"{last}.bias"] * xscale
    dp = "duration_predictor"
    if f"{dp}.conv.2.0.weight" in sd:
        raise CheckpointError("only 2-layer duration predictors are supported")
    for i in (0, 1):
        out[f"{dp}.conv{i + 1}.weight"] = sd[f"{dp}.conv.{i}.0.weight"] / (xscale if i == 0 else 1.0)
        out[f"{dp}.conv{i + 1}.bias"] = sd[f"{dp}.conv.{i}.0.bias"]
        out[f"{dp}.norm{i + 1}.weight"] = sd[f"{dp}.conv.{i}.2.weight"]
        out[f"{dp}.norm{i + 1}.bias"] = sd[f"{dp}.conv.{i}.2.bias"]
    out[f"{dp}.linear.weight"], out[f"{dp}.linear.bias"] = sd[f"{dp}.linear.weight"], sd[f"{dp}.linear.bias"]
    out["mel_linear.weight"], out["mel_linear.bias"] = sd["feat_out.weight"], sd["feat_out.bias"]
    if model.postnet is not None:
        for i in range(c.postnet_layers):
            out[f"postnet.convs.{i}.0.weight"] = sd[f"postnet.postnet.{i}.0.weight"]
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                out[f"postnet.convs.{i}.1.{p}"] = sd[f"postnet.postnet.{i}.1.{p}"]
    return out


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="FastSpeech: Fast, Robust and Controllable Text to Speech (Ren et al., NeurIPS 2019)",
    arxiv="1905.09263",
    official_repo="none (peer implementation: espnet2.tts.fastspeech.FastSpeech, Apache-2.0)",
    license="this code: the project's",
    converter=checkpoint_filter_fn,
)
# the CPU config: the size of transformer_tts_small, for the paper's speed comparison at equal size
_SMALL = dict(hidden=128, encoder_layers=3, decoder_layers=3, heads=2, ffn_dim=352, duration_filter=128)
_TINY = dict(vocab_size=40, hidden=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, duration_filter=16,
             n_mels=20, max_positions=128, n_fft=256, win_length=256)


def _fastspeech(base: dict, overrides: dict) -> FastSpeech:
    return FastSpeech(build_config(FastSpeechConfig, base, **overrides))


@register_model(params=50_227_537, verified="AP", tiny=_TINY,
                params_source="[calc] the paper's hyper-parameters (6 + 6 FFT blocks, hidden 384, 2 heads, conv "
                              "filter 1536 with kernel 3 in both layers, duration predictor 2 x conv k3 256) with "
                              "Piper's 256-symbol table; the paper's stated 30.1M [unverified] does not follow from "
                              "these values under any kernel reading (kernels 3/1: 36.1M, 1/1: 21.9M)",
                **_PAPER)
def fastspeech_base(**overrides) -> FastSpeech:
    """FastSpeech as in the paper (6 + 6 FFT blocks, hidden 384, 2 heads, conv FFN 1536 k3)."""
    return _fastspeech({}, overrides)


_SMALL_WEIGHTS = {
    "piper_joe": WeightSet(
        "FastSpeech small trained here on 0.36 h of the Piper voice en_US-joe-medium (piper-speech) with the VOICE's "
        "own durations as a stand-in for the paper's teacher-attention durations (2,000 steps, ~25 min on one "
        "shared CPU thread); speaks through hifigan_v1.universal. 34 held-out sentences, Whisper tiny.en: WER 9.3 % "
        "(the Piper voice itself 8.0 %, Piper through HiFi-GAN 8.9 %, fastspeech2_small.piper_joe 17.8 %, "
        "espeak-ng 34.7 %)",
        sha256="8aa5f3882ddad348e0306072a3655f7a4c77359e4d1c9094811186d2349e9251",
        recipe="recipes/tts/fastspeech_small_piper.yaml (data.build.out=cache/piper_h13 trainer.max_steps=2000)",
        commit="b27c79b",
        license="weights: trained on Piper en_US-joe-medium output (voice MIT, joe data CC0; fine-tuned from "
                "lessac, CSTR research licence, see docs/weights.md)",
        metrics={"held_out": "piper-speech test split, 34 sentences, 224 words (recipes/tts/eval_fastspeech2_piper.py)",
                 "wer": 0.093, "cer": 0.039, "dnsmos_ovrl": 2.87, "mcd_dtw_vs_piper": 23.67, "piper_wer": 0.080,
                 "piper_hifigan_wer": 0.089, "espeak_wer": 0.347, "rtf_fp32_1_thread": 0.53}),
}


@register_model(params=2_166_545, verified="ATU", tiny=_TINY, weights=_SMALL_WEIGHTS,
                params_source="[calc] audiozoo's CPU config: hidden 128, 3 + 3 FFT blocks, conv FFN 352 k3/k3, "
                              "duration predictor 128, 256-symbol table (transformer_tts_small: 2,088,051)",
                **_PAPER)
def fastspeech_small(**overrides) -> FastSpeech:
    """A small FastSpeech for CPU (hidden 128, 3 + 3 FFT blocks, FFN 352), the size of transformer_tts_small."""
    return _fastspeech(_SMALL, overrides)
