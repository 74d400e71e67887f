"""Transformer TTS: an autoregressive Transformer encoder-decoder from phonemes to mel frames.

Paper: Naihan Li, Shujie Liu, Yanqing Liu, Sheng Zhao, Ming Liu, Ming Zhou, "Neural Speech Synthesis with
Transformer Network", AAAI 2019, arXiv:1809.08895. No official code; the peer implementation used for parity is
espnet's ``espnet2.tts.transformer.Transformer`` (Apache-2.0; read for facts, not copied).

Architecture (Section 3, Figure 3; blocks in :mod:`audiozoo.nn.transformer_tts` and :mod:`audiozoo.nn`):

- text side: phoneme embedding -> encoder pre-net (3 conv layers, 512 channels, kernel 5, BatchNorm, ReLU,
  dropout; Section 3.2) -> linear projection -> scaled positional encoding ``x + alpha PE`` with a trainable
  ``alpha`` (Section 3.4) -> ``N`` Transformer encoder blocks (Section 3.5);
- mel side: the previous frame (an all-zero frame first) -> decoder pre-net (2 fully connected layers of 256
  units with ReLU and dropout 0.5 that stays on at inference, as Tacotron 2; Section 3.3) -> linear projection ->
  its own scaled positional encoding -> ``N`` decoder blocks (causal self-attention, encoder-decoder attention,
  feed-forward; Section 3.6);
- outputs: a linear layer to the 80 mel bins and a linear layer to one stop-token logit per frame (Section 3.7),
  and a 5-layer convolutional post-net whose output is added to the mel (Section 3.7, as Tacotron 2).

Blocks are pre-LayerNorm with a final LayerNorm on each stack and ReLU feed-forward layers (espnet's
``normalize_before=True``, the configuration it trains Transformer TTS with; the paper does not state the
placement). Training is teacher-forced: every frame is predicted in one parallel pass (the point of the paper:
~4.25x faster training than Tacotron 2). Inference decodes frame by frame with a key/value cache
(:class:`audiozoo.nn.KVCache`) until the stop probability passes ``stop_threshold`` or a length guard
(``max_len_ratio`` frames per token, ``max_frames`` in all) is hit.

Padding: padded tokens are zeroed before every pre-net convolution and padded frames before every post-net
convolution, and attention never sees padded keys, so a batched item equals the same item alone (espnet's
convolutions see the padding; its outputs agree with ours item by item).

Output: the natural-log mel of HiFi-GAN (:class:`audiozoo.dsp.VocoderMel`: 22.05 kHz, n_fft 1024, hop 256,
80 mels, 0-8 kHz), channels first ``(B, 80, L)``, so any ``hifigan_v1`` weight set vocodes it; frames past an
item's length hold ``ln(1e-5)``. Tokens: ids of the config's ``text`` scheme (``"piper"``: Piper's phoneme ids,
as :mod:`audiozoo.models.tts.fastspeech2`).

License of this implementation: the project's.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...config import build_config
from ...errors import CheckpointError, ConfigError
from ...nn.autoregressive import KVCache
from ...nn.fastspeech import PostNet, padding_mask
from ...nn.transformer import TransformerDecoder, TransformerEncoder
from ...nn.transformer_tts import (
    ConvPrenet,
    DecoderPrenet,
    ScaledPositionalEncoding,
    cross_attention_probs,
    durations_from_attention,
)
from ...registry import register_model
from ..contracts import AutoregressiveTTSConfig, AutoregressiveTTSModel, AutoregressiveTTSOutput

LOG_FLOOR = AutoregressiveTTSModel.log_floor  # HiFi-GAN's log-mel of silence


@dataclass
class TransformerTTSConfig(AutoregressiveTTSConfig):
    """Transformer TTS hyper-parameters (defaults: the paper's Sections 3 and 4; see ``params_source``)."""

    vocab_size: int = 256  # Piper's num_symbols (ids of the 'piper' text scheme)
    embed_dim: int = 512
    prenet_layers: int = 3
    prenet_channels: int = 512
    prenet_kernel: int = 5
    prenet_dropout: float = 0.5
    dim: int = 512
    heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    ffn_dim: int = 2048
    dropout: float = 0.1
    attn_dropout: float = 0.1
    norm_eps: float = 1e-5  # espnet uses 1e-12
    decoder_prenet_layers: int = 2
    decoder_prenet_units: int = 256
    decoder_prenet_dropout: float = 0.5
    postnet_layers: int = 5
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_dropout: float = 0.5
    max_positions: int = 2000

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if int(self.dim * (self.ffn_dim / self.dim)) != self.ffn_dim:
            raise ConfigError(f"ffn_dim {self.ffn_dim} is not representable as dim x ratio")
        super().__post_init__()


TransformerTTSOutput = AutoregressiveTTSOutput  # (mel, mel_lengths, stop_logits, mel_before, attention)


class TransformerTTS(AutoregressiveTTSModel):
    """``forward(tokens (B, N), lengths, mel (B, n_mels, L), mel_lengths) -> TransformerTTSOutput`` (teacher
    forcing); ``synthesize(tokens, lengths) -> (mel (B, n_mels, L), mel_lengths)`` (autoregressive)."""

    def __init__(self, config: TransformerTTSConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.prenet = ConvPrenet(c.embed_dim, c.prenet_channels, c.prenet_kernel, c.prenet_layers, c.prenet_dropout)
        self.encoder_proj = nn.Linear(c.prenet_channels, c.dim)
        self.encoder_pos = ScaledPositionalEncoding(c.dim, c.dropout, c.max_positions)
        self.encoder = TransformerEncoder(c.dim, c.encoder_layers, c.heads, c.ffn_dim / c.dim, norm_first=True,
                                          eps=c.norm_eps, drop=c.dropout, attn_drop=c.attn_dropout, act="relu")
        self.decoder_prenet = DecoderPrenet(c.n_mels, c.decoder_prenet_units, c.decoder_prenet_layers,
                                            c.decoder_prenet_dropout)
        self.decoder_proj = nn.Linear(c.decoder_prenet_units, c.dim)
        self.decoder_pos = ScaledPositionalEncoding(c.dim, c.dropout, c.max_positions)
        self.decoder = TransformerDecoder(c.dim, c.decoder_layers, c.heads, c.ffn_dim / c.dim, cross_attention=True,
                                          eps=c.norm_eps, drop=c.dropout, attn_drop=c.attn_dropout, act="relu")
        self.mel_out = nn.Linear(c.dim, c.n_mels)
        self.stop_out = nn.Linear(c.dim, 1) if c.stop_token else None
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers, c.postnet_dropout,
                               bias=False) if c.postnet_layers > 0 else None

    # ---- pieces -----------------------------------------------------------------------------------------
    def encode(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens (B, N)`` -> encoder memory ``(B, N, dim)`` and its padding mask ``(B, N)`` (True = pad)."""
        mask = padding_mask(lengths, tokens.shape[1])
        x = self.encoder_pos(self.encoder_proj(self.prenet(self.embed(tokens), mask)))
        return self.encoder(x, mask), mask

    def _decode(self, frames: Tensor, memory: Tensor, memory_mask: Tensor, cache: KVCache | None = None,
                offset: int = 0, prenet_dropout: bool = True) -> Tensor:
        """Previous frames ``(B, L, n_mels)`` -> decoder states ``(B, L, dim)``."""
        y = self.decoder_pos(self.decoder_proj(self.decoder_prenet(frames, always=prenet_dropout)), offset)
        return self.decoder(y, memory, None, memory_mask, cache=cache)

    @contextmanager
    def _capture_cross_inputs(self, store: list):
        """Record the (normed queries, memory, mask) every cross-attention sees during a forward."""
        handles = [blk.cross.register_forward_pre_hook(lambda _m, args: store.append(args))
                   for blk in self.decoder.blocks]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    # ---- forward (teacher forcing) ----------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, mel: Tensor | None = None,
                mel_lengths: Tensor | None = None, return_attention: bool = False) -> TransformerTTSOutput:
        """Teacher-forced pass: frame ``t`` is predicted from target frames ``< t`` (frame -1 = zeros).

        ``mel (B, n_mels, L)`` targets (required: for inference call :meth:`synthesize`), ``mel_lengths (B,)``.
        """
        c = self.config
        lengths = self._token_lengths(tokens, lengths)
        mel_lengths = self._target_lengths(tokens, mel, mel_lengths)
        memory, mask = self.encode(tokens, lengths)
        frames = mel.transpose(1, 2)
        prev = torch.cat([frames.new_zeros(frames.shape[0], 1, c.n_mels), frames[:, :-1]], 1)
        store: list = []
        # the pre-net dropout follows train()/eval() here (deterministic validation and attention extraction);
        # synthesize keeps it on at inference, as the paper (Tacotron 2's pre-net)
        if return_attention:
            with self._capture_cross_inputs(store):
                h = self._decode(prev, memory, mask, prenet_dropout=self.training)
        else:
            h = self._decode(prev, memory, mask, prenet_dropout=self.training)
        mel_before = self.mel_out(h).transpose(1, 2)
        stop = self.stop_out(h)[..., 0] if self.stop_out is not None else h.new_full(h.shape[:2], -math.inf)
        mel_post, mel_before = self._finish_mel(mel_before, mel_lengths)
        attn = None
        if return_attention:
            attn = torch.stack([cross_attention_probs(blk.cross, *args[:3])
                                for blk, args in zip(self.decoder.blocks, store)], 1)
        return TransformerTTSOutput(mel_post, mel_lengths, stop, mel_before, attn)

    @torch.no_grad()
    def extract_durations(self, tokens: Tensor, lengths: Tensor | None, mel: Tensor, mel_lengths: Tensor | None = None
                          ) -> tuple[Tensor, Tensor]:
        """FastSpeech's duration extractor (Ren et al. 2019, Section 3.3) with this model as the teacher.

        Runs teacher forcing on ``mel`` (the teacher's own synthesis for sequence-level distillation, or the
        recording), takes every encoder-decoder attention head of every layer, picks per item the head with the
        largest focus rate and counts, per token, the frames whose attention argmax it is. Returns ``durations
        (B, N)`` long (each row sums to its ``mel_lengths``) and the picked head ``(B,)`` as ``layer * heads +
        head``.
        """
        was = self.training
        self.eval()
        try:
            out = self(tokens, lengths, mel=mel, mel_lengths=mel_lengths, return_attention=True)
        finally:
            self.train(was)
        assert out.attention is not None
        attn = out.attention.flatten(1, 2)  # (B, layers * heads, L, N)
        lengths = self._token_lengths(tokens, lengths)
        return durations_from_attention(attn, lengths, out.mel_lengths)

    # ---- inference --------------------------------------------------------------------------------------
    def _windowed_step(self, frame: Tensor, memory: Tensor, mask: Tensor, cache: KVCache, t: int,
                       prenet_dropout: bool, focus: Tensor, ids: Tensor, window: tuple[int, int],
                       heads: tuple[int, int], lengths: Tensor) -> tuple[Tensor, Tensor]:
        """One decoding step with the attention window around ``focus (B,)``; returns the states and the new
        focus (see :meth:`synthesize`)."""
        back, fwd = window
        outside = (ids[None] < (focus - back)[:, None]) | (ids[None] > (focus + fwd)[:, None])
        store: list = []
        with self._capture_cross_inputs(store):
            h = self._decode(frame, memory, mask | outside, cache=cache, offset=t, prenet_dropout=prenet_dropout)
        n_layers, n_heads = heads
        att = torch.stack([cross_attention_probs(blk.cross, *args[:3])[:, :n_heads, -1]
                           for blk, args in zip(self.decoder.blocks[-n_layers:], store[-n_layers:])], 1)
        peak = att.mean((1, 2)).argmax(-1)  # (B,) inside the window: everything else has probability 0
        return h, torch.minimum(torch.maximum(focus, peak), lengths - 1)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, threshold: float | None = None,
                   max_len_ratio: float | None = None, min_len_ratio: float | None = None,
                   max_frames: int | None = None, prenet_dropout: bool = True,
                   return_details: bool = False, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0, attention_window: tuple[int, int] | None = None,
                   window_heads: tuple[int, int] = (2, 2)) -> tuple[Tensor, ...]:
        """Autoregressive inference with a KV cache: ``(mel (B, n_mels, L), mel_lengths (B,))``; with
        ``return_details`` also the stop probabilities ``(B, L)`` and the mel before the post-net (the frames
        fed back to the decoder), ``(B, n_mels, L)``.

        An item stops at the first frame whose stop probability reaches ``threshold`` (that frame included), but
        not before ``min_len_ratio * N`` frames; at most ``min(max_len_ratio * N, max_frames)`` frames (N = its
        tokens). ``prenet_dropout=False`` makes decoding deterministic (the paper keeps the dropout on).
        ``alpha`` / ``pitch_shift`` / ``energy_scale`` (the tts pipeline's controls) must stay at their neutral
        values: an autoregressive model has no duration, pitch or energy input to scale.

        ``attention_window=(back, forward)`` constrains the encoder-decoder attention to tokens ``[f - back, f +
        forward]`` around a monotonic focus ``f`` (espnet's ``use_att_constraint`` for Tacotron 2, here for every
        cross-attention head): ``f`` starts at 0 and moves to the argmax, inside the window, of the mean attention
        of the heads the guided-attention loss trained (``window_heads = (last layers, first heads)``, the ``tts``
        task's ``guided_attn_layers`` / ``guided_attn_heads``), never backwards. ``None``: free attention.
        """
        c = self.config
        if attention_window is not None and (min(attention_window) < 0 or len(attention_window) != 2):
            raise ConfigError(f"attention_window must be (back, forward) >= 0, got {attention_window}")
        was = self.training
        self.eval()
        try:
            lengths, thr, max_len, min_len = self._length_guards(tokens, lengths, threshold, max_len_ratio,
                                                                 min_len_ratio, max_frames, alpha, pitch_shift,
                                                                 energy_scale)
            steps = int(max_len.max())
            memory, mask = self.encode(tokens, lengths)
            b = tokens.shape[0]
            cache = KVCache(max_length=steps)
            frame = memory.new_zeros(b, 1, c.n_mels)
            out_len = max_len.clone()
            done = torch.zeros(b, dtype=torch.bool, device=tokens.device)
            mels, probs = [], []
            focus = torch.zeros(b, dtype=torch.long, device=tokens.device)
            ids = torch.arange(tokens.shape[1], device=tokens.device)
            for t in range(steps):
                if attention_window is None:
                    h = self._decode(frame, memory, mask, cache=cache, offset=t, prenet_dropout=prenet_dropout)
                else:
                    h, focus = self._windowed_step(frame, memory, mask, cache, t, prenet_dropout, focus, ids,
                                                   attention_window, window_heads, lengths)
                frame = self.mel_out(h)
                p = torch.sigmoid(self.stop_out(h)[:, 0, 0]) if self.stop_out is not None else h.new_zeros(b)
                mels.append(frame)
                probs.append(p)
                stop = ~done & (((p >= thr) & (t + 1 > min_len)) | (t + 1 >= max_len))
                out_len = torch.where(stop, torch.full_like(out_len, t + 1), out_len)
                done = done | stop
                if bool(done.all()):
                    break
            mel_before = torch.cat(mels, 1).transpose(1, 2)
            mel, mel_before = self._finish_mel(mel_before, out_len)
            stop_p = torch.stack(probs, 1)
        finally:
            self.train(was)
        return (mel, out_len, stop_p, mel_before) if return_details else (mel, out_len)


# ------------------------------------------------------------------------------------------------ converter
def _cat(state: dict, *keys: str) -> Tensor:
    return torch.cat([state[k] for k in keys], 0)


def checkpoint_filter_fn(state: dict[str, Any], model: TransformerTTS) -> dict[str, Tensor]:
    """espnet ``espnet2.tts.transformer.Transformer`` state dict (``tts.`` prefix of a full espnet2 model
    allowed) -> audiozoo.

    Supported: espnet's defaults of the architecture — encoder pre-net convolutions, ``normalize_before``
    blocks, ``positionwise_layer_type="conv1d"`` with kernel 1 or ``"linear"``, scaled positional encodings,
    decoder pre-net, post-net, ``reduction_factor=1``, no speaker / GST / language embeddings. Build the model
    with ``norm_eps=1e-12`` to reproduce espnet's LayerNorm exactly.
    """
    sd = {k.removeprefix("tts."): v for k, v in state.items()}
    if "feat_out.weight" not in sd or "encoder.embed.0.0.embed.weight" not in sd:
        raise CheckpointError("not an espnet Transformer TTS state dict with an encoder pre-net "
                              "(feat_out / encoder.embed.0.0.embed missing)")
    if sd["feat_out.weight"].shape[0] != model.n_mels or sd["prob_out.weight"].shape[0] != 1:
        raise CheckpointError(f"espnet model predicts {sd['feat_out.weight'].shape[0]} values x "
                              f"{sd['prob_out.weight'].shape[0]} frames per step; this model {model.n_mels} x 1 "
                              "(reduction_factor > 1 is not supported)")
    extra = [k for k in sd if k.split(".")[0] in ("gst", "sid_emb", "lid_emb", "projection")]
    if extra:
        raise CheckpointError(f"speaker / language / GST embeddings are not supported: {extra[:4]}")
    out: dict[str, Tensor] = {"embed.weight": sd["encoder.embed.0.0.embed.weight"]}

    def ffn(src: str, dst: str) -> None:
        for i, name in ((1, "fc1"), (2, "fc2")):
            w = sd[f"{src}.w_{i}.weight"]
            if w.ndim == 3:
                if w.shape[-1] != 1:
                    raise CheckpointError(f"{src}: position-wise convolutions of kernel {w.shape[-1]} are not "
                                          "supported (kernel 1 = the paper's linear feed-forward)")
                w = w[..., 0]
            out[f"{dst}.{name}.weight"], out[f"{dst}.{name}.bias"] = w, sd[f"{src}.w_{i}.bias"]

    def lin(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def bn(src: str, dst: str) -> None:
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{dst}.{p}"] = sd[f"{src}.{p}"]

    for i in range(model.config.prenet_layers):
        out[f"prenet.convs.{i}.0.weight"] = sd[f"encoder.embed.0.0.convs.{i}.0.weight"]
        bn(f"encoder.embed.0.0.convs.{i}.1", f"prenet.convs.{i}.1")
    lin("encoder.embed.0.1", "encoder_proj")
    out["encoder_pos.alpha"] = sd["encoder.embed.1.alpha"]
    for i in range(model.config.encoder_layers):
        s, d = f"encoder.encoders.{i}", f"encoder.blocks.{i}"
        a = f"{s}.self_attn"
        out[f"{d}.attn.qkv.weight"] = _cat(sd, *(f"{a}.linear_{x}.weight" for x in "qkv"))
        out[f"{d}.attn.qkv.bias"] = _cat(sd, *(f"{a}.linear_{x}.bias" for x in "qkv"))
        lin(f"{a}.linear_out", f"{d}.attn.proj")
        ffn(f"{s}.feed_forward", f"{d}.mlp")
        lin(f"{s}.norm1", f"{d}.norm1")
        lin(f"{s}.norm2", f"{d}.norm2")
    lin("encoder.after_norm", "encoder.norm")
    for i in range(model.config.decoder_prenet_layers):
        lin(f"decoder.embed.0.0.prenet.{i}.0", f"decoder_prenet.layers.{i}")
    lin("decoder.embed.0.1", "decoder_proj")
    out["decoder_pos.alpha"] = sd["decoder.embed.1.alpha"]
    for i in range(model.config.decoder_layers):
        s, d = f"decoder.decoders.{i}", f"decoder.blocks.{i}"
        a, x = f"{s}.self_attn", f"{s}.src_attn"
        out[f"{d}.attn.qkv.weight"] = _cat(sd, *(f"{a}.linear_{z}.weight" for z in "qkv"))
        out[f"{d}.attn.qkv.bias"] = _cat(sd, *(f"{a}.linear_{z}.bias" for z in "qkv"))
        lin(f"{a}.linear_out", f"{d}.attn.proj")
        lin(f"{x}.linear_q", f"{d}.cross.q")
        out[f"{d}.cross.kv.weight"] = _cat(sd, f"{x}.linear_k.weight", f"{x}.linear_v.weight")
        out[f"{d}.cross.kv.bias"] = _cat(sd, f"{x}.linear_k.bias", f"{x}.linear_v.bias")
        lin(f"{x}.linear_out", f"{d}.cross.proj")
        ffn(f"{s}.feed_forward", f"{d}.mlp")
        for src, dst in (("norm1", "norm1"), ("norm2", "norm_cross"), ("norm3", "norm2")):
            lin(f"{s}.{src}", f"{d}.{dst}")
    lin("decoder.after_norm", "decoder.norm")
    lin("feat_out", "mel_out")
    if model.stop_out is not None:
        lin("prob_out", "stop_out")
    for i in range(model.config.postnet_layers):
        out[f"postnet.convs.{i}.0.weight"] = sd[f"postnet.postnet.{i}.0.weight"]
        bn(f"postnet.postnet.{i}.1", f"postnet.convs.{i}.1")
    return out


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="Neural Speech Synthesis with Transformer Network (Li et al., AAAI 2019)",
    arxiv="1809.08895",
    official_repo="none (peer implementation: espnet2.tts.transformer.Transformer, Apache-2.0)",
    license="this code: the project's",
    converter=checkpoint_filter_fn,
)
# the small CPU config (recipes/tts/transformer_tts_small_piper.yaml): same architecture, narrower and shallower
_SMALL = dict(embed_dim=128, prenet_channels=128, dim=128, heads=4, encoder_layers=3, decoder_layers=3, ffn_dim=512,
              decoder_prenet_units=128, postnet_channels=128)
# the stop head is not on the path the registry tests differentiate (the mel); tests/models/test_transformer_tts.py
# covers it
_TINY = dict(stop_token=False, vocab_size=40, embed_dim=16, prenet_layers=2, prenet_channels=16, prenet_kernel=3,
             dim=32, heads=2, encoder_layers=1, decoder_layers=2, ffn_dim=64, decoder_prenet_units=16, postnet_layers=2,
             postnet_channels=16, n_mels=20, max_positions=256, n_fft=256, win_length=256)


def _transformer_tts(base: dict, overrides: dict) -> TransformerTTS:
    return TransformerTTS(build_config(TransformerTTSConfig, base, **overrides))


@register_model(params=53_075_187, verified="AP", tiny=_TINY,
                params_source="[calc] the paper's Sections 3-4: 6 + 6 blocks, d 512, 8 heads, encoder pre-net 3 "
                              "conv (512 ch, k5), decoder pre-net 2 x 256, 5-layer post-net (512 ch, k5, as "
                              "Tacotron 2), with Piper's 256-symbol table; the feed-forward width (2048, the "
                              "Transformer base) is not stated in the paper [assumed]; the paper gives no count",
                **_PAPER)
def transformer_tts_base(**overrides) -> TransformerTTS:
    """Transformer TTS as in the paper (6 + 6 blocks, d 512, 8 heads)."""
    return _transformer_tts({}, overrides)


@register_model(params=2_088_051, verified="AP", tiny=_TINY,
                params_source="[calc] audiozoo's CPU config: d 128, 4 heads, 3 + 3 blocks, FFN 512, pre-nets "
                              "128, post-net 5 x 128 channels, 256-symbol table",
                **_PAPER)
def transformer_tts_small(**overrides) -> TransformerTTS:
    """A small Transformer TTS that trains on CPU (d 128, 3 + 3 blocks, FFN 512)."""
    return _transformer_tts(_SMALL, overrides)
