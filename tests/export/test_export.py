"""ONNX / torch.export of registered models: the exported graphs reproduce PyTorch, on two shapes."""

from __future__ import annotations

import pytest
import torch

from audiozoo import create_model, list_models, model_info
from audiozoo.errors import ConfigError
from audiozoo.export import ExportError, check_onnx, export_checked, export_onnx, export_program, export_spec

# float32 graphs run op by op in ONNX Runtime vs PyTorch: measured max abs errors 3e-8..4.5e-8 (AST),
# 1e-8 (CNN14), 1e-10 (MobileNetV1), 9e-8 (Basic Pitch features), 3e-7 (Basic Pitch with its CQT on
# audio): float32 reassociation noise. 1e-4 is the project's parity bar, far above that noise.
ATOL = 1e-4
CLASSIFIERS = ["ast_tiny", "panns_cnn14", "panns_mobilenetv1"]


def _tiny(name: str) -> torch.nn.Module:
    return create_model(name, **model_info(name).tiny).eval()


def _features_like(x: torch.Tensor, batch: int, extra_frames: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[0], shape[2] = batch, shape[2] + extra_frames
    return torch.randn(shape) if x.ndim == 3 else torch.rand(shape)


@pytest.mark.parity
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_onnx_classifier_dynamic_batch_and_time(name, tmp_path):
    model = _tiny(name)
    spec = export_spec(model)
    path = export_onnx(model, tmp_path / f"{name}.onnx", spec.example_inputs, spec.input_names,
                       spec.output_names, spec.dynamic_axes)
    (x,) = spec.example_inputs
    errs = [check_onnx(model, path, (x,), ATOL)]
    # another batch and length (AST: 7 more frames -> another patch grid) proves the dynamic axes
    errs.append(check_onnx(model, path, (_features_like(x, 3, 13),), ATOL))
    if name == "ast_tiny":  # the native grid (max_length frames) goes through the same graph
        errs.append(check_onnx(model, path, (torch.randn(1, x.shape[1], model.config.max_length),), ATOL))
    assert max(errs) <= ATOL


@pytest.mark.parity
@pytest.mark.parametrize("on", ["features", "audio"])
def test_onnx_basic_pitch_dynamic_batch(on, tmp_path):
    model = _tiny("basic_pitch_nmp")
    spec = export_spec(model, on=on, length=40 if on == "features" else 22050)
    path = export_onnx(model, tmp_path / "bp.onnx", spec.example_inputs, spec.input_names, spec.output_names,
                       spec.dynamic_axes)
    (x,) = spec.example_inputs
    check_onnx(model, path, (x,), ATOL)
    x3 = torch.cat([x, x[:1] * 0.5])  # batch 3
    assert check_onnx(model, path, (x3,), ATOL) <= ATOL


@pytest.mark.parity
def test_check_onnx_detects_mismatch(tmp_path):
    model = _tiny("panns_mobilenetv1")
    spec = export_spec(model)
    path = export_onnx(model, tmp_path / "m.onnx", spec.example_inputs, spec.input_names, spec.output_names,
                       spec.dynamic_axes)
    with torch.no_grad():
        model.fc_audioset.bias.add_(1.0)  # the file no longer matches the model
    with pytest.raises(ExportError, match="differs"):
        check_onnx(model, path, spec.example_inputs, ATOL)


# basic_pitch_nmp: ~15 s, torch.export solving the symbolic Keras "same"-padding arithmetic on time
@pytest.mark.parametrize("name", [*CLASSIFIERS, pytest.param("basic_pitch_nmp", marks=pytest.mark.slow)])
def test_export_program_matches_eager(name):
    model = _tiny(name)
    spec = export_spec(model, length=40 if name == "basic_pitch_nmp" else None)
    (x,) = spec.example_inputs
    shapes = spec.dynamic_shapes()
    if name == "basic_pitch_nmp":  # torch.export keeps time dynamic here (the ONNX trace cannot)
        shapes = ({0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC},)
    prog = export_program(model, spec.example_inputs, dynamic_shapes=shapes).module()
    for xx in (x, _features_like(x, 3, 13)):
        with torch.no_grad():
            got, ref = prog(xx), model(xx)
        got = list(got.values()) if isinstance(got, dict) else [got]
        ref = list(ref.values()) if isinstance(ref, dict) else [ref]
        for g, r in zip(got, ref):
            # the same aten ops on the same inputs: equal up to kernel-choice noise
            torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-6)


def test_export_spec_rejects_bad_requests():
    with pytest.raises(ConfigError, match="native patch grid"):
        export_spec(_tiny("ast_tiny"), length=48)
    with pytest.raises(ConfigError, match="front-end"):
        export_spec(_tiny("panns_cnn14"), on="audio")
    with pytest.raises(ConfigError, match="no export spec"):
        export_spec(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------- waveform families
def _waveform_exports() -> list[tuple[str, str]]:
    ons = {"codec": ("encode", "decode"), "vocoder": ("features",), "separate": ("audio",)}
    return [(n, on) for n in list_models() for on in ons.get(model_info(n).family, ())]


@pytest.mark.parity
@pytest.mark.parametrize("name,on", _waveform_exports())
def test_onnx_waveform_families(name, on, tmp_path):
    """Codec encode/decode, vocoders and separators: ONNX Runtime = PyTorch on another batch and length
    (codes exactly equal); Demucs holds a fixed length, PeriodWave refuses with the reason."""
    pytest.importorskip("onnxruntime")
    model = _tiny(name)
    if name.startswith("periodwave"):
        with pytest.raises(ConfigError, match="Generator"):
            export_spec(model, on=on)
        return
    fixed = name.startswith("demucs")
    spec = export_spec(model, on=on, length=4096 if fixed else None)
    other = export_spec(model, batch=3, on=on, length=4096 if fixed else (6000 if on == "audio" else 24))
    err = export_checked(model, tmp_path / "m.onnx", spec, check_inputs=other.example_inputs)
    assert err <= ATOL
    if on == "encode" and model.codebook_size:
        assert err == 0.0  # integer codes: identical


def test_export_spec_rejects_unknown_parts():
    with pytest.raises(ConfigError, match="encode"):
        export_spec(_tiny("encodec_24khz"), on="features")
    with pytest.raises(ConfigError, match="basic-pitch"):
        export_spec(_tiny("basic_pitch_nmp"), on="encode")


def test_cli_export_checks_parity(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from audiozoo.cli import main

    assert main(["export", "hifigan_v3", "-o", str(tmp_path / "v.onnx"), "--length", "8"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "v.onnx").is_file() and "max abs diff" in out and "mel: batch/frames" in out
