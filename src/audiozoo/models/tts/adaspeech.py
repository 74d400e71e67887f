"""AdaSpeech: adaptive text to speech for custom voice (FastSpeech 2 + acoustic condition modelling + CLN).

Paper: Mingjian Chen, Xu Tan, Bohan Li, Yanqing Liu, Tao Qin, Sheng Zhao, Tie-Yan Liu, "AdaSpeech: Adaptive Text to
Speech for Custom Voice", ICLR 2021, arXiv:2103.00993. No official code; tuanh123789/AdaSpeech (no license, based on
ming024/FastSpeech2) was read for the layout of the acoustic encoders, nothing was copied.

Architecture (Section 2, Figures 1-3; model configuration of Section 3.1):

- FastSpeech 2 backbone (blocks of :mod:`audiozoo.nn.fastspeech`): phoneme embedding + positions -> 4 FFT blocks
  (hidden 256, 2 heads, conv FFN 1024, kernel 9) -> variance adaptor (duration, frame-level pitch and energy with
  256-bucket embeddings, as ``fastspeech2_*``) -> 4 FFT blocks -> linear to 80 mels (no post-net, as the paper).
- Acoustic condition modelling (Section 2.2, :mod:`audiozoo.nn.acoustic_condition`): *speaker level*, a speaker
  embedding added to the phoneme hidden sequence; *utterance level*, an encoder of the reference mel (2 conv layers,
  256 filters, kernel 5, then a mean over time) whose vector is added to every phoneme; *phoneme level*, an encoder
  of the phoneme-averaged target mel (2 conv layers, 256 filters, kernel 3, then a linear to a 4-dim latent) in
  training, and a phoneme-level acoustic predictor of the same structure reading the phoneme hidden sequence at
  inference; the 4-dim vectors are projected back to the hidden size and added.
- Conditional layer normalisation (Section 2.3, Equation 1): every LayerNorm of the mel decoder takes its scale and
  bias from the speaker embedding through two linear layers (``C = 2 * decoder_layers`` CLNs).

Training (Section 3.1): the predictor learns the phoneme-level encoder's output with an MSE loss and a stop-gradient on
that target (``forward`` returns both, ``phoneme_target`` detached; the loss is
:func:`audiozoo.train.losses.tts.masked_value_loss` over the valid phonemes). Adaptation (Section 2.4): only the CLN
linears ``W^gamma_c``, ``W^beta_c`` and the speaker embedding are fine-tuned (:meth:`AdaSpeech.freeze_for_adaptation`,
:meth:`AdaSpeech.add_speaker`); a deployed voice stores the ``C`` pairs of vectors ``(gamma_c, beta_c)`` computed
from its embedding (:meth:`AdaSpeech.adaptation_size`).

Inputs / outputs follow ``fastspeech2_*``: Piper phoneme ids, HiFi-GAN's natural-log mel (22.05 kHz, hop 256, 80
mels, 0-8 kHz; the paper uses 16 kHz, hop 12.5 ms), channels first ``(B, 80, L)``, padded frames at ``ln(1e-5)``.
The predicted-value path uses the straight-through estimators documented in ``fastspeech2`` (inference only).

License of this implementation: the project's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.mel import VocoderMel
from ...errors import ConfigError
from ...nn.acoustic_condition import ConditionalLayerNorm, ConvConditionEncoder, segment_mean
from ...nn.alignment import length_regulate
from ...nn.fastspeech import FFTStack, PostNet, VariancePredictor, bucketize_embed, padding_mask
from ...registry import register_model
from ..contracts import TTSModel

LOG_FLOOR = math.log(1e-5)  # HiFi-GAN's log-mel of silence


@dataclass
class AdaSpeechConfig:
    """AdaSpeech hyper-parameters (defaults: the paper's Section 3.1 with Piper's 256-symbol table)."""

    vocab_size: int = 256
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
    pitch_level: str = "frame"  # FastSpeech 2's frame-level variant only (read by the tts task)
    energy_level: str = "frame"
    pitch_min: float = -4.0
    pitch_max: float = 4.0
    energy_min: float = -2.5
    energy_max: float = 5.0
    postnet: bool = False
    postnet_channels: int = 512
    postnet_kernel: int = 5
    postnet_layers: int = 5
    max_positions: int = 1000
    # speakers of the source model (LibriTTS: 2456); each adapted voice adds one row (add_speaker)
    n_speakers: int = 2456
    # acoustic condition modelling (Section 3.1)
    utterance_channels: int = 256
    utterance_kernel: int = 5
    utterance_layers: int = 2
    phoneme_channels: int = 256
    phoneme_kernel: int = 3
    phoneme_layers: int = 2
    phoneme_latent: int = 4
    condition_dropout: float = 0.5
    phoneme_condition: bool = True  # False: the paper's ablation without phoneme-level vectors
    cln: bool = True  # False: plain LayerNorm in the decoder (the paper's ablation)
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pitch_level != "frame" or self.energy_level != "frame":
            raise ConfigError("AdaSpeech implements FastSpeech 2's frame-level pitch and energy only")
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.n_speakers < 1:
            raise ConfigError("AdaSpeech conditions on a speaker embedding: n_speakers must be >= 1")
        if self.n_bins < 2 or not (self.pitch_min < self.pitch_max and self.energy_min < self.energy_max):
            raise ConfigError("need n_bins >= 2, pitch_min < pitch_max and energy_min < energy_max")


class AdaSpeechOutput(NamedTuple):
    """What :class:`AdaSpeech` returns (``mel`` first, per the tts contract).

    mel / mel_before: ``(B, n_mels, L)`` (equal without a post-net); mel_lengths ``(B,)``; durations ``(B, N)`` used;
    log_durations ``(B, N)`` predicted ``ln(d + 1)``; pitch, energy ``(B, L)`` predicted (normalised units);
    phoneme_pred ``(B, N, latent)`` the phoneme-level predictor's output (``None`` without phoneme-level condition);
    phoneme_target ``(B, N, latent)`` the phoneme-level encoder's output, detached (``None`` without a target mel);
    utterance ``(B, hidden)`` the utterance-level vector.
    """

    mel: Tensor
    mel_lengths: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    mel_before: Tensor
    phoneme_pred: Tensor | None
    phoneme_target: Tensor | None
    utterance: Tensor


class AdaSpeech(TTSModel):
    """AdaSpeech acoustic model: ``forward(tokens (B, N), lengths (B,), speaker=(B,), ...) -> AdaSpeechOutput``.

    Training passes the target ``mel (B, n_mels, L)`` with ``durations (B, N)``, ``pitch`` and ``energy`` ``(B, L)``:
    the mel is the utterance reference and, averaged per phoneme, the phoneme-level encoder's input. Inference passes
    a reference ``ref_mel (B, n_mels, L_ref)`` (another utterance of the voice) with ``ref_lengths``, and the
    predictor supplies the phoneme-level vectors. ``alpha``, ``pitch_shift`` and ``energy_scale`` as FastSpeech 2.
    """

    def __init__(self, config: AdaSpeechConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        h = c.hidden
        self.embed = nn.Embedding(c.vocab_size, h)
        self.encoder = FFTStack(h, c.encoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout, c.max_positions)
        self.speaker_embed = nn.Embedding(c.n_speakers, h)
        # the mean-pooled conv output is the vector (a linear to hidden only when the widths differ)
        self.utterance_encoder = ConvConditionEncoder(c.n_mels, c.utterance_channels, c.utterance_kernel,
                                                      c.utterance_layers, None if c.utterance_channels == h else h,
                                                      c.condition_dropout, pool=True)
        if c.phoneme_condition:
            phone = (c.phoneme_channels, c.phoneme_kernel, c.phoneme_layers, c.phoneme_latent, c.condition_dropout)
            self.phoneme_encoder = ConvConditionEncoder(c.n_mels, *phone)
            self.phoneme_predictor = ConvConditionEncoder(h, *phone)
            self.phoneme_proj = nn.Linear(c.phoneme_latent, h)
        vp = (h, c.variance_filter, c.variance_kernel, c.variance_dropout)
        self.duration_predictor = VariancePredictor(*vp)
        self.pitch_predictor = VariancePredictor(*vp)
        self.energy_predictor = VariancePredictor(*vp)
        self.pitch_embed = nn.Embedding(c.n_bins, h)
        self.energy_embed = nn.Embedding(c.n_bins, h)
        self.register_buffer("pitch_bins", torch.linspace(c.pitch_min, c.pitch_max, c.n_bins - 1), persistent=False)
        self.register_buffer("energy_bins", torch.linspace(c.energy_min, c.energy_max, c.n_bins - 1),
                             persistent=False)
        self.register_buffer("pitch_stats", torch.zeros(2))  # [mean, std] of ln F0, set by the tts task
        self.register_buffer("energy_stats", torch.zeros(2))
        norm = partial(ConditionalLayerNorm, cond_dim=h) if c.cln else None
        self.decoder = FFTStack(h, c.decoder_layers, c.heads, c.ffn_dim, c.ffn_kernels, c.dropout, c.max_positions,
                                norm=norm)
        self.mel_linear = nn.Linear(h, c.n_mels)
        self.postnet = PostNet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers) if c.postnet else None

    # ---- pieces -----------------------------------------------------------------------------------------
    def _speaker(self, speaker: Tensor | None, b: int, device: torch.device) -> Tensor:
        n = self.speaker_embed.num_embeddings
        if speaker is None:
            if n != 1:
                raise ConfigError(f"this AdaSpeech has {n} speakers: pass speaker ids (B,)")
            speaker = torch.zeros(b, dtype=torch.long, device=device)
        speaker = speaker.to(device).long().reshape(-1)
        if speaker.shape[0] != b or int(speaker.min()) < 0 or int(speaker.max()) >= n:
            raise ConfigError(f"speaker ids must be (B,) = ({b},) in [0, {n}), got {speaker.tolist()}")
        return self.speaker_embed(speaker)

    def utterance_vector(self, ref_mel: Tensor, ref_lengths: Tensor | None = None) -> Tensor:
        """Utterance-level acoustic vector ``(B, hidden)`` of a reference log-mel ``(B, n_mels, L)``."""
        if ref_mel.ndim != 3 or ref_mel.shape[1] != self.n_mels:
            raise ConfigError(f"reference mel must be (B, {self.n_mels}, L), got {tuple(ref_mel.shape)}")
        mask = None if ref_lengths is None else padding_mask(ref_lengths.to(ref_mel.device).long(), ref_mel.shape[-1])
        return self.utterance_encoder(ref_mel.transpose(1, 2), mask)

    def _frame_variance(self, frames: Tensor, fmask: Tensor, which: str, target: Tensor | None, gain: float,
                        offset: float) -> tuple[Tensor, Tensor]:
        predictor, table, bins = (getattr(self, f"{which}_{k}") for k in ("predictor", "embed", "bins"))
        pred = predictor(frames, fmask)
        if target is None:
            value, st = pred * gain + offset, torch.is_grad_enabled()
        elif target.shape == pred.shape:
            value, st = target, False
        else:
            raise ConfigError(f"{which} target shape {tuple(target.shape)} != prediction {tuple(pred.shape)}")
        emb = bucketize_embed(value, bins, table, straight_through=st)
        return pred, emb.masked_fill(fmask[..., None], 0.0)

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                pitch: Tensor | None = None, energy: Tensor | None = None, speaker: Tensor | None = None,
                mel: Tensor | None = None, mel_lengths: Tensor | None = None, ref_mel: Tensor | None = None,
                ref_lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                energy_scale: float = 1.0, max_frames: int | None = None) -> AdaSpeechOutput:
        """See the class docstring. ``max_frames`` pads / crops the frame axis (the targets' ``L``)."""
        c = self.config
        if tokens.ndim != 2:
            raise ConfigError(f"AdaSpeech takes token ids (B, N), got shape {tuple(tokens.shape)}")
        b, n = tokens.shape
        dev = tokens.device
        lengths = torch.full((b,), n, dtype=torch.long, device=dev) if lengths is None else lengths.to(dev).long()
        if int(tokens.max()) >= c.vocab_size or int(tokens.min()) < 0:
            raise ConfigError(f"token ids must lie in [0, {c.vocab_size}), got [{int(tokens.min())}, "
                              f"{int(tokens.max())}]")
        if ref_mel is None and mel is None:
            raise ConfigError("AdaSpeech needs a reference mel: ref_mel (inference) or the target mel (training)")
        if ref_mel is None:
            ref_mel, ref_lengths = mel, mel_lengths
        mask = padding_mask(lengths, n)
        keep = (~mask)[..., None]
        spk = self._speaker(speaker, b, dev)
        utt = self.utterance_vector(ref_mel, ref_lengths)
        x = self.encoder(self.embed(tokens), mask) + utt[:, None]
        pred = target = None
        if c.phoneme_condition:
            pred = self.phoneme_predictor(x, mask)
            if mel is not None and durations is not None:
                if mel.ndim != 3 or mel.shape[:2] != (b, c.n_mels):
                    raise ConfigError(f"mel must be (B, {c.n_mels}, L) = ({b}, {c.n_mels}, L), got {tuple(mel.shape)}")
                avg = segment_mean(mel.transpose(1, 2), durations.to(dev).long().masked_fill(mask, 0))
                enc = self.phoneme_encoder(avg, mask)
                target, used = enc.detach(), enc
            else:
                used = pred
            x = x + self.phoneme_proj(used)
        x = (x + spk[:, None]) * keep
        # variance adaptor (FastSpeech 2, frame-level pitch and energy)
        log_d = self.duration_predictor(x, mask)
        if durations is None:
            d_float = (torch.exp(log_d) - 1.0).clamp(min=0.0) * alpha
            d = torch.round(d_float.detach()).long().masked_fill(mask, 0)
            d[d.sum(1) == 0, 0] = 1  # at least one frame per utterance
            if torch.is_grad_enabled() and d_float.requires_grad:  # straight-through (fastspeech2's docstring)
                x = x * (1.0 + d_float - d_float.detach())[..., None]
        else:
            if durations.shape != (b, n):
                raise ConfigError(f"durations must be (B, N) = {(b, n)}, got {tuple(durations.shape)}")
            d = durations.to(dev).long().masked_fill(mask, 0)
        frames, out_lengths = length_regulate(x, d, 1.0, lengths, max_frames)
        fmask = padding_mask(out_lengths, frames.shape[1])
        p_std = float(self.pitch_stats[1]) or 1.0
        e_mean, e_std = float(self.energy_stats[0]), float(self.energy_stats[1]) or 1.0
        p_pred, emb = self._frame_variance(frames, fmask, "pitch", pitch, 1.0,
                                           pitch_shift * math.log(2.0) / 12.0 / p_std)
        frames = frames + emb
        e_pred, emb = self._frame_variance(frames, fmask, "energy", energy, energy_scale,
                                           (energy_scale - 1.0) * e_mean / e_std)
        frames = frames + emb
        hdec = self.decoder(frames, fmask, spk if c.cln else None)
        mel_before = self.mel_linear(hdec).transpose(1, 2)
        out = mel_before + self.postnet(mel_before, fmask) if self.postnet is not None else mel_before
        pad = fmask[:, None]
        return AdaSpeechOutput(out.masked_fill(pad, LOG_FLOOR), out_lengths, d, log_d, p_pred, e_pred,
                               mel_before.masked_fill(pad, LOG_FLOOR), pred, target, utt)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0, speaker: Tensor | None = None, ref_mel: Tensor | None = None,
                   ref_lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inference: ``(mel (B, n_mels, L), mel_lengths (B,))`` from a reference mel of the voice and its speaker."""
        return self._eval_forward(tokens, lengths, speaker=speaker, ref_mel=ref_mel, ref_lengths=ref_lengths,
                                  alpha=alpha, pitch_shift=pitch_shift, energy_scale=energy_scale)

    # ---- adaptation (Section 2.4) -----------------------------------------------------------------------
    def conditional_norms(self) -> list[ConditionalLayerNorm]:
        """The ``C`` conditional LayerNorms of the mel decoder."""
        return [m for m in self.decoder.modules() if isinstance(m, ConditionalLayerNorm)]

    def adaptation_parameter_names(self) -> list[str]:
        """Names of what adaptation fine-tunes: the CLN linears of the decoder and the speaker embedding."""
        if not self.config.cln:
            raise ConfigError("this AdaSpeech has no conditional LayerNorm (cln=False): nothing to adapt but speakers")
        names = [f"decoder.{m}.{p}" for m, mod in self.decoder.named_modules()
                 if isinstance(mod, ConditionalLayerNorm) for p, _ in mod.named_parameters()]
        return names + ["speaker_embed.weight"]

    def freeze_for_adaptation(self) -> list[str]:
        """Freeze every parameter except :meth:`adaptation_parameter_names`; returns those names. Only the rows of
        the speakers in the adaptation batches get a gradient (use an optimizer without weight decay)."""
        names = set(self.adaptation_parameter_names())
        for n, p in self.named_parameters():
            p.requires_grad_(n in names)
        return sorted(names)

    def add_speaker(self, init: int | None = None) -> int:
        """Append a speaker row (a copy of speaker ``init``, else the mean of all rows) and return its id."""
        old = self.speaker_embed
        row = old.weight.detach().mean(0, keepdim=True) if init is None else old.weight.detach()[init:init + 1]
        new = nn.Embedding(old.num_embeddings + 1, old.embedding_dim, device=old.weight.device,
                           dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(torch.cat([old.weight.detach(), row], 0))
        new.weight.requires_grad_(old.weight.requires_grad)
        self.speaker_embed = new
        self.config.n_speakers = new.num_embeddings
        return new.num_embeddings - 1

    def adaptation_size(self) -> dict[str, int]:
        """Parameters per adapted voice: ``fine_tuned`` = ``C * 2 * (S * H + H) + S`` (the CLN linears and one
        embedding row, ``S`` = embedding size, ``H`` = hidden), ``stored`` = ``C * 2 * H + S`` (the deployed voice keeps
        ``gamma_c``, ``beta_c`` and its embedding, which is also added to the phoneme hidden sequence)."""
        norms = self.conditional_norms()
        s = self.speaker_embed.embedding_dim
        tuned = sum(p.numel() for m in norms for p in m.parameters()) + s
        return {"fine_tuned": tuned, "stored": sum(2 * m.dim for m in norms) + s, "norms": len(norms)}

    # ---- contract / front end ---------------------------------------------------------------------------
    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """Inference-path inputs: tokens, lengths, speaker ids and a reference mel of ``length + 5`` frames."""
        args, kwargs = super().example_inputs(length, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        ref = torch.randn(batch, self.n_mels, length + 5, generator=g) - 5.0
        kwargs.update(speaker=torch.arange(batch) % self.speaker_embed.num_embeddings, ref_mel=ref,
                      ref_lengths=kwargs["lengths"] + 5)
        return args, kwargs

    def mel_extractor(self) -> VocoderMel:
        """HiFi-GAN's log-mel front end of the config: the targets, the reference mels and the vocoder's input."""
        keys = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max")
        return VocoderMel(**{k: getattr(self.config, k) for k in keys})

    def input_spec(self) -> dict[str, Any]:
        c = self.config
        mel = f"log-mel (B, {c.n_mels}, L), hop {c.hop_length}"
        spec = dict(tokens=f"(B, N) ids of the {c.text.get('scheme', 'caller')!r} scheme", vocab_size=c.vocab_size,
                    reference=f"{mel} of the target voice", speakers=c.n_speakers, output=mel,
                    hop_length=c.hop_length)
        return {**super().input_spec(), **spec}


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="AdaSpeech: Adaptive Text to Speech for Custom Voice (Chen et al., ICLR 2021)",
    arxiv="2103.00993",
    official_repo="none released (community: tuanh123789/AdaSpeech, no license; read, not copied)",
    license="this code: the project's",
)
_SMALL = dict(hidden=128, encoder_layers=3, decoder_layers=3, heads=2, ffn_dim=256, variance_filter=128,
              utterance_channels=128, phoneme_channels=128, dropout=0.1, n_speakers=16)
# the registry's tiny config has no phoneme-level condition: its contract forward is the inference path, where the
# phoneme-level encoder takes no part (tests/models/test_adaspeech.py checks that path with it switched on)
_TINY = dict(hidden=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, ffn_kernels=(3, 1),
             variance_filter=16, n_bins=16, n_mels=20, vocab_size=40, max_positions=64, n_fft=256, win_length=256,
             utterance_channels=16, phoneme_channels=16, n_speakers=3, phoneme_condition=False)


def _adaspeech(base: dict, overrides: dict) -> AdaSpeech:
    return AdaSpeech(build_config(AdaSpeechConfig, base, **overrides))


@register_model(params=27_264_091, verified="A", tiny=_TINY,
                params_source="[calc] paper Section 3.1 (4 + 4 FFT blocks, hidden 256, 2 heads, conv FFN 1024 k9/k1, "
                              "FastSpeech 2 variance adaptor, utterance encoder 2 x conv 256 k5, phoneme-level "
                              "encoder and predictor 2 x conv 256 k3 -> 4, 8 decoder CLNs, no post-net) with Piper's "
                              "256-symbol table and 2456 LibriTTS speakers (628,736 of the weights); the paper "
                              "states no total",
                **_PAPER)
def adaspeech_base(**overrides) -> AdaSpeech:
    """AdaSpeech as in the paper's Section 3.1 (FastSpeech 2 backbone, 2456 source speakers)."""
    return _adaspeech({}, overrides)


@register_model(params=3_287_899, verified="AT", tiny=_TINY,
                params_source="[calc] audiozoo's CPU config: hidden 128, 3 + 3 FFT blocks, conv FFN 256, variance "
                              "filter 128, acoustic encoders 128 channels, 6 decoder CLNs, 16 speakers",
                **_PAPER)
def adaspeech_small(**overrides) -> AdaSpeech:
    """A small AdaSpeech that trains on CPU (hidden 128, 3 + 3 FFT blocks, FFN 256, 16 speakers)."""
    return _adaspeech(_SMALL, overrides)
