"""Samba-ASR: a Mamba encoder-decoder for speech recognition, with no attention.

Paper: Syed Abdul Gaffar Shakhadri, Kruthika KR, Kartik Basavaraj Angadi, "Samba-ASR: State-Of-The-Art Speech
Recognition Leveraging Structured State-Space Models", arXiv:2501.02832 (SandLogic, 2025). No official code
or weights are public; the paper gives the block diagram (its Figure 1), the training settings (its Table 1:
AdamW, lr 1e-4, weight decay 0.01, eps 1e-8, batch 256) and WERs, but no widths, depths or parameter count.
This file is a reconstruction; every choice the paper does not pin down is listed here and in
docs/models/samba_asr.md.

What the paper states (Section 3, Figure 1):

* an **audio encoder** of convolutional layers followed by Mamba blocks over the log-mel spectrogram;
* a **text decoder** of Mamba blocks over token embeddings that predicts the next token;
* a **Mamba cross-connection** joining them, so that the decoder conditions on the audio without attention;
* Mamba blocks are the selective SSM of Gu & Dao 2023 (arXiv:2312.00752): :class:`audiozoo.nn.MambaMixer`,
  whose outputs equal transformers' ``MambaMixer`` slow path (tests/nn/test_mamba.py).

Reconstruction (guesses, each one a config field):

* **Front end** (guess: Whisper's, which Figure 1 resembles): 16 kHz, 25 ms Hann window, 10 ms hop, 80 mel
  bands, natural log; each utterance is mean/variance normalised per band over its valid frames (a
  parameter-free step inside :meth:`SambaASR.encode`, so recordings at any level look alike).
* **Convolutional stem**: two ``Conv1d(kernel 3) + GELU`` as Whisper, strides ``conv_strides`` (``(1, 2)`` =
  Whisper's 2x; the small configs use ``(2, 2)``, the 4x frame rate of the conformer baseline).
* **Encoder blocks**: pre-norm residual Mamba blocks ``x + Mamba(RMSNorm(x))`` (transformers' ``MambaBlock``);
  ``bidirectional`` uses Vision Mamba's two-direction mixer (the paper says "Mamba blocks"; a causal encoder
  is the literal reading and the canonical default, the bidirectional one the better choice for offline ASR).
* **Cross-connection** (the central guess): in every decoder layer ``l``, the selective scan first reads the
  audio — a per-layer projection ``RMSNorm(W_l m)`` of the encoder output ``m`` — and then continues over
  the text. Text position ``n`` therefore sees the whole utterance through the SSM state (a fixed-size summary
  built by input-dependent selection) and the tokens before it, exactly as a decoder-only Mamba with a speech
  prefix (Masuyama et al. 2024, arXiv:2411.06968, "MADEON"), but with the audio re-injected into every layer by
  its own connection. Cost is linear in audio plus text length, and decoding is recurrent: the audio is read
  once per layer (prefill), then each token costs one constant-time step.
* **Decoder output**: final RMSNorm, linear head tied to the token embedding (as Whisper).
* **Optional CTC head** on the encoder (``ctc=True``; not in the paper): used for joint CTC/attention training
  (Kim et al. 2017, arXiv:1609.06773) and for the forced alignment behind word timestamps.
* **Tokenizer**: the paper does not say; by default English characters (``a-z``, apostrophe, space).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.features import utterance_cmvn
from ...errors import ConfigError
from ...nn.conformer import lengths_to_padding_mask
from ...nn.mamba import MambaBlock, MambaMixer, MambaState
from ...registry import WeightSet, register_model
from ...text import asr_char_tokenizer
from ..contracts import Seq2SeqModel

__all__ = ["SambaASR", "SambaASRConfig", "samba_asr_base", "samba_asr_small"]

_PAPER = ("Shakhadri, Kruthika & Angadi, Samba-ASR: State-Of-The-Art Speech Recognition Leveraging Structured "
          "State-Space Models, 2025")


@dataclass
class SambaASRConfig:
    """Samba-ASR hyperparameters (see the module docstring for which are the paper's and which are guesses)."""

    # front end
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    # encoder
    dim: int = 512
    enc_layers: int = 12
    conv_strides: tuple[int, int] = (1, 2)
    bidirectional: bool = False
    # decoder
    dec_layers: int = 6
    tie_embeddings: bool = True
    # Mamba blocks (Gu & Dao defaults)
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    scan_mode: str = "fused"
    # regularisation
    dropout: float = 0.0
    drop_path: float = 0.0
    # heads and text
    ctc: bool = False
    tokenizer: dict | None = None
    max_target_len: int = 448

    def __post_init__(self) -> None:
        if min(self.dim, self.enc_layers, self.dec_layers, self.n_mels, self.d_state, self.d_conv, self.expand) < 1:
            raise ConfigError("Samba-ASR needs dim, enc_layers, dec_layers, n_mels, d_state, d_conv, expand >= 1")
        if len(self.conv_strides) != 2 or min(self.conv_strides) < 1:
            raise ConfigError(f"conv_strides must be two strides >= 1, got {self.conv_strides}")
        if not 0 <= self.dropout < 1 or not 0 <= self.drop_path < 1:
            raise ConfigError(f"dropout and drop_path must be in [0, 1), got {self.dropout}, {self.drop_path}")


def right_align(x: Tensor, lengths: Tensor) -> Tensor:
    """Move each item's first ``lengths[b]`` frames of ``x (B, M, D)`` to the end (padding first)."""
    m = x.shape[1]
    idx = (torch.arange(m, device=x.device)[None] - (m - lengths.to(x.device))[:, None]) % m  # (B, M)
    return torch.gather(x, 1, idx[..., None].expand_as(x))


# --------------------------------------------------------------------------- encoder
class SambaEncoder(nn.Module):
    """Conv stem + Mamba blocks: ``(features (B, F, L), lengths) -> (memory (B, L', D), lengths')``."""

    def __init__(self, cfg: SambaASRConfig):
        super().__init__()
        s1, s2 = cfg.conv_strides
        self.strides = (s1, s2)
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.dim, 3, stride=s1, padding=1)
        self.conv2 = nn.Conv1d(cfg.dim, cfg.dim, 3, stride=s2, padding=1)
        self.drop = nn.Dropout(cfg.dropout)
        mixer = dict(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, scan_mode=cfg.scan_mode)
        rates = [cfg.drop_path * i / max(cfg.enc_layers - 1, 1) for i in range(cfg.enc_layers)]
        self.blocks = nn.ModuleList(MambaBlock(cfg.dim, bidirectional=cfg.bidirectional, drop_path=r, **mixer)
                                    for r in rates)
        self.norm = nn.RMSNorm(cfg.dim, eps=1e-5)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        for s in self.strides:  # kernel 3, padding 1
            lengths = torch.div(lengths - 1, s, rounding_mode="floor") + 1
        return lengths

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        l1 = torch.div(lengths - 1, self.strides[0], rounding_mode="floor") + 1
        h = F.gelu(self.conv1(x))
        h = h.masked_fill(lengths_to_padding_mask(l1, h.shape[-1])[:, None], 0.0)  # no padding leaks into conv2
        out_len = self.output_lengths(lengths)
        h = F.gelu(self.conv2(h)).transpose(1, 2)
        pad = lengths_to_padding_mask(out_len, h.shape[1])
        h = self.drop(h.masked_fill(pad[..., None], 0.0))
        mask = pad if bool(pad.any()) else None
        for blk in self.blocks:
            h = blk(h, mask)
        return self.norm(h).masked_fill(pad[..., None], 0.0), out_len


# --------------------------------------------------------------------------- decoder
class MambaCrossConnection(nn.Module):
    """The audio as one decoder layer reads it: ``RMSNorm(W m)``, ``(B, M, D) -> (B, M, D)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.RMSNorm(dim, eps=1e-5)

    def forward(self, memory: Tensor) -> Tensor:
        return self.norm(self.proj(memory))


class SambaDecoderLayer(nn.Module):
    """``x + Mamba([cross(memory); RMSNorm(x)])[text part]``: ``x (B, N, D) -> (B, N, D)``.

    The scan reads the layer's view of the audio first, then the text, so every text position conditions on
    the whole utterance (and, causally, on the tokens before it).
    """

    def __init__(self, cfg: SambaASRConfig, drop_path: float = 0.0):
        super().__init__()
        self.cross = MambaCrossConnection(cfg.dim)
        self.norm = nn.RMSNorm(cfg.dim, eps=1e-5)
        self.mixer = MambaMixer(cfg.dim, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand,
                                scan_mode=cfg.scan_mode)
        self.drop_path = drop_path

    def _residual(self, x: Tensor, y: Tensor) -> Tensor:
        if self.training and self.drop_path > 0:
            keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - self.drop_path)
            y = y * keep / (1 - self.drop_path)
        return x + y

    def forward(self, x: Tensor, memory_left: Tensor, memory_pad_left: Tensor | None) -> Tensor:
        """``memory_left (B, M, D)``: the encoder output right-aligned (padding first, ``memory_pad_left``
        True there), so the scan reaches the text straight after each item's last valid frame; padded frames
        carry nothing into the state (the mixer zeroes them)."""
        m = memory_left.shape[1]
        seq = torch.cat([self.cross(memory_left), self.norm(x)], 1)
        mask = None
        if memory_pad_left is not None:
            mask = torch.cat([memory_pad_left, memory_pad_left.new_zeros(x.shape[:2])], 1)
        return self._residual(x, self.mixer(seq, mask)[:, m:])

    def prefill(self, memory: Tensor, lengths: Tensor) -> MambaState:
        """The mixer state after reading each item's valid audio ``memory[b, :lengths[b]]`` (batch ``B``)."""
        states = [self.mixer(self.cross(memory[b : b + 1, : int(lengths[b])]), return_state=True)[1]
                  for b in range(memory.shape[0])]
        return MambaState(torch.cat([s.conv for s in states]), torch.cat([s.ssm for s in states]))

    def step(self, x: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """One token ``x (B, D)`` -> ``(B, D)`` and the next state."""
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class SambaASR(Seq2SeqModel):
    """Samba-ASR: ``forward(features (B, n_mels, L), lengths (B,), tokens (B, N)) -> logits (B, N, vocab)``.

    ``tokens`` are the decoder inputs (``bos`` then the transcript, teacher forcing); ``logits[:, n]`` predicts
    token ``n + 1`` (``eos`` after the last). :meth:`generate` decodes greedily or with beam search;
    :meth:`ctc_log_probs` gives the CTC head's frame posteriors (``ctc=True``).
    """

    family = "asr"
    required_attributes = ("config", "vocab_size", "frontend", "tokenizer")

    def __init__(self, cfg: SambaASRConfig):
        super().__init__()
        self.config = cfg
        self._init_speech_io(cfg, asr_char_tokenizer())
        self.encoder = SambaEncoder(cfg)
        self.embed = nn.Embedding(self.vocab_size, cfg.dim)
        nn.init.normal_(self.embed.weight, std=cfg.dim ** -0.5)
        self.embed_drop = nn.Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(cfg.dec_layers - 1, 1) for i in range(cfg.dec_layers)]
        self.layers = nn.ModuleList(SambaDecoderLayer(cfg, r) for r in rates)
        self.norm = nn.RMSNorm(cfg.dim, eps=1e-5)
        self.head = nn.Linear(cfg.dim, self.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.ctc_head = nn.Linear(cfg.dim, self.vocab_size) if cfg.ctc else None

    @property
    def frame_shift(self) -> float:
        """Seconds between encoder frames (CTC frames)."""
        return self.config.hop_length * math.prod(self.config.conv_strides) / self.config.sample_rate

    # ---- network -----------------------------------------------------------------------------------
    def encode(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Log-mel ``(B, n_mels, L)`` -> ``(memory (B, L', dim), lengths (B,))``."""
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise ConfigError(f"expected log-mel features (B, {self.config.n_mels}, L), got {tuple(features.shape)}")
        b, _, n = features.shape
        lengths = (torch.full((b,), n, dtype=torch.long, device=features.device) if lengths is None
                   else lengths.to(features.device).long())
        return self.encoder(utterance_cmvn(features, lengths), lengths)

    def decode(self, memory: Tensor, memory_lengths: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced decoder: ``tokens (B, N)`` -> logits ``(B, N, vocab)``."""
        mem = right_align(memory, memory_lengths)
        pad = lengths_to_padding_mask(memory_lengths, memory.shape[1]).flip(1)  # padding first
        pad = pad if bool(pad.any()) else None
        h = self.embed_drop(self.embed(tokens))
        for layer in self.layers:
            h = layer(h, mem, pad)
        return self.head(self.norm(h))

    # ---- decoding (the loop is Seq2SeqModel.generate_from_memory: the audio is read once per layer, then
    # every token is one recurrent step) ---------------------------------------------------------------
    def decoder_state(self, memory: Tensor, memory_lengths: Tensor) -> list[MambaState]:
        return [layer.prefill(memory, memory_lengths) for layer in self.layers]

    def _step(self, tokens: Tensor, state: list[MambaState]) -> tuple[Tensor, list[MambaState]]:
        h = self.embed(tokens[:, -1])
        new = []
        for layer, st in zip(self.layers, state):
            h, st = layer.step(h, st)
            new.append(st)
        return self.head(self.norm(h)), new

    @staticmethod
    def _reorder(state: list[MambaState], index: Tensor) -> list[MambaState]:
        return [MambaState(s.conv.index_select(0, index), s.ssm.index_select(0, index)) for s in state]

    def input_spec(self) -> dict[str, Any]:
        return {**super().input_spec(), "features": f"log-mel (B, {self.config.n_mels}, L)",
                "vocab_size": self.vocab_size, "frame_shift_s": self.frame_shift}


# --------------------------------------------------------------------------- registered variants
# the CTC head is not on the forward path the registry tests differentiate; tests/models/test_samba_asr.py covers it
_TINY = dict(dim=32, enc_layers=1, dec_layers=1, d_state=4, expand=1, n_mels=16, conv_strides=(2, 2), ctc=False)
_PARAMS_NOTE = ("computed from this reconstruction (the paper reports no size): 80-mel Whisper-style stem, "
                "{enc} Mamba encoder and {dec} Mamba decoder layers of width {dim} (d_state 16, expand 2), "
                "one cross-connection projection per decoder layer, 33-symbol character vocabulary, tied head")


@register_model(
    family="asr", paper=_PAPER, arxiv="2501.02832", params=33_018_368,
    params_source=_PARAMS_NOTE.format(enc=12, dec=6, dim=512), verified="A", tiny=_TINY,
    official_repo="", license="",
)
def samba_asr_base(**overrides: Any) -> SambaASR:
    """A Whisper-base-width Samba-ASR: 512 wide, 12 causal encoder + 6 decoder Mamba layers (a Mamba layer holds
    about half a Transformer layer's parameters, 6 d^2 against 12 d^2), 33.0M parameters. Untrained; a guess at
    the paper's model, whose size is not published (see the module docstring)."""
    return SambaASR(build_config(SambaASRConfig, {}, **overrides))


@register_model(
    family="asr", paper=_PAPER, arxiv="2501.02832", params=1_605_921,
    params_source=_PARAMS_NOTE.format(enc=6, dec=3, dim=144) + "; bidirectional encoder, 4x stem, CTC head",
    verified="ATU", tiny=_TINY,
    weights={"synth_en": WeightSet(
        "English characters, trained from scratch with the baseline's recipe and budget (600 steps, batch 16, "
        "~43 min of one shared CPU thread) on 0.58 h of synthetic speech (13 espeak-ng/flite voices + Piper joe): "
        "WEAK as a recogniser, like its baseline conformer_aed_small.synth_en, which it matches or beats on held-out "
        "WER (CTC best path WER 0.91 synthetic / 1.08 real against 0.96 / 1.10; attention greedy CER 0.80 / 1.27 "
        "against 1.16 / 2.06) but not on real-speech CTC CER (0.773 against 0.754)",
        sha256="bd3da2a04c68e79c5545adfb0f6441c8449625b6c9ea7fa6310c6c3eed11dbeb",
        recipe="recipes/asr/samba_asr_small.yaml (trainer.max_steps=600)", license="CC0 (Piper joe) / WordNet",
        commit="b27c79b",  # the commit that ships these weights (and the fused scan they were trained with)
        metrics={"held_out": "cache/asr test_synth (48 sentences) / test_real (6 CMU ARCTIC + 50 FSDD); Piper test "
                             "word boundaries (recipes/asr/eval_align.py)",
                 "ctc_cer_synth": 0.433, "ctc_wer_synth": 0.909, "ctc_cer_real": 0.773, "ctc_wer_real": 1.078,
                 "att_greedy_cer_synth": 0.800, "att_greedy_cer_real": 1.274, "att_beam4_cer_synth": 0.745,
                 "align_start_mae_ms": 23.7, "align_within_50ms": 0.871,
                 "baseline": "conformer_aed_small.synth_en (same data, steps, tokenizer, decoding)"})},
)
def samba_asr_small(**overrides: Any) -> SambaASR:
    """The CPU recipe's size (recipes/asr/samba_asr_small.yaml): 144 wide, 6 bidirectional encoder + 3 decoder
    layers, 4x conv stem, CTC head; the same budget as ``conformer_aed_small``."""
    base = dict(dim=144, enc_layers=6, dec_layers=3, bidirectional=True, conv_strides=(2, 2), ctc=True,
                max_target_len=256)
    return SambaASR(build_config(SambaASRConfig, base, **overrides))
