"""ONNX export of the ASR encoders (Samba-ASR's Mamba stack, the Conformer AED baseline): ONNX Runtime equals
PyTorch on the example and on another batch size, length and padding (dynamic axes)."""

from __future__ import annotations

import pytest
import torch

from audiozoo import create_model, model_info
from audiozoo.errors import ConfigError
from audiozoo.export import check_onnx, export_onnx, export_spec

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# measured max abs diffs, tiny configs: 1.1e-6 (conformer_aed_small), 1.9e-6 (samba_asr_small); small configs:
# 1.5e-6 and 3.6e-6 — float32 reassociation (Samba's traced scan is the parallel one, the eager one the loop)
ATOL = 1e-4


@pytest.mark.parity
@pytest.mark.parametrize("name", ["samba_asr_small", "conformer_aed_small"])
def test_asr_encoder_onnx_matches_torch(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, **model_info(name).tiny).eval()
    spec = export_spec(model, length=40)
    assert spec.method == "encode" and spec.input_names == ["features", "lengths"]
    path = export_onnx(model, tmp_path / f"{name}.onnx", spec.example_inputs, spec.input_names, spec.output_names,
                       spec.dynamic_axes, method=spec.method)
    err = check_onnx(model, path, spec.example_inputs, ATOL, method="encode")
    feats = torch.randn(3, model.input_dim(), 67)  # other batch, length and padding than the traced example
    err = max(err, check_onnx(model, path, (feats, torch.tensor([67, 30, 51])), ATOL, method="encode"))
    assert err <= ATOL


def test_asr_export_signature_rejects_other_parts():
    model = create_model("samba_asr_small", **model_info("samba_asr_small").tiny)
    with pytest.raises(ConfigError, match="encoder"):
        export_spec(model, on="decode")
