"""Demucs (v2): a waveform U-Net with a BiLSTM at the bottleneck, for music source separation.

Paper: Alexandre Défossez, Nicolas Usunier, Léon Bottou, Francis Bach, "Music Source Separation in the Waveform
Domain", arXiv:1911.13254 (v2, 2021; hal-02379796v2). Official code: facebookresearch/demucs, branch ``v2``
(``demucs/model.py`` at commit 7445cbd), MIT licence. Peer: the ``demucs`` PyPI package (4.1.0), whose
``demucs.demucs.Demucs`` is the same network with later options (DConv branches, GroupNorm, GELU) that are off
in the v2 configuration. Re-implemented here from the paper and those facts.

Architecture (paper Section 4, Fig. 2), 44.1 kHz stereo in, ``S`` stereo stems out:

* the input is upsampled x2 with a windowed-sinc resampler (``resample=True``, the v2 release; Smith's
  band-limited interpolation with 24 zero crossings and a 0.945 roll-off, as ``julius.resample_frac``);
* encoder ``i`` (``depth`` = 6 layers): ``Conv1d(C_in, C_i, K=8, stride=4) -> ReLU -> Conv1d(C_i, 2 C_i, 1) ->
  GLU``, with ``C_1 = channels`` (64) and ``C_{i+1} = growth * C_i`` (x2);
* a 2-layer bidirectional LSTM with ``C_depth`` hidden units per direction, then a ``Linear(2 C, C)``;
* decoder ``i`` (mirror order): ``x + skip_i`` (the skip centre-trimmed to ``x``) -> ``Conv1d(C_i, 2 C_i,
  context=3) -> GLU -> ConvTranspose1d(C_i, C_{i-1}, 8, stride 4) -> ReLU`` (no ReLU on the last layer, which
  outputs ``S * audio_channels`` channels);
* downsample /2, then the output is centre-trimmed to the input length.

Weight init: every (transposed) convolution's weight and bias are divided by ``sqrt(std(w) / rescale)`` with
``rescale = 0.1`` (Section 4.2, "initialization").

Length handling: as the official ``apply_model``, the mixture is zero-padded (centred) to
:meth:`Demucs.valid_length` so no samples are left over by the strided convolutions, and the output is
centre-trimmed back, so ``forward`` maps ``(B, C, T) -> (B, S, C, T)`` for any ``T >= 1``.

Options and departures (stated):

* ``pad_context`` (default ``False``: the v2 code): the decoder's context convolution is "valid" (kernel
  ``context``, no padding; ``valid_length`` adds ``context - 1`` per layer). ``pad_context=True`` pads it
  ("same", as the ``demucs`` package's ``demucs.demucs.Demucs``, whose ``context=c`` means a kernel of
  ``2c + 1``); that layout is the one checked for parity against the package.
* ``normalize=True`` standardises the mixture by the mean/std of its mono downmix and undoes it on the output
  (the package's option, off in v2). With ``normalize=False`` the v2 code still divided the input by
  ``1 + 1e-5`` and multiplied the output by 1; that 1e-5 relative scale is not reproduced.
* The official v2 checkpoints (``demucs-e07c671f.th``, ``demucs48_hq-28a1282c.th``, ``demucs_extra-3646af93.th``)
  are plain state dicts in the v2 key layout; :func:`checkpoint_filter_fn` maps them (and the package's layout)
  to this model's keys. DiffQ-quantised states (``demucs_quantized``) are refused. Nothing is downloaded:
  pass the file (``create_model("demucs_v2", pretrained=path)`` or ``audiozoo separate -m path --arch``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...errors import AudioError, CheckpointError, ConfigError
from ...registry import WeightSet, register_model
from ..contracts import SeparatorModel

__all__ = ["MUSDB_SOURCES", "Demucs", "DemucsConfig", "checkpoint_filter_fn", "demucs_small", "demucs_v2",
           "demucs_v2_48", "load_demucs_checkpoint", "sinc_resample_kernel"]

#: the MUSDB18 stems in the order of the official models
MUSDB_SOURCES = ("drums", "bass", "other", "vocals")


@dataclass
class DemucsConfig:
    """Demucs v2 hyperparameters (defaults: ``7445cbd:demucs/model.py`` with the MUSDB sources)."""

    sources: tuple[str, ...] = MUSDB_SOURCES
    audio_channels: int = 2
    sample_rate: int = 44100
    channels: int = 64  # C_1 (v2 release: 64; the first arXiv version: 100)
    growth: float = 2.0
    depth: int = 6
    kernel_size: int = 8
    stride: int = 4
    rewrite: bool = True  # 1x1 conv + GLU after each encoder conv, context conv + GLU before each decoder conv
    glu: bool = True  # GLU (else ReLU) after the rewrite convolutions
    context: int = 3  # kernel of the decoder's rewrite conv
    pad_context: bool = False  # True: "same" padding of that conv (the demucs package's layout)
    lstm_layers: int = 2
    resample: bool = True  # x2 sinc upsampling of the input (and /2 of the output)
    normalize: bool = False
    rescale: float = 0.1  # weight-rescaling init reference (0: off)
    segment_seconds: float = 10.0  # training / chunked inference segment (not architecture)

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"Demucs needs distinct source names, got {self.sources}")
        if min(self.audio_channels, self.channels, self.depth, self.kernel_size, self.stride, self.context) < 1:
            raise ConfigError("Demucs sizes (audio_channels, channels, depth, kernel_size, stride, context) "
                              "must be >= 1")
        if self.pad_context and self.context % 2 == 0:
            raise ConfigError(f"pad_context needs an odd context kernel, got {self.context}")
        if self.growth <= 0 or self.lstm_layers < 0 or self.rescale < 0:
            raise ConfigError("Demucs needs growth > 0, lstm_layers >= 0 and rescale >= 0")


# --------------------------------------------------------------------------- resampling (x2 / /2)
def sinc_resample_kernel(old: int, new: int, zeros: int = 24, rolloff: float = 0.945) -> tuple[Tensor, int]:
    """Polyphase kernels ``(new, 1, 2 W + old)`` and the half-width ``W`` of Smith's band-limited interpolation
    from rate ``old`` to rate ``new`` (co-prime integers): a Hann-squared-windowed sinc with cutoff
    ``rolloff * min(old, new) / 2``, ``zeros`` zero crossings, each phase normalised to unit DC gain."""
    cutoff = min(old, new) * rolloff
    width = math.ceil(zeros * old / cutoff)
    idx = torch.arange(-width, width + old, dtype=torch.float32)
    rows = []
    for phase in range(new):
        t = ((-phase / new + idx / old) * cutoff).clamp(-zeros, zeros) * math.pi
        window = torch.cos(t / zeros / 2) ** 2
        sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
        k = sinc * window
        rows.append(k / k.sum())
    return torch.stack(rows)[:, None], width


def _resample(x: Tensor, kernel: Tensor, width: int, old: int, new: int) -> Tensor:
    """``(..., T) -> (..., floor(T * new / old))`` with the kernels of :func:`sinc_resample_kernel`."""
    shape, t = x.shape[:-1], x.shape[-1]
    y = F.pad(x.reshape(-1, 1, t), (width, width + old), mode="replicate")
    y = F.conv1d(y, kernel.to(y.dtype), stride=old)  # (N, new, T') one row per output phase
    y = y.transpose(1, 2).reshape(*shape, -1)
    return y[..., : (new * t) // old]


def center_trim(x: Tensor, length: int) -> Tensor:
    """Keep the central ``length`` samples of the last axis (an odd surplus is taken from the right)."""
    delta = x.shape[-1] - length
    if delta < 0:
        raise AudioError(f"cannot centre-trim {x.shape[-1]} samples to {length}")
    return x[..., delta // 2: x.shape[-1] - (delta - delta // 2)]


# --------------------------------------------------------------------------- blocks
class BLSTM(nn.Module):
    """Bidirectional LSTM over ``(B, C, L)`` with ``C`` units per direction, then ``Linear(2C, C)``."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size=dim, hidden_size=dim, num_layers=layers, bidirectional=True)
        self.linear = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.lstm(x.permute(2, 0, 1))[0]  # (L, B, 2C): sequence-first, as the official layout
        return self.linear(y).permute(1, 2, 0)


class EncoderLayer(nn.Module):
    """``Conv1d(K, stride) -> ReLU [-> Conv1d 1x1 to 2C -> GLU]``: ``(B, C_in, L) -> (B, C, L')``."""

    def __init__(self, c_in: int, c: int, cfg: DemucsConfig):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c, cfg.kernel_size, cfg.stride)
        self.rewrite = nn.Conv1d(c, (2 if cfg.glu else 1) * c, 1) if cfg.rewrite else None
        self.glu = cfg.glu

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv(x))
        if self.rewrite is not None:
            x = self.rewrite(x)
            x = F.glu(x, dim=1) if self.glu else F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """``[Conv1d(context) to 2C -> GLU ->] ConvTranspose1d(K, stride) [-> ReLU]``: ``(B, C, L) -> (B, C_out, L')``."""

    def __init__(self, c: int, c_out: int, cfg: DemucsConfig, last: bool):
        super().__init__()
        pad = cfg.context // 2 if cfg.pad_context else 0
        self.rewrite = nn.Conv1d(c, (2 if cfg.glu else 1) * c, cfg.context, padding=pad) if cfg.rewrite else None
        self.conv_tr = nn.ConvTranspose1d(c, c_out, cfg.kernel_size, cfg.stride)
        self.glu, self.last = cfg.glu, last

    def forward(self, x: Tensor) -> Tensor:
        if self.rewrite is not None:
            x = self.rewrite(x)
            x = F.glu(x, dim=1) if self.glu else F.relu(x)
        x = self.conv_tr(x)
        return x if self.last else F.relu(x)


# --------------------------------------------------------------------------- model
class Demucs(SeparatorModel):
    """Demucs v2: ``forward(mixture (B, C, T)) -> sources (B, S, C, T)`` at ``sample_rate``.

    ``sources`` names the ``S`` stems (MUSDB order: drums, bass, other, vocals). Any ``T >= 1`` works: the
    mixture is zero-padded (centred) to :meth:`valid_length` and the output is trimmed back.
    """

    def __init__(self, config: DemucsConfig):
        super().__init__()
        self.config = cfg = config
        self.sources = list(cfg.sources)
        self.audio_channels, self.sample_rate = cfg.audio_channels, cfg.sample_rate
        self.encoder = nn.ModuleList()
        decoder = []
        c_in, c = cfg.audio_channels, cfg.channels
        for index in range(cfg.depth):
            self.encoder.append(EncoderLayer(c_in, c, cfg))
            out = len(cfg.sources) * cfg.audio_channels if index == 0 else c_in
            decoder.insert(0, DecoderLayer(c, out, cfg, last=index == 0))
            c_in, c = c, int(cfg.growth * c)
        self.decoder = nn.ModuleList(decoder)
        self.lstm = BLSTM(c_in, cfg.lstm_layers) if cfg.lstm_layers else None
        up, self._up_width = sinc_resample_kernel(1, 2)
        down, self._down_width = sinc_resample_kernel(2, 1)
        self.register_buffer("up_kernel", up, persistent=False)
        self.register_buffer("down_kernel", down, persistent=False)
        if cfg.rescale:
            self._rescale(cfg.rescale)

    @torch.no_grad()
    def _rescale(self, reference: float) -> None:
        # Section 4.2: bring every conv's weight std towards `reference` (w, b /= sqrt(std / reference))
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                scale = (m.weight.std() / reference) ** 0.5
                m.weight.div_(scale)
                if m.bias is not None:
                    m.bias.div_(scale)

    def valid_length(self, length: int) -> int:
        """The smallest input length ``>= length`` that leaves no samples over in the strided convolutions (and,
        with a "valid" context conv, gives an output at least ``length`` long)."""
        cfg = self.config
        n = 2 * length if cfg.resample else length
        shrink = 0 if cfg.pad_context or not cfg.rewrite else cfg.context - 1
        for _ in range(cfg.depth):
            n = max(1, math.ceil((n - cfg.kernel_size) / cfg.stride) + 1) + shrink
        for _ in range(cfg.depth):
            n = (n - 1) * cfg.stride + cfg.kernel_size
        return int(math.ceil(n / 2)) if cfg.resample else int(n)

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "audio") -> dict[str, Any]:
        """As the separator contract, but with a **fixed** number of samples: :meth:`valid_length` pads in
        Python, so a traced graph holds one length. Export the segment length you will run (the official
        ``apply_model`` also separates fixed-length segments; ``audiozoo separate`` streams such windows)."""
        sig = super().export_signature(batch=batch, length=length, on=on)
        sig["dynamic_axes"] = {"mixture": {0: "batch"}, "sources": {0: "batch"}}
        return sig

    def forward(self, mixture: Tensor) -> Tensor:
        if mixture.ndim != 3 or mixture.shape[1] != self.audio_channels:
            raise AudioError(f"Demucs expects a mixture (B, {self.audio_channels}, T), got {tuple(mixture.shape)}")
        length = mixture.shape[-1]
        if length < 1:
            raise AudioError("Demucs got an empty mixture")
        x = mixture
        if self.config.normalize:
            mono = x.mean(dim=1, keepdim=True)
            mean, std = mono.mean(dim=-1, keepdim=True), mono.std(dim=-1, keepdim=True)
            x = (x - mean) / (1e-5 + std)
        delta = self.valid_length(length) - length
        x = F.pad(x, (delta // 2, delta - delta // 2))
        if self.config.resample:
            x = _resample(x, self.up_kernel, self._up_width, 1, 2)
        skips = []
        for enc in self.encoder:
            x = enc(x)
            skips.append(x)
        if self.lstm is not None:
            x = self.lstm(x)
        for dec in self.decoder:
            skip = skips.pop()
            x = dec(x + center_trim(skip, x.shape[-1]))
        if self.config.resample:
            x = _resample(x, self.down_kernel, self._down_width, 2, 1)
        if self.config.normalize:
            x = x * std + mean
        x = center_trim(x, length)
        return x.reshape(x.shape[0], len(self.sources), self.audio_channels, length)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        g = torch.Generator().manual_seed(seed)
        return (0.1 * torch.randn(batch, self.audio_channels, length * 64, generator=g),), {}


# --------------------------------------------------------------------------- official checkpoints
def checkpoint_filter_fn(state: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """An official Demucs v2 state dict, or one of the ``demucs`` package's ``demucs.demucs.Demucs`` (DConv-free),
    -> this model's keys.

    v2 (``7445cbd``): ``encoder.i.{0: conv, 2: rewrite}``, ``decoder.i.{0: rewrite, 2: conv_tr}``; the package
    inserts a norm before each activation: ``encoder.i.{0, 3}``, ``decoder.i.{0, 3}``. Without ``rewrite`` the
    decoder's transposed conv is ``decoder.i.0``. ``lstm.lstm.*`` / ``lstm.linear.*`` are the same.
    A ``{"state": ...}`` package is unwrapped; DiffQ-quantised states are refused.
    """
    if isinstance(state.get("state"), dict):
        state = state["state"]
    if state.get("__quantized"):
        raise CheckpointError("this is a DiffQ-quantised Demucs state (demucs_quantized); audiozoo loads only "
                              "float checkpoints (demucs, demucs_extra, demucs48_hq)")
    rewrite = bool(getattr(getattr(model, "config", None), "rewrite", True))
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, Tensor):
            continue
        parts = k.split(".")
        if parts[0] in ("encoder", "decoder") and len(parts) == 4 and parts[2].isdigit():
            side, i, j, leaf = parts[0], parts[1], int(parts[2]), parts[3]
            if side == "encoder":
                name = {0: "conv"}.get(j, "rewrite" if j in (2, 3) and rewrite else None)
            else:
                name = {0: "rewrite" if rewrite else "conv_tr"}.get(j, "conv_tr" if j in (2, 3) and rewrite else None)
            if name is None:
                raise CheckpointError(f"unexpected Demucs key {k!r}: a norm or DConv layer (not a v2 model)")
            out[f"{side}.{i}.{name}.{leaf}"] = v.float()
        else:
            out[k] = v.float()
    return out


def load_demucs_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The state dict of an official Demucs v2 / Conv-TasNet ``.th`` file (plain state dicts, read with
    ``torch.load(weights_only=True)``: no code runs). Training packages that pickle the model class are
    refused: re-save their ``state`` entry first."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint not found: {path}") from e
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError / RuntimeError for unsafe content
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise CheckpointError(f"{path}: not a plain state dict loadable with torch.load(weights_only=True) "
                              f"(a training package pickles the model class; save its 'state' entry): {first}") from e
    if isinstance(ck, dict) and isinstance(ck.get("state"), dict):
        ck = ck["state"]
    tensors = isinstance(ck, dict) and all(isinstance(v, Tensor) for k, v in ck.items() if k != "__quantized")
    if not tensors or not ck:
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return ck


# --------------------------------------------------------------------------- registered variants
_PAPER = "Music Source Separation in the Waveform Domain (Défossez, Usunier, Bottou, Bach, 2019/2021)"
_TINY = dict(channels=4, depth=3, lstm_layers=1, rescale=0.1)


def _count_note(channels: int, n: int) -> str:
    return (f"demucs 4.1.0's demucs.demucs.Demucs(sources=4 MUSDB stems, audio_channels=2, channels={channels}, "
            f"depth=6, lstm_layers=2, context=1 (kernel 3), dconv_mode=0, gelu=False, norm_starts=6, "
            f"normalize=False) = {n:,}; the v2 release notes give the 64-channel model as ~1 GB in fp32")


@register_model(
    family="separate", paper=_PAPER, arxiv="1911.13254", params=265_679_496,
    params_source=_count_note(64, 265_679_496), verified="AP", tiny=_TINY,
    official_repo="https://github.com/facebookresearch/demucs/tree/v2", license="MIT",
    converter=checkpoint_filter_fn,
)
def demucs_v2(**overrides: Any) -> Demucs:
    """Demucs v2 (64 initial channels, the v2 release; MUSDB stems, 44.1 kHz stereo). Untrained here: load the
    official ``demucs-e07c671f.th`` / ``demucs_extra-3646af93.th`` with ``pretrained=path``."""
    return Demucs(build_config(DemucsConfig, {}, **overrides))


@register_model(
    family="separate", paper=_PAPER, arxiv="1911.13254", params=149_462_504,
    params_source=_count_note(48, 149_462_504), verified="AP", tiny=_TINY,
    official_repo="https://github.com/facebookresearch/demucs/tree/v2", license="MIT",
    converter=checkpoint_filter_fn,
)
def demucs_v2_48(**overrides: Any) -> Demucs:
    """Demucs v2 with 48 initial channels (the official ``demucs48_hq`` checkpoint's size)."""
    return Demucs(build_config(DemucsConfig, {"channels": 48}, **overrides))


# A CPU-sized configuration (issue #15, recipes/separate/demucs_small_music4.yaml): 16 kHz mono, 32 initial
# channels growing x1.5 (32-48-72-108-162), depth 5, the paper's 2-layer BiLSTM, no x2 sinc upsampling.
_SMALL = dict(sample_rate=16000, audio_channels=1, channels=32, growth=1.5, depth=5, lstm_layers=2, resample=False,
              segment_seconds=4.0)
_SMALL_WEIGHTS = {
    "music4": WeightSet(
        "4-stem music separator (drums, bass, other, vocals) at 16 kHz mono, trained here for 4,500 steps of 8 x 2 s "
        "(43 min, one shared CPU thread) on rendered music21 pieces (recipes/separate/prepare_music4.py: WORLD-sung "
        "melodies, fluidsynth bass / other, generated GM drums). On 144 clips of 31 held-out pieces sung by 3 "
        "held-out voices it beats the mixture on every stem: SI-SDR drums 7.01 / bass 2.44 / other -1.72 / vocals "
        "1.67 dB (mixture -4.63 / -6.77 / -5.61 / -4.34; oracle IRM 10.11 / 4.37 / 5.46 / 9.48); weights float16 "
        "(docs/models/demucs.md)",
        sha256="34f4158cb24451dd59781a6397678cc438d88aae37b22f164deee3de80b62ee1",
        recipe="recipes/separate/demucs_small_music4.yaml (data: recipes/separate/prepare_music4.py; EMA weights of "
               "the best validation step, 4500; eval: recipes/separate/eval_music4.py)",
        commit="a8a391d",  # HEAD when trained; the recipe, data script and this factory land with these weights
        license="weights: trained on project-made audio (music21 corpus scores, TimGM6mb soundfont renderings, "
                "WORLD re-synthesis of espeak-ng / flite speech)",
        metrics={"held_out": "cache/music4 test split: 144 x 4 s clips, 31 pieces, voices espeak-ng en-us+m7, "
                             "en-gb+f5, flite kal16 (never trained or tuned on)",
                 "si_sdr": {"drums": 7.01, "bass": 2.44, "other": -1.72, "vocals": 1.67},
                 "mixture_si_sdr": {"drums": -4.63, "bass": -6.77, "other": -5.61, "vocals": -4.34},
                 "oracle_irm_si_sdr": {"drums": 10.11, "bass": 4.37, "other": 5.46, "vocals": 9.48},
                 "sdr": {"drums": 10.85, "bass": 4.63, "other": -0.32, "vocals": 3.07},
                 "mixture_sdr": {"drums": -4.46, "bass": -6.01, "other": -5.10, "vocals": -4.12},
                 "oracle_irm_sdr": {"drums": 11.12, "bass": 5.44, "other": 6.48, "vocals": 11.19},
                 "valid_si_sdri": 7.11}),
}


@register_model(
    family="separate", paper=_PAPER, arxiv="1911.13254", params=1_966_832,
    params_source="[calc] audiozoo's CPU config of demucs_v2: 16 kHz mono, channels 32, growth 1.5, depth 5, "
                  "2 BiLSTM layers, resample off, 4 MUSDB stems",
    verified="ATU", tiny={**_TINY, "channels": 8}, official_repo="https://github.com/facebookresearch/demucs/tree/v2",
    license="MIT", converter=checkpoint_filter_fn, weights=_SMALL_WEIGHTS,
)
def demucs_small(**overrides: Any) -> Demucs:
    """A small Demucs v2 that trains on one CPU thread (16 kHz mono; see ``_SMALL``); MUSDB stem order. Weights:
    ``demucs_small.music4`` (trained here on rendered 4-stem music)."""
    return Demucs(build_config(DemucsConfig, _SMALL, **overrides))
