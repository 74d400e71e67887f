"""ODE samplers (audiozoo.nn.samplers): convergence orders on a linear ODE with a known solution, time grids,
evaluation counts, steps/timesteps equivalence, backward integration, errors."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.samplers import ODE_METHODS, euler_step, heun_step, midpoint_step, nfe_per_step, ode_solve, time_grid


def _linear_field(a: float):
    """dx/dt = a x (1 + t): solution x(t) = x0 exp(a (t + t^2 / 2))."""
    return lambda x, t: a * x * (1 + t[:, None])


def _exact(x0: torch.Tensor, a: float, t: float = 1.0) -> torch.Tensor:
    return x0 * math.exp(a * (t + t * t / 2))


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_convergence_order(method: str, order: int):
    x0 = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64)
    exact = _exact(x0, 0.7)
    errs = [float((ode_solve(_linear_field(0.7), x0, steps=n, method=method) - exact).abs().max())
            for n in (8, 16, 32)]
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    # halving the step divides the global error by ~2^order (measured: euler 1.86/1.92, midpoint 3.76/3.88,
    # heun 3.85/3.93)
    for r in ratios:
        assert 2**order * 0.85 < r < 2**order * 1.1, (method, errs)


def test_step_functions_and_nfe():
    calls = []

    def field(x, t):
        calls.append(t.clone())
        return torch.ones_like(x) * t[:, None]

    x = torch.zeros(2, 3)
    assert torch.equal(euler_step(field, x, 0.25, 0.5), torch.full((2, 3), 0.125))
    calls.clear()
    # midpoint of v = t from 0.25 to 0.75: dt * v(0.5) = 0.25 (exact for a linear field)
    assert torch.allclose(midpoint_step(field, x, 0.25, 0.5), torch.full((2, 3), 0.25))
    assert [float(c[0]) for c in calls] == [0.25, 0.5]
    calls.clear()
    assert torch.allclose(heun_step(field, x, 0.25, 0.5), torch.full((2, 3), 0.25))  # trapezoid: exact too
    assert [float(c[0]) for c in calls] == [0.25, 0.75]
    for method, per in ODE_METHODS.items():
        calls.clear()
        ode_solve(field, x, steps=3, method=method)
        assert len(calls) == 3 * per == 3 * nfe_per_step(method)


def test_time_grid_schedules():
    g = time_grid(4)
    assert g.dtype == torch.float32 and g.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    c = time_grid(8, schedule="cosine")
    s = time_grid(8, schedule="sway", sway=-1.0)
    for grid in (c, s):
        assert grid[0] == 0 and abs(float(grid[-1]) - 1) < 1e-7 and bool((grid.diff() > 0).all())
        assert float(grid[1]) < 1 / 8  # denser near t = 0
    assert torch.allclose(time_grid(8, schedule="sway", sway=0.0), time_grid(8))
    assert time_grid(2, 1.0, 0.0).tolist() == [1.0, 0.5, 0.0]


def test_steps_and_timesteps_agree_and_backward_integration():
    field = _linear_field(-0.4)
    x0 = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = ode_solve(field, x0, steps=10, method="heun")
    b = ode_solve(field, x0, timesteps=time_grid(10, dtype=torch.float64), method="heun")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # integrate 0 -> 1 then 1 -> 0: back to the start (error O(dt^2) of both passes)
    x1 = ode_solve(field, x0, steps=200, method="midpoint")
    back = ode_solve(field, x1, steps=200, method="midpoint", t0=1.0, t1=0.0)
    assert float((back - x0).abs().max()) < 1e-5
    out, traj = ode_solve(field, x0, steps=4, method="euler", return_trajectory=True)
    assert len(traj) == 5 and traj[0] is x0 and torch.equal(traj[-1], out)


def test_errors():
    f = _linear_field(1.0)
    x = torch.zeros(1, 2)
    with pytest.raises(ConfigError, match="method"):
        ode_solve(f, x, steps=2, method="rk4")
    with pytest.raises(ConfigError, match="exactly one"):
        ode_solve(f, x)
    with pytest.raises(ConfigError, match="exactly one"):
        ode_solve(f, x, steps=2, timesteps=[0.0, 1.0])
    with pytest.raises(ConfigError, match="positive"):
        ode_solve(f, x, steps=0)
    with pytest.raises(ConfigError, match="2 points"):
        ode_solve(f, x, timesteps=[0.0])
    with pytest.raises(ConfigError, match="schedule"):
        time_grid(4, schedule="karras")
    with pytest.raises(ConfigError):
        nfe_per_step("rk4")
