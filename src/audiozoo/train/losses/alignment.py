"""The forward-sum alignment loss of RAD-TTS / "One TTS Alignment To Rule Them All" (Badlani et al., ICASSP 2022,
arXiv:2108.10447, §2.1 eq. 3).

``-log sum over monotonic alignments of prod_j P(token a(j) | frame j)``: the likelihood of the token sequence
under every monotonic, surjective path through the soft alignment, computed with CTC's forward algorithm (every
token is a distinct label, so CTC's paths are exactly the monotonic alignments; a blank with a fixed score lets
frames belong to no token, as in the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError

__all__ = ["forward_sum_loss"]


def forward_sum_loss(log_attn: Tensor, token_lengths: Tensor, frame_lengths: Tensor,
                     blank_logprob: float = -1.0) -> Tensor:
    """Mean over the batch of the forward-sum negative log-likelihood per token.

    Args:
        log_attn: ``(B, T, N)`` log soft alignment (log P(token | frame)), as
            :class:`audiozoo.nn.aligner.ConvAligner` returns it; entries past ``token_lengths`` are ignored.
        token_lengths: ``(B,)`` valid tokens ``N_b``.
        frame_lengths: ``(B,)`` valid frames ``T_b >= N_b``.
        blank_logprob: the fixed score of the extra blank column (the reference's -1) before renormalising.

    Returns:
        scalar loss (CTC NLL of each item divided by its token count, averaged over items).
    """
    if log_attn.ndim != 3:
        raise ConfigError(f"log_attn must be (B, T, N), got {tuple(log_attn.shape)}")
    b, t, n = log_attn.shape
    if (frame_lengths < token_lengths).any():
        raise ConfigError("every item needs at least as many frames as tokens")
    tmask = torch.arange(n, device=log_attn.device)[None] < token_lengths[:, None]  # (B, N)
    x = log_attn.float().masked_fill(~tmask[:, None, :], -1e4)
    x = F.pad(x, (1, 0), value=blank_logprob)  # (B, T, N + 1): blank = 0, token i = i + 1
    x = torch.log_softmax(x, dim=-1)
    targets = torch.arange(1, n + 1, device=log_attn.device)[None].expand(b, -1)
    return F.ctc_loss(x.transpose(0, 1), targets, frame_lengths.long(), token_lengths.long(), blank=0,
                      reduction="mean", zero_infinity=True)
