"""Blocks of the DelightfulTTS acoustic model (voicesmith / coqui-tts flavour): conformer, predictors, prosody encoders.

DelightfulTTS (Liu et al., Blizzard Challenge 2021, arXiv:2110.12612) has no official code; the peer implementation
is coqui-tts' ``TTS/tts/layers/delightful_tts`` (MPL-2.0, itself credited to dunky11/voicesmith). These blocks follow
its computation so that its weights give the same outputs (read for behaviour, written here from scratch):

- :class:`BSConv1d` — blueprint-separable convolution (Haase & Amthor 2020): pointwise ``C_in -> C_out`` then
  depthwise ``k`` over ``C_out``.
- :class:`ConvPredictor` — ``2 x [BSConv k -> LeakyReLU -> LayerNorm -> dropout] -> linear`` (the duration / pitch /
  energy predictors, ``mask_output=True``: zeros at padding; the utterance / phoneme prosody predictors,
  ``mask_output=False``: the hidden sequence is zeroed at padding before the projection).
- :class:`XLRelPosAttention` — multi-head attention with Transformer-XL content / position biases ``u``, ``v`` and the
  relative shift, fed with the *absolute* sinusoidal table of the key positions (voicesmith's variant), scores
  scaled by ``1 / sqrt(d_model)``; also used as text-to-reference cross-attention.
- :class:`DelightfulConformer` — blocks of ``[speaker Conv-GLU] -> 0.5 x conv-FFN -> conv module -> attention ->
  conv module`` (a second conv module in place of the Macaron second FFN), LeakyReLU activations.
- :class:`ReferenceEncoder` — mel ``(B, n_mels, L)`` -> 1-d convs (the first with coordinate channels, CoordConv;
  instance norms) -> GRU: per-frame states at ``L / prod(strides)`` and the last state.
- :class:`StyleTokenLayer` — Global Style Tokens (Wang et al. 2018): attention of a query over ``tanh`` of learned
  tokens (one head, softmax over the tokens).

Tensors are batch-first ``(B, T, D)`` unless said otherwise; masks ``(B, T)`` bool are True at padded positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["BSConv1d", "ConvPredictor", "DelightfulConformer", "DelightfulConformerBlock", "ReferenceEncoder",
           "StyleTokenLayer", "XLRelPosAttention", "average_nonzero"]


def _odd(k: int, what: str) -> None:
    if k < 1 or k % 2 == 0:
        raise ConfigError(f"{what} kernel must be odd (same padding), got {k}")


class BSConv1d(nn.Module):
    """``(B, C_in, T) -> (B, C_out, T)``: pointwise conv then same-padded depthwise conv of kernel ``k``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int):
        super().__init__()
        _odd(kernel_size, "BSConv1d")
        self.pointwise = nn.Conv1d(c_in, c_out, 1)
        self.depthwise = nn.Conv1d(c_out, c_out, kernel_size, padding=kernel_size // 2, groups=c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.depthwise(self.pointwise(x))


class ConvPredictor(nn.Module):
    """``x (B, N, in_dim), mask (B, N) -> (B, N, out_dim)`` (``(B, N)`` when ``out_dim == 1`` and ``squeeze``)."""

    def __init__(self, in_dim: int, channels: int, out_dim: int, kernel_size: int, dropout: float, slope: float,
                 mask_output: bool = True):
        super().__init__()
        self.convs = nn.ModuleList([BSConv1d(in_dim, channels, kernel_size), BSConv1d(channels, channels, kernel_size)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels), nn.LayerNorm(channels)])
        self.dropout = nn.Dropout(dropout)
        self.slope, self.mask_output = slope, mask_output
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, x: Tensor, mask: Tensor, squeeze: bool = False) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(norm(F.leaky_relu(conv(x.transpose(1, 2)).transpose(1, 2), self.slope)))
        if not self.mask_output:
            x = x.masked_fill(mask[..., None], 0.0)
        x = self.proj(x)
        if self.mask_output:
            x = x.masked_fill(mask[..., None], 0.0)
        return x.squeeze(-1) if squeeze else x


class XLRelPosAttention(nn.Module):
    """``(query (B, Lq, D), key_value (B, Lk, D), pos (Lk', D), mask (B, Lk)) -> (B, Lq, D)``.

    ``pos`` is the sinusoidal table of (at least) ``Lk`` positions; ``mask`` True at padded keys. Parameters:
    query (with bias), key / value / position projections (no bias), ``u`` / ``v`` biases ``(heads, D / heads)``,
    output projection (with bias).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.pos = nn.Linear(dim, dim, bias=False)
        self.u_bias = nn.Parameter(torch.empty(heads, self.head_dim))
        self.v_bias = nn.Parameter(torch.empty(heads, self.head_dim))
        nn.init.xavier_uniform_(self.u_bias)
        nn.init.xavier_uniform_(self.v_bias)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, kv: Tensor, pos: Tensor, mask: Tensor) -> Tensor:
        b, lq, _ = query.shape
        lk = kv.shape[1]
        if pos.shape[0] < lk:
            raise ConfigError(f"positional table has {pos.shape[0]} rows, attention needs {lk}")
        h, d = self.heads, self.head_dim
        q = self.query(query).view(b, lq, h, d)
        k = self.key(kv).view(b, lk, h, d).transpose(1, 2)
        v = self.value(kv).view(b, lk, h, d).transpose(1, 2)
        p = self.pos(pos[:lk]).view(lk, h, d).permute(1, 2, 0)  # (h, d, Lk)
        content = (q + self.u_bias).transpose(1, 2) @ k.transpose(2, 3)  # (B, h, Lq, Lk)
        position = (q + self.v_bias).transpose(1, 2) @ p
        # Transformer-XL relative shift: prepend a zero column, fold, drop the first row
        position = torch.cat([position.new_zeros(b, h, lq, 1), position], -1).reshape(b, h, lk + 1, lq)
        position = position[:, :, 1:].reshape(b, h, lq, lk)
        score = (content + position) / math.sqrt(self.dim)
        score = score.masked_fill(mask[:, None, None], -1e9)
        ctx = (score.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, self.dim)
        return self.dropout(self.out(ctx))


class _ConvModule(nn.Module):
    """LN -> pointwise (D -> 4D) -> GLU with a LeakyReLU gate -> depthwise k (2D) -> GroupNorm(1) -> LeakyReLU ->
    pointwise (2D -> D) -> dropout; ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, dim: int, kernel_size: int, dropout: float, slope: float, expansion: int = 2):
        super().__init__()
        _odd(kernel_size, "conformer conv module")
        inner = dim * expansion
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * inner, 1)
        self.depthwise = nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner)
        self.group_norm = nn.GroupNorm(1, inner)
        self.pointwise_out = nn.Conv1d(inner, dim, 1)
        self.dropout = nn.Dropout(dropout)
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        h, gate = self.pointwise_in(self.norm(x).transpose(1, 2)).chunk(2, dim=1)
        h = self.group_norm(self.depthwise(h * F.leaky_relu(gate, self.slope)))
        return self.dropout(self.pointwise_out(F.leaky_relu(h, self.slope)).transpose(1, 2))


class _FeedForward(nn.Module):
    """Half-step conv FFN: LN -> conv k3 (D -> 4D) -> LeakyReLU -> dropout -> conv k1 (4D -> D) -> dropout, x 0.5."""

    def __init__(self, dim: int, dropout: float, slope: float, kernel_size: int = 3, expansion: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv1 = nn.Conv1d(dim, dim * expansion, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(dim * expansion, dim, 1)
        self.dropout = nn.Dropout(dropout)
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        h = self.dropout(F.leaky_relu(self.conv1(self.norm(x).transpose(1, 2)), self.slope))
        return 0.5 * self.dropout(self.conv2(h).transpose(1, 2))


class _SpeakerGLU(nn.Module):
    """Deep Voice 3 conv-GLU with a speaker bias: ``a, b = BSConv(x)``, ``(a + softsign(W s)) * sigmoid(b)``,
    residual, times ``sqrt(0.5)``."""

    def __init__(self, dim: int, kernel_size: int, speaker_dim: int):
        super().__init__()
        self.conv = BSConv1d(dim, 2 * dim, kernel_size)
        self.proj = nn.Linear(speaker_dim, dim)

    def forward(self, x: Tensor, speaker: Tensor) -> Tensor:
        a, b = self.conv(x.transpose(1, 2)).transpose(1, 2).chunk(2, dim=-1)
        y = (a + F.softsign(self.proj(speaker))[:, None]) * torch.sigmoid(b)
        return (y + x) * math.sqrt(0.5)


class DelightfulConformerBlock(nn.Module):
    """One block, ``(x (B, T, D), mask (B, T), pos (T', D), speaker (B, S) | None) -> (B, T, D)``."""

    def __init__(self, dim: int, heads: int, kernel_size: int, dropout: float, slope: float, speaker_dim: int = 0):
        super().__init__()
        self.speaker = _SpeakerGLU(dim, kernel_size, speaker_dim) if speaker_dim > 0 else None
        self.ff = _FeedForward(dim, dropout, slope)
        self.conv1 = _ConvModule(dim, kernel_size, dropout, slope)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = XLRelPosAttention(dim, heads, dropout)
        self.conv2 = _ConvModule(dim, kernel_size, dropout, slope)

    def forward(self, x: Tensor, mask: Tensor, pos: Tensor, speaker: Tensor | None = None) -> Tensor:
        if self.speaker is not None:
            if speaker is None:
                raise ConfigError("this conformer is speaker-conditioned: pass a speaker embedding (B, S)")
            x = self.speaker(x, speaker)
        x = x + self.ff(x)
        x = x + self.conv1(x)
        h = self.attn_norm(x)
        x = (x + self.attn(h, h, pos, mask)).masked_fill(mask[..., None], 0.0)
        return x + self.conv2(x)


class DelightfulConformer(nn.Module):
    """A stack of :class:`DelightfulConformerBlock` (``D / heads`` per head)."""

    def __init__(self, dim: int, layers: int, heads: int, kernel_size: int, dropout: float, slope: float,
                 speaker_dim: int = 0):
        super().__init__()
        self.blocks = nn.ModuleList(DelightfulConformerBlock(dim, heads, kernel_size, dropout, slope, speaker_dim)
                                    for _ in range(layers))

    def forward(self, x: Tensor, mask: Tensor, pos: Tensor, speaker: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask, pos, speaker)
        return x


class ReferenceEncoder(nn.Module):
    """Mel ``(B, n_mels, L)``, lengths ``(B,)`` -> ``(states (B, L', H), last (B, H), lengths' (B,))``.

    Same-padded 1-d convs over time (``filters`` channels, kernel ``k``, strides ``(1, *strides)``), each followed by
    LeakyReLU(0.3) and an affine InstanceNorm; the first conv also sees two coordinate channels, the position
    ``x = 2 t / (L - 1) - 1`` over the (padded) input and ``|x - 0.5|`` (CoordConv with ``r``). Then a GRU over the
    valid steps: ``L'`` follows the strided lengths (``ceil(L / 2)`` per stride-2 conv).
    """

    def __init__(self, n_mels: int, filters: tuple[int, ...], kernel_size: int, strides: tuple[int, ...],
                 gru_size: int):
        super().__init__()
        _odd(kernel_size, "reference encoder")
        if len(strides) != len(filters) - 1 or any(s not in (1, 2) for s in strides):
            raise ConfigError(f"reference encoder needs len(filters) - 1 strides of 1 or 2, got {filters} / {strides}")
        chans = (n_mels, *filters)
        steps = (1, *strides)
        self.strides = steps
        self.convs = nn.ModuleList(
            nn.Conv1d(chans[i] + (2 if i == 0 else 0), chans[i + 1], kernel_size, stride=steps[i],
                      padding=kernel_size // 2) for i in range(len(filters)))
        self.norms = nn.ModuleList(nn.InstanceNorm1d(f, affine=True) for f in filters)
        self.gru = nn.GRU(filters[-1], gru_size, batch_first=True)

    def forward(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, _, big_l = mel.shape
        keep = torch.arange(big_l, device=mel.device)[None] < lengths[:, None]
        x = mel * keep[:, None].to(mel.dtype)
        coord = torch.arange(big_l, device=mel.device, dtype=mel.dtype) / max(big_l - 1, 1) * 2 - 1
        coord = coord.expand(b, 1, big_l)
        x = torch.cat([x, coord, (coord - 0.5).abs()], 1)
        for conv, norm in zip(self.convs, self.norms):
            x = norm(F.leaky_relu(conv(x), 0.3))
        out_len = lengths.long()
        for s in self.strides:
            out_len = torch.div(out_len + s - 1, s, rounding_mode="floor")
        n_out = int(out_len.max())
        x = x[..., :n_out] * (torch.arange(n_out, device=x.device)[None] < out_len[:, None])[:, None].to(x.dtype)
        packed = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), out_len.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        states, last = self.gru(packed)
        states = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=n_out)[0]
        return states, last[0], out_len


class StyleTokenLayer(nn.Module):
    """Global Style Tokens: ``query (B, dim // 2) -> (B, dim)``, softmax over ``tokens`` learned ``tanh`` keys.

    One head; ``score = (W_q q) . (W_k tanh(e_j)) / sqrt(dim)``; output ``sum_j softmax_j(score) W_v tanh(e_j)``.
    """

    def __init__(self, dim: int, tokens: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(tokens, dim))
        nn.init.normal_(self.tokens, 0.0, 0.5)
        self.query = nn.Linear(dim // 2, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.dim = dim

    def forward(self, query: Tensor) -> Tensor:
        keys = torch.tanh(self.tokens)
        score = self.query(query) @ self.key(keys).t() / math.sqrt(self.dim)  # (B, tokens)
        return score.softmax(-1) @ self.value(keys)


def average_nonzero(values: Tensor, durations: Tensor) -> Tensor:
    """Per-token mean of the *non-zero* frame values: ``values (B, L)``, ``durations (B, N)`` -> ``(B, N)``.

    Token ``n`` owns frames ``[sum(d[:n]), sum(d[:n + 1]))``; zeros (unvoiced pitch) are left out of the mean, and a
    token whose frames are all zero (or that has none) gets 0 (coqui-tts' ``average_over_durations``).
    """
    if values.ndim != 2 or durations.ndim != 2 or values.shape[0] != durations.shape[0]:
        raise ConfigError(f"average_nonzero takes values (B, L) and durations (B, N), got {tuple(values.shape)} and "
                          f"{tuple(durations.shape)}")
    ends = durations.long().clamp_min(0).cumsum(1).clamp(max=values.shape[1])
    starts = F.pad(ends[:, :-1], (1, 0))
    csum = F.pad(values.cumsum(1), (1, 0))
    ccount = F.pad((values != 0).to(values.dtype).cumsum(1), (1, 0))
    sums = csum.gather(1, ends) - csum.gather(1, starts)
    counts = ccount.gather(1, ends) - ccount.gather(1, starts)
    return torch.where(counts == 0, torch.zeros_like(sums), sums / counts.clamp_min(1))
