"""Hard monotonic alignment and duration-based upsampling for non-autoregressive TTS.

- :func:`monotonic_alignment_search` — Glow-TTS's MAS (Kim et al. 2020, arXiv:2005.11129, Section 3.2 and
  Algorithm 1; reused by VITS): the most likely monotonic, surjective alignment of text tokens to frames.
- :func:`durations_from_alignment` — frames per token from a hard alignment.
- :func:`length_regulate` / :class:`LengthRegulator` — FastSpeech's length regulator (Ren et al. 2019,
  arXiv:1905.09263, Section 3.2): repeat each token's hidden state ``d_i`` times, with the speed factor
  ``alpha`` of eq. (1)/Section 3.2 ("adjust the voice speed").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError


def _check_lengths(lengths: Tensor | None, batch: int, size: int, name: str, device: torch.device) -> Tensor:
    if lengths is None:
        return torch.full((batch,), size, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).long()
    if lengths.shape != (batch,):
        raise ConfigError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    if (lengths < 1).any() or (lengths > size).any():
        raise ConfigError(f"{name} must lie in [1, {size}], got {lengths.tolist()}")
    return lengths


@torch.no_grad()
def monotonic_alignment_search(log_p: Tensor, text_lengths: Tensor | None = None,
                               feat_lengths: Tensor | None = None) -> Tensor:
    """Most likely monotonic alignment of tokens to frames (Viterbi over the Glow-TTS lattice).

    Every frame ``j`` is assigned exactly one token ``a(j)``; ``a(0) = 0``, ``a(T-1) = N-1`` and ``a(j+1) -
    a(j)`` is 0 or 1, so every token gets at least one frame. The path maximises ``sum_j log_p[a(j), j]``
    (Glow-TTS eq. 7 solved by Algorithm 1): ``Q[i, j] = log_p[i, j] + max(Q[i, j-1], Q[i-1, j-1])``, then
    backtracking from ``(N-1, T-1)``; on a tie the path stays on the same token, as Glow-TTS's
    ``maximum_path`` does.

    Vectorised over the batch and tokens, one step per frame (``T`` steps); no gradient.

    Args:
        log_p: ``(B, N, T)`` log-likelihood of frame ``j`` under token ``i`` (text first, frames last).
        text_lengths: ``(B,)`` valid tokens ``N_b`` (default ``N``).
        feat_lengths: ``(B,)`` valid frames ``T_b >= N_b`` (default ``T``).

    Returns:
        ``(B, N, T)`` 0/1 path in ``log_p``'s dtype; zero outside ``N_b x T_b``.
    """
    if log_p.ndim != 3:
        raise ConfigError(f"log_p must be (B, N_text, T_frames), got shape {tuple(log_p.shape)}")
    b, n, t = log_p.shape
    dev = log_p.device
    n_len = _check_lengths(text_lengths, b, n, "text_lengths", dev)
    t_len = _check_lengths(feat_lengths, b, t, "feat_lengths", dev)
    if (t_len < n_len).any():
        raise ConfigError(f"every sequence needs at least as many frames as tokens: frames {t_len.tolist()}, "
                          f"tokens {n_len.tolist()}")
    # float64 keeps sums of thousands of log-likelihoods exact enough to reproduce the argmax of a float32 DP
    lp = log_p.detach().double()
    neg = torch.tensor(float("-inf"), dtype=lp.dtype, device=dev)
    tokens = torch.arange(n, device=dev)
    lp = torch.where(tokens[None, :, None] < n_len[:, None, None], lp, neg)
    # move[b, i, j]: the best path into (i, j) came from (i-1, j-1) rather than (i, j-1)
    move = torch.zeros(b, n, t, dtype=torch.bool, device=dev)
    q = torch.full((b, n), float("-inf"), dtype=lp.dtype, device=dev)
    q[:, 0] = lp[:, 0, 0]
    for j in range(1, t):
        from_prev = torch.cat((q.new_full((b, 1), float("-inf")), q[:, :-1]), dim=1)
        move[:, :, j] = from_prev > q  # strict: ties stay on the same token
        q = torch.maximum(q, from_prev) + lp[:, :, j]
    # backtrack from (N_b - 1, T_b - 1); frames past T_b stay unassigned
    path = torch.zeros(b, n, t, dtype=log_p.dtype, device=dev)
    idx = n_len - 1
    rows = torch.arange(b, device=dev)
    for j in range(t - 1, -1, -1):
        active = j < t_len
        path[rows[active], idx[active], j] = 1
        step = active & move[rows, idx, j] & (idx > 0)
        idx = idx - step.long()
    return path


def durations_from_alignment(path: Tensor) -> Tensor:
    """Frames per token ``(B, N)`` long from a hard alignment ``(B, N, T)``."""
    if path.ndim != 3:
        raise ConfigError(f"path must be (B, N_text, T_frames), got shape {tuple(path.shape)}")
    return path.sum(-1).round().long()


def length_regulate(x: Tensor, durations: Tensor, alpha: float = 1.0, lengths: Tensor | None = None,
                    max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Repeat token ``i`` of ``x`` ``round(durations[i] * alpha)`` times (FastSpeech's length regulator).

    Args:
        x: ``(B, N, C)`` token hidden states.
        durations: ``(B, N)`` frames per token, integer or float (rounded after scaling), non-negative.
        alpha: FastSpeech's speed factor, a multiplier on durations: ``alpha > 1`` slows speech down,
            ``alpha < 1`` speeds it up (FastPitch's ``pace`` is ``1 / alpha``).
        lengths: ``(B,)`` valid tokens; durations of padded tokens are ignored.
        max_len: pad/crop the output to this many frames (default: the longest output).

    Returns:
        ``y (B, T, C)`` (frames past a sequence's length are zero) and ``frame_lengths (B,)`` long.
    """
    if x.ndim != 3 or durations.shape != x.shape[:2]:
        raise ConfigError(f"x must be (B, N, C) and durations (B, N); got {tuple(x.shape)} and "
                          f"{tuple(durations.shape)}")
    if alpha <= 0:
        raise ConfigError(f"alpha must be positive, got {alpha}")
    b, n, _ = x.shape
    if n == 0:
        raise ConfigError("length_regulate needs at least one token (x has N = 0)")
    if durations.is_floating_point() or alpha != 1.0:
        durations = torch.round(durations.double() * alpha)
    durations = durations.long()
    if (durations < 0).any():
        raise ConfigError("durations must be non-negative")
    if lengths is not None:
        lengths = _check_lengths(lengths, b, n, "lengths", x.device)
        durations = durations * (torch.arange(n, device=x.device)[None] < lengths[:, None])
    ends = durations.cumsum(1)  # (B, N): first frame after token i
    frame_lengths = ends[:, -1]
    if max_len is not None:
        t: int | Tensor = int(max_len)
    else:  # a traced graph (ONNX export) keeps the output length data-dependent: no Python int there
        t = frame_lengths.max() if torch.jit.is_tracing() else int(frame_lengths.max())
    frames = torch.arange(t, device=x.device)
    # token of frame f: the number of tokens that end at or before f
    if torch.jit.is_tracing():  # ONNX has no searchsorted: count the tokens ending at or before each frame
        index = (ends[:, None, :] <= frames[None, :, None]).sum(-1).clamp(max=n - 1)
    else:
        index = torch.searchsorted(ends, frames[None].expand(b, -1).contiguous(), right=True).clamp(max=n - 1)
    y = torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))
    y = y * (frames[None] < frame_lengths[:, None])[..., None].to(y.dtype)
    return y, (frame_lengths.clamp(max=int(max_len)) if max_len is not None else frame_lengths)


class LengthRegulator(nn.Module):
    """FastSpeech's length regulator as a module: ``(x (B, N, C), durations (B, N)) -> (y (B, T, C), (B,))``.

    ``alpha`` is the default speed factor (see :func:`length_regulate`); a call may override it.
    """

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Tensor, durations: Tensor, lengths: Tensor | None = None, alpha: float | None = None,
                max_len: int | None = None) -> tuple[Tensor, Tensor]:
        return length_regulate(x, durations, self.alpha if alpha is None else alpha, lengths, max_len)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
