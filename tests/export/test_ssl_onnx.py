"""ONNX export of every SSL encoder (`audiozoo export NAME`): `encode_features(features, lengths) -> last hidden
state`; ONNX Runtime = PyTorch on another batch (and, where the graph keeps it dynamic, another length and padding).
SSAST / SSAMBA / MERT hold the example's length (``export_fixed_length``: position tables cut by Python ints, SSAMBA's
padding packed by a sort ONNX lacks); TERA and BEATs keep length and padding dynamic."""

from __future__ import annotations

import pytest
import torch

from audiozoo import create_model, list_models, model_info
from audiozoo.errors import ConfigError
from audiozoo.export import export_checked, export_spec

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# measured max abs diffs on tiny configs: 2.4e-7 (SSAST patch / SSAMBA), 4.8e-7 (SSAST frame), 7.2e-7 (TERA),
# 3.6e-7 (BEATs), 3.7e-7 (BEATs tokenizer), 3.3e-6 (MERT)
ATOL = 1e-4


def _one_per_architecture() -> list[str]:
    """The sizes of a family share their tiny config: one name per (architecture, tiny config, patch/frame)."""
    seen, names = set(), []
    for n in list_models("ssl"):
        key = (n.split("_")[0], n.endswith("_frame"), "tokenizer" in n, repr(sorted(model_info(n).tiny.items())))
        if key not in seen:
            seen.add(key)
            names.append(n)
    return names


@pytest.mark.slow  # SSAMBA's traced fused scan: ~20 s; the others ~1 s
@pytest.mark.parity
@pytest.mark.parametrize("name", _one_per_architecture())
def test_ssl_encoder_onnx_matches_torch(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, **model_info(name).tiny).eval()
    # SSAMBA's traced scan unrolls over the tokens: a short example keeps the test quick (24 s at 128 frames)
    spec = export_spec(model, length=32 if name.startswith("ssamba") else None)
    assert spec.method == "encode_features" and spec.output_names == ["hidden"]
    fixed = model.export_fixed_length
    other = export_spec(model, batch=3, length=spec.example_inputs[0].shape[-1] if fixed else 100)
    if not fixed:
        assert not torch.equal(other.example_inputs[1], torch.full((3,), 100))  # padded items too
    err = export_checked(model, tmp_path / "enc.onnx", spec, atol=ATOL, check_inputs=other.example_inputs)
    assert err <= ATOL
    with torch.no_grad():
        want = model.extract_features(*other.example_inputs)[-1]
        got = model.encode_features(*other.example_inputs)
    assert torch.equal(want, got)


def test_ssl_export_refuses_other_parts():
    model = create_model("tera_base", **model_info("tera_base").tiny)
    with pytest.raises(ConfigError, match="features"):
        export_spec(model, on="audio")
