"""ONNX and ``torch.export`` for audiozoo models.

The ONNX path uses ``torch.onnx.export(..., dynamo=False)``: the TorchScript-tracing exporter, which needs
only ``onnx`` (+ ``onnxruntime`` to check). The dynamo-based exporter of torch 2.x requires the
``onnxscript`` package; audiozoo does not depend on it.

Traced graphs keep a dimension dynamic only where the model computes with it through tensor ops. What
that means for the supported models (measured by ``tests/export/test_export.py``):

- ``panns_cnn14`` / ``panns_mobilenetv1``: features ``(B, n_mels, L)`` -> logits, dynamic batch and time
  (time must stay >= the network's time downsampling; shorter inputs take a pad branch the trace lacks).
- ``ast_*``: features ``(B, n_mels, L)`` -> logits, dynamic batch and time *if the example's patch grid
  differs from the model's native grid*: otherwise the position-embedding resampling is skipped at trace
  time and the graph only accepts the native grid. :func:`export_spec` picks such an example length.
  The AST front-end (Kaldi fbank) does not export: the tracing exporter has no ``aten::fft_rfft``.
- ``basic_pitch_nmp``: features ``(B, H, L, F)`` or audio ``(B, T)`` (CQT front-end included) -> onset,
  contour, note; dynamic batch only. Its Keras "same" padding turns the traced time length into a
  constant, so time is fixed (the official model also runs on fixed 2 s windows, 172 frames).
  ``torch.export`` keeps the time axis dynamic there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import AudiozooError, ConfigError, require


class ExportError(AudiozooError, RuntimeError):
    """An exported graph whose outputs differ from the PyTorch model beyond the requested tolerance."""


# --------------------------------------------------------------------------- helpers
class _EvalMode:
    """Context manager: put a module in eval mode (dropout off, BN running stats) and restore it after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


def _flatten_outputs(out: Any) -> list[Tensor]:
    """Model output (tensor, tuple/list or dict) -> list of tensors in the order the exporter flattens."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [v for v in out.values()]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten_outputs(o)]
    raise ExportError(f"cannot compare model output of type {type(out).__name__}")


class MethodModule(nn.Module):
    """``model.<method>`` as a module's ``forward``, so the tracer exports that method alone (a codec's
    ``encode`` or ``decode``, an ASR model's ``encode``)."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        if not callable(getattr(model, method, None)):
            raise ConfigError(f"{type(model).__name__} has no method {method!r} to export")
        self.model, self.method = model, method

    def forward(self, *args: Tensor) -> Any:
        return getattr(self.model, self.method)(*args)


def _bound(model: nn.Module, method: str) -> nn.Module:
    return model if method == "forward" else MethodModule(model, method)


def _as_tuple(example_inputs: Any) -> tuple[Tensor, ...]:
    if isinstance(example_inputs, Tensor):
        return (example_inputs,)
    if not isinstance(example_inputs, tuple) or not all(isinstance(t, Tensor) for t in example_inputs):
        raise ConfigError("example_inputs must be a tensor or a tuple of tensors, "
                          f"got {type(example_inputs).__name__}")
    return example_inputs


# --------------------------------------------------------------------------- ONNX
def _rms_norm_symbolic(g: Any, x: Any, normalized_shape: Any, weight: Any, eps: Any) -> Any:
    """``aten::rms_norm`` (``nn.RMSNorm``: Mamba blocks) for the tracing exporter, which has no rule for it
    below opset 23: ``x / sqrt(mean(x^2 over the normalised dims) + eps) * weight``."""
    from torch.onnx import symbolic_helper as sh

    axes = list(range(-len(sh._get_const(normalized_shape, "is", "normalized_shape")), 0))
    eps_value = torch.finfo(torch.float32).eps if sh._is_none(eps) else sh._get_const(eps, "f", "eps")
    square = g.op("Mul", x, x)
    if g.opset >= 18:  # ReduceMean takes its axes as an input from opset 18 on
        mean = g.op("ReduceMean", square, g.op("Constant", value_t=torch.tensor(axes, dtype=torch.long)),
                    keepdims_i=1)
    else:
        mean = g.op("ReduceMean", square, axes_i=axes, keepdims_i=1)
    rms = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(eps_value, dtype=torch.float32))))
    out = g.op("Div", x, rms)
    return out if sh._is_none(weight) else g.op("Mul", out, weight)


def _register_symbolics(opset: int) -> None:
    if opset < 23:  # opset 23 has RMSNormalization and the exporter's own rule
        torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm_symbolic, opset)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_inputs: tuple[Tensor, ...],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = 17,
    method: str = "forward",
) -> Path:
    """Export ``model.<method>(*example_inputs)`` (``forward`` by default) to an ONNX file (eval mode) and
    return its path.

    ``dynamic_axes`` maps input/output names to ``{axis: symbolic name}`` (e.g. ``{"features": {0:
    "batch", 2: "time"}}``); :func:`export_spec` gives the right names and axes for registered models.
    The file is validated with ``onnx.checker``.
    """
    onnx = require("onnx", "ONNX export", "export")
    example_inputs = _as_tuple(example_inputs)
    if len(input_names) != len(example_inputs):
        raise ConfigError(f"{len(input_names)} input_names for {len(example_inputs)} example inputs")
    unknown = set(dynamic_axes or {}) - set(input_names) - set(output_names)
    if unknown:
        raise ConfigError(f"dynamic_axes names {sorted(unknown)} are neither input nor output names")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with _EvalMode(model), torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings flag Python-side shape checks (input validation) that become constants; the
        # dynamic-axis tests are the real check that the graph generalises.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch >= 2.9 flags the tracing exporter as legacy; it is the one that needs no onnxscript.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # shape-inference and LSTM batch notes of the exporter: the ONNX Runtime check below is the real test
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        _register_symbolics(opset)
        torch.onnx.export(
            _bound(model, method), example_inputs, str(path), input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, do_constant_folding=True,
        )
    onnx.checker.check_model(str(path))
    return path


def run_onnx(path: str | os.PathLike, inputs: tuple[Tensor, ...]) -> list[np.ndarray]:
    """Run an ONNX file with ONNX Runtime (CPU) on ``inputs`` (fed in the graph's input order)."""
    ort = require("onnxruntime", "running exported ONNX models", "export")
    inputs = _as_tuple(inputs)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(inputs):
        raise ConfigError(f"{path} takes {len(names)} inputs ({names}), got {len(inputs)}")
    return sess.run(None, {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)})


def check_onnx(model: nn.Module, path: str | os.PathLike, example_inputs: tuple[Tensor, ...],
               atol: float = 1e-4, method: str = "forward") -> float:
    """Max abs difference between ONNX Runtime and PyTorch (eval mode, ``model.<method>``) on ``example_inputs``.

    Integer outputs (codec codes) must be equal: one flipped code is reported as the difference of the indices.

    Raises :class:`ExportError` when the outputs differ in number or shape, or by more than ``atol``.
    """
    example_inputs = _as_tuple(example_inputs)
    got = run_onnx(path, example_inputs)
    with _EvalMode(model), torch.no_grad():
        ref = _flatten_outputs(_bound(model, method)(*example_inputs))
    if len(got) != len(ref):
        raise ExportError(f"{path} returns {len(got)} outputs, the model {len(ref)}")
    err = 0.0
    for i, (g, r) in enumerate(zip(got, ref)):
        r = r.detach().cpu().numpy()
        if g.shape != r.shape:
            raise ExportError(f"output {i} of {path} has shape {g.shape}, the model {r.shape} (an axis that "
                              "was traced as a constant?)")
        err = max(err, float(np.abs(g.astype(np.float64) - r.astype(np.float64)).max(initial=0.0)))
    if not err <= atol:  # also catches NaN
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by {err:.3g} > atol {atol:.3g}")
    return err


# --------------------------------------------------------------------------- torch.export
def export_program(model: nn.Module, example_inputs: tuple[Tensor, ...],
                   dynamic_shapes: Any = None, strict: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model.forward`` in eval mode.

    ``dynamic_shapes`` follows ``torch.export`` (one ``{axis: Dim}`` per input), e.g.
    ``ExportSpec.dynamic_shapes()``; ``None`` exports static shapes. Non-strict tracing by default (it
    runs the Python code as is, so input validation in ``forward`` works).
    """
    example_inputs = _as_tuple(example_inputs)
    with _EvalMode(model):
        return torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes, strict=strict)


# --------------------------------------------------------------------------- per-model specs
@dataclass
class ExportSpec:
    """What to export for a model: example inputs, names and dynamic axes (``{name: {axis: label}}``)."""

    example_inputs: tuple[Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    method: str = "forward"

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        """``torch.export`` dynamic shapes: ``Dim.DYNAMIC`` on each input's dynamic axes.

        ``torch.export`` specialises sizes 0/1, so give examples with batch >= 2 (as :func:`export_spec`
        does); programs then accept batch >= 2.
        """
        return tuple({a: torch.export.Dim.DYNAMIC for a in self.dynamic_axes.get(n, {})} for n in self.input_names)


def export_spec(model: nn.Module, batch: int = 2, length: int | None = None, on: str | None = None) -> ExportSpec:
    """Example inputs, names and dynamic axes for a registered model's ``forward``.

    The model states them itself (``export_signature`` of its family contract, overridden where the graph
    depends on the example, as AST's patch grid or Basic Pitch's audio/feature inputs), so this module
    imports no model file.

    Args:
        model: an audiozoo model (classifiers: features ``(B, F, L)`` -> ``logits (B, C)``; Basic Pitch:
            ``on="features"`` ``(B, H, L, F)`` or ``on="audio"`` ``(B, T)`` at 22,050 Hz).
        batch: example batch size (>= 2 keeps the batch axis dynamic in ``torch.export``).
        length: example frames ``L`` (samples ``T`` for audio); a model-appropriate default when None.
        on: what the graph takes: ``"features"`` or ``"audio"`` (codecs: ``"encode"`` / ``"decode"``; acoustic TTS
            models: ``"tokens"``); default: the model's own (its ``export_signature`` default).
    """
    sig = getattr(model, "export_signature", None)
    if sig is None:
        raise ConfigError(f"no export spec for {type(model).__name__}; call export_onnx with explicit names/axes")
    d = sig(batch=batch, length=length) if on is None else sig(batch=batch, length=length, on=on)
    return ExportSpec(tuple(d["example_inputs"]), list(d["input_names"]), list(d["output_names"]),
                      dict(d.get("dynamic_axes", {})), str(d.get("method", "forward")))


def export_checked(model: nn.Module, path: str | os.PathLike, spec: ExportSpec, atol: float = 1e-4,
                   check_inputs: tuple[Tensor, ...] | None = None) -> float:
    """Export ``spec`` to ``path`` and return ONNX Runtime's max abs difference from PyTorch, checked on
    ``check_inputs`` (default: the example itself; give a different shape to prove the dynamic axes)."""
    export_onnx(model, path, spec.example_inputs, spec.input_names, spec.output_names, spec.dynamic_axes,
                method=spec.method)
    return check_onnx(model, path, check_inputs if check_inputs is not None else spec.example_inputs, atol=atol,
                      method=spec.method)
