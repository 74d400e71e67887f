"""Optimizer and schedule factories."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.train import build_optimizer, build_scheduler


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_cosine_values():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", lr=1.0)
    s = build_scheduler(opt, "cosine", total_steps=12, warmup_steps=2, min_lr_ratio=0.1)["scheduler"]
    lrs = _lrs(s, opt, 13)
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])  # linear warmup (step + 1) / (warmup + 1)
    # cosine from 1 to 0.1 over the 10 steps after warmup; half way (step 7) is the midpoint 0.55
    assert lrs[7] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[12] == pytest.approx(0.1)


def test_linear_constant_and_exponential():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam", lr=2.0)
    lin = build_scheduler(opt, "linear", total_steps=4)["scheduler"]
    assert _lrs(lin, opt, 5) == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adam", lr=2.0)
    const = build_scheduler(opt, "constant", warmup_steps=1)["scheduler"]
    assert _lrs(const, opt, 3) == pytest.approx([1.0, 2.0, 2.0])
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "adamw", lr=1.0)
    exp = build_scheduler(opt, "exponential", gamma=0.5, interval="epoch")
    assert exp["interval"] == "epoch" and _lrs(exp["scheduler"], opt, 3) == pytest.approx([1.0, 0.5, 0.25])


def test_no_decay_for_1d_parameters():
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.05, no_decay_1d=True)
    decays = sorted((g["weight_decay"], len(g["params"])) for g in opt.param_groups)
    assert decays == [(0.0, 1), (0.05, 1)]  # bias exempt, weight decayed


def test_errors_name_the_problem():
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError, match="unknown optimizer 'adamax2'"):
        build_optimizer(p, "adamax2")
    with pytest.raises(ConfigError, match=r"does not take \['momentum'\]"):
        build_optimizer(p, "adamw", momentum=0.9)
    opt = build_optimizer(p, "sgd", lr=0.1)
    with pytest.raises(ConfigError, match="needs the run length"):
        build_scheduler(opt, "cosine")
    with pytest.raises(ConfigError, match="unknown schedule"):
        build_scheduler(opt, "poly")
    with pytest.raises(ConfigError, match="gamma"):
        build_scheduler(opt, "exponential")


def test_resuming_keeps_the_configured_schedule_and_the_saved_step():
    """A run resumed with a larger max_steps follows the new schedule from the saved step (the saved LR
    factor settings of the old, shorter run must not come back: it would sit at its final LR)."""
    from audiozoo.train.optim import build_scheduler, load_scheduler_state

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    old = build_scheduler(opt, "linear", warmup_steps=0, total_steps=10)["scheduler"]
    for _ in range(10):
        opt.step()
        old.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    opt2 = torch.optim.SGD([p], lr=1.0)
    new = build_scheduler(opt2, "linear", warmup_steps=0, total_steps=20)["scheduler"]
    load_scheduler_state(new, old.state_dict())
    assert new.last_epoch == 10
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.5)  # step 10 of 20, linear decay to 0
    opt2.step()
    new.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.45)
