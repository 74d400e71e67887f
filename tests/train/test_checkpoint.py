"""Pickle-free checkpoint codec and atomic folder replacement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from audiozoo.errors import CheckpointError
from audiozoo.train.checkpoint import (
    atomic_dir,
    decode_tree,
    encode_tree,
    read_checkpoint,
    resolve_checkpoint,
    write_checkpoint,
)
from audiozoo.train.rng import get_rng_state, set_rng_state


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def test_optimizer_state_round_trips_through_json_and_safetensors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    for _ in range(2):
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
    sd = opt.state_dict()
    tree, tensors = encode_tree(sd)
    text = json.dumps(tree)  # the non-tensor part is plain JSON
    back = decode_tree(json.loads(text), tensors)
    assert _same(sd, back)  # int state keys, the betas tuple and 0-d step tensors keep their types
    opt2 = torch.optim.AdamW(model.parameters())
    opt2.load_state_dict(back)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.99)


def test_codec_handles_rng_states_and_odd_values():
    torch.manual_seed(5)
    state = get_rng_state()
    obj = {"rng": state, "nan": float("nan"), "inf": float("inf"), "__weird": 1, "np": np.arange(3, dtype=np.int16),
           "nested": [(1, "a"), {2: None}]}
    tree, tensors = encode_tree(obj)
    back = decode_tree(json.loads(json.dumps(tree)), tensors)
    assert _same(obj, back)
    expected = torch.rand(4)
    set_rng_state(back["rng"])
    assert torch.equal(torch.rand(4), expected)
    with pytest.raises(CheckpointError, match="cannot store a object"):
        encode_tree({"x": object()})


def test_atomic_dir_keeps_old_checkpoint_when_writing_fails(tmp_path):
    model = torch.nn.Linear(2, 2)
    target = tmp_path / "last"
    write_checkpoint(target, {"model": model}, {"step": 1})
    with pytest.raises(RuntimeError, match="disk full"), atomic_dir(target) as tmp:
        (tmp / "partial").write_text("x")
        raise RuntimeError("disk full")
    _, _, state = read_checkpoint(target)
    assert state == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # the temporary folder was removed


def test_interrupted_replacement_is_recovered(tmp_path):
    model = torch.nn.Linear(2, 2)
    write_checkpoint(tmp_path / "last", {"model": model}, {"step": 3})
    # A kill between "rename last -> .last.old" and "rename tmp -> last" leaves only .last.old.
    (tmp_path / "last").rename(tmp_path / ".last.old")
    assert resolve_checkpoint(tmp_path / "last") == tmp_path / "last"
    weights, ema, state = read_checkpoint(tmp_path / "last")
    assert state == {"step": 3} and ema is None and torch.equal(weights["model"]["weight"], model.weight.detach())


def test_incomplete_folder_is_rejected(tmp_path):
    (tmp_path / "last").mkdir()
    (tmp_path / "last" / "model.safetensors").write_bytes(b"junk")
    assert resolve_checkpoint(tmp_path / "last") is None
    with pytest.raises(CheckpointError, match="not a complete training checkpoint"):
        read_checkpoint(tmp_path / "last")


def test_load_ema_weights_only_when_the_folder_has_them(tmp_path):
    from torch import nn

    from audiozoo.train.checkpoint import EMA_WEIGHTS, load_ema_weights, save_weights

    model, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    assert not load_ema_weights(model, tmp_path)  # no ema.safetensors: model untouched
    save_weights(tmp_path / EMA_WEIGHTS, ema.state_dict())
    assert load_ema_weights(model, tmp_path)
    assert torch.equal(model.weight, ema.weight) and torch.equal(model.bias, ema.bias)
