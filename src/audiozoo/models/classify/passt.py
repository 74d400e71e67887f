"""PaSST: Patchout faSt Spectrogram Transformer.

Papers: Khaled Koutini, Jan Schlüter, Hamid Eghbal-zadeh, Gerhard Widmer, "Efficient Training of Audio
Transformers with Patchout", Interspeech 2022, arXiv:2110.05069 (the architecture and patchout); and
Koutini, Masoudian, Schmid, Eghbal-zadeh, Schlüter & Widmer, "Learning General Audio Representations with
Large-Scale Training of Patchout Audio Transformers", HEAR 2021 / PMLR, arXiv:2211.13956 (the HEAR package).
Official code: https://github.com/kkoutini/PaSST (Apache-2.0), ``models/passt.py``; HEAR package
``hear21passt`` (https://github.com/kkoutini/passt_hear21, Apache-2.0): ``hear21passt/models/passt.py::PaSST``
and ``hear21passt/models/preprocess.py::AugmentMelSTFT``.

A DeiT-style ViT (two prefix tokens, cls + distillation) on overlapping 16x16 patches (stride 10) of a
128-bin log-mel spectrogram. Unlike AST it has *separate* frequency and time position embeddings
(``(1, D, Gf, 1)`` and ``(1, D, 1, Gt)``, added to the patch grid) plus one embedding per prefix token
(paper Sec. 2.1), so shorter inputs simply use the first time embeddings (the reference crops them).
**Patchout** (Sec. 2.2), at training time only: structured patchout drops ``s_patchout_t`` whole time
columns and ``s_patchout_f`` whole frequency rows of the patch grid (the same ones for the whole batch),
unstructured patchout drops ``u_patchout`` random patches of the flattened sequence; this shortens the
sequence and is both a regulariser and a large speed-up. The clip embedding is the mean of the two prefix
tokens after the final LayerNorm; the head is LayerNorm + Linear (reference ``head = Sequential(LayerNorm,
Linear)``, whose LayerNorm keeps torch's default eps 1e-5 while the blocks use 1e-6).

Front-end (``AugmentMelSTFT`` as configured by ``hear21passt.base.get_basic_model``): 32 kHz, pre-emphasis
``y[n] = x[n+1] - 0.97 x[n]`` (a valid conv, one sample shorter), ``torch.stft`` (n_fft 1024, symmetric Hann
window of 800 samples centred in the FFT frame, hop 320, ``center=True`` with reflect padding), power, Kaldi
triangular mel filters (torchaudio ``kaldi.get_mel_banks``: 128 bins, fmin 0, fmax 15 kHz, Nyquist bin
weightless), ``ln(mel + 1e-5)``, then the "fast normalisation" ``(x + 4.5) / 5``. In training mode the
reference draws the mel range per batch (``fmin + U{0..fmin_aug_range-1}``, ``fmax + fmax_aug_range // 2 -
U{0..fmax_aug_range-1}``); ours does the same. Its frequency/time masking (``freqm``/``timem``) is left to
the training task's SpecAugment (``task.specaugment``), where audiozoo keeps augmentations.

Departures: (1) the reference's DeiT ``head_dist`` Linear is never used by its forward pass (logits come
from ``head`` on the averaged tokens); we drop it (405,263 parameters at 527 classes) and the converter
skips it, as the AST port drops DeiT's unused heads. (2) The reference sizes its position grid as
``input_size // stride`` while its conv yields ``(input - patch) // stride + 1`` patches; they agree for the
released models (128 x 998 -> 12 x 99) but not in general, where the reference crashes on frequency and never
uses the trailing time embeddings. We size the grid by the conv; the converter crops longer reference
embeddings. (3) Patchout keeps at least one row/column/patch (the reference returns an empty sequence when
asked to drop more than exist). (4) Inputs longer than the time embedding raise :class:`AudioError` (the
reference fails with a shape error); the HEAR wrapper handles long audio by windowing outside the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.features import FeatureExtractor
from ...dsp.kaldi import kaldi_mel_banks
from ...dsp.stft import get_window, stft, stft_lengths
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn import PatchEmbed, TransformerEncoder, vit_head
from ...registry import register_model
from ..contracts import ClassifierModel

LOG_OFFSET = 1e-5  # ln(mel + 1e-5) in AugmentMelSTFT
NORM_SHIFT, NORM_SCALE = 4.5, 5.0  # "fast normalization" (x + 4.5) / 5


@dataclass
class PaSSTConfig:
    num_classes: int = 527
    n_mels: int = 128
    max_length: int = 998  # frames the time position embedding is built for (reference input_tdim)
    patch_size: int = 16
    fstride: int = 10
    tstride: int = 10
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6  # blocks and final norm (timm ViT); the head LayerNorm uses 1e-5
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # patchout (training only); the AudioSet recipe of the official README uses t=40, f=4
    s_patchout_t: int = 40
    s_patchout_f: int = 4
    u_patchout: int = 0
    # "tokens": mean of the cls/distillation tokens (paper); "mean": mean of the patch tokens (not in the
    # paper; as for AST it converges faster when training a small model from scratch)
    pooling: str = "tokens"
    # front-end (hear21passt.base.get_basic_model)
    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate // 2 - fmax_aug_range // 2 (15 kHz), as the reference
    fmin_aug_range: int = 10
    fmax_aug_range: int = 2000
    preemphasis: float = 0.97


class PaSSTFrontend(FeatureExtractor):
    """Waveform ``(B, T)`` at ``sample_rate`` -> log-mel ``(B, n_mels, L)`` and frame lengths ``(B,)``.

    ``L = 1 + (T - 1) // hop_length`` (pre-emphasis removes one sample, the STFT is centred). Frames past an
    item's own length (batch padding) are set to the value of silence, ``(ln 1e-5 + 4.5) / 5``. No
    parameters; computed in float64 (float32 FFT rounding drifts quiet log-mel bins by ~1e-5) and returned in
    the input's float dtype. In training mode the mel range is jittered as in ``AugmentMelSTFT``.
    """

    config_class = PaSSTConfig
    config_fields = ("sample_rate", "n_mels", "n_fft", "win_length", "hop_length", "fmin", "fmax",
                     "fmin_aug_range", "fmax_aug_range", "preemphasis")

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_features = c.sample_rate, c.hop_length, c.n_mels
        # the pre-emphasised signal (one sample shorter) must exceed the reflect padding of n_fft / 2
        self.min_samples = c.n_fft // 2 + 2
        self.min_samples_reason = f"pre-emphasis drops one, then reflect padding by n_fft/2={c.n_fft // 2} needs more"
        if c.fmin_aug_range < 1 or c.fmax_aug_range < 1:
            raise ConfigError("fmin_aug_range and fmax_aug_range must be >= 1 (1 means no augmentation)")
        self.fmax = float(c.fmax) if c.fmax is not None else float(c.sample_rate // 2 - c.fmax_aug_range // 2)
        if c.win_length > c.n_fft:
            raise ConfigError(f"win_length={c.win_length} must be <= n_fft={c.n_fft}")
        nyquist = c.sample_rate / 2
        if not 0.0 <= c.fmin < self.fmax <= nyquist:
            raise ConfigError(f"bad mel range fmin={c.fmin}, fmax={self.fmax} for sample rate {c.sample_rate}")

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        c = self.config
        valid = (n_samples - 1).clamp(min=0) if isinstance(n_samples, Tensor) else max(n_samples - 1, 0)
        return stft_lengths(valid, c.n_fft, c.hop_length, center=True)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Frame count of each item for ``lengths`` samples (:meth:`num_frames`; kept for older callers)."""
        return self.num_frames(lengths)

    def _mel_range(self) -> tuple[float, float]:
        c = self.config
        if not self.training:
            return float(c.fmin), self.fmax
        # Same draws as AugmentMelSTFT.forward (global torch RNG), applied only in training.
        fmin = c.fmin + int(torch.randint(c.fmin_aug_range, (1,)).item())
        fmax = self.fmax + c.fmax_aug_range // 2 - int(torch.randint(c.fmax_aug_range, (1,)).item())
        return float(fmin), float(min(fmax, c.sample_rate / 2))

    def compute(self, wav: Tensor) -> Tensor:
        c = self.config
        x = wav.double()
        x = x[:, 1:] - c.preemphasis * x[:, :-1]  # conv1d with the kernel [-0.97, 1]
        window = get_window("hann", c.win_length, periodic=False, device=x.device, dtype=torch.float64)
        power = stft(x, c.n_fft, c.hop_length, c.win_length, window, center=True, pad_mode="reflect", power=2.0)
        with torch.device("cpu"):  # the filterbank cache is shared: never fill it under a meta/other device
            banks = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, *self._mel_range())
        banks = banks.to(x.device)
        mel = torch.log(torch.matmul(banks, power) + LOG_OFFSET)
        return (mel + NORM_SHIFT) / NORM_SCALE

    def finish(self, mel: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        valid = torch.arange(mel.shape[-1], device=mel.device)[None, :] < frames[:, None]
        silence = (math.log(LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE
        return mel.masked_fill(~valid[:, None, :], silence), frames


def _keep(n: int, drop: int, device: torch.device) -> Tensor:
    """Sorted random indices of ``n - drop`` kept items (at least one), drawn as the reference does."""
    # torch.randperm on the CPU generator, as hear21passt, so seeded runs drop the same patches.
    return torch.randperm(n)[: max(1, n - drop)].sort().values.to(device)


class PaSST(ClassifierModel):
    """PaSST classifier: ``forward(features (B, n_mels, L), lengths=None) -> logits (B, num_classes)``.

    ``features`` is the front-end's log-mel; ``L`` may be anything from one patch up to ``max_length``
    frames. ``lengths`` is accepted for the classify contract; as in the reference every patch (padding
    included) is attended to.
    """

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        c = self.config = config
        if c.pooling not in ("tokens", "mean"):
            raise ConfigError(f"PaSSTConfig.pooling must be 'tokens' or 'mean', got {c.pooling!r}")
        if min(c.s_patchout_t, c.s_patchout_f, c.u_patchout) < 0:
            raise ConfigError("patchout sizes (s_patchout_t, s_patchout_f, u_patchout) must be >= 0")
        self.num_classes = c.num_classes
        self.frontend = PaSSTFrontend(c)
        self.patch_embed = PatchEmbed((c.n_mels, c.max_length), c.patch_size, (c.fstride, c.tstride), 1, c.embed_dim)
        gf, gt = self.patch_embed.grid_size
        if gf < 1 or gt < 1:
            raise ConfigError(f"n_mels={c.n_mels} x max_length={c.max_length} is smaller than one patch {c.patch_size}")
        self.num_prefix_tokens = 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        # Sec. 2.1: one embedding per prefix token, one per frequency row and one per time column.
        self.prefix_pos_embed = nn.Parameter(torch.zeros(1, 2, c.embed_dim))
        self.freq_pos_embed = nn.Parameter(torch.zeros(1, c.embed_dim, gf, 1))
        self.time_pos_embed = nn.Parameter(torch.zeros(1, c.embed_dim, 1, gt))
        self.pos_drop = nn.Dropout(c.drop_rate)
        self.encoder = TransformerEncoder(
            c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.qkv_bias, norm_first=True, eps=c.layer_norm_eps,
            drop=c.drop_rate, attn_drop=c.attn_drop_rate, drop_path=c.drop_path_rate,
        )
        self.head_norm = nn.LayerNorm(c.embed_dim)  # torch default eps 1e-5, as the reference head
        self.head = nn.Linear(c.embed_dim, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.cls_token.is_meta:
            return
        # timm ViT init as the reference: truncated normal (0.02) tokens/embeddings/Linear weights.
        for p in (self.cls_token, self.dist_token, self.prefix_pos_embed, self.freq_pos_embed, self.time_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def patch_tokens(self, features: Tensor) -> Tensor:
        """``(B, n_mels, L)`` -> patch tokens with position embeddings, after patchout: ``(B, N, D)``."""
        c = self.config
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"PaSST expects features (B, {c.n_mels}, L), got shape {tuple(features.shape)}")
        if features.shape[-1] < c.patch_size:
            raise AudioError(f"PaSST needs at least {c.patch_size} frames (one patch), got {features.shape[-1]}")
        x = self.patch_embed.proj(features.unsqueeze(1))  # (B, D, Gf, Gt)
        gt, max_gt = x.shape[-1], self.time_pos_embed.shape[-1]
        if gt > max_gt:
            raise AudioError(f"PaSST input of {features.shape[-1]} frames gives {gt} time patches, more than the "
                             f"{max_gt} time position embeddings (max_length={c.max_length} frames); crop or window "
                             "the input")
        # Reference order: time embedding first (cropped to the input), then frequency.
        x = x + self.time_pos_embed[..., :gt]
        x = x + self.freq_pos_embed
        if self.training and c.s_patchout_t:  # structured patchout, Sec. 2.2: whole time columns
            x = x[:, :, :, _keep(x.shape[-1], c.s_patchout_t, x.device)]
        if self.training and c.s_patchout_f:  # ... and whole frequency rows
            x = x[:, :, _keep(x.shape[2], c.s_patchout_f, x.device), :]
        x = x.flatten(2).transpose(1, 2)  # frequency-major, as the reference
        if self.training and c.u_patchout:  # unstructured patchout: random single patches
            x = x[:, _keep(x.shape[1], c.u_patchout, x.device), :]
        return x

    def forward_features(self, features: Tensor, lengths: Tensor | None = None, return_hidden: bool = False):
        """``(B, n_mels, L)`` -> token sequence ``(B, 2 + N, D)`` after the final LayerNorm."""
        x = self.patch_tokens(features)
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.prefix_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.prefix_pos_embed[:, 1:]
        x = self.pos_drop(torch.cat([cls, dist, x], dim=1))
        return self.encoder(x, return_hidden=return_hidden)

    def pool(self, tokens: Tensor) -> Tensor:
        """``(B, 2 + N, D)`` -> clip embedding ``(B, D)`` (the reference's ``features`` output)."""
        if self.config.pooling == "mean":
            return tokens[:, self.num_prefix_tokens:].mean(1)
        return (tokens[:, 0] + tokens[:, 1]) / 2

    def forward_head(self, tokens: Tensor) -> Tensor:
        return self.head(self.head_norm(self.pool(tokens)))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def scene_embedding(self, features: Tensor) -> Tensor:
        """HEAR scene embedding ``(B, num_classes + D)``: logits then the pooled tokens (mode "all")."""
        pooled = self.pool(self.forward_features(features))
        return torch.cat([self.head(self.head_norm(pooled)), pooled], dim=1)

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.head = vit_head(self.config.embed_dim, num_classes, self.head_norm.weight.device)


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: PaSST) -> dict[str, Tensor]:
    """Map a ``hear21passt``/official ``PaSST`` state dict (e.g. ``passt-s-f128-p16-s10-ap.476-swa.pt``) to ours.

    Accepts the bare network layout, a ``{"model": ...}`` wrapper, and the ``net.``/``module.`` prefixes of
    ``PasstBasicWrapper``/DataParallel (the wrapper's ``mel.*`` buffers and ``device_proxy`` are dropped).
    The unused DeiT ``head_dist`` is dropped. Position embeddings longer than our conv-sized grid are
    cropped (the reference never reads the trailing entries, see the module docstring).
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not any(k.endswith("time_new_pos_embed") for k in state):
        if any(k.endswith("pos_embed") for k in state):
            raise CheckpointError("this looks like an ImageNet ViT/DeiT checkpoint (one 'pos_embed'); PaSST weights "
                                  "have 'freq_new_pos_embed'/'time_new_pos_embed'")
        return state  # already ours (or foreign: load_into names the mismatch)
    for prefix in ("module.", "net."):
        if all(k.startswith(prefix) or k.startswith("mel.") or k == "device_proxy" for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    renames = {"new_pos_embed": "prefix_pos_embed", "freq_new_pos_embed": "freq_pos_embed",
               "time_new_pos_embed": "time_pos_embed", "cls_token": "cls_token", "dist_token": "dist_token"}
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith("head_dist.") or k.startswith("mel.") or k == "device_proxy":
            continue
        if k in renames:
            out[renames[k]] = v
        elif k.startswith("blocks."):
            out["encoder." + k] = v
        elif k.startswith("norm."):
            out["encoder." + k] = v
        elif k.startswith("head.0."):
            out["head_norm." + k[len("head.0."):]] = v
        elif k.startswith("head.1."):
            out["head." + k[len("head.1."):]] = v
        elif k == "patch_embed.proj.weight" and v.ndim < 4:
            # The official converter's case for early checkpoints with a Linear patchifier.
            out[k] = v.reshape(model.patch_embed.proj.weight.shape)
        else:
            out[k] = v
    gf, gt = model.patch_embed.grid_size
    for name, axis, size in (("freq_pos_embed", 2, gf), ("time_pos_embed", 3, gt)):
        pos = out.get(name)
        if pos is not None and pos.shape[axis] > size:
            out[name] = pos.narrow(axis, 0, size).contiguous()
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="PaSST: Efficient Training of Audio Transformers with Patchout (Koutini, Schlüter, Eghbal-zadeh & "
          "Widmer, Interspeech 2022); HEAR 2021 package (Koutini et al., arXiv:2211.13956)",
    arxiv="2110.05069",
    official_repo="https://github.com/kkoutini/PaSST",
    license="Apache-2.0",
    converter=checkpoint_filter_fn,
)


# Tiny config for the registry auto-tests: no patchout there (a dropped position embedding gets no gradient).
_TINY = dict(n_mels=32, max_length=64, patch_size=8, fstride=6, tstride=6, embed_dim=32, depth=2, num_heads=2,
             s_patchout_t=0, s_patchout_f=0, u_patchout=0)


def _passt(base: dict, overrides: dict) -> PaSST:
    return PaSST(build_config(PaSSTConfig, base, **overrides))


@register_model(params=85_748_495, params_source="hear21passt 0.0.26 PaSST as built by get_basic_model (arch "
                "passt_s_swa_p16_128_ap476: 128x998, stride 10, distilled, 527 classes) counted with the reference "
                "class: 86,153,758, minus its never-used head_dist Linear (405,263)",
                verified="AP", tiny=_TINY, **_PAPER)
def passt_s_p16_s10(**overrides) -> PaSST:
    """Canonical PaSST-S (patch 16, stride 10, 998 frames = 10 s at 32 kHz, AudioSet 527 classes)."""
    return _passt({}, overrides)


@register_model(params=2_726_026, params_source="computed from this config (192-d, 6 layers, 3 heads, 128 mels x "
                "100 frames, 10 classes)", verified="AT", tiny=_TINY, **_PAPER)
def passt_tiny(**overrides) -> PaSST:
    """Small PaSST for CPU recipes (FSDD digits): 1 s inputs (100 frames), 10 classes, patchout t=3, f=4."""
    return _passt(dict(embed_dim=192, depth=6, num_heads=3, max_length=100, num_classes=10, s_patchout_t=3,
                       s_patchout_f=4), overrides)
