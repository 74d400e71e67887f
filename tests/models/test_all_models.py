"""Checks every registered model gets automatically (timm-style, parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.hub import save_pretrained
from audiozoo.models.contracts import FAMILY_BASES, example_inputs
from audiozoo.registry import from_pretrained

MODELS = audiozoo.list_models()
LENGTHS = (37, 53, 64)  # odd/unaligned frame counts


def _tiny(name):
    info = audiozoo.model_info(name)
    return info, audiozoo.create_model(name, **info.tiny)


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return _first_tensor(out[0])
    if isinstance(out, dict):
        return _first_tensor(next(iter(out.values())))
    raise TypeError(type(out))


def test_registry_is_not_empty():
    assert "ast_base_p16" in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_canonical_param_count_on_meta(name):
    info = audiozoo.model_info(name)
    with torch.device("meta"):
        model = audiozoo.create_model(name)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - info.params) <= 0.01 * info.params, f"{name}: {n:,} params vs registered {info.params:,}"


@pytest.mark.parametrize("name", MODELS)
def test_forward_odd_lengths_no_nan(name):
    info, model = _tiny(name)
    model.eval()
    for length in LENGTHS:
        args, kwargs = example_inputs(info.family, model, length)
        with torch.no_grad():
            out = _first_tensor(model(*args, **kwargs))
        assert torch.isfinite(out).all(), f"{name}: non-finite output at length {length}"


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name):
    info, model = _tiny(name)
    model.train()
    args, kwargs = example_inputs(info.family, model, LENGTHS[-1])
    out = _first_tensor(model(*args, **kwargs))
    out.float().pow(2).mean().backward()
    aux = tuple(getattr(model, "aux_loss_parameters", ()))  # trained only by auxiliary losses (declared by the model)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith(aux)
               and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"{name}: no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    info, model = _tiny(name)
    model.eval()
    save_pretrained(model, tmp_path / name, metadata={"note": "test"})
    loaded = from_pretrained(tmp_path / name).eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    args, kwargs = example_inputs(info.family, model, LENGTHS[0])
    with torch.no_grad():
        assert torch.equal(_first_tensor(model(*args, **kwargs)), _first_tensor(loaded(*args, **kwargs)))
    also = audiozoo.create_model(name, pretrained=tmp_path / name / "model.safetensors", **info.tiny).eval()
    with torch.no_grad():
        assert torch.equal(_first_tensor(model(*args, **kwargs)), _first_tensor(also(*args, **kwargs)))


@pytest.mark.parametrize("name", MODELS)
def test_model_info_is_complete(name):
    d = audiozoo.model_info(name).as_dict()
    assert d["paper"] and d["arxiv"] and d["family"] and d["params"] > 0 and d["input"]
    assert set(d["verified"]) <= set("APTU") and "A" in d["verified"]


@pytest.mark.parametrize("name", MODELS)
def test_family_contract(name):
    """Every model inherits its family's base class and its outputs honour that contract (shapes, dtypes,
    returned lengths matching the valid part, attributes) on odd lengths."""
    info, model = _tiny(name)
    assert isinstance(model, FAMILY_BASES[info.family]), f"{name} does not inherit {FAMILY_BASES[info.family]}"
    model.eval()
    model.check_attributes()
    for length in LENGTHS[:2]:
        args, kwargs = example_inputs(info.family, model, length)
        with torch.no_grad():
            out = model(*args, **kwargs)
        model.check_outputs(args, kwargs, out)
