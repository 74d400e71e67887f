"""Basic Pitch (NMP): a lightweight instrument-agnostic polyphonic note transcription network.

Paper: Rachel M. Bittner, Juan José Bosch, David Rubinstein, Gabriel Meseguer-Brocal, Sebastian Ewert,
"A Lightweight Instrument-Agnostic Model for Polyphonic Note Transcription and Multipitch Estimation",
ICASSP 2022, arXiv:2203.09893. Official code: https://github.com/spotify/basic-pitch (Apache-2.0),
``basic_pitch/models.py::model`` (Keras), ``nn.py::HarmonicStacking``, ``layers/signal.py::NormalizedLog``,
``layers/nnaudio.py::CQT2010v2``; weights shipped in the ``basic-pitch`` wheel
(``saved_models/icassp_2022/nmp.onnx``).

Front-end (``models.get_cqt``): a CQT (nnAudio ``CQT2010v2``: 22,050 Hz, hop 256, 27.5 Hz, 36 bins per
octave, 309 bins = 3 x min(ceil(12 log2 8) + 88, floor(12 log2(11025 / 27.5)))) -> ``NormalizedLog``
(``10 log10(|X|^2 + 1e-10)``, then per-example min-max to [0, 1]) -> BatchNorm over the single channel ->
harmonic stacking: the CQT shifted by ``round(36 log2 h)`` bins for h in (0.5, 1, 2, ..., 7), zero-filled,
cut to the 264 contour bins (88 semitones x 3).

Network (``models.model``; Keras "same" padding, BN epsilon 1e-3):

* contour: Conv (3, 39) 8->8 -> BN -> ReLU -> Conv (5, 5) 8->1 -> sigmoid = ``contour`` (B, L, 264).
  The reference also builds a (5, 5) x 32 conv here whose output is overwritten ("unintentionally
  skipped when training the paper model"); it is not part of the graph, so it is not built here.
* note: Conv (7, 7) stride (1, 3) on the contour 1->32 -> ReLU -> Conv (7, 3) 32->1 -> sigmoid =
  ``note`` (B, L, 88).
* onset: Conv (5, 5) stride (1, 3) on the stacked CQT 8->32 -> BN -> ReLU -> concat with the note
  output (33 channels) -> Conv (3, 3) -> sigmoid = ``onset`` (B, L, 88).

16,782 trainable parameters (paper and Keras summary agree). Tensors are laid out (B, C, L, F): time
then frequency, which is the ONNX export's NCHW layout, so its kernels load without transposes.

Departures: none in the forward pass. The ONNX export folds every BatchNorm (into the following conv for
the contour/onset stacks, into a scalar multiply-add for the CQT one); :func:`load_nmp_onnx` loads the
folded kernels and sets the BatchNorms to the identity, which is exact in eval mode. Inputs may have any
length (the reference runs fixed 43,844-sample windows, see ``AUDIO_N_SAMPLES``); NormalizedLog
normalises over the whole input, so results depend on the window as they do in the reference.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.cqt import CQT2010
from ...dsp.features import FeatureExtractor
from ...errors import AudioError, CheckpointError, ConfigError, MissingDependencyError, require
from ...hub import package_file
from ...registry import WeightSet, register_model
from ..contracts import TranscriberModel

#: ``basic_pitch.constants.AUDIO_N_SAMPLES``: 2 s at 22,050 Hz minus one hop -> 172 frames.
AUDIO_N_SAMPLES = 22050 * 2 - 256
ONNX_RELATIVE_PATH = Path("basic_pitch", "saved_models", "icassp_2022", "nmp.onnx")
INSTALL_HINT = "pip install --no-deps basic-pitch==0.4.0 onnx onnxruntime"


@dataclass
class BasicPitchConfig:
    sample_rate: int = 22050
    hop_length: int = 256
    fmin: float = 27.5  # centre of the lowest contour bin: A0, the lowest piano key
    bins_per_semitone: int = 3
    n_semitones: int = 88  # output notes (piano range)
    n_harmonics: int = 8  # stacked harmonics: 0.5, 1, ..., n_harmonics - 1
    contour_channels: int = 8
    contour_kernel: tuple[int, int] = (3, 39)  # (time, freq): 39 bins = 13 semitones
    note_channels: int = 32
    onset_channels: int = 32
    bn_eps: float = 1e-3  # Keras BatchNormalization default
    bn_momentum: float = 0.01  # = 1 - Keras momentum 0.99


def harmonic_shifts(config: BasicPitchConfig) -> list[int]:
    """Bin shifts of the stacked harmonics, ``round(12 * bins_per_semitone * log2 h)`` (``nn.HarmonicStacking``)."""
    hs = [0.5] + list(range(1, config.n_harmonics)) if config.n_harmonics > 1 else [1]
    # Python's round is half-to-even like tf.math.round; no shift here lands on .5 anyway.
    return [int(round(12 * config.bins_per_semitone * math.log2(h))) for h in hs]


def n_cqt_bins(config: BasicPitchConfig) -> int:
    """CQT bins (``models.get_cqt``): enough semitones for the top harmonic, capped below Nyquist."""
    max_semitones = int(math.floor(12.0 * math.log2(0.5 * config.sample_rate / config.fmin)))
    n = min(int(math.ceil(12.0 * math.log2(config.n_harmonics))) + config.n_semitones, max_semitones)
    return n * config.bins_per_semitone


def _same_pads(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> list[int]:
    """TensorFlow "same" padding of (B, C, L, F) as ``F.pad`` amounts: ceil(n / s) outputs, the odd extra pad
    at the end."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[-2:]), reversed(kernel), reversed(stride)):
        # stride 1 needs k - 1 whatever the size: written so, traced graphs (ONNX) keep a dynamic time axis.
        total = k - 1 if s == 1 else max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with Keras ``padding="same"`` (asymmetric when the kernel/stride needs it)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, self.weight, self.bias)

    def conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The convolution with other (e.g. BatchNorm-folded) weights."""
        pf0, pf1, pt0, pt1 = _same_pads(x, self.kernel_size, self.stride)
        if pf0 == pf1 and pt0 == pt1:  # every layer of NMP: the conv pads itself, no padded copy of x
            return F.conv2d(x, weight, bias, self.stride, (pt0, pf0))
        return F.conv2d(F.pad(x, [pf0, pf1, pt0, pt1]), weight, bias, self.stride)


def _conv_bn_relu(x: Tensor, conv: SameConv2d, bn: nn.BatchNorm2d) -> Tensor:
    """relu(bn(conv(x))); at inference the BatchNorm is folded into the convolution's weights (one pass
    over the activations less; outputs equal to ~1e-7)."""
    if bn.training or bn.running_var is None:
        return F.relu(bn(conv(x)))
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    w = conv.weight * scale.reshape(-1, 1, 1, 1)
    b = (conv.bias - bn.running_mean) * scale + bn.bias if conv.bias is not None else bn.bias - bn.running_mean * scale
    return F.relu(conv.conv(x, w, b), inplace=not torch.is_grad_enabled())


class NormalizedLog(nn.Module):
    """``layers.signal.NormalizedLog``: magnitude (B, L, F) -> dB of power, min-max scaled per example to [0, 1]."""

    def forward(self, mag: Tensor) -> Tensor:
        # log(p) * (1 / ln 10) * 10: the reference's op order (log_base_b, then * 10).
        log_power = torch.log(mag.square() + 1e-10) * (1.0 / math.log(10.0)) * 10.0
        offset = log_power - log_power.amin(dim=(1, 2), keepdim=True)
        peak = offset.amax(dim=(1, 2), keepdim=True)
        # tf.math.divide_no_nan: a constant input (silence) maps to 0, not NaN.
        return torch.where(peak == 0, torch.zeros_like(offset), offset / torch.where(peak == 0, 1.0, peak))


class BasicPitchFrontend(FeatureExtractor):
    """Waveform (B, T) at 22,050 Hz -> normalised log CQT ``(B, n_cqt_bins, L)`` in [0, 1], and frame lengths.

    ``models.get_cqt`` up to its learned BatchNorm: CQT2010 magnitude then :class:`NormalizedLog` (over the
    whole input, as the reference). ``L = T // hop_length + 1``. No parameters: the BatchNorm and the
    harmonic stacking that follow belong to the network (:meth:`BasicPitch.features`).
    """

    config_class = BasicPitchConfig
    config_fields = ("sample_rate", "hop_length", "fmin", "bins_per_semitone", "n_semitones", "n_harmonics")

    def __init__(self, config: BasicPitchConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_features = c.sample_rate, c.hop_length, n_cqt_bins(c)
        self.min_samples, self.min_samples_reason = c.hop_length, "the input is shorter than one hop"
        # (audiozoo.dsp builds its fixed kernels on the CPU even under ``torch.device("meta")``.)
        self.cqt = CQT2010(sr=c.sample_rate, hop_length=c.hop_length, fmin=c.fmin, n_bins=n_cqt_bins(c),
                           bins_per_octave=12 * c.bins_per_semitone)
        self.norm_log = NormalizedLog()

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return n_samples // self.hop_length + 1

    def compute(self, wav: Tensor) -> Tensor:
        # NormalizedLog is elementwise plus a min/max over (L, F) together, so the (B, F, L) layout changes nothing
        return self.norm_log(self.cqt(wav))


class BasicPitch(TranscriberModel):
    """NMP network: ``forward(audio (B, T) at 22,050 Hz | features (B, H, L, F)) -> dict``.

    Returns ``{"onset": (B, L, n_semitones), "contour": (B, L, 3 * n_semitones), "note": (B, L,
    n_semitones)}`` of sigmoid activations (the reference's output dict and order; onset depends on every
    parameter). ``features`` are :meth:`features` outputs (H = n_harmonics, F = 3 * n_semitones): the
    parameter-free :attr:`frontend`'s normalised log CQT, the learned BatchNorm ``bn`` over it, then the
    harmonic stacking.
    """

    def __init__(self, config: BasicPitchConfig):
        super().__init__()
        c = self.config = config
        if c.bins_per_semitone < 1 or c.n_semitones < 1 or c.n_harmonics < 1:
            raise ConfigError(f"BasicPitchConfig needs positive bins_per_semitone/n_semitones/n_harmonics: {c}")
        h, b = len(harmonic_shifts(c)), c.bins_per_semitone
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        self.frontend = BasicPitchFrontend(c)
        self.bn = nn.BatchNorm2d(1, eps=c.bn_eps, momentum=c.bn_momentum)  # the CQT BatchNorm (2 parameters)
        self.shifts = harmonic_shifts(c)
        self.n_out_bins = c.n_semitones * c.bins_per_semitone
        self.contour_conv = SameConv2d(h, c.contour_channels, c.contour_kernel)
        self.contour_bn = nn.BatchNorm2d(c.contour_channels, eps=c.bn_eps, momentum=c.bn_momentum)
        self.contour_out = SameConv2d(c.contour_channels, 1, (5, 5))
        # stride b over frequency: contour bins (b per semitone) -> one bin per semitone
        self.note_conv = SameConv2d(1, c.note_channels, (7, 7), stride=(1, b))
        self.note_out = SameConv2d(c.note_channels, 1, (7, 3))
        self.onset_conv = SameConv2d(h, c.onset_channels, (5, 5), stride=(1, b))
        self.onset_bn = nn.BatchNorm2d(c.onset_channels, eps=c.bn_eps, momentum=c.bn_momentum)
        self.onset_out = SameConv2d(c.onset_channels + 1, 1, (3, 3))

    def features(self, audio: Tensor) -> Tensor:
        """Audio ``(B, T)``, ``(T,)`` or ``(B, 1, T)`` -> harmonic-stacked CQT ``(B, n_harmonics, L, n_out_bins)``."""
        if audio.ndim == 3 and audio.shape[1] == 1:
            audio = audio[:, 0]
        cqt, _ = self.frontend(audio)
        return self.stack(self.bn(cqt.transpose(1, 2)[:, None]))  # (B, 1, L, F): time then frequency

    def stack(self, x: Tensor) -> Tensor:
        """Harmonic stacking (``nn.HarmonicStacking``): (B, 1, L, F) -> (B, n_harmonics, L, n_out_bins)."""
        n, width = self.n_out_bins, x.shape[-1]
        chans = []
        for s in self.shifts:
            if s >= 0:  # harmonic (or the fundamental): bin f reads bin f + s; zeros past the top
                part = x[..., s : s + n]
                chans.append(F.pad(part, (0, n - part.shape[-1])) if part.shape[-1] < n else part)
            else:  # sub-harmonic: bin f reads bin f + s (< f); zeros below the bottom
                chans.append(F.pad(x[..., : min(n + s, width)], (-s, max(0, n - width))))
        return torch.cat(chans, dim=1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.features(x) if x.ndim <= 2 or (x.ndim == 3 and x.shape[1] == 1) else x
        if x.ndim != 4 or x.shape[1] != self.contour_conv.in_channels:
            raise AudioError(f"expected audio (B, T) or features (B, {self.contour_conv.in_channels}, L, F), "
                             f"got shape {tuple(x.shape)}")
        contour = torch.sigmoid(self.contour_out(_conv_bn_relu(x, self.contour_conv, self.contour_bn)))
        note = torch.sigmoid(self.note_out(F.relu(self.note_conv(contour), inplace=not torch.is_grad_enabled())))
        onset = _conv_bn_relu(x, self.onset_conv, self.onset_bn)
        onset = torch.sigmoid(self.onset_out(torch.cat([note, onset], dim=1)))
        return {"onset": onset[:, 0], "contour": contour[:, 0], "note": note[:, 0]}

    def export_signature(self, batch: int = 2, length: int | None = None, on: str = "features") -> dict:
        """Export on audio ``(B, T)`` or on front-end features ``(B, H, L, F)``; time is fixed in ONNX (the
        Keras "same" padding is traced for one length), batch is dynamic."""
        if on not in ("features", "audio"):
            raise ConfigError(f"basic-pitch exports on='features' or on='audio', got {on!r}")
        outs = ["onset", "contour", "note"]
        axes: dict[str, dict[int, str]] = {o: {0: "batch"} for o in outs}
        if on == "audio":
            axes["audio"] = {0: "batch"}
            return {"example_inputs": (torch.randn(batch, length or AUDIO_N_SAMPLES) * 0.1,),
                    "input_names": ["audio"], "output_names": outs, "dynamic_axes": axes}
        frames = length or AUDIO_N_SAMPLES // self.config.hop_length + 1
        x = torch.rand(batch, self.contour_conv.in_channels, frames, self.n_out_bins)
        axes["features"] = {0: "batch"}
        return {"example_inputs": (x,), "input_names": ["features"], "output_names": outs, "dynamic_axes": axes}


# --------------------------------------------------------------------------- official weights (ONNX)
def find_basic_pitch_onnx() -> Path:
    """Path of ``nmp.onnx`` from ``$AUDIOZOO_BASIC_PITCH_ONNX`` or an installed ``basic_pitch`` package.

    ``$AUDIOZOO_BASIC_PITCH_ONNX`` may name the ``.onnx`` file itself or a folder holding the unpacked
    wheel (``basic_pitch/saved_models/icassp_2022/nmp.onnx`` under it). The package is located without
    importing it (its ``__init__`` looks for TensorFlow).
    """
    candidates: list[Path] = []
    env = os.environ.get("AUDIOZOO_BASIC_PITCH_ONNX")
    if env:
        p = Path(env)
        candidates += [p] if p.suffix == ".onnx" else [p / ONNX_RELATIVE_PATH, p / ONNX_RELATIVE_PATH.name]
    import importlib.util

    spec = importlib.util.find_spec("basic_pitch")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(loc).parent / ONNX_RELATIVE_PATH)
    for p in candidates:
        if p.is_file():
            return p
    tried = ", ".join(str(p) for p in candidates) or "nothing (no basic_pitch package, no $AUDIOZOO_BASIC_PITCH_ONNX)"
    raise MissingDependencyError(
        f"Basic Pitch weights (nmp.onnx) not found; tried {tried}. Install them with `{INSTALL_HINT}` "
        "or set $AUDIOZOO_BASIC_PITCH_ONNX to nmp.onnx or an unpacked basic-pitch wheel"
    )


_RELEASED_LOCATION = "basic-pitch==0.4.0:basic_pitch/saved_models/icassp_2022/nmp.onnx"
_RELEASED_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"


def load_released_weights() -> dict[str, Tensor]:
    """The released ICASSP 2022 weights as an audiozoo state dict: ``$AUDIOZOO_BASIC_PITCH_ONNX`` if set, else
    the pinned basic-pitch 0.4.0 wheel's ``nmp.onnx``, checked by sha256 (:func:`audiozoo.hub.package_file`)."""
    if os.environ.get("AUDIOZOO_BASIC_PITCH_ONNX"):
        return load_nmp_onnx(find_basic_pitch_onnx())
    return load_nmp_onnx(package_file(_RELEASED_LOCATION, _RELEASED_SHA256))


# ONNX Conv kernel shape -> audiozoo module, for the canonical config (every shape is distinct).
_CONV_BY_SHAPE = {
    (8, 8, 3, 39): "contour_conv", (1, 8, 5, 5): "contour_out", (32, 1, 7, 7): "note_conv",
    (1, 32, 7, 3): "note_out", (32, 8, 5, 5): "onset_conv", (1, 33, 3, 3): "onset_out",
}


def _identity_bn(prefix: str, n: int, eps: float, out: dict[str, Tensor]) -> None:
    # running_var = 1 - eps makes sqrt(var + eps) = 1: the BN is an exact identity in eval mode.
    out[prefix + "weight"], out[prefix + "bias"] = torch.ones(n), torch.zeros(n)
    out[prefix + "running_mean"], out[prefix + "running_var"] = torch.zeros(n), torch.full((n,), 1.0 - eps)
    out[prefix + "num_batches_tracked"] = torch.tensor(0)


def load_nmp_onnx(path: str | os.PathLike | None = None, eps: float = 1e-3) -> dict[str, Tensor]:
    """Read the official ``nmp.onnx`` into a state dict for :func:`basic_pitch_nmp` (needs ``onnx``).

    The graph is walked rather than trusting generated initializer names: each 2-D Conv is recognised by
    its kernel shape, its bias is the Conv's third input. BatchNorms after the contour/onset convs were
    folded into those convs by the exporter, so they load as identities. The CQT BatchNorm was folded
    into a scalar ``Mul``/``Add`` pair on the NormalizedLog output; that pair becomes its weight/bias.
    """
    onnx = require("onnx", "loading Basic Pitch's nmp.onnx", INSTALL_HINT)
    from onnx import numpy_helper

    path = Path(path) if path is not None else find_basic_pitch_onnx()
    if not path.is_file():
        raise CheckpointError(f"Basic Pitch ONNX file not found: {path}")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as e:  # protobuf raises its own errors
        raise CheckpointError(f"cannot read {path} as ONNX: {e}") from e
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    out: dict[str, Tensor] = {}
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] in inits and inits[node.input[1]].ndim == 4:
            w = inits[node.input[1]]
            name = _CONV_BY_SHAPE.get(tuple(w.shape))
            if name is None:
                continue  # the CQT's (36, 1, 1, 256) kernels and (1, 1, 1, 256) low-pass: fixed DSP
            out[f"{name}.weight"] = w.float()
            out[f"{name}.bias"] = inits[node.input[2]].float().reshape(-1)
        elif node.op_type in ("Mul", "Add") and any("batch_normalization/" in i for i in node.input):
            # batch_normalization (no suffix) is the CQT BN; _2/_3 were folded into convs.
            (v,) = [inits[i] for i in node.input if i in inits]
            out["bn.weight" if node.op_type == "Mul" else "bn.bias"] = v.float().reshape(1)
    expected = {f"{n}.{t}" for n in _CONV_BY_SHAPE.values() for t in ("weight", "bias")}
    expected |= {"bn.weight", "bn.bias"}
    if set(out) != expected:
        missing = sorted(expected - set(out))
        raise CheckpointError(f"{path} does not look like Basic Pitch's nmp.onnx: missing {missing}")
    out["bn.running_mean"], out["bn.running_var"] = torch.zeros(1), torch.full((1,), 1.0 - eps)
    out["bn.num_batches_tracked"] = torch.tensor(0)
    _identity_bn("contour_bn.", 8, eps, out)
    _identity_bn("onset_bn.", 32, eps, out)
    return out


# --------------------------------------------------------------------------- registered variants


_TINY = dict(n_semitones=12, n_harmonics=3, contour_channels=4, contour_kernel=(3, 9), note_channels=4,
             onset_channels=4)


@register_model(
    family="transcribe", paper="A Lightweight Instrument-Agnostic Model for Polyphonic Note Transcription and "
    "Multipitch Estimation (Bittner et al., ICASSP 2022)", arxiv="2203.09893", params=16_782,
    params_source="paper (17K) and the Keras model summary; the ONNX kernels have the same shapes",
    verified="APTU", tiny=_TINY, official_repo="https://github.com/spotify/basic-pitch",
    license="Apache-2.0",
    weights={"icassp_2022": WeightSet(
        "the paper's released weights (basic-pitch 0.4.0 wheel, nmp.onnx), read with `onnx` from the installed "
        "package and converted in memory", source="package",
        location=_RELEASED_LOCATION, sha256=_RELEASED_SHA256, loader=load_released_weights,
        license="Apache-2.0",
        metrics={"held_out": "20 rendered music21 chorales (benchmarks/)", "note_f1": 0.8505})},
)
def basic_pitch_nmp(**overrides) -> BasicPitch:
    """The ICASSP 2022 NMP model; official weights: ``create_model("basic_pitch_nmp.icassp_2022")``."""
    return BasicPitch(build_config(BasicPitchConfig, {}, **overrides))
