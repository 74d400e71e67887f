"""GE2E / SV2TTS speaker encoder: an LSTM d-vector network over 40-band mel frames.

Papers: Li Wan, Quan Wang, Alan Papir, Ignacio Lopez Moreno, "Generalized End-to-End Loss for Speaker
Verification", ICASSP 2018, arXiv:1710.10467 (GE2E); Ye Jia et al., "Transfer Learning from Speaker
Verification to Multispeaker Text-To-Speech Synthesis", NeurIPS 2018, arXiv:1806.04558 (SV2TTS, whose §2.1
speaker encoder is the GE2E network). Released weights: ``resemblyzer==0.1.4`` (Resemble AI, Apache-2.0),
``resemblyzer/pretrained.pt``: the encoder of CorentinJ's Real-Time-Voice-Cloning (the SV2TTS reimplementation),
step 1,564,501.

Network (both papers): a stack of LSTM layers over the frames of a partial utterance; the d-vector is the
L2-normalised output at the last frame.

* ``ge2e_speaker_encoder`` (the resemblyzer / RTVC variant, ``voice_encoder.py``): ``LSTM(40 -> 256, 3 layers)``
  -> last layer's final hidden state -> ``Linear(256, 256)`` -> ReLU -> L2 norm. 1,423,616 parameters.
* ``ge2e_speaker_encoder_768`` (the papers' size; SV2TTS §2.1, GE2E §3.2 TI-SV): 3 LSTM layers of 768 cells,
  each followed by a projection to 256 (``nn.LSTM(proj_size=256)``), L2 norm of the top projection; no extra
  linear layer. 4,663,296 parameters (counted from that description; the papers give no count). No released
  weights.

Front end (:class:`GE2EFrontend`, resemblyzer's ``audio.py``): 16 kHz; per-utterance volume normalisation to
-30 dBFS RMS, raising only (``normalize_volume(..., increase_only=True)``); ``librosa.feature.melspectrogram``
with n_fft 400 (25 ms Hann), hop 160 (10 ms), 40 Slaney mel bands, **power** (not log: RTVC trains on the power
mel; the papers say log-mel, which the 768 variant uses), centred frames (``L = T // 160 + 1``).

Utterance embedding (:meth:`GE2ESpeakerEncoder.embed`, resemblyzer ``embed_utterance`` /
``compute_partial_slices``): partials of 160 frames (1.6 s) every 77 frames (``round(16000 / 1.3 / 160)``:
resemblyzer's default rate of 1.3 partials per second), starting at frame 0, enough to reach frame
``ceil((T + 1) / 160)``; the last partial is dropped when it covers less than 75 % of its window with audio
(unless it is the only one); the waveform is zero-padded to the last partial's end. Each partial's d-vector is
L2-normed, the utterance embedding is their L2-normalised mean (SV2TTS §2.1: "the outputs are averaged and
normalized"; the paper's windows are 800 ms with 50 % overlap, which the 768 variant uses).

Departures and choices:

* GE2E's learned similarity scale ``w`` and bias ``b`` (§2.1; 70.89 and -4.18 in the checkpoint) belong to the
  loss, not the encoder: the converter drops ``similarity_weight`` / ``similarity_bias``, so the encoder holds
  1,423,616 of the checkpoint's 1,423,618 parameters.
* resemblyzer's ``preprocess_wav`` also trims long silences with webrtcvad (mode 3, 30 ms windows). That is not
  reproduced (it would need the C VAD); embeddings here are of the whole (volume-normalised) waveform.
  Remove long silences before embedding if the recordings have them.
* Padding of the first/last STFT frame is librosa >= 0.10's default (zeros), as resemblyzer computes it today;
  the model was trained under librosa 0.6's reflect padding (only the first 2 frames differ).
* ``forward(features, lengths)`` runs the network once over each item's valid frames (a "whole-sequence"
  d-vector; on a 160-frame partial it is exactly resemblyzer's partial embedding).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.features import FeatureExtractor
from ...dsp.mel import MelSpectrogram
from ...dsp.stft import stft_lengths
from ...errors import AudioError, CheckpointError, ConfigError
from ...hub import package_file
from ...registry import WeightSet, register_model
from ..contracts import EmbedderModel

__all__ = ["GE2EConfig", "GE2EFrontend", "GE2ESpeakerEncoder", "RESEMBLYZER_LOCATION", "RESEMBLYZER_SHA256",
           "checkpoint_filter_fn", "ge2e_speaker_encoder", "ge2e_speaker_encoder_768", "load_resemblyzer",
           "partial_starts"]

#: the pinned wheel and file holding the released encoder (scripts/setup.sh installs it)
RESEMBLYZER_LOCATION = "resemblyzer==0.1.4:resemblyzer/pretrained.pt"
RESEMBLYZER_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


@dataclass
class GE2EConfig:
    """GE2E speaker encoder hyperparameters (defaults: resemblyzer's ``hparams.py``)."""

    # front end (resemblyzer audio.py / hparams.py)
    sample_rate: int = 16000
    n_fft: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 40
    log_mel: bool = False  # RTVC/resemblyzer: power mel; the papers: log-mel
    log_floor: float = 1e-6  # ln(max(mel, floor)) when log_mel
    norm_dbfs: float | None = -30.0  # raise quieter utterances to this RMS level (None: no normalisation)
    # network
    hidden_size: int = 256
    num_layers: int = 3
    proj_size: int = 0  # LSTM projection per layer (papers: 256); 0 = none
    linear: bool = True  # RTVC: Linear + ReLU on the last hidden state; papers: none
    embed_dim: int = 256
    # partial utterances (resemblyzer embed_utterance defaults: rate 1.3 /s, min_coverage 0.75)
    partial_frames: int = 160  # 1.6 s
    partial_step: int = 77  # round(sample_rate / 1.3 / hop_length)
    min_coverage: float = 0.75

    def __post_init__(self) -> None:
        if self.n_fft < 1 or self.hop_length < 1 or self.n_mels < 1 or self.sample_rate < 1:
            raise ConfigError(f"GE2E front end needs positive sizes, got n_fft={self.n_fft}, hop={self.hop_length}, "
                              f"n_mels={self.n_mels}, sample_rate={self.sample_rate}")
        if self.hidden_size < 1 or self.num_layers < 1 or self.embed_dim < 1:
            raise ConfigError("GE2E needs hidden_size, num_layers and embed_dim >= 1")
        if not 0 <= self.proj_size < self.hidden_size:
            raise ConfigError(f"proj_size must be in [0, hidden_size={self.hidden_size}), got {self.proj_size}")
        top = self.proj_size or self.hidden_size
        if not self.linear and self.embed_dim != top:
            raise ConfigError(f"without the linear layer the embedding is the top LSTM output: embed_dim must be "
                              f"{top}, got {self.embed_dim}")
        if not 0 < self.partial_step <= self.partial_frames:
            raise ConfigError(f"partial_step must be in [1, partial_frames={self.partial_frames}], got "
                              f"{self.partial_step} (a larger step would leave frames out)")
        if not 0 < self.min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if self.log_floor <= 0:
            raise ConfigError(f"log_floor must be > 0, got {self.log_floor}")


# --------------------------------------------------------------------------- front end
class GE2EFrontend(FeatureExtractor):
    """``wav (B, T) at 16 kHz -> (mel (B, n_mels, L), frames (B,))`` with ``L = T // hop + 1``.

    resemblyzer's front end: each utterance's valid part is raised to ``norm_dbfs`` RMS (never lowered) and
    samples past ``lengths`` are zeroed, then ``librosa.feature.melspectrogram(sr, n_fft, hop, n_mels)``
    (power 2, Slaney mels, Hann window, centred zero-padded frames); ``ln(max(mel, log_floor))`` if ``log_mel``.
    """

    config_class = GE2EConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "log_mel", "log_floor", "norm_dbfs")

    def __init__(self, config: GE2EConfig) -> None:
        super().__init__()
        self.config = config
        self.sample_rate, self.hop_length, self.n_features = config.sample_rate, config.hop_length, config.n_mels
        self.min_samples = 1
        self.mel = MelSpectrogram(config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                                  n_mels=config.n_mels, center=True, pad_mode="constant", power=2.0)

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return stft_lengths(n_samples, self.config.n_fft, self.config.hop_length, center=True)

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        valid = torch.arange(wav.shape[-1], device=wav.device)[None] < lengths[:, None]
        wav = wav * valid
        target = self.config.norm_dbfs
        if target is None:
            return wav, lengths
        # resemblyzer normalize_volume(increase_only=True): 20 log10(rms) in dBFS of the float signal (its
        # int16 scaling cancels); computed in float64 over the valid samples only
        power = wav.double().square().sum(-1) / lengths.clamp(min=1).double()
        dbfs = 10.0 * torch.log10(power)
        gain = torch.pow(10.0, (target - dbfs) / 20.0)
        # raise only; silence (rms 0) stays silence (the reference would multiply 0 by inf)
        gain = torch.where((power > 0) & (gain > 1.0), gain, torch.ones_like(gain))
        return wav * gain.to(wav.dtype)[:, None], lengths

    def compute(self, wav: Tensor) -> Tensor:
        mel = self.mel(wav)
        return torch.log(mel.clamp(min=self.config.log_floor)) if self.config.log_mel else mel


def partial_starts(n_samples: int, config: GE2EConfig) -> list[int]:
    """First frames of the partial utterances of an ``n_samples`` utterance (resemblyzer ``compute_partial_slices``).

    Partials are ``config.partial_frames`` long, every ``config.partial_step`` frames, enough to reach frame
    ``ceil((n_samples + 1) / hop)``; the last one is dropped if less than ``min_coverage`` of its samples are
    audio, unless it is the only one.
    """
    n = int(n_samples)
    if n < 1:
        raise AudioError(f"a GE2E utterance needs at least one sample, got {n}")
    hop, size, step = config.hop_length, config.partial_frames, config.partial_step
    n_frames = -(-(n + 1) // hop)  # ceil((n + 1) / hop), as the reference counts frames
    steps = max(1, n_frames - size + step + 1)
    starts = list(range(0, steps, step))
    coverage = (n - starts[-1] * hop) / (size * hop)
    if coverage < config.min_coverage and len(starts) > 1:
        starts.pop()
    return starts


# --------------------------------------------------------------------------- model
class GE2ESpeakerEncoder(EmbedderModel):
    """GE2E d-vector encoder.

    ``forward(features (B, n_mels, L), lengths (B,) | None) -> (B, embed_dim)``: one L2-normalised d-vector per
    item, from the LSTM state at its last valid frame. ``embed(wav (B, T), lengths) -> (B, embed_dim)``: the
    utterance embedding averaged over partial utterances (see the module docstring).
    """

    def __init__(self, config: GE2EConfig) -> None:
        super().__init__()
        self.config = config
        self.frontend = GE2EFrontend(config)
        self.sample_rate, self.hop_length = config.sample_rate, config.hop_length
        self.feature_dim, self.embed_dim = config.n_mels, config.embed_dim
        self.lstm = nn.LSTM(config.n_mels, config.hidden_size, config.num_layers, batch_first=True,
                            proj_size=config.proj_size)
        top = config.proj_size or config.hidden_size
        self.linear = nn.Linear(top, config.embed_dim) if config.linear else None

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        if features.ndim != 3 or features.shape[1] != self.feature_dim:
            raise AudioError(f"GE2E expects features (B, {self.feature_dim}, L), got {tuple(features.shape)}")
        b, _, n = features.shape
        if n < 1:
            raise AudioError("GE2E got features with no frames")
        x = features.transpose(1, 2)  # (B, L, F): the LSTM is batch-first
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=features.device).long()
            if lengths.shape != (b,) or bool(((lengths < 1) | (lengths > n)).any()):
                raise AudioError(f"GE2E lengths must be {b} frame counts in [1, {n}], got {lengths.tolist()}")
        if lengths is None or bool((lengths == n).all()):
            _, (h, _) = self.lstm(x)
        else:
            # packing stops each item's recurrence at its own last frame; h comes back in batch order
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
        out = h[-1]  # (B, proj_size or hidden_size): the top layer at the last valid frame
        if self.linear is not None:
            out = F.relu(self.linear(out))
        return F.normalize(out, p=2.0, dim=-1)

    def partial_starts(self, n_samples: int) -> list[int]:
        """First frames of the partials of an ``n_samples`` utterance (:func:`partial_starts`)."""
        return partial_starts(n_samples, self.config)

    def embed(self, wav: Tensor, lengths: Tensor | None = None, sample_rate: int | None = None,
              return_partials: bool = False, max_batch: int = 64) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Utterance embeddings ``(B, embed_dim)`` of ``wav (B, T)`` or ``(T,)`` at 16 kHz.

        Args:
            wav: float waveform(s) in [-1, 1].
            lengths: valid samples per item (default ``T``).
            sample_rate: if given, must be :attr:`sample_rate` (no silent resampling).
            return_partials: also return each item's partial d-vectors ``(P_i, embed_dim)``.
            max_batch: partials run through the network this many at a time (bounds memory on long audio).
        """
        if not isinstance(wav, Tensor) or not wav.is_floating_point():
            raise AudioError("GE2E embed expects a float waveform tensor (B, T) or (T,)")
        if wav.ndim == 1:
            wav = wav[None]
        if wav.ndim != 2:
            raise AudioError(f"GE2E embed expects a mono waveform (B, T) or (T,), got {tuple(wav.shape)}")
        self.frontend.check_sample_rate(sample_rate)
        b, t = wav.shape
        lengths = torch.full((b,), t, dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long()
        if lengths.shape != (b,) or bool(((lengths < 1) | (lengths > t)).any()):
            raise AudioError(f"GE2E embed: lengths must be {b} sample counts in [1, {t}], got {lengths.tolist()}")
        starts = [self.partial_starts(int(n)) for n in lengths.tolist()]
        size, hop = self.config.partial_frames, self.hop_length
        # zero-pad to the end of the furthest partial, as the reference pads each utterance
        need = max(max((s[-1] + size) * hop for s in starts), t)
        wav = F.pad(wav, (0, need - t))
        feats, _ = self.frontend(wav, lengths.to(wav.device))
        windows = torch.stack([feats[i, :, s:s + size] for i, ss in enumerate(starts) for s in ss])
        owner = torch.tensor([i for i, ss in enumerate(starts) for _ in ss], device=feats.device)
        parts = torch.cat([self(windows[j:j + max_batch]) for j in range(0, windows.shape[0], max_batch)])
        mean = torch.zeros(b, parts.shape[-1], dtype=parts.dtype, device=parts.device).index_add_(0, owner, parts)
        emb = F.normalize(mean / torch.tensor([len(s) for s in starts], device=parts.device)[:, None], dim=-1)
        if return_partials:
            return emb, list(parts.split([len(s) for s in starts]))
        return emb


# --------------------------------------------------------------------------- released weights
def checkpoint_filter_fn(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """A resemblyzer / RTVC encoder checkpoint (``{step, model_state, optimizer_state}`` or its ``model_state``)
    -> this model's state dict: the LSTM and linear keys are the same; GE2E's ``similarity_weight`` /
    ``similarity_bias`` belong to the loss and are dropped."""
    if "model_state" in state and isinstance(state["model_state"], dict):
        state = state["model_state"]
    return {k: v for k, v in state.items() if k not in ("similarity_weight", "similarity_bias")}


def _torch_load_weights_only(path: str | os.PathLike) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), str(e))
        raise CheckpointError(f"{path}: refusing a checkpoint that needs a full unpickle (audiozoo loads tensors "
                              f"only, torch.load(weights_only=True)): {first}") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e


def load_resemblyzer(path: str | os.PathLike | None = None) -> dict[str, Tensor]:
    """The released encoder's ``model_state`` (reference key layout) from ``path`` or the pinned resemblyzer
    wheel (checked by sha256), read with ``torch.load(weights_only=True)``."""
    path = path if path is not None else package_file(RESEMBLYZER_LOCATION, RESEMBLYZER_SHA256)
    ck = _torch_load_weights_only(path)
    state = ck.get("model_state") if isinstance(ck, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a resemblyzer checkpoint {{'model_state': state_dict, ...}}")
    return state


# --------------------------------------------------------------------------- registered variants
_PAPER = ("Generalized End-to-End Loss for Speaker Verification (Wan et al., ICASSP 2018); the SV2TTS speaker "
          "encoder (Jia et al., NeurIPS 2018, arXiv:1806.04558)")
_TINY = dict(hidden_size=8, num_layers=2, embed_dim=8, partial_frames=20, partial_step=10)


@register_model(
    family="embed", paper=_PAPER, arxiv="1710.10467", params=1_423_616,
    params_source="the resemblyzer 0.1.4 checkpoint: LSTM(40, 256, 3) + Linear(256, 256) = 1,423,616 (its other 2 "
                  "parameters are the GE2E loss's similarity w, b)",
    verified="APU", tiny=_TINY, official_repo="https://github.com/resemble-ai/Resemblyzer", license="Apache-2.0",
    converter=checkpoint_filter_fn,
    weights={"resemblyzer": WeightSet(
        "the Real-Time-Voice-Cloning (SV2TTS) encoder released in resemblyzer 0.1.4 (step 1,564,501), read from "
        "the pinned wheel with torch.load(weights_only=True); same embeddings as resemblyzer's VoiceEncoder "
        "(max diff 4e-7); FSDD 5-digit EER 2.3 % (docs/models/ge2e.md)", source="package",
        location=RESEMBLYZER_LOCATION, sha256=RESEMBLYZER_SHA256,
        loader=load_resemblyzer, license="Apache-2.0",
        metrics={"held_out": "FSDD, 5 speakers x 10 utterances of 5 digits (recipes/embed/ge2e_eer.py)",
                 "eer": 0.023, "nn_accuracy": 1.0})},
)
def ge2e_speaker_encoder(**overrides: Any) -> GE2ESpeakerEncoder:
    """The 256-cell GE2E encoder of resemblyzer / Real-Time-Voice-Cloning; real weights:
    ``create_model("ge2e_speaker_encoder.resemblyzer")``."""
    return GE2ESpeakerEncoder(build_config(GE2EConfig, {}, **overrides))


@register_model(
    family="embed", paper=_PAPER, arxiv="1710.10467", params=4_663_296,
    params_source="computed from SV2TTS §2.1 / GE2E §3.2 (3 LSTM layers of 768 cells, each projected to 256; 40 "
                  "mels); the papers give no count",
    verified="A", tiny={**_TINY, "hidden_size": 12, "proj_size": 8},
)
def ge2e_speaker_encoder_768(**overrides: Any) -> GE2ESpeakerEncoder:
    """The papers' encoder: 3 x LSTM(768) with 256-d projections, log-mel input, 800 ms partials with 50 %
    overlap (SV2TTS §2.1). Untrained (no released weights)."""
    base = dict(hidden_size=768, proj_size=256, linear=False, embed_dim=256, log_mel=True, partial_frames=80,
                partial_step=40)
    return GE2ESpeakerEncoder(build_config(GE2EConfig, base, **overrides))
