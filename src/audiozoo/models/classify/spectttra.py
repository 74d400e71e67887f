"""SpecTTTra: Spectro-Temporal Tokens Transformer (SONICS synthetic-song detector).

Paper: Md Awsafur Rahman, Zaber Ibn Abdul Hakim, Najibul Haque Sarker, Bishmoy Paul, Shaikh Anowarul
Fattah, "SONICS: Synthetic Or Not - Identifying Counterfeit Songs", ICLR 2025, arXiv:2408.14080.
Official code: https://github.com/awsaf49/sonics (MIT): ``sonics/models/spectttra.py::SpecTTTra``,
``sonics/layers/tokenizer.py::STTokenizer``, ``sonics/models/model.py::AudioClassifier``, configs
``configs/spectttra_f{1,3,5}t{3,5,7}-{5,120}s.yaml``.

Tokeniser (Sec. 3, ``STTokenizer``): the mel spectrogram ``(F, T)`` is cut into non-overlapping clips
twice. *Temporal* clips of ``t`` frames: a Conv1d over time with the F mel bins as channels (kernel =
stride = t) gives ``floor((T - t) / t + 1)`` tokens. *Spectral* clips of ``f`` bins: a Conv1d over
frequency with the T frames as channels (kernel = stride = f) gives ``floor((F - f) / f + 1)`` tokens.
Each tokeniser applies GELU, adds its own learned position embedding and (``pre_norm``, as CLIP) a
LayerNorm; the two token sets are concatenated: ``T/t + F/f`` tokens instead of ViT's ``(T/p)(F/p)``.
For the 120 s configs (128 x 3744 input): alpha (f=1, t=3) 1248 + 128 = 1376 tokens, beta (f=3, t=5)
748 + 42 = 790, gamma (f=5, t=7) 534 + 25 = 559 (ViT 16x16: 1872).

Encoder: 12 pre-LN timm-style blocks (384-d, 6 heads, MLP ratio 2.67 -> 1025 hidden, no qkv bias,
LayerNorm eps 1e-5), no final norm; the classifier is a Linear on the mean of all tokens (1 logit:
BCE "fake" score). Dropout: position 0.1, attention 0.1, projection 0.

Front-end (``sonics/layers/feature.py`` with torchaudio defaults): 16 kHz waveform divided by its standard
deviation (``AudioDataset(normalize="std")``), mel spectrogram (n_fft 2048, hop 512, Hann window, centred
reflect-padded frames, 128 HTK mels 20-8000 Hz without area normalisation, power 2), dB with top_db 80,
then per-clip mean/std normalisation. It has no learned parameters and lives in ``model.frontend``.
The official classifier resizes the spectrogram bilinearly to the configured ``input_shape`` before the
tokeniser (120 s -> 3751 frames -> 3744); the model does the same in ``forward``, so any ``L`` works.

Departures:
- top_db floors each clip at its own maximum minus 80 dB; torchaudio's ``AmplitudeToDB`` takes that maximum
  over the whole ``(B, F, T)`` batch (identical for a batch of one).
- ``lengths`` is accepted for the classify contract and ignored, as in the official model: SONICS pads
  every clip with zeros to the configured duration and attends to every token.
- Mixup and time/frequency masking are training-time augmentations (the training task's job).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import FeatureExtractor, MelSpectrogram, power_to_db, stft_lengths
from ...errors import AudioError, ConfigError
from ...nn import TransformerEncoder
from ...nn.embeddings import sinusoidal_positions
from ...registry import register_model
from ..contracts import ClassifierModel


@dataclass
class SpecTTTraConfig:
    num_classes: int = 1  # one "synthetic" logit (BCE), as SONICS
    n_mels: int = 128  # F of the model input (input_shape[0])
    n_frames: int = 3744  # T of the model input (input_shape[1]); 120 s at hop 512 -> 3751, resized
    t_clip: int = 3
    f_clip: int = 1
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 2.67
    qkv_bias: bool = False
    pre_norm: bool = True  # LayerNorm after tokenisation, conv without bias (CLIP-style)
    pe_learnable: bool = True  # learned position embeddings (else sinusoidal)
    pos_drop_rate: float = 0.1
    attn_drop_rate: float = 0.1
    proj_drop_rate: float = 0.0
    layer_norm_eps: float = 1e-5  # torch nn.LayerNorm default in the official timm-style blocks
    # front-end
    sample_rate: int = 16000
    n_fft: int = 2048
    hop_length: int = 512
    f_min: float = 20.0
    f_max: float = 8000.0
    top_db: float = 80.0
    clip_seconds: float = 0.0  # > 0: crop/zero-pad the waveform to this duration (SONICS: 5 or 120)


def num_clips(size: int, clip: int) -> int:
    """Tokens of a kernel = stride = ``clip`` Conv1d over ``size`` steps: ``floor((size - clip) / clip + 1)``."""
    return math.floor((size - clip) / clip + 1)


class SpecTTTraFrontend(FeatureExtractor):
    """Waveform ``(B, T)`` at 16 kHz -> normalised log-mel ``(B, n_mels, L)``, ``L = T // hop + 1``, and lengths.

    With ``clip_seconds > 0`` every item is cropped (from 3/4 of its excess, as SONICS' validation crop) or
    zero-padded to that duration first, so ``L`` is fixed, every frame counts as valid, and any input
    length is accepted (:meth:`num_samples` is then the clip's length).
    """

    config_class = SpecTTTraConfig
    config_fields = ("sample_rate", "n_mels", "n_fft", "hop_length", "f_min", "f_max", "top_db", "clip_seconds")

    def __init__(self, config: SpecTTTraConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_features = c.sample_rate, c.hop_length, c.n_mels
        self.clip_samples = int(round(c.clip_seconds * c.sample_rate)) if c.clip_seconds > 0 else 0
        if self.clip_samples and self.clip_samples <= c.n_fft // 2:
            raise ConfigError(f"SpecTTTra clip of {self.clip_samples} samples is too short for reflect padding by "
                              f"n_fft/2={c.n_fft // 2}")
        self.min_samples = 1 if self.clip_samples else c.n_fft // 2 + 1
        self.min_samples_reason = f"reflect padding by n_fft/2={c.n_fft // 2} needs more samples than that"
        # torchaudio.transforms.MelSpectrogram defaults: reflect-padded centred frames, HTK mels, norm=None.
        self.mel = MelSpectrogram(
            c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft, n_mels=c.n_mels,
            f_min=c.f_min, f_max=c.f_max, window="hann", center=True, pad_mode="reflect", power=2.0,
            htk=True, norm=None,
        )

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        c = self.config
        if self.clip_samples:  # every input becomes one clip of clip_samples
            n_samples = torch.full_like(n_samples, self.clip_samples) if isinstance(n_samples, Tensor) else \
                self.clip_samples
        return stft_lengths(n_samples, c.n_fft, c.hop_length, center=True)

    def num_samples(self, n_frames: int) -> int:
        if self.clip_samples:
            if int(n_frames) > int(self.num_frames(self.clip_samples)):
                raise ConfigError(f"SpecTTTraFrontend with {self.config.clip_seconds} s clips always gives "
                                  f"{self.num_frames(self.clip_samples)} frames, not {n_frames}")
            return self.clip_samples
        return super().num_samples(n_frames)

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.clip_samples:
            n = self.clip_samples
            out = wav.new_zeros(wav.shape[0], n)
            for i, length in enumerate(lengths.tolist()):
                start = int((length - n) / 4 * 3) if length > n else 0
                seg = wav[i, start:start + min(length, n)]
                out[i, : seg.shape[0]] = seg
            wav, lengths = out, torch.full_like(lengths, n)
        # SONICS AudioDataset(normalize="std"): divide by the clip's standard deviation (over valid samples).
        valid = torch.arange(wav.shape[-1], device=wav.device)[None, :] < lengths[:, None]
        n = lengths.clamp(min=2).to(wav.dtype)[:, None]
        mean = (wav * valid).sum(-1, keepdim=True) / n
        std = (((wav - mean) * valid) ** 2).sum(-1, keepdim=True).div(n).sqrt()
        return wav / std.clamp(min=1e-6), lengths

    def compute(self, wav: Tensor) -> Tensor:
        db = power_to_db(self.mel(wav), ref=1.0, amin=1e-10, top_db=self.config.top_db)
        # MeanStdNorm: per clip over (F, T), unbiased std + 1e-6.
        mean = db.mean(dim=(1, 2), keepdim=True)
        std = db.flatten(1).std(dim=1)[:, None, None]
        return (db - mean) / (std + 1e-6)


class Tokenizer1D(nn.Module):
    """``(B, C_in, S) -> (B, S // clip, D)``: Conv1d(kernel = stride = clip) -> GELU -> + PE -> (LayerNorm)."""

    def __init__(self, in_channels: int, dim: int, clip: int, n_clips: int, pre_norm: bool, pe_learnable: bool):
        super().__init__()
        self.conv1d = nn.Conv1d(in_channels, dim, clip, stride=clip, bias=not pre_norm)
        self.act = nn.GELU()
        self.pe_learnable = pe_learnable
        if pe_learnable:
            self.pos_embed = nn.Parameter(torch.randn(1, n_clips, dim) * 0.02)
        else:
            # Transformer sinusoids (sin on even, cos on odd channels), as the official SinusoidPositionalEncoding.
            self.register_buffer("pos_embed", sinusoidal_positions(n_clips, dim)[None], persistent=False)
        self.norm_pre = nn.LayerNorm(dim, eps=1e-6) if pre_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv1d(x)).transpose(1, 2)
        return self.norm_pre(x + self.pos_embed)


class STTokenizer(nn.Module):
    """Spectrogram ``(B, F, T)`` -> ``(B, T/t + F/f, D)``: temporal tokens, then spectral tokens."""

    def __init__(self, c: SpecTTTraConfig):
        super().__init__()
        if not (1 <= c.t_clip <= c.n_frames and 1 <= c.f_clip <= c.n_mels):
            raise ConfigError(f"SpecTTTra: t_clip {c.t_clip} / f_clip {c.f_clip} must lie in [1, n_frames "
                              f"{c.n_frames}] / [1, n_mels {c.n_mels}]")
        self.num_temporal_tokens = num_clips(c.n_frames, c.t_clip)
        self.num_spectral_tokens = num_clips(c.n_mels, c.f_clip)
        self.num_tokens = self.num_temporal_tokens + self.num_spectral_tokens
        self.temporal_tokenizer = Tokenizer1D(c.n_mels, c.embed_dim, c.t_clip, self.num_temporal_tokens,
                                              c.pre_norm, c.pe_learnable)
        self.spectral_tokenizer = Tokenizer1D(c.n_frames, c.embed_dim, c.f_clip, self.num_spectral_tokens,
                                              c.pre_norm, c.pe_learnable)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.temporal_tokenizer(x), self.spectral_tokenizer(x.transpose(1, 2))], dim=1)


class SpecTTTra(ClassifierModel):
    """SpecTTTra classifier: ``forward(features (B, n_mels, L), lengths=None) -> logits (B, num_classes)``.

    ``features`` are the normalised log-mel of :attr:`frontend`; they are resized to ``(n_mels, n_frames)``
    bilinearly (as the official ``AudioClassifier``). :meth:`forward_features` returns the token sequence
    ``(B, T/t + F/f, D)``; the head is a Linear on its mean.
    """

    def __init__(self, config: SpecTTTraConfig):
        super().__init__()
        c = self.config = config
        self.num_classes = c.num_classes
        self.frontend = SpecTTTraFrontend(c)
        self.st_tokenizer = STTokenizer(c)
        self.pos_drop = nn.Dropout(c.pos_drop_rate)
        self.transformer = TransformerEncoder(
            c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.qkv_bias, norm_first=True, eps=c.layer_norm_eps,
            drop=c.proj_drop_rate, attn_drop=c.attn_drop_rate, drop_path=0.0, final_norm=False,
        )
        self.classifier = nn.Linear(c.embed_dim, c.num_classes)

    @property
    def num_tokens(self) -> int:
        return self.st_tokenizer.num_tokens

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> tokens ``(B, T/t + F/f, embed_dim)`` (the last block's output)."""
        c = self.config
        if features.ndim == 4 and features.shape[1] == 1:
            features = features.squeeze(1)
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"SpecTTTra expects features (B, {c.n_mels}, L), got shape {tuple(features.shape)}")
        # Always resize (an identity at L == n_frames): an exported graph then accepts any L.
        features = F.interpolate(features[:, None], size=(c.n_mels, c.n_frames), mode="bilinear")[:, 0]
        return self.transformer(self.pos_drop(self.st_tokenizer(features)))

    def forward_head(self, tokens: Tensor) -> Tensor:
        return self.classifier(tokens.mean(dim=1))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.classifier = nn.Linear(self.config.embed_dim, num_classes).to(self.classifier.weight.device)


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: SpecTTTra) -> dict[str, Tensor]:
    """Map an official ``AudioClassifier`` state dict (HF ``awsaf49/sonics-spectttra-*``) to audiozoo keys.

    ``encoder.`` is dropped; the torchaudio front-end buffers (``ft_extractor.*``) are recomputed here;
    ``pos_encoder.pe`` -> ``pos_embed``; ``transformer.blocks.i.*`` -> ``transformer.blocks.i.*`` (same
    timm names: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2).
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        k = re.sub(r"^(module\.|model\.)+", "", k)
        if k.startswith(("ft_extractor.", "augment.")):
            continue
        k = k.removeprefix("encoder.").replace("pos_encoder.pe", "pos_embed")
        if k.endswith("pos_embed") and not model.config.pe_learnable:
            continue  # sinusoids are a fixed buffer here
        out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="SONICS: Synthetic Or Not - Identifying Counterfeit Songs (Rahman et al., ICLR 2025)",
    arxiv="2408.14080",
    official_repo="https://github.com/awsaf49/sonics",
    license="MIT",
    converter=checkpoint_filter_fn,
)


_TINY = dict(n_mels=32, n_frames=48, embed_dim=32, depth=2, num_heads=2, num_classes=2)
_SRC = ("computed from the official configs/spectttra_{cfg}-120s.yaml (128x3744 input, 384-d, 12 layers, "
        "MLP 1025, pre-norm, learned PE, 1 class): {n} = 12 x 1,380,353 (blocks) + temporal conv {tc} + "
        "spectral conv {sc} + PE {pe} + 2 LayerNorms 1,536 + head 385; README: {readme}")


def _spectttra(base: dict, overrides: dict) -> SpecTTTra:
    return SpecTTTra(build_config(SpecTTTraConfig, {"clip_seconds": 120.0, **base}, **overrides))


@register_model(params=18_679_693, params_source=_SRC.format(
    cfg="f1t3", n="18,679,693", tc="147,456", sc="1,437,696", pe="(1248 + 128) x 384 = 528,384", readme="19M"),
    verified="A", tiny=_TINY, **_PAPER)
def spectttra_alpha(**overrides) -> SpecTTTra:
    """SpecTTTra-alpha (f_clip 1, t_clip 3), 120 s: 1376 tokens."""
    return _spectttra(dict(f_clip=1, t_clip=3), overrides)


@register_model(params=21_428_365, params_source=_SRC.format(
    cfg="f3t5", n="21,428,365", tc="245,760", sc="4,313,088", pe="(748 + 42) x 384 = 303,360", readme="21M"),
    verified="A", tiny={**_TINY, "f_clip": 3, "t_clip": 5}, **_PAPER)
def spectttra_beta(**overrides) -> SpecTTTra:
    """SpecTTTra-beta (f_clip 3, t_clip 5), 120 s: 790 tokens."""
    return _spectttra(dict(f_clip=3, t_clip=5), overrides)


@register_model(params=24_313_357, params_source=_SRC.format(
    cfg="f5t7", n="24,313,357", tc="344,064", sc="7,188,480", pe="(534 + 25) x 384 = 214,656", readme="24M"),
    verified="A", tiny={**_TINY, "f_clip": 5, "t_clip": 7}, **_PAPER)
def spectttra_gamma(**overrides) -> SpecTTTra:
    """SpecTTTra-gamma (f_clip 5, t_clip 7), 120 s: 559 tokens."""
    return _spectttra(dict(f_clip=5, t_clip=7), overrides)
