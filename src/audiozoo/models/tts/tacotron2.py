"""Tacotron 2, and the SV2TTS synthesizer: Tacotron 2 conditioned on a speaker-verification embedding.

Papers: Jonathan Shen, Ruoming Pang, Ron J. Weiss et al., "Natural TTS Synthesis by Conditioning WaveNet on Mel
Spectrogram Predictions", ICASSP 2018, arXiv:1712.05884. Ye Jia, Yu Zhang, Ron J. Weiss et al., "Transfer Learning
from Speaker Verification to Multispeaker Text-To-Speech Synthesis" (SV2TTS), NeurIPS 2018, arXiv:1806.04558.
No official code for either; the peer implementation used for parity is espnet's ``espnet2.tts.tacotron2.Tacotron2``
(Apache-2.0; read for facts, not copied). CorentinJ/Real-Time-Voice-Cloning (MIT) implements SV2TTS with a
CBHG-encoder Tacotron (fatchord's), not Tacotron 2; its ``speaker_embedding_size`` (256) is what we take.

Architecture (Tacotron 2 Section 2.2; blocks in :mod:`audiozoo.nn.tacotron`, :mod:`audiozoo.nn.transformer_tts`,
:mod:`audiozoo.nn.fastspeech`):

- encoder: token embedding 512 -> 3 conv layers (512 channels, kernel 5, BatchNorm, ReLU, dropout 0.5) -> one
  bidirectional LSTM of 256 units per direction (512 outputs);
- SV2TTS (Section 2.2 of Jia et al.): the L2-normalised speaker embedding (``speaker_embed_dim``, 256 from the
  GE2E encoder) is concatenated to the encoder output at every token (espnet's
  ``spk_embed_integration_type="concat"``), so the attention memory is ``512 + 256`` wide;
- location-sensitive attention: 128 dims, 32 location filters of length 31 over the cumulative attention weights;
- decoder: pre-net 2 x 256 (ReLU, dropout 0.5 **always on**, also at inference) on the previous frame ->
  concatenated with the attention context -> 2 uni-directional LSTMs of 1024 units with zoneout 0.1 -> the
  concatenation of the LSTM output and the context is projected to ``r`` mel frames (no bias) and to ``r``
  stop-token logits (``reduction_factor`` r, 1 in the paper);
- 5-layer convolutional post-net (512 channels, kernel 5, BatchNorm, tanh) whose output is added to the mel.

Step order as espnet: the attention query is the first LSTM's previous output; the location features see the
cumulative weights of the steps so far (``attention_init`` gives the first step's input: ``"zeros"``, or espnet's
``"uniform"`` over the valid tokens); the softmax is scaled by ``attention_scale`` (espnet: 2).

Padding: tokens past an item's length are zeroed before every encoder convolution, the BiLSTM runs on packed
sequences and attention never sees padded tokens, so a batched item equals the item alone (espnet's convolutions
see the padding; its outputs agree with ours item by item). Output: HiFi-GAN's natural-log mel
(:class:`audiozoo.dsp.VocoderMel`: 22.05 kHz, hop 256, 80 mels, 0-8 kHz), ``(B, 80, L)``; frames past an item's
length hold ``ln(1e-5)``.

License of this implementation: the project's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ...config import build_config
from ...errors import CheckpointError, ConfigError
from ...nn.fastspeech import PostNet, padding_mask
from ...nn.tacotron import LocationSensitiveAttention, ZoneoutLSTMCell
from ...nn.transformer_tts import ConvPrenet, DecoderPrenet
from ...registry import WeightSet, register_model
from ..contracts import AutoregressiveTTSConfig, AutoregressiveTTSModel, AutoregressiveTTSOutput

LOG_FLOOR = AutoregressiveTTSModel.log_floor  # HiFi-GAN's log-mel of silence


@dataclass
class Tacotron2Config(AutoregressiveTTSConfig):
    """Tacotron 2 hyper-parameters (defaults: Shen et al. 2018 Section 2.2; see ``params_source``)."""

    vocab_size: int = 256  # Piper's num_symbols (ids of the 'piper' text scheme)
    embed_dim: int = 512
    encoder_conv_layers: int = 3
    encoder_conv_channels: int = 512
    encoder_kernel: int = 5
    encoder_dim: int = 512  # BiLSTM outputs (2 x 256)
    encoder_dropout: float = 0.5
    speaker_embed_dim: int = 0  # SV2TTS: 256 (GE2E d-vector, L2-normalised and concatenated to the encoder output)
    # "l2": the paper's unit-norm d-vector; "center": then minus the training corpus's mean d-vector, scaled to unit
    # RMS per dimension (buffers set by ``set_speaker_statistics``). Not in the paper: GE2E d-vectors of one corpus
    # share a large common part (mean cosine 0.84 to their mean on the WORLD voices), which the decoder then sees
    # as a near-constant input (recipes/tts/sv2tts_speaker_use.py: swapping d-vectors raised the teacher-forced L1
    # by 0.077 with "l2" vs 0.123 with "center" after 500 steps of otherwise equal runs; docs/models/tacotron2.md).
    speaker_norm: str = "l2"
    attention_dim: int = 128
    attention_filters: int = 32
    attention_kernel: int = 31
    attention_scale: float = 1.0  # espnet's AttLoc: 2.0
    attention_init: str = "zeros"  # first step's location input: "zeros" or "uniform" (espnet)
    prenet_layers: int = 2
    prenet_units: int = 256
    prenet_dropout: float = 0.5
    decoder_layers: int = 2
    decoder_dim: int = 1024
    zoneout: float = 0.1
    reduction_factor: int = 1
    postnet_layers: int = 5
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.encoder_dim % 2:
            raise ConfigError(f"encoder_dim is the BiLSTM's two directions and must be even, got {self.encoder_dim}")
        if self.attention_init not in ("zeros", "uniform"):
            raise ConfigError(f"attention_init must be 'zeros' or 'uniform', got {self.attention_init!r}")
        if self.speaker_norm not in ("l2", "center"):
            raise ConfigError(f"speaker_norm must be 'l2' or 'center', got {self.speaker_norm!r}")
        if self.reduction_factor < 1 or self.decoder_layers < 1 or self.speaker_embed_dim < 0:
            raise ConfigError("reduction_factor and decoder_layers must be >= 1, speaker_embed_dim >= 0")
        super().__post_init__()


Tacotron2Output = AutoregressiveTTSOutput  # (mel, mel_lengths, stop_logits, mel_before, attention)


class Tacotron2(AutoregressiveTTSModel):
    """``forward(tokens (B, N), lengths, mel (B, n_mels, L), mel_lengths, speaker_embedding (B, S)) ->
    Tacotron2Output`` (teacher forcing); ``synthesize(tokens, lengths, speaker_embedding=...) -> (mel, lengths)``."""

    def __init__(self, config: Tacotron2Config):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        self.encoder_convs = ConvPrenet(c.embed_dim, c.encoder_conv_channels, c.encoder_kernel,
                                        c.encoder_conv_layers, c.encoder_dropout)
        self.encoder_lstm = nn.LSTM(c.encoder_conv_channels, c.encoder_dim // 2, batch_first=True,
                                    bidirectional=True)
        mem = c.encoder_dim + c.speaker_embed_dim
        self.attention = LocationSensitiveAttention(c.decoder_dim, mem, c.attention_dim, c.attention_filters,
                                                    c.attention_kernel, c.attention_scale)
        self.prenet = DecoderPrenet(c.n_mels, c.prenet_units, c.prenet_layers, c.prenet_dropout)
        self.decoder_lstm = nn.ModuleList(
            ZoneoutLSTMCell(mem + c.prenet_units if i == 0 else c.decoder_dim, c.decoder_dim, c.zoneout)
            for i in range(c.decoder_layers))
        self.mel_out = nn.Linear(c.decoder_dim + mem, c.n_mels * c.reduction_factor, bias=False)
        self.stop_out = nn.Linear(c.decoder_dim + mem, c.reduction_factor) if c.stop_token else None
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers, c.postnet_dropout,
                               bias=False) if c.postnet_layers > 0 else None
        if c.speaker_embed_dim and c.speaker_norm == "center":
            self.register_buffer("speaker_center", torch.zeros(c.speaker_embed_dim))
            self.register_buffer("speaker_scale", torch.ones(()))

    def set_speaker_statistics(self, embeddings: Tensor) -> None:
        """``speaker_norm="center"``: set the centre (mean of the L2-normalised ``embeddings (M, S)``, the training
        corpus's d-vectors) and the scale (1 / the RMS per dimension of the centred vectors)."""
        c = self.config
        if not (c.speaker_embed_dim and c.speaker_norm == "center"):
            raise ConfigError("set_speaker_statistics needs a speaker-conditioned model with speaker_norm='center'")
        if embeddings.ndim != 2 or embeddings.shape[1] != c.speaker_embed_dim or embeddings.shape[0] < 2:
            raise ConfigError(f"embeddings must be (M >= 2, {c.speaker_embed_dim}), got {tuple(embeddings.shape)}")
        e = F.normalize(embeddings.double(), dim=-1)
        center = e.mean(0)
        rms = (e - center).pow(2).mean().sqrt()
        if not torch.isfinite(rms) or rms <= 0:
            raise ConfigError("the embeddings are all alike: no spread to scale by")
        self.speaker_center.copy_(center.to(self.speaker_center))
        self.speaker_scale.fill_(float(1.0 / rms))

    # ---- pieces -----------------------------------------------------------------------------------------
    def encode(self, tokens: Tensor, lengths: Tensor, speaker_embedding: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """``tokens (B, N)`` -> attention memory ``(B, N, encoder_dim + speaker_embed_dim)`` and its padding mask
        ``(B, N)`` (True = pad). ``speaker_embedding (B, speaker_embed_dim)`` is L2-normalised here (and centred and
        scaled with ``speaker_norm="center"``)."""
        c, b, n = self.config, tokens.shape[0], tokens.shape[1]
        if c.speaker_embed_dim:
            if speaker_embedding is None:
                raise ConfigError(f"this Tacotron 2 is speaker-conditioned (SV2TTS): pass speaker_embedding "
                                  f"(B, {c.speaker_embed_dim}), e.g. a GE2E d-vector of a reference clip")
            if speaker_embedding.shape != (b, c.speaker_embed_dim):
                raise ConfigError(f"speaker_embedding must be (B, {c.speaker_embed_dim}) = ({b}, "
                                  f"{c.speaker_embed_dim}), got {tuple(speaker_embedding.shape)}")
        elif speaker_embedding is not None:
            raise ConfigError("this Tacotron 2 has no speaker input (speaker_embed_dim 0); use sv2tts_synthesizer")
        mask = padding_mask(lengths, n)
        x = self.encoder_convs(self.embed(tokens), mask)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h = pad_packed_sequence(self.encoder_lstm(packed)[0], batch_first=True, total_length=n)[0]
        if c.speaker_embed_dim:
            spk = F.normalize(speaker_embedding.to(h.dtype), dim=-1)
            if c.speaker_norm == "center":
                spk = (spk - self.speaker_center.to(h.dtype)) * self.speaker_scale.to(h.dtype)
            h = torch.cat([h, spk[:, None].expand(-1, n, -1)], -1)
        return h, mask

    def _init_state(self, memory: Tensor, mask: Tensor) -> dict[str, Any]:
        b, c = memory.shape[0], self.config
        zeros = [memory.new_zeros(b, c.decoder_dim) for _ in range(c.decoder_layers)]
        valid = (~mask).to(memory.dtype)
        cum = valid / valid.sum(1, keepdim=True) if c.attention_init == "uniform" else torch.zeros_like(valid)
        return {"h": zeros, "c": [z.clone() for z in zeros], "cum": cum, "first": True,
                "processed": self.attention.process_memory(memory)}

    def _step(self, prev: Tensor, memory: Tensor, mask: Tensor, st: dict[str, Any], prenet_dropout: bool
              ) -> tuple[Tensor, Tensor, Tensor]:
        """One decoder step from the previous frame ``(B, n_mels)``: ``(frames (B, n_mels, r), stop logits (B, r),
        attention (B, N))``; updates ``st`` in place."""
        ctx, w = self.attention(st["h"][0], memory, st["processed"], st["cum"], mask)
        x = torch.cat([ctx, self.prenet(prev, always=prenet_dropout)], -1)
        for i, cell in enumerate(self.decoder_lstm):
            st["h"][i], st["c"][i] = cell(x, (st["h"][i], st["c"][i]))
            x = st["h"][i]
        zc = torch.cat([x, ctx], -1)
        st["cum"] = w if st["first"] else st["cum"] + w
        st["first"] = False
        r = self.config.reduction_factor
        stop = self.stop_out(zc) if self.stop_out is not None else zc.new_full((zc.shape[0], r), -math.inf)
        return self.mel_out(zc).view(zc.shape[0], self.n_mels, -1), stop, w

    # ---- forward (teacher forcing) ----------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, mel: Tensor | None = None,
                mel_lengths: Tensor | None = None, speaker_embedding: Tensor | None = None,
                return_attention: bool = False) -> Tacotron2Output:
        """Teacher-forced pass: step ``s`` (frames ``s r .. s r + r - 1``) sees target frame ``s r - 1`` (zeros at
        ``s = 0``). ``mel (B, n_mels, L)`` targets (required: for inference call :meth:`synthesize`). With
        ``return_attention`` the weights come as ``(B, 1, 1, L, N)``: one layer and head (the layout of the tts
        task's guided-attention loss), a step's weights repeated over its ``r`` frames."""
        c = self.config
        lengths = self._token_lengths(tokens, lengths)
        mel_lengths = self._target_lengths(tokens, mel, mel_lengths)
        big_l, r = mel.shape[-1], c.reduction_factor
        memory, mask = self.encode(tokens, lengths, speaker_embedding)
        st = self._init_state(memory, mask)
        prev = memory.new_zeros(mel.shape[0], c.n_mels)
        frames, stops, attn = [], [], []
        # the pre-net dropout follows train()/eval() here (deterministic validation); synthesize keeps it on
        for s in range(-(-big_l // r)):
            f, p, w = self._step(prev, memory, mask, st, self.training)
            frames.append(f)
            stops.append(p)
            attn.append(w)
            prev = mel[:, :, min(s * r + r - 1, big_l - 1)]
        mel_before = torch.cat(frames, -1)[..., :big_l]
        stop = torch.cat(stops, -1)[:, :big_l]
        mel_post, mel_before = self._finish_mel(mel_before, mel_lengths)
        att = None
        if return_attention:
            att = torch.stack(attn, 1).repeat_interleave(r, 1)[:, None, None, :big_l]
        return Tacotron2Output(mel_post, mel_lengths, stop, mel_before, att)

    # ---- inference --------------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, speaker_embedding: Tensor | None = None,
                   threshold: float | None = None, max_len_ratio: float | None = None,
                   min_len_ratio: float | None = None, max_frames: int | None = None, prenet_dropout: bool = True,
                   return_details: bool = False, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0) -> tuple[Tensor, ...]:
        """Autoregressive inference: ``(mel (B, n_mels, L), mel_lengths (B,))``; with ``return_details`` also the
        stop probabilities ``(B, L)``, the mel before the post-net ``(B, n_mels, L)`` and the attention ``(B, S, N)``
        per step.

        An item stops after the first step one of whose ``r`` stop probabilities reaches ``threshold``, but not
        before ``min_len_ratio * N`` frames; at most ``min(max_len_ratio * N, max_frames)`` frames (rounded up to
        a step). ``prenet_dropout=False`` makes decoding deterministic (the paper keeps the dropout on).
        ``alpha`` / ``pitch_shift`` / ``energy_scale`` (the tts pipeline's controls) must stay neutral.
        """
        c, r = self.config, self.config.reduction_factor
        was = self.training
        self.eval()
        try:
            lengths, thr, max_len, min_len = self._length_guards(tokens, lengths, threshold, max_len_ratio,
                                                                 min_len_ratio, max_frames, alpha, pitch_shift,
                                                                 energy_scale)
            memory, mask = self.encode(tokens, lengths, speaker_embedding)
            st = self._init_state(memory, mask)
            b = tokens.shape[0]
            prev = memory.new_zeros(b, c.n_mels)
            out_len = torch.zeros_like(max_len)
            done = torch.zeros(b, dtype=torch.bool, device=tokens.device)
            frames, probs, attn = [], [], []
            for s in range(-(-int(max_len.max()) // r)):
                f, p, w = self._step(prev, memory, mask, st, prenet_dropout)
                prob = torch.sigmoid(p)
                frames.append(f)
                probs.append(prob)
                attn.append(w)
                prev = f[:, :, -1]
                n = (s + 1) * r
                stop = ~done & ((((prob >= thr).any(-1)) & (n > min_len)) | (n >= max_len))
                out_len = torch.where(stop, torch.full_like(out_len, n), out_len)
                done = done | stop
                if bool(done.all()):
                    break
            mel, mel_before = self._finish_mel(torch.cat(frames, -1), out_len)
            stop_p, att = torch.cat(probs, -1), torch.stack(attn, 1)
        finally:
            self.train(was)
        return (mel, out_len, stop_p, mel_before, att) if return_details else (mel, out_len)

    # ---- contract helpers -------------------------------------------------------------------------------
    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """The autoregressive contract's inputs plus, when speaker-conditioned, random speaker embeddings."""
        args, kw = super().example_inputs(length, batch, seed)
        if self.config.speaker_embed_dim:
            g = torch.Generator().manual_seed(seed + 1)
            kw["speaker_embedding"] = torch.randn(batch, self.config.speaker_embed_dim, generator=g)
        return args, kw

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "encode") -> dict[str, Any]:
        """The text encoder ``encode(tokens, lengths)`` exports (not the autoregressive loop); a speaker-conditioned
        model's does not (it also takes the speaker embedding)."""
        if self.config.speaker_embed_dim:
            raise ConfigError("a speaker-conditioned Tacotron 2 (SV2TTS) does not export: its decoding is an "
                              "autoregressive loop and its encoder takes the speaker embedding too")
        return super().export_signature(batch, length, on)

    def input_spec(self) -> dict[str, Any]:
        spec, d = super().input_spec(), self.config.speaker_embed_dim
        if d:
            spec["speaker_embedding"] = f"(B, {d}) speaker d-vector (L2-normalised inside)"
        return spec


# ------------------------------------------------------------------------------------------------ converter
def checkpoint_filter_fn(state: dict[str, Any], model: Tacotron2) -> dict[str, Tensor]:
    """espnet ``espnet2.tts.tacotron2.Tacotron2`` state dict (``tts.`` prefix of a full espnet2 model allowed) ->
    audiozoo.

    Supported: ``atype="location"``, BatchNorm encoder/post-net, ``use_concate=True``, ``use_residual=False``,
    ``elayers=1``, ``spk_embed_integration_type="concat"`` (or no speaker input); no GST / speaker-id / language
    embeddings. Build the model with ``attention_scale=2.0, attention_init="uniform"`` to reproduce espnet's
    ``AttLoc``; espnet's pre-net dropout is always on (compare with its ``dropout_rate=0``).
    """
    sd = {k.removeprefix("tts."): v for k, v in state.items()}
    if "dec.feat_out.weight" not in sd or "enc.embed.weight" not in sd:
        raise CheckpointError("not an espnet Tacotron 2 state dict (dec.feat_out / enc.embed missing)")
    if "dec.att.loc_conv.weight" not in sd:
        raise CheckpointError("only espnet's location-sensitive attention (atype='location') is supported")
    extra = [k for k in sd if k.split(".")[0] in ("gst", "sid_emb", "lid_emb", "projection")]
    if extra:
        raise CheckpointError(f"GST / speaker-id / language embeddings and 'add' integration are not supported: "
                              f"{extra[:4]}")
    c = model.config
    if sd["dec.feat_out.weight"].shape[0] != c.n_mels * c.reduction_factor:
        raise CheckpointError(f"espnet model predicts {sd['dec.feat_out.weight'].shape[0]} values per step; this "
                              f"model {c.n_mels} x r {c.reduction_factor}")
    if sd["dec.att.mlp_enc.weight"].shape[1] != c.encoder_dim + c.speaker_embed_dim:
        raise CheckpointError(f"espnet attention memory is {sd['dec.att.mlp_enc.weight'].shape[1]} wide; this model "
                              f"{c.encoder_dim} + speaker {c.speaker_embed_dim}")
    out: dict[str, Tensor] = {"embed.weight": sd["enc.embed.weight"]}

    def copy(src: str, dst: str, names: tuple[str, ...] = ("weight", "bias")) -> None:
        for p in names:
            out[f"{dst}.{p}"] = sd[f"{src}.{p}"]

    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for i in range(c.encoder_conv_layers):
        copy(f"enc.convs.{i}.0", f"encoder_convs.convs.{i}.0", ("weight",))
        copy(f"enc.convs.{i}.1", f"encoder_convs.convs.{i}.1", bn)
    for k in [k for k in sd if k.startswith("enc.blstm.")]:
        out["encoder_lstm." + k.removeprefix("enc.blstm.")] = sd[k]
    copy("dec.att.mlp_enc", "attention.memory_layer")
    copy("dec.att.mlp_dec", "attention.query_layer", ("weight",))
    copy("dec.att.mlp_att", "attention.location_layer", ("weight",))
    out["attention.location_conv.weight"] = sd["dec.att.loc_conv.weight"].flatten(1, 2)  # (F, 1, 1, k) -> (F, 1, k)
    copy("dec.att.gvec", "attention.v")
    for i in range(c.decoder_layers):
        cell = f"dec.lstm.{i}.cell" if f"dec.lstm.{i}.cell.weight_ih" in sd else f"dec.lstm.{i}"
        copy(cell, f"decoder_lstm.{i}.cell", ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for i in range(c.prenet_layers):
        copy(f"dec.prenet.prenet.{i}.0", f"prenet.layers.{i}")
    copy("dec.feat_out", "mel_out", ("weight",))
    if model.stop_out is not None:
        copy("dec.prob_out", "stop_out")
    for i in range(c.postnet_layers):
        copy(f"dec.postnet.postnet.{i}.0", f"postnet.convs.{i}.0", ("weight",))
        copy(f"dec.postnet.postnet.{i}.1", f"postnet.convs.{i}.1", bn)
    return out


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="Natural TTS Synthesis by Conditioning WaveNet on Mel Spectrogram Predictions (Shen et al., ICASSP 2018)",
    arxiv="1712.05884",
    official_repo="none (peer implementation: espnet2.tts.tacotron2.Tacotron2, Apache-2.0)",
    license="this code: the project's",
    converter=checkpoint_filter_fn,
)
_SV2TTS = dict(_PAPER, paper="Transfer Learning from Speaker Verification to Multispeaker Text-To-Speech Synthesis "
                             "(Jia et al., NeurIPS 2018): its Tacotron 2 synthesizer", arxiv="1806.04558")
# the small CPU config: same architecture, narrower
_SMALL = dict(embed_dim=128, encoder_conv_channels=128, encoder_dim=128, attention_dim=64, attention_filters=16,
              prenet_units=128, decoder_dim=256, postnet_channels=128)
# the stop head is not on the path the registry tests differentiate (the mel); tests/models/test_tacotron2.py covers it
_TINY = dict(stop_token=False, vocab_size=40, embed_dim=16, encoder_conv_layers=2, encoder_conv_channels=16,
             encoder_kernel=3, encoder_dim=16, attention_dim=8, attention_filters=4, attention_kernel=5,
             prenet_units=16, decoder_layers=2, decoder_dim=24, postnet_layers=2, postnet_channels=16, n_mels=20,
             n_fft=256, win_length=256)
_TINY_SV2TTS = dict(_TINY, speaker_embed_dim=8)
_COUNT = ("[calc] = espnet2.tts.tacotron2.Tacotron2(idim=256, odim=80, adim=128{}) on the meta device, every "
          "weight and bias (BatchNorm running statistics not counted), identical tensor for tensor; Section 2.2: "
          "embedding 512, 3 conv 512 k5, BiLSTM 2 x 256, attention 128 with 32 filters k31, pre-net 2 x 256, "
          "2 LSTM 1024, post-net 5 x 512 k5, Piper's 256-symbol table; the paper gives no count")


def _tacotron2(base: dict, overrides: dict) -> Tacotron2:
    return Tacotron2(build_config(Tacotron2Config, base, **overrides))


@register_model(params=26_147_202, verified="AP", tiny=_TINY, params_source=_COUNT.format(""), **_PAPER)
def tacotron2(**overrides) -> Tacotron2:
    """Tacotron 2 as in the paper (Section 2.2), predicting HiFi-GAN's 80-bin log-mel."""
    return _tacotron2({}, overrides)


_SMALL_WEIGHTS = {
    "piper_joe": WeightSet(
        "Tacotron 2 small (reduction factor 3) trained here on 0.39 h of the Piper voice en_US-joe-medium "
        "(piper-speech): 13,000 steps over 8 stages on one CPU thread (~4 h; encoder / post-net dropout 0.1 from "
        "stage 3); speaks through hifigan_v1.universal. 34 held-out sentences, Whisper tiny.en, mean of 3 runs of "
        "these weights (the decoder samples its pre-net dropout): WER 27.0 % (23.6-29.8), CER 12.8 % (the Piper "
        "voice itself 8.0 %, espeak-ng 38.2 %, fastspeech2_small.piper_joe 17.8 %); weights float16",
        sha256="38a021ba58bd7727064d54fc8a7735f3b6cab1d83e7302909e7b8a92f5d8a2df",
        recipe="recipes/tts/tacotron2_small_piper.yaml", commit="01892f0",
        license="weights: trained on Piper en_US-joe-medium output (voice MIT, joe data CC0; fine-tuned from "
                "lessac, CSTR research licence, see docs/weights.md)",
        metrics={"held_out": "piper-speech test split, 34 sentences; mean of 3 synthesis runs", "wer": 0.270,
                 "wer_runs": [0.236, 0.298, 0.276], "cer": 0.128, "dnsmos_ovrl": 2.72, "mcd_dtw_vs_piper": 26.5,
                 "piper_wer": 0.080, "espeak_wer": 0.382, "rtf_fp32_1_thread": 0.81}),
}


@register_model(params=1_864_850, verified="APTU", tiny=_TINY, weights=_SMALL_WEIGHTS,
                params_source="[calc] audiozoo's CPU config: embedding / convs / BiLSTM 128, attention 64 (16 "
                              "filters), pre-net 128, 2 LSTM 256, post-net 5 x 128", **_PAPER)
def tacotron2_small(**overrides) -> Tacotron2:
    """A small Tacotron 2 that trains on CPU (128-wide encoder, 2 x 256 decoder LSTMs)."""
    return _tacotron2(_SMALL, overrides)


@register_model(params=27_249_282, verified="AP", tiny=_TINY_SV2TTS,
                params_source=_COUNT.format(", spk_embed_dim=256, spk_embed_integration_type='concat'") +
                "; SV2TTS: speaker embedding 256 (Real-Time-Voice-Cloning's speaker_embedding_size, the GE2E "
                "d-vector)", **_SV2TTS)
def sv2tts_synthesizer(**overrides) -> Tacotron2:
    """The SV2TTS synthesizer: Tacotron 2 with the L2-normalised 256-d GE2E speaker embedding concatenated to
    every encoder output (compose with ``ge2e_speaker_encoder.resemblyzer`` for the embedding)."""
    return _tacotron2({"speaker_embed_dim": 256}, overrides)
