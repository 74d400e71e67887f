"""PortaSpeech: portable generative TTS with mixture alignment, a flow-prior VAE and a grouped-sharing Glow post-net.

Paper: Yi Ren, Jinglin Liu, Zhou Zhao, "PortaSpeech: Portable and High-Quality Generative Text-to-Speech", NeurIPS
2021, arXiv:2109.15166. Official code: NATSpeech/NATSpeech (MIT), ``modules/tts/portaspeech/{portaspeech.py,
portaspeech_flow.py, fvae.py}`` and ``egs/``; read for facts, nothing copied.

Architecture (Section 3, Figure 1):

- *Linguistic encoder with mixture alignment* (Section 3.2): phoneme encoder (Glow-TTS relative-position transformer,
  :class:`~audiozoo.nn.rel_transformer.RelTransformerEncoder`); word pooling (mean of a word's phoneme states); word
  encoder (the same transformer on the word sequence); a duration predictor on the phoneme states (gradient scaled by
  ``predictor_grad``) whose outputs are summed per word; the length regulator expands *words* to frames (hard
  inter-word alignment); inside each word, frames attend to the word's phonemes (soft intra-word alignment: one-head
  attention masked to the word, queries from the expanded word states + the frame's relative position in the word,
  keys / values from the phoneme states + the phoneme's relative position in the word; positions are sinusoidal
  embeddings of ``k / n``), plus a residual projection and a projection of the frame position.
- *Variational generator* (Section 3.1, "fVAE"): a posterior encoder (conv stride 4 -> WaveNet or conv blocks
  conditioned on the strided decoder input -> mean / log-std of a 16-channel latent at 1/4 of the frame rate), a
  prior enhanced by a volume-preserving flow (:class:`~audiozoo.nn.glow.ResidualCouplingFlow`, conditioned), a
  decoder (transposed conv x4 -> WaveNet / conv blocks conditioned on the linguistic frames -> 80 mels). Training
  samples the posterior; the KL is estimated through the flow (``log q(z|x) - log N(f(z); 0, I)``, computed by
  :func:`audiozoo.train.losses.vae_flow.flow_prior_kl` from the returned ``posterior``). Inference samples
  ``N(0, fvae_noise_scale^2)`` and inverts the flow.
- *Flow-based post-net* (Section 3.3): a Glow (:class:`~audiozoo.nn.glow.Glow`, 12 blocks x 3 WaveNet layers, squeeze
  2, conditioned on the fVAE mel and the linguistic frames, detached) whose coupling WaveNets are shared by groups of
  ``share_wn_layers`` blocks. Training returns the latent and log-determinant of the target mel
  (:func:`~audiozoo.train.losses.vae_flow.postflow_nll`); inference maps ``N(0, noise_scale^2)`` back to a mel.

Configs (``egs/``): ``portaspeech`` / ``portaspeech_small`` are the paper's models as released with the official
pretrained checkpoints (``egs/datasets/audio/lj/ps_flow_nips2021.yaml`` / ``ps_flow_small_nips2021.yaml``: no
word-id embedding, post-LN encoders, WaveNet fVAE). The ``egs_bases`` variants (``ps_flow.yaml``: a word-embedding
encoder over a 10k-word vocabulary, pre-LN, conv fVAE, a conv text post-net) are configs of this class too
(``use_word_encoder``, ``enc_pre_ln``, ``fvae_*_type="conv"``, ``text_encoder_postnet``; parameter counts tested).

Inputs: Piper phoneme ids as ``fastspeech2_*`` (``_`` = id 0 is a real token; padding is carried by ``lengths``);
words from :func:`audiozoo.text.words.word_index` (each of ``^ $ ␣`` and punctuation is a word, ``_`` joins the
previous token's word, as NATSpeech's ``<BOS>``, ``|``, ``<EOS>`` words) unless ``ph2word`` is given. Output: the
natural-log HiFi-GAN mel (22.05 kHz, hop 256, 80 mels, 0-8 kHz) channels first, padded frames at ``ln(1e-5)``.

Departures: the mel is HiFi-GAN's (0-8 kHz, ln) instead of NATSpeech's (80-7600 Hz, log10), so ``hifigan_v1``
weights vocode it; frames are padded internally to a multiple of 4 (NATSpeech crops the data to it) and the output is
cropped back; masks come from ``lengths`` (NATSpeech infers them from id 0 / all-zero rows).

License of this implementation: the project's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...errors import ConfigError
from ...nn.glow import Glow, ResidualCouplingFlow
from ...nn.rel_transformer import RelTransformerEncoder
from ...nn.wavenet import WN, ConditionalResConvBlocks, ResConvBlocks
from ...nn.weight_norm import convert_legacy_weight_norm_keys
from ...registry import register_model
from ...text.words import PIPER_ATTACHED_IDS, PIPER_BOUNDARY_IDS, word_index
from ..contracts import VarianceTTSModel

LOG_FLOOR = math.log(1e-5)


@dataclass
class PortaSpeechConfig:
    """PortaSpeech hyper-parameters (defaults: ``ps_flow_nips2021.yaml``, the paper's normal model; NATSpeech's
    hparam names in comments)."""

    vocab_size: int = 256  # Piper's table
    hidden: int = 192  # hidden_size
    ffn_dim: int = 768  # ffn_hidden_size
    enc_kernel: int = 5  # enc_ffn_kernel_size
    enc_layers: int = 4
    word_enc_layers: int = 4
    heads: int = 2  # num_heads
    dropout: float = 0.0
    enc_prenet: bool = True
    enc_pre_ln: bool = False
    word_enc_prenet: bool = True  # NATSpeech: always (the ph2word / word encoders use the default)
    use_word_encoder: bool = False  # word-id embedding encoder (egs_bases ps.yaml)
    word_vocab_size: int = 0  # NATSpeech: word_dict_size 10000 + <BOS>, <EOS>
    text_encoder_postnet: bool = False
    add_word_pos: bool = True
    dur_layers: int = 3  # dur_predictor_layers
    dur_kernel: int = 5
    dur_dropout: float = 0.2  # predictor_dropout
    predictor_grad: float = 0.1
    latent: int = 16  # latent_size
    fvae_hidden: int = 192  # fvae_enc_dec_hidden
    fvae_kernel: int = 5
    fvae_enc_layers: int = 8
    fvae_dec_layers: int = 4
    fvae_stride: int = 4
    fvae_encoder_type: str = "wn"  # wn | conv
    fvae_decoder_type: str = "wn"
    fvae_noise_scale: float = 1.0
    prior_flow_hidden: int = 64
    prior_flow_kernel: int = 3
    prior_flow_layers: int = 4  # prior_flow_n_blocks: WaveNet layers per coupling
    prior_flow_steps: int = 4  # couplings (fixed to 4 in NATSpeech's FVAE)
    post_flow: bool = True  # use_post_flow
    post_glow_hidden: int = 192
    post_glow_kernel: int = 3
    post_glow_blocks: int = 12
    post_glow_block_layers: int = 3
    share_wn_layers: int = 4
    post_glow_split: int = 4
    post_glow_sqz: int = 2
    sigmoid_scale: bool = False
    detach_postflow_input: bool = True
    noise_scale: float = 0.8  # post-glow sampling temperature
    word_boundary_ids: tuple[int, ...] = PIPER_BOUNDARY_IDS
    word_attached_ids: tuple[int, ...] = PIPER_ATTACHED_IDS
    n_mels: int = 80
    sample_rate: int = 22050
    hop_length: int = 256
    n_fft: int = 1024
    win_length: int = 1024
    f_min: float = 0.0
    f_max: float = 8000.0
    text: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        for k in ("fvae_encoder_type", "fvae_decoder_type"):
            if getattr(self, k) not in ("wn", "conv"):
                raise ConfigError(f"{k} must be 'wn' or 'conv', got {getattr(self, k)!r}")
        if self.use_word_encoder and self.word_vocab_size < 1:
            raise ConfigError("use_word_encoder needs word_vocab_size >= 1")
        if self.fvae_stride < 1 or self.post_glow_sqz < 1:
            raise ConfigError("fvae_stride and post_glow_sqz must be >= 1")


class PortaSpeechOutput(NamedTuple):
    """What :class:`PortaSpeech` returns (``mel`` first, per the tts contract).

    mel: ``(B, n_mels, L)``: with a target mel (training), the fVAE reconstruction; without, the post-glow sample
        (the fVAE sample when ``post_flow=False``); padded frames at ``ln(1e-5)``.
    mel_lengths: ``(B,)``; word_durations: ``(B, W)`` frames per word used; word_durations_pred: ``(B, W)`` predicted
        (linear frames, the sum of the phoneme predictions of each word).
    mel_fvae: ``(B, n_mels, L)`` the fVAE output (= ``mel`` in training).
    posterior: ``(z_q, mean, log_std, z_p, mask)``, each ``(B, latent, L / 4)`` (mask ``(B, 1, L / 4)``) with a
        target mel, else ``None``.
    postflow: ``(z, logdet (B,), mask (B, 1, L'))`` of the target mel through the post-glow, else ``None``.
    attention: ``(B, L, N)`` intra-word attention; ph2word ``(B, N)`` (0 = padding); word_lengths ``(B,)``.
    """

    mel: Tensor
    mel_lengths: Tensor
    word_durations: Tensor
    word_durations_pred: Tensor
    mel_fvae: Tensor
    posterior: tuple[Tensor, Tensor, Tensor, Tensor, Tensor] | None
    postflow: tuple[Tensor, Tensor, Tensor] | None
    attention: Tensor
    ph2word: Tensor
    word_lengths: Tensor


def _sin_pos(x: Tensor, dim: int) -> Tensor:
    """NATSpeech ``SinusoidalPosEmb``: ``(B, T)`` reals -> ``(B, T, dim)`` ``[sin(x w_k), cos(x w_k)]``."""
    half = dim // 2
    w = torch.exp(torch.arange(half, device=x.device, dtype=x.dtype) * -(math.log(10000.0) / (half - 1)))
    e = x[..., None] * w
    return torch.cat([e.sin(), e.cos()], -1)


def _word_position(x2word: Tensor, n_words: int) -> Tensor:
    """Relative position ``k / n`` of each element in its word (``n`` elements, ``k = 1..n``); 0 on padding."""
    onehot = (x2word[:, None, :] == torch.arange(1, n_words + 1, device=x2word.device)[None, :, None]).float()
    return (onehot.cumsum(-1) / onehot.sum(-1).clamp(min=1)[..., None] * onehot).sum(1)


def _expand(h: Tensor, index: Tensor) -> Tensor:
    """Gather ``h (B, W, H)`` by 1-based ``index (B, T)`` (0 -> zeros): ``(B, T, H)``."""
    h = F.pad(h, (0, 0, 1, 0))
    return torch.gather(h, 1, index[..., None].expand(-1, -1, h.shape[-1]))


class _DurationPredictor(nn.Module):
    """NATSpeech ``DurationPredictor``: ``n`` x [conv k -> ReLU -> LayerNorm -> dropout] -> linear -> softplus
    (linear-domain frames), padded positions zeroed."""

    def __init__(self, hidden: int, n_layers: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.ModuleList(nn.Sequential(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2), nn.ReLU(),
                                                _LN(hidden), nn.Dropout(dropout)) for _ in range(n_layers))
        self.linear = nn.Sequential(nn.Linear(hidden, 1), nn.Softplus())

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask[:, None].to(x.dtype)
        x = x.transpose(1, 2)
        for f in self.conv:
            x = f(x) * keep
        return self.linear(x.transpose(1, 2))[..., 0] * mask


class _LN(nn.LayerNorm):
    def forward(self, x: Tensor) -> Tensor:  # channels of (B, C, T)
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


class _WordAttention(nn.Module):
    """One-head attention without biases (fairseq ``MultiheadAttention`` layout: ``in_proj_weight``, ``out_proj``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.out_proj = nn.Linear(hidden, hidden, bias=False)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)

    def forward(self, q: Tensor, kv: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        h = q.shape[-1]
        wq, wk, wv = self.in_proj_weight.split(h, 0)
        scores = (q @ wq.t()) * h ** -0.5 @ (kv @ wk.t()).transpose(1, 2) + bias
        p = torch.softmax(scores.float(), -1).to(q.dtype)
        return self.out_proj(p @ (kv @ wv.t())), p


class _FVAE(nn.Module):
    """The fVAE (NATSpeech ``FVAE`` layout): ``g_pre_net``, ``encoder``, ``prior_flow``, ``decoder``."""

    def __init__(self, c: PortaSpeechConfig) -> None:
        super().__init__()
        s, h, cond = c.fvae_stride, c.fvae_hidden, c.hidden
        self.g_pre_net = nn.Sequential(nn.Conv1d(cond, cond, 2 * s, s, s // 2) if s > 1 else nn.Conv1d(cond, cond, 1))
        enc = nn.Module()
        enc.pre_net = nn.Sequential(nn.Conv1d(c.n_mels, h, 2 * s, s, s // 2) if s > 1 else nn.Conv1d(c.n_mels, h, 1))
        enc.nn = (WN(h, c.fvae_kernel, 1, c.fvae_enc_layers, cond) if c.fvae_encoder_type == "wn"
                  else ConditionalResConvBlocks(h, cond, h, c.fvae_enc_layers, c.fvae_kernel))
        enc.out_proj = nn.Conv1d(h, 2 * c.latent, 1)
        self.encoder = enc
        self.prior_flow = ResidualCouplingFlow(c.latent, c.prior_flow_hidden, c.prior_flow_kernel,
                                               c.prior_flow_layers, c.prior_flow_steps, cond)
        dec = nn.Module()
        dec.pre_net = nn.Sequential(nn.ConvTranspose1d(c.latent, h, s, s))
        dec.nn = (WN(h, c.fvae_kernel, 1, c.fvae_dec_layers, cond) if c.fvae_decoder_type == "wn"
                  else ConditionalResConvBlocks(h, cond, h, c.fvae_dec_layers, c.fvae_kernel))
        dec.out_proj = nn.Conv1d(h, c.n_mels, 1)
        self.decoder = dec
        self.stride = s

    def decode(self, z: Tensor, mask: Tensor, cond: Tensor) -> Tensor:
        d = self.decoder
        x = d.pre_net(z) * mask
        return d.out_proj(d.nn(x, mask, cond) * mask)


class PortaSpeech(VarianceTTSModel):
    """``forward(tokens (B, N), lengths (B,), durations (B, N) | None, mel (B, n_mels, L) | None, ...)
    -> PortaSpeechOutput``.

    Training passes the token ``durations`` (summed per word) and the target ``mel``: the fVAE encodes the mel
    (posterior) and the post-glow maps it to its latent. Inference (no ``mel``) predicts word durations (``alpha``
    scales them), samples the prior and the post-glow (``noise_scale`` / ``fvae_noise_scale`` override the
    config). ``seed`` makes every sample deterministic. ``ph2word (B, N)`` overrides the word grouping; ``words
    (B, W)`` are word ids for ``use_word_encoder``.
    """

    # trained by their own losses, never through the returned (training-path) mel: the word-duration loss (the
    # predictor sees the target durations), the KL through the prior flow, the post-glow NLL
    # (tests/models/test_all_models.py skips them in its gradient check; tests/models/test_portaspeech.py checks
    # every parameter through the full training loss)
    aux_loss_parameters = ("duration_predictor.", "fvae.prior_flow.", "post_flow.")
    vae_flow = True  # the tts task's flow-VAE branch (train/tasks/_vae_flow_terms.py)

    def __init__(self, config: PortaSpeechConfig):
        super().__init__()
        c = self.config = config
        self.vocab_size, self.n_mels = c.vocab_size, c.n_mels
        self.sample_rate, self.hop_length = c.sample_rate, c.hop_length
        h = c.hidden
        self.encoder = RelTransformerEncoder(c.vocab_size, h, c.ffn_dim, c.heads, c.enc_layers, c.enc_kernel,
                                             c.dropout, prenet=c.enc_prenet, pre_ln=c.enc_pre_ln)
        self.duration_predictor = _DurationPredictor(h, c.dur_layers, c.dur_kernel, c.dur_dropout)
        if c.use_word_encoder:  # NATSpeech: filter channels = hidden, 2 heads, default prenet / pre-LN
            self.word_encoder = RelTransformerEncoder(c.word_vocab_size, h, h, 2, c.word_enc_layers, c.enc_kernel,
                                                      prenet=c.word_enc_prenet)
        self.ph2word_encoder = RelTransformerEncoder(0, h, h, 2, c.word_enc_layers, c.enc_kernel,
                                                     prenet=c.word_enc_prenet)
        self.enc_pos_proj = nn.Linear(2 * h, h)
        self.dec_query_proj = nn.Linear(2 * h, h)
        self.dec_res_proj = nn.Linear(2 * h, h)
        self.attn = _WordAttention(h)
        if c.text_encoder_postnet:
            self.text_encoder_postnet = ResConvBlocks(h, h, [1] * 3, 5, layers_in_block=2)
        self.fvae = _FVAE(c)
        if c.add_word_pos:
            self.word_pos_proj = nn.Linear(h, h)
        if c.post_flow:
            self.post_flow = Glow(c.n_mels, c.post_glow_hidden, c.post_glow_kernel, 1, c.post_glow_blocks,
                                  c.post_glow_block_layers, n_split=c.post_glow_split, n_sqz=c.post_glow_sqz,
                                  sigmoid_scale=c.sigmoid_scale, cond_channels=c.n_mels + h,
                                  share_wn_layers=c.share_wn_layers)

    # ---- words ------------------------------------------------------------------------------------------
    def word_index(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``ph2word (B, N)`` (1-based, 0 on padding) from the config's boundary / attached ids."""
        c = self.config
        rows = [word_index(t[: int(n)].tolist(), c.word_boundary_ids, c.word_attached_ids)
                for t, n in zip(tokens.cpu(), lengths.cpu())]
        out = torch.zeros(tokens.shape, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out.to(tokens.device)

    # ---- forward ----------------------------------------------------------------------------------------
    def forward(self, tokens: Tensor, lengths: Tensor | None = None, durations: Tensor | None = None,
                mel: Tensor | None = None, mel_lengths: Tensor | None = None, ph2word: Tensor | None = None,
                words: Tensor | None = None, alpha: float = 1.0, noise_scale: float | None = None,
                fvae_noise_scale: float | None = None, seed: int | None = None, max_frames: int | None = None
                ) -> PortaSpeechOutput:
        """See the class docstring. ``max_frames`` pads / crops the frame axis (the target's ``L`` by default)."""
        c = self.config
        lengths = self._token_lengths(tokens, lengths)
        if alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {alpha}")
        b, n = tokens.shape
        dev = tokens.device
        gen = None if seed is None else torch.Generator(device=dev).manual_seed(int(seed))
        tmask = torch.arange(n, device=dev)[None] < lengths[:, None]
        ph2word = self.word_index(tokens, lengths) if ph2word is None else ph2word.to(dev).long() * tmask
        word_lengths = ph2word.max(1).values
        nw = int(word_lengths.max())
        wmask = torch.arange(nw, device=dev)[None] < word_lengths[:, None]
        # linguistic encoder (Section 3.2)
        h_ph = self.encoder(tokens, tmask) * tmask[..., None]
        if c.use_word_encoder:
            if words is None or words.shape != (b, nw):
                raise ConfigError(f"use_word_encoder needs word ids (B, W) = ({b}, {nw})")
            h_ph = h_ph + _expand(self.word_encoder(words, wmask), ph2word)
        pooled = torch.zeros(b, nw + 1, h_ph.shape[-1], device=dev, dtype=h_ph.dtype).scatter_add(
            1, ph2word[..., None].expand_as(h_ph), h_ph)[:, 1:]
        count = torch.zeros(b, nw + 1, device=dev).scatter_add(1, ph2word, torch.ones_like(ph2word, dtype=torch.float))
        h_word = self.ph2word_encoder(pooled / count[:, 1:].clamp(min=1)[..., None], wmask)
        if c.use_word_encoder:
            h_word = h_word + self.word_encoder(words, wmask)
        dur_in = h_ph.detach() + c.predictor_grad * (h_ph - h_ph.detach())
        dur_ph = self.duration_predictor(dur_in, tmask)
        wd_pred = torch.zeros(b, nw + 1, device=dev, dtype=dur_ph.dtype).scatter_add(1, ph2word, dur_ph)[:, 1:]
        if durations is not None:
            if durations.shape != (b, n):
                raise ConfigError(f"durations must be (B, N) = {(b, n)}, got {tuple(durations.shape)}")
            wd = torch.zeros(b, nw + 1, dtype=torch.long, device=dev).scatter_add(
                1, ph2word, durations.to(dev).long() * tmask)[:, 1:]
        else:
            wd = torch.round(wd_pred.detach() * alpha).long() * wmask
            wd[wd.sum(1) == 0, 0] = 1
        mel_len = wd.sum(1)
        big_l = int(max_frames if max_frames is not None else (mel.shape[-1] if mel is not None else mel_len.max()))
        mult = c.fvae_stride * c.post_glow_sqz // math.gcd(c.fvae_stride, c.post_glow_sqz)
        lp = -(-big_l // mult) * mult
        ends = wd.cumsum(1)
        frames = torch.arange(lp, device=dev)
        mel2word = (torch.searchsorted(ends, frames.expand(b, -1).contiguous(), right=True) + 1) * \
            (frames[None] < torch.clamp(ends[:, -1:], max=big_l))
        fmask = mel2word > 0
        enc_pos = _sin_pos(_word_position(ph2word, nw), c.hidden)
        dec_pos = _sin_pos(_word_position(mel2word, nw), c.hidden)
        kv = self.enc_pos_proj(torch.cat([h_ph, enc_pos], -1))
        q_in = torch.cat([_expand(h_word, mel2word), dec_pos], -1)
        if c.text_encoder_postnet:
            q = res = self.text_encoder_postnet(self.dec_res_proj(q_in))
        else:
            q, res = self.dec_query_proj(q_in), self.dec_res_proj(q_in)
        same_word = (mel2word[:, :, None] == ph2word[:, None, :]).to(q.dtype)
        x, attn = self.attn(q, kv, (1.0 - same_word) * -1e9)
        x = x + res
        if c.add_word_pos:
            x = x + self.word_pos_proj(dec_pos)
        if c.use_word_encoder:
            x = x + _expand(h_word, mel2word)
        fm = fmask[:, None].to(x.dtype)  # (B, 1, Lp)
        x = (x * fm.transpose(1, 2)).transpose(1, 2)  # decoder input (B, H, Lp)
        # variational generator (Section 3.1)
        v = self.fvae
        cond_sqz = v.g_pre_net(x)
        posterior = None
        if mel is not None:
            if mel.ndim != 3 or mel.shape[:2] != (b, c.n_mels):
                raise ConfigError(f"mel must be (B, {c.n_mels}, L), got {tuple(mel.shape)}")
            tgt = F.pad(mel[..., :lp].to(x.dtype), (0, max(0, lp - mel.shape[-1]))) * fm
            e = v.encoder
            hz = e.pre_net(tgt)
            zmask = fm[:, :, ::v.stride][:, :, : hz.shape[-1]]
            hz = e.nn(hz * zmask, zmask, cond_sqz) * zmask
            m_q, logs_q = e.out_proj(hz).split(c.latent, 1)
            z = m_q + torch.randn(m_q.shape, generator=gen, device=dev, dtype=m_q.dtype) * torch.exp(logs_q)
            z_p = v.prior_flow(z, zmask, cond_sqz)
            posterior = (z, m_q, logs_q, z_p, zmask)
        else:
            zmask = fm[:, :, ::v.stride][:, :, : cond_sqz.shape[-1]]
            scale = c.fvae_noise_scale if fvae_noise_scale is None else fvae_noise_scale
            z = torch.randn(b, c.latent, cond_sqz.shape[-1], generator=gen, device=dev, dtype=x.dtype) * scale
            z = v.prior_flow(z, zmask, cond_sqz, reverse=True)
        mel_fvae = v.decode(z, fm, x)
        out, postflow = mel_fvae, None
        if c.post_flow:
            g = torch.cat([mel_fvae, x], 1)
            if mel is not None:
                z_pf, logdet = self.post_flow(tgt, fm, g.detach() if c.detach_postflow_input else g)
                postflow = (z_pf, logdet, fm)
            else:
                scale = c.noise_scale if noise_scale is None else noise_scale
                z_pf = torch.randn(mel_fvae.shape, generator=gen, device=dev, dtype=x.dtype) * scale
                out, _ = self.post_flow(z_pf, fm, g, reverse=True)
        crop = lambda t: t[..., :big_l].masked_fill(~fmask[:, None, :big_l], LOG_FLOOR)  # noqa: E731
        return PortaSpeechOutput(crop(out), mel_len.clamp(max=big_l), wd, wd_pred, crop(mel_fvae), posterior,
                                 postflow, attn[:, :big_l], ph2word, word_lengths)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, alpha: float = 1.0, pitch_shift: float = 0.0,
                   energy_scale: float = 1.0, speaker: Tensor | None = None, noise_scale: float | None = None,
                   fvae_noise_scale: float | None = None, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Inference: ``(mel (B, n_mels, L), mel_lengths (B,))`` from predicted word durations and prior samples.

        ``pitch_shift`` / ``energy_scale`` / ``speaker`` (the FastSpeech 2 controls of the tts pipeline) must stay at
        their defaults: PortaSpeech has no explicit pitch or energy and one speaker."""
        if pitch_shift != 0.0 or energy_scale != 1.0 or speaker is not None:
            raise ConfigError("PortaSpeech has no pitch / energy controls and one speaker (prosody comes from the "
                              "VAE prior: vary noise_scale / fvae_noise_scale / seed)")
        return self._eval_forward(tokens, lengths, alpha=alpha, noise_scale=noise_scale,
                                  fvae_noise_scale=fvae_noise_scale, seed=seed)

    # ---- contract -----------------------------------------------------------------------------------------
    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """Training-path inputs: tokens, lengths, 1-3 frames per token, a target log-mel and a fixed ``seed``."""
        args, kwargs = super().example_inputs(length, batch, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lengths = kwargs["lengths"]
        dur = torch.randint(1, 4, (batch, length), generator=g) * (torch.arange(length)[None] < lengths[:, None])
        frames = dur.sum(1)
        mel = torch.randn(batch, self.n_mels, int(frames.max()), generator=g) - 5.0
        kwargs.update(durations=dur, mel=mel, mel_lengths=frames, seed=seed)
        return args, kwargs

    def check_outputs(self, args: tuple, kwargs: dict, out: Any) -> None:
        super().check_outputs(args, kwargs, out)
        if kwargs.get("durations") is not None and not torch.equal(out.mel_lengths, kwargs["durations"].sum(1)):
            raise ConfigError("mel_lengths must equal the summed durations")


def checkpoint_filter_fn(state_dict: dict, model: PortaSpeech | None = None) -> dict:
    """NATSpeech ``PortaSpeechFlow`` state dict (``model.*`` of a ``model_ckpt_steps_*.ckpt``'s ``state_dict``,
    unpacked by the caller: never unpickled here) -> this layout: legacy weight-norm keys renamed, LayerNorm
    ``gamma`` / ``beta`` -> ``weight`` / ``bias``, ``dur_predictor`` -> ``duration_predictor``, the LU buffers of the
    1x1 convs kept, the unused FastSpeech leftovers (``pitch_embed``, ``spk_*``) dropped. The official ``encoder.emb``
    rows follow NATSpeech's own phone set, not Piper's: such weights need ``vocab_size`` = that set's size and its
    ids."""
    sd = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith(("pitch_embed", "spk_id_proj", "spk_embed_proj"))}
    sd = {("duration_predictor" + k[len("dur_predictor"):] if k.startswith("dur_predictor.") else k): v
          for k, v in sd.items()}
    # Glow-TTS's channel LayerNorm names its affine parameters gamma / beta; nn.ChannelLayerNorm's are weight / bias
    sd = {(k[:-len("gamma")] + "weight" if k.endswith(".gamma") else k[:-len("beta")] + "bias"
           if k.endswith(".beta") else k): v for k, v in sd.items()}
    return convert_legacy_weight_norm_keys(sd)


# ------------------------------------------------------------------------------------------------ registry
_PAPER = dict(
    family="tts",
    paper="PortaSpeech: Portable and High-Quality Generative Text-to-Speech (Ren, Liu, Zhao, NeurIPS 2021)",
    arxiv="2109.15166",
    official_repo="https://github.com/NATSpeech/NATSpeech",
    license="official code MIT; this code: the project's",
    converter=checkpoint_filter_fn,
)
_SMALL = dict(hidden=128, ffn_dim=512, enc_kernel=3, enc_layers=3, word_enc_layers=3, fvae_hidden=128,
              fvae_kernel=3, fvae_dec_layers=3, prior_flow_hidden=32, prior_flow_layers=3, post_glow_hidden=128,
              post_glow_blocks=8, noise_scale=0.6)
_TINY = dict(vocab_size=40, hidden=16, ffn_dim=32, enc_kernel=3, enc_layers=1, word_enc_layers=1, dur_layers=1,
             dur_kernel=3, latent=4, fvae_hidden=16, fvae_kernel=3, fvae_enc_layers=2, fvae_dec_layers=2,
             prior_flow_hidden=8, prior_flow_layers=1, prior_flow_steps=2, post_glow_hidden=16, post_glow_blocks=2,
             post_glow_block_layers=2, share_wn_layers=2, n_mels=20, n_fft=256, win_length=256,
             # no conv pre-nets: their zero-initialised projection (Glow-TTS's) stops every gradient at step 0
             enc_prenet=False, word_enc_prenet=False)


def _build(base: dict, overrides: dict) -> PortaSpeech:
    return PortaSpeech(build_config(PortaSpeechConfig, base, **overrides))


@register_model(params=26_012_801, verified="AP", tiny=_TINY,
                params_source="[code] NATSpeech PortaSpeechFlow built from egs/datasets/audio/lj/"
                              "ps_flow_nips2021.yaml with a 256-symbol phone table: identical count (test); "
                              "21.77M without the training-only posterior encoder (the project reference notes "
                              "~21.8M for the paper's normal model, unverified)",
                **_PAPER)
def portaspeech(**overrides) -> PortaSpeech:
    """PortaSpeech (normal), the paper's model as released (``ps_flow_nips2021.yaml``)."""
    return _build({}, overrides)


@register_model(params=8_180_017, verified="AP", tiny=_TINY,
                params_source="[code] NATSpeech PortaSpeechFlow built from ps_flow_small_nips2021.yaml with a "
                              "256-symbol phone table: identical count (test); 6.80M without the training-only "
                              "posterior encoder, vs the abstract's 6.7M",
                **_PAPER)
def portaspeech_small(**overrides) -> PortaSpeech:
    """PortaSpeech (small), the paper's 6.7M lightweight model as released (``ps_flow_small_nips2021.yaml``)."""
    return _build(_SMALL, overrides)
