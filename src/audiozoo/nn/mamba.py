"""Mamba: selective state-space models in pure torch (Gu & Dao 2023, arXiv:2312.00752).

- :func:`selective_scan` — the selective SSM of Algorithm 2 with ZOH-discretised ``A`` and Euler ``B``
  (Section 3.2, eq. 4 and Section 3.5.2), with the semantics of ``mamba_ssm``'s ``selective_scan_ref``
  (``delta_bias``/softplus on ``delta``, ``D`` skip, ``silu(z)`` gate, shared/per-step/grouped ``B``/``C``),
  run as a fused time-major loop with a hand-written backward (default, fastest on CPU), a plain autograd loop,
  or a log-depth parallel (Hillis-Steele) scan.
- :class:`MambaMixer` — the Mamba block's mixer (Figure 3): in-projection to ``x, z``, causal depthwise conv,
  SiLU, selective SSM, ``silu(z)`` gate, out-projection. Parameter names equal transformers' ``MambaMixer``
  (and ``mamba_ssm``'s ``Mamba``), so their state dicts load unchanged; recurrent ``step`` and chunked
  ``forward(state=...)`` for streaming decoders.
- :class:`BiMambaMixer` — Vision Mamba's bidirectional mixer (Zhu et al. 2024, arXiv:2401.09417, Section 3.3,
  ``bimamba_type="v2"``): shared in/out projections, separate conv/x_proj/dt_proj/A/D for the backward
  direction (``*_b`` names as in the Vim code), outputs averaged. Padding is reversed *within* each sequence's
  length, so padded frames never reach valid ones in either direction.
- :class:`MambaBlock` — pre-norm residual block ``x + mixer(RMSNorm(x))`` (transformers' ``MambaBlock``).
- :class:`MambaAddNormBlock` — the same block in ``mamba_ssm``/Vim's Add -> Norm -> Mixer form, hidden and
  residual kept apart (Vim's and SSAMBA's paired bidirectional layers).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .transformer import DropPath

_SCAN_MODES = ("fused", "sequential", "parallel")
#: longest sequence a traced (ONNX-exported) scan handles: 2^16 steps, 43 minutes of 40 ms encoder frames
_TRACE_MAX_LENGTH = 2 ** 16


def _expand_bc(m: Tensor, dim: int, name: str) -> Tensor:
    """``B``/``C`` in one of mamba_ssm's layouts -> broadcastable ``(B | 1, D | 1, L | 1, N)``."""
    if m.ndim == 2:  # (D, N): time-invariant
        return m[None, :, None, :]
    if m.ndim == 3:  # (B, N, L): selective, shared by all channels
        return m.transpose(1, 2)[:, None]
    if m.ndim == 4:  # (B, G, N, L): selective, one per group of D // G channels
        groups = m.shape[1]
        if dim % groups:
            raise ConfigError(f"{name} has {groups} groups, which do not divide {dim} channels")
        return m.permute(0, 1, 3, 2).repeat_interleave(dim // groups, dim=1)
    raise ConfigError(f"{name} must be (D, N), (B, N, L) or (B, G, N, L), got shape {tuple(m.shape)}")


def _parallel_scan(a: Tensor, b: Tensor, min_length: int = 1) -> Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim 2, in ``ceil(log2 L)`` steps.

    Hillis-Steele doubling: after step ``k`` each position holds the composition of the last ``2^(k+1)``
    updates. Only products of decays (``0 < a <= 1``) and sums appear, so it is as accurate as the loop
    (no division or log of the state). ``min_length``: run at least the steps this length needs (steps
    whose shift reaches past ``L`` change nothing), so that a traced graph serves every length up to it.
    """
    length = a.shape[2]
    shift = 1
    while shift < max(length, min_length):
        b = b + a * F.pad(b, (0, 0, shift, 0))[:, :, :length]
        a = a * F.pad(a, (0, 0, shift, 0), value=1.0)[:, :, :length]
        shift *= 2
    return b


def _contract_state(states: Tensor, m: Tensor) -> Tensor:
    """``sum_n states[..., n] * m[..., n]``: ``states (L, B, D, N)``, ``m (L|1, B|1, D|1, N)`` -> ``(L, B, D)``.

    A batched matrix product when ``m`` is shared by the channels (the usual selective layout): ``sum(-1)`` over a
    16-wide last dim runs at a fraction of memory speed on CPU.
    """
    if m.shape[2] == 1:
        return torch.matmul(states, m.transpose(-1, -2))[..., 0]
    return (states * m).sum(-1)


def _grad_bc(weight: Tensor, other: Tensor, shape: torch.Size) -> Tensor:
    """Gradient of ``B``/``C`` in the time-major layout ``shape``: ``weight (L, B, D)`` times ``other (L, B, D, N)``,
    summed over the broadcast dims of ``shape``."""
    if shape[2] == 1 and shape[0] == other.shape[0] and shape[1] == other.shape[1]:
        return torch.matmul(weight[:, :, None], other)  # (L, B, 1, N): the sum over D as a matrix product
    return (weight[..., None] * other).sum_to_size(shape)


class _FusedScan(torch.autograd.Function):
    """The selective SSM's recurrence and readout in time-major layout, with a hand-written backward.

    ``h_t = exp(delta_t A) h_{t-1} + x_t B_t``, ``y_t = C_t h_t`` for ``delta, x (L, B, D)``, ``A (D, N)``,
    ``B, C (L|1, B|1, D|1, N)``, ``h0 (B, D, N)``. Each step is one in-place ``addcmul`` on a contiguous
    ``(B, D, N)`` slice (the ``"sequential"`` loop works on strided slices of ``(B, D, L, N)`` and autograd adds
    one node and one full-size gradient copy per step). The backward runs the adjoint recurrence
    ``g_t = C_t gy_t + exp(delta_{t+1} A) g_{t+1}`` the same way and forms every other gradient in a few batched
    matrix products. Kept for the backward: the states and the decays (two ``(L, B, D, N)`` tensors; the
    sequential loop keeps three), the decays' buffer being reused for their gradient.
    """

    @staticmethod
    def forward(ctx, delta: Tensor, x: Tensor, A: Tensor, b_t: Tensor, c_t: Tensor, h0: Tensor):
        d_a = torch.mul(delta[..., None], A).exp_()  # (L, B, D, N); <= 1 for a stable (negative) A
        states = x[..., None] * b_t  # the inputs x_t B_t, overwritten in place by the states
        states[0].addcmul_(d_a[0], h0)
        for t in range(1, states.shape[0]):
            states[t].addcmul_(d_a[t], states[t - 1])
        ctx.save_for_backward(delta, x, A, b_t, c_t, h0, states, d_a)
        ctx.spent = False
        return _contract_state(states, c_t), states[-1].clone()

    @staticmethod
    def backward(ctx, gy: Tensor, glast: Tensor):
        if ctx.spent:  # the decays' buffer was reused below; a second pass would read garbage
            raise ConfigError("the fused selective scan supports one backward pass per forward (retain_graph "
                              "is not supported); use mode='sequential' for that")
        ctx.spent = True
        delta, x, A, b_t, c_t, h0, states, d_a = ctx.saved_tensors
        g = gy[..., None] * c_t  # dL/dh_t from the readout, then (in place) the adjoint state
        g[-1] += glast
        for t in range(g.shape[0] - 2, -1, -1):
            g[t].addcmul_(d_a[t + 1], g[t + 1])
        grad_c = _grad_bc(gy, states, c_t.shape)
        grad_x = _contract_state(g, b_t)
        grad_b = _grad_bc(x, g, b_t.shape)
        grad_h0 = d_a[0] * g[0]
        # dL/d(delta_t A) = g_t * exp(delta_t A) * h_{t-1}, formed in place in the decays' buffer
        g_la = d_a
        g_la[1:].mul_(states[:-1])
        g_la[0].mul_(h0)
        g_la.mul_(g)
        # both contractions as matrix products batched over channels (strided views, no copies)
        length, bsz, dim, n = g_la.shape
        per_channel = g_la.view(-1, dim, n).transpose(0, 1)  # (D, L*B, N)
        grad_delta = torch.bmm(per_channel, A[:, :, None])[..., 0].t().reshape(length, bsz, dim)
        grad_a = torch.bmm(delta.view(-1, dim).t()[:, None, :], per_channel)[:, 0]
        return grad_delta, grad_x, grad_a, grad_b, grad_c, grad_h0


def _fused_scan(delta: Tensor, x: Tensor, A: Tensor, b_t: Tensor, c_t: Tensor, h0: Tensor | None
                ) -> tuple[Tensor, Tensor]:
    """``delta, x (B, D, L)``, ``A (D, N)``, ``b_t, c_t (B|1, D|1, L|1, N)`` -> ``y = C h (B, D, L)`` and ``h_L``."""
    bsz, dim, _ = x.shape
    if h0 is None:
        h0 = x.new_zeros(bsz, dim, A.shape[1])
    tm = (delta.permute(2, 0, 1).contiguous(), x.permute(2, 0, 1).contiguous(), A,
          b_t.permute(2, 0, 1, 3).contiguous(), c_t.permute(2, 0, 1, 3).contiguous(), h0)
    # float32 throughout under autocast: its bf16 readout matmul would hand backward a bf16 gradient (dtype error)
    with torch.autocast(x.device.type, enabled=False):
        y, last = _FusedScan.apply(*tm)
    return y.permute(1, 2, 0), last


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                   z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
                   return_last_state: bool = False, initial_state: Tensor | None = None,
                   mode: str = "fused") -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan ``y = SSM(A, B, C, delta)(u)`` (Mamba Algorithm 2), computed in float32.

    ``delta' = softplus(delta + delta_bias)`` (if ``delta_softplus``), ``A_t = exp(delta'_t A)`` (ZOH),
    ``B_t = delta'_t B_t`` (Euler, as the official kernel), ``h_t = A_t h_{t-1} + B_t u_t``, ``y_t = C_t h_t
    + D u_t``, then ``y * silu(z)``.

    Args:
        u: ``(B, D, L)`` input.
        delta: ``(B, D, L)`` step sizes (before bias/softplus).
        A: ``(D, N)`` real state matrix (diagonal per channel; negative for a stable SSM).
        B, C: ``(D, N)`` time-invariant, ``(B, N, L)`` selective, or ``(B, G, N, L)`` selective per group.
        D: ``(D,)`` skip connection.
        z: ``(B, D, L)`` gate.
        delta_bias: ``(D,)`` added to ``delta``.
        initial_state: ``(B, D, N)`` state before the first step (default zeros).
        mode: ``"fused"`` (default: a loop over ``L`` in time-major layout with a hand-written backward,
            :class:`_FusedScan`; the fastest on CPU), ``"sequential"`` (the plain autograd loop, the reference;
            about 2x the fused mode's forward+backward time on CPU) or ``"parallel"`` (``log2 L`` vectorised
            Hillis-Steele steps for accelerators, about ``log2 L`` times the activation memory; ~4x slower than
            the sequential loop on CPU).

    Returns:
        ``y (B, D, L)`` in ``u``'s dtype, and with ``return_last_state`` the final state ``(B, D, N)`` float32.
    """
    if mode not in _SCAN_MODES:
        raise ConfigError(f"unknown scan mode {mode!r}; expected one of {_SCAN_MODES}")
    tracing = torch.jit.is_tracing()
    if tracing:
        # a traced graph (ONNX export) must not depend on the example's length: the loops would be unrolled
        # to it and the fused mode is an opaque Python function; the parallel scan's fixed 16 doubling steps
        # serve every length up to _TRACE_MAX_LENGTH
        mode = "parallel"
    if u.ndim != 3 or delta.shape != u.shape:
        raise ConfigError(f"u and delta must both be (B, D, L); got {tuple(u.shape)} and {tuple(delta.shape)}")
    if A.is_complex():
        raise ConfigError("complex A (S4D-Lin) is not supported; Mamba uses real A")
    bsz, dim, length = u.shape
    if A.ndim != 2 or A.shape[0] != dim:
        raise ConfigError(f"A must be (D={dim}, N), got {tuple(A.shape)}")
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b_t = _expand_bc(B.float(), dim, "B")
    c_t = _expand_bc(C.float(), dim, "C")
    if initial_state is not None and initial_state.shape != (bsz, dim, A.shape[1]):
        raise ConfigError(f"initial_state must be ({bsz}, {dim}, {A.shape[1]}), got {tuple(initial_state.shape)}")
    if mode == "fused":
        y, last = _fused_scan(delta, delta * u, A.float(), b_t, c_t,
                              None if initial_state is None else initial_state.float())
        return _scan_output(y, u, D, z, dtype_in, last if return_last_state else None)
    d_a = torch.exp(delta[..., None] * A.float()[None, :, None, :])  # (B, D, L, N)
    d_bu = (delta * u)[..., None] * b_t  # (B, D, L, N)
    if initial_state is not None:
        # fold h_{-1} into the first update: h_0 = a_0 h_{-1} + b_0
        first = d_bu[:, :, :1] + d_a[:, :, :1] * initial_state.float()[:, :, None]
        d_bu = torch.cat((first, d_bu[:, :, 1:]), dim=2)
    if mode == "parallel":
        states = _parallel_scan(d_a, d_bu, _TRACE_MAX_LENGTH if tracing else 1)
    else:
        h = d_bu.new_zeros(bsz, dim, A.shape[1])
        steps = []
        # unbind, not d_a[:, :, t]: each slice's backward would write a full-size gradient (O(L^2) memory traffic)
        for decay, inp in zip(d_a.unbind(2), d_bu.unbind(2)):
            h = decay * h + inp
            steps.append(h)
        states = torch.stack(steps, dim=2)
    y = (states * c_t).sum(-1)  # (B, D, L)
    return _scan_output(y, u, D, z, dtype_in, states[:, :, -1] if return_last_state else None)


def _scan_output(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, dtype: torch.dtype,
                 last: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
    """``y + D u``, gated by ``silu(z)``, in ``dtype`` (and the last state when asked)."""
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype)
    return y if last is None else (y, last)


class MambaState(NamedTuple):
    """Recurrent state of a :class:`MambaMixer`: the last ``d_conv - 1`` conv inputs ``(B, E, d_conv - 1)``
    and the SSM state ``(B, E, N)`` (float32)."""

    conv: Tensor
    ssm: Tensor


class MambaMixer(nn.Module):
    """Mamba mixer ``(B, L, dim) -> (B, L, dim)`` (the selective SSM block of Gu & Dao, Figure 3).

    Args:
        dim: model width.
        d_state: SSM state size ``N`` (16 in the paper).
        d_conv: causal depthwise conv kernel (4).
        expand: inner width ``E = expand * dim`` (2).
        dt_rank: rank of the ``delta`` projection; ``"auto"`` = ``ceil(dim / 16)`` (Section 3.6).
        conv_bias, bias: biases of the conv and of the in/out projections (True / False as the paper).
        dt_min, dt_max, dt_init, dt_scale, dt_init_floor: ``delta`` initialisation (Section 3.6 / official code:
            ``softplus(dt_proj.bias)`` log-uniform in ``[dt_min, dt_max]``).
        scan_mode: see :func:`selective_scan`.
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: float = 2, dt_rank: int | str = "auto",
                 conv_bias: bool = True, bias: bool = False, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init: str = "random", dt_scale: float = 1.0, dt_init_floor: float = 1e-4,
                 scan_mode: str = "fused"):
        super().__init__()
        if scan_mode not in _SCAN_MODES:
            raise ConfigError(f"unknown scan mode {scan_mode!r}; expected one of {_SCAN_MODES}")
        if dt_init not in ("random", "constant"):
            raise ConfigError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        if d_conv < 1 or d_state < 1:
            raise ConfigError(f"d_conv and d_state must be >= 1, got {d_conv}, {d_state}")
        self.dim, self.d_state, self.d_conv = dim, d_state, d_conv
        self.inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan_mode = scan_mode
        self._init = dict(dt_min=dt_min, dt_max=dt_max, dt_init=dt_init, dt_scale=dt_scale,
                          dt_init_floor=dt_init_floor)
        self.in_proj = nn.Linear(dim, 2 * self.inner, bias=bias)
        self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D = self._ssm_params(conv_bias)
        self.out_proj = nn.Linear(self.inner, dim, bias=bias)

    def _ssm_params(self, conv_bias: bool) -> tuple[nn.Conv1d, nn.Linear, nn.Linear, nn.Parameter, nn.Parameter]:
        """One direction's conv, projections, ``A_log`` and ``D``, initialised as the official code."""
        e, n, r = self.inner, self.d_state, self.dt_rank
        conv = nn.Conv1d(e, e, self.d_conv, groups=e, padding=self.d_conv - 1, bias=conv_bias)
        x_proj = nn.Linear(e, r + 2 * n, bias=False)
        dt_proj = nn.Linear(r, e, bias=True)
        c = self._init
        std = r ** -0.5 * c["dt_scale"]
        with torch.no_grad():
            if c["dt_init"] == "constant":
                dt_proj.weight.fill_(std)
            else:
                dt_proj.weight.uniform_(-std, std)
            # softplus(bias) ~ log-uniform in [dt_min, dt_max]; bias = softplus^-1(dt) = dt + log(1 - exp(-dt))
            dt = torch.exp(torch.rand(e) * (math.log(c["dt_max"]) - math.log(c["dt_min"])) + math.log(c["dt_min"]))
            dt = dt.clamp(min=c["dt_init_floor"])
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        # S4D-Real initialisation A = -(1, 2, ..., N) per channel (Section 3.6), stored as log(-A)
        a_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(e, 1))
        d = nn.Parameter(torch.ones(e))
        a_log._no_weight_decay = True  # the official recipe excludes A_log and D from weight decay
        d._no_weight_decay = True
        return conv, x_proj, dt_proj, a_log, d

    # -- core -------------------------------------------------------------------------------------------------
    def _branch(self, h: Tensor, z: Tensor, valid: Tensor | None, conv: nn.Conv1d, x_proj: nn.Linear,
                dt_proj: nn.Linear, a_log: Tensor, d: Tensor, state: MambaState | None = None,
                return_state: bool = False) -> Tensor | tuple[Tensor, MambaState]:
        """conv -> SiLU -> selective scan -> gate on ``h, z (B, E, L)``; returns ``(B, E, L)``."""
        bsz, _, length = h.shape
        k = self.d_conv
        prev = h.new_zeros(bsz, self.inner, k - 1) if state is None else state.conv.to(h.dtype)
        h_in = torch.cat((prev, h), dim=2)
        # causal depthwise conv: left context from the state (zeros at the start), no right context
        x = F.silu(F.conv1d(h_in, conv.weight, conv.bias, groups=self.inner))
        if valid is not None:
            x = x * valid  # padded frames carry nothing into the state (transformers does the same)
        dt, b_sel, c_sel = torch.split(x_proj(x.transpose(1, 2)), [self.dt_rank, self.d_state, self.d_state],
                                       dim=-1)
        delta = torch.matmul(dt_proj.weight, dt.transpose(1, 2))  # (B, E, L); bias added in the scan
        out = selective_scan(x, delta, -torch.exp(a_log.float()), b_sel.transpose(1, 2), c_sel.transpose(1, 2),
                             D=d.float(), z=z, delta_bias=dt_proj.bias.float(), delta_softplus=True,
                             return_last_state=return_state, initial_state=None if state is None else state.ssm,
                             mode=self.scan_mode)
        if not return_state:
            return out
        y, ssm = out
        return y, MambaState(h_in[:, :, h_in.shape[2] - (k - 1):], ssm)

    def init_state(self, batch: int, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> MambaState:
        """Zero state for ``batch`` sequences (what ``forward`` starts from)."""
        return MambaState(torch.zeros(batch, self.inner, self.d_conv - 1, device=device, dtype=dtype),
                          torch.zeros(batch, self.inner, self.d_state, device=device, dtype=torch.float32))

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, state: MambaState | None = None,
                return_state: bool = False) -> Tensor | tuple[Tensor, MambaState]:
        """``x (B, L, dim) -> (B, L, dim)``.

        Args:
            padding_mask: ``(B, L)`` bool, True at padded frames; they are zeroed before the projections and
                after the conv, so (the mixer being causal) valid frames do not see them.
            state: continue from this state (chunked streaming); ``return_state`` returns the state after the
                last frame. Not combinable with ``padding_mask`` (the state would be that of the padding).
        """
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected x of shape (B, L, {self.dim}), got {tuple(x.shape)}")
        if (state is not None or return_state) and padding_mask is not None:
            raise ConfigError("state/return_state cannot be combined with padding_mask: stream unpadded chunks")
        valid = None
        if padding_mask is not None:
            if padding_mask.shape != x.shape[:2]:
                raise ConfigError(f"padding_mask must be {tuple(x.shape[:2])}, got {tuple(padding_mask.shape)}")
            valid = (~padding_mask.bool())[:, None, :].to(x.dtype)  # (B, 1, L)
            x = x * valid.transpose(1, 2)
        h, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)
        out = self._branch(h, z, valid, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, state,
                           return_state)
        if return_state:
            y, new_state = out
            return self.out_proj(y.transpose(1, 2)), new_state
        return self.out_proj(out.transpose(1, 2))

    def step(self, x: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        """One recurrent step ``x (B, dim) -> (B, dim)`` for autoregressive decoding (Section 3.4: constant
        time and memory per token). Equals ``forward`` on the whole sequence, frame by frame."""
        y, new_state = self.forward(x[:, None], state=state, return_state=True)
        return y[:, 0], new_state

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, inner={self.inner}, d_state={self.d_state}, d_conv={self.d_conv}, "
                f"dt_rank={self.dt_rank}, scan_mode={self.scan_mode!r}")


def reverse_padded(x: Tensor, lengths: Tensor | None, dim: int = -1) -> Tensor:
    """Reverse each sequence of ``x`` within its first ``lengths[b]`` entries along ``dim``; padding stays in
    place. Its own inverse. ``x (B, ..., L, ...)``, ``lengths (B,)`` (None: plain flip)."""
    if lengths is None:
        return x.flip(dim)
    dim = dim % x.ndim
    length = x.shape[dim]
    t = torch.arange(length, device=x.device)
    lengths = lengths.to(x.device)[:, None]
    idx = torch.where(t[None] < lengths, lengths - 1 - t[None], t[None])  # (B, L)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[dim] = length
    return torch.gather(x, dim, idx.view(shape).expand_as(x))


class BiMambaMixer(MambaMixer):
    """Bidirectional Mamba mixer (Vision Mamba "v2"): ``(B, L, dim) -> (B, L, dim)``.

    The forward branch is :class:`MambaMixer`'s; the backward branch runs its own ``conv1d_b``, ``x_proj_b``,
    ``dt_proj_b``, ``A_b_log``, ``D_b`` on the sequence reversed within each length, and is reversed back.
    Both share ``in_proj``/``out_proj``; the branch outputs are averaged (``merge="mean"``, Vim's
    ``if_devide_out``) or summed.
    """

    def __init__(self, dim: int, merge: str = "mean", conv_bias: bool = True, **kwargs):
        super().__init__(dim, conv_bias=conv_bias, **kwargs)
        if merge not in ("mean", "sum"):
            raise ConfigError(f"merge must be 'mean' or 'sum', got {merge!r}")
        self.merge = merge
        self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b = self._ssm_params(conv_bias)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, state: MambaState | None = None,
                return_state: bool = False) -> Tensor:
        """``x (B, L, dim) -> (B, L, dim)``; ``padding_mask (B, L)`` True at padded frames (right padding)."""
        if state is not None or return_state:
            raise ConfigError("a bidirectional mixer sees the whole sequence; it has no streaming state")
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected x of shape (B, L, {self.dim}), got {tuple(x.shape)}")
        valid, lengths = None, None
        if padding_mask is not None:
            if padding_mask.shape != x.shape[:2]:
                raise ConfigError(f"padding_mask must be {tuple(x.shape[:2])}, got {tuple(padding_mask.shape)}")
            keep = ~padding_mask.bool()
            lengths = keep.sum(1)
            if not torch.equal(keep, torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]):
                raise ConfigError("BiMambaMixer needs right padding (valid frames first, then padding)")
            valid = keep[:, None, :].to(x.dtype)
            x = x * valid.transpose(1, 2)
        h, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)
        y_f = self._branch(h, z, valid, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        y_b = self._branch(reverse_padded(h, lengths), reverse_padded(z, lengths), valid, self.conv1d_b,
                           self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
        y = y_f + reverse_padded(y_b, lengths)
        if self.merge == "mean":
            y = y / 2
        return self.out_proj(y.transpose(1, 2))

    def step(self, x: Tensor, state: MambaState) -> tuple[Tensor, MambaState]:
        raise ConfigError("a bidirectional mixer sees the whole sequence; it cannot decode step by step")


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba block ``x + DropPath(mixer(RMSNorm(x)))``: ``(B, L, dim) -> (B, L, dim)``.

    Keys ``norm.weight`` / ``mixer.*`` as transformers' ``MambaBlock``. ``bidirectional=True`` uses
    :class:`BiMambaMixer` (Vision Mamba / SSAMBA); other keyword arguments go to the mixer.
    """

    def __init__(self, dim: int, bidirectional: bool = False, eps: float = 1e-5, drop_path: float = 0.0,
                 **mixer_kwargs):
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=eps)
        self.mixer = (BiMambaMixer if bidirectional else MambaMixer)(dim, **mixer_kwargs)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return x + self.drop_path(self.mixer(self.norm(x), padding_mask))


class MambaAddNormBlock(nn.Module):
    """``mamba_ssm``'s / Vision Mamba's ``Block`` (Add -> Norm -> Mixer), carrying the residual stream apart.

    ``forward(hidden, residual) -> (mixer(norm(r)), r)`` with ``r = residual + DropPath(hidden)`` (``r = hidden``
    for the first block), all ``(B, L, dim)``; the stream after the last block is ``r + hidden``. The same function
    as :class:`MambaBlock` chained, but the two halves stay separate, which Vim's and SSAMBA's paired
    (``if_bidirectional``) layers need. Keys ``mixer.*`` / ``norm.*`` as the Vim code; ``norm="layer"`` (SSAMBA's
    ``rms_norm=False``) or ``"rms"``; other keyword arguments go to :class:`BiMambaMixer` / :class:`MambaMixer`.
    """

    def __init__(self, dim: int, bidirectional: bool = True, norm: str = "layer", eps: float = 1e-5,
                 drop_path: float = 0.0, **mixer_kwargs):
        super().__init__()
        if norm not in ("layer", "rms"):
            raise ConfigError(f"norm must be 'layer' or 'rms', got {norm!r}")
        self.mixer = (BiMambaMixer if bidirectional else MambaMixer)(dim, **mixer_kwargs)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm == "layer" else nn.RMSNorm(dim, eps=eps)
        self.drop_path = DropPath(drop_path)

    def forward(self, hidden: Tensor, residual: Tensor | None = None,
                padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``hidden, residual (B, L, dim)``; ``padding_mask (B, L)`` True at (right-)padded frames."""
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        return self.mixer(self.norm(residual), padding_mask), residual
