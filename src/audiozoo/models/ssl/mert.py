"""MERT: Acoustic Music Understanding Model with Large-Scale Self-supervised Training.

Paper: Yizhi Li, Ruibin Yuan, Ge Zhang, Yinghao Ma, Xingran Chen, Hanzhao Yin, Chenghao Xiao, Chenghua Lin, Anton
Ragni, Emmanouil Benetos, Norbert Gyenge, Roger Dannenberg, Ruibo Liu, Wenhu Chen, Gus Xia, Yemin Shi, Wenhao Huang,
Zili Wang, Yike Guo, Jie Fu, "MERT: Acoustic Music Understanding Model with Large-Scale Self-supervised Training",
ICLR 2024, arXiv:2306.00107. Official code: https://github.com/yizhilll/MERT (Apache-2.0): fairseq model
``mert_fairseq/models/mert/mert_model.py``, config ``config/pretrain/MERT_RVQ-VAE_CQT_95M.yaml``, HF port
``scripts/mert_hf/modeling_MERT.py`` (``MERTModel`` = transformers ``HubertModel`` + options), released as
``m-a-p/MERT-v1-95M`` (``trust_remote_code``).

Encoder (= HuBERT base at 24 kHz): the wav2vec 2.0 convolutional feature encoder (7 bias-free convolutions, 512
channels, GroupNorm after the first, GELU; stride 320 -> 75 frames/s), LayerNorm(512), Linear 512 -> 768, a grouped
convolutional position embedding (kernel 128, 16 groups, weight norm), LayerNorm, 12 post-LN transformer layers
(768-d, 12 heads, FFN 3072, GELU). With MERT-v1-95M's config (``feature_extractor_cqt=False``, ``deepnorm=False``,
``attention_relax=-1``) this is exactly transformers' ``HubertModel``; the converter loads its state-dict layout.

Pretext (Sec. 3, official config): HuBERT masked language modelling — span masks (``mask_prob`` 0.8, spans of 5
frames) replace frames by a learned embedding; (a) the *acoustic teacher*: ``Q`` codebooks of ``K`` codes label
every frame; an untied projection to ``Q x final_dim`` (64) scores each codebook's learned code embeddings by
cosine / 0.1, cross-entropy on masked frames, summed over codebooks; (b) the *musical teacher*: a linear head
reconstructs the CQT magnitude (nnAudio ``CQT1992v2``: fmin 32.7 Hz, 336 bins, 48 per octave, hop 320) of masked
frames, MSE; plus 10 x the conv-feature L2 penalty (``loss_weights [10, 1]``: features_pen, cqt). In-batch noise
mixture: with probability 0.5 an item gets 1-3 segments (12k-24k samples) of other items' audio added; the teacher
targets are those of the clean audio. ``feature_grad_mult`` 0.1 scales the conv encoder's gradients; layer drop 0.05.

Departures: (1) acoustic teacher: the paper's is EnCodec's 8 x 1024 RVQ codes; this project has no trained music
codec, so here it is *residual k-means on standardised MFCC frames* (k-means++ / Lloyd, ``audiozoo.nn.quantize.kmeans``;
codebook ``q`` clusters the residual left by codebooks ``< q``; MERT-v0 used k-means on MFCC), fitted on the first
pretraining batch (or by :meth:`MERT.fit_teacher` on more audio) and stored in the state dict. (2) Official
dictionaries may add fairseq's special symbols to each codebook; here each has exactly ``K`` code embeddings.
(3) fairseq's ``forward_padding_mask`` / crops are replaced by explicit valid frame counts; ``mask_replace`` /
``mask_origin`` (0 in the config) are not implemented. (4) The 330M variant's ``attention_relax`` (an fp16 trick,
the same function in fp32) is not needed; ``layer_norm_first`` is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.cqt import cqt
from ...dsp.features import FeatureExtractor
from ...dsp.mel import MFCC
from ...errors import AudioError, CheckpointError, ConfigError
from ...nn.quantize import kmeans
from ...nn.relpos import ConvPositionalEmbedding, RelPosTransformerLayer
from ...nn.wav2vec import ConvFeatureEncoder, conv_output_lengths, hubert_span_mask
from ...registry import register_model
from ...train.losses.ssl import codebook_nce_loss, masked_reconstruction_loss
from ..contracts import SSLModel


@dataclass
class MERTConfig:
    sample_rate: int = 24000
    normalize: bool = False  # per-utterance zero mean / unit variance of the waveform (task.normalize: false)
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    extractor_norm: str = "group"  # fairseq extractor_mode "default"
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    conv_pos: int = 128
    conv_pos_groups: int = 16
    layer_norm_first: bool = False
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1
    layer_drop: float = 0.05
    feature_grad_mult: float = 0.1
    # masked prediction
    mask_prob: float = 0.8
    mask_length: int = 5
    logit_temp: float = 0.1
    final_dim: int = 64
    # acoustic teacher: Q codebooks of K codes (paper: EnCodec RVQ 8 x 1024; here residual k-means on MFCC)
    num_codebooks: int = 8
    codebook_size: int = 1024
    teacher_n_mfcc: int = 20
    teacher_n_mels: int = 64
    teacher_n_fft: int = 1024
    teacher_kmeans_iters: int = 20
    teacher_seed: int = 0
    # musical teacher: CQT magnitude reconstruction (nnAudio CQT1992v2 settings of the official config)
    cqt_bins: int = 336
    cqt_bins_per_octave: int = 48
    cqt_fmin: float = 32.7
    # loss weights (criterion.loss_weights [10, 1] = features_pen, cqt)
    acoustic_weight: float = 1.0
    musical_weight: float = 1.0
    feature_pen_weight: float = 10.0
    # in-batch noise mixture
    mixture_prob: float = 0.5
    mixture_length: tuple[int, int] = (12000, 24000)
    mixture_count: tuple[int, int] = (1, 3)


class MERTFrontend(FeatureExtractor):
    """MERT reads the waveform itself: ``(B, T)`` at 24 kHz -> ``(B, 1, T)`` (optionally standardised per item over
    its valid samples), lengths unchanged. Rejects inputs shorter than the conv encoder's receptive field."""

    config_class = MERTConfig
    config_fields = ("sample_rate", "normalize", "conv_kernel", "conv_stride")

    def __init__(self, config: MERTConfig):
        super().__init__()
        self.config = config
        self.sample_rate, self.hop_length, self.n_features = int(config.sample_rate), 1, 1
        rf, jump = 1, 1
        for k, s in zip(config.conv_kernel, config.conv_stride):
            rf, jump = rf + (k - 1) * jump, jump * s
        self.min_samples = rf
        self.min_samples_reason = "the receptive field of one convolutional frame"

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return n_samples

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if not self.config.normalize:
            return wav, lengths
        valid = (torch.arange(wav.shape[-1], device=wav.device)[None] < lengths[:, None]).to(wav.dtype)
        n = valid.sum(-1, keepdim=True).clamp(min=1)
        mean = (wav * valid).sum(-1, keepdim=True) / n
        var = ((wav - mean) * valid).pow(2).sum(-1, keepdim=True) / n
        return (wav - mean) / torch.sqrt(var + 1e-7) * valid, lengths

    def compute(self, wav: Tensor) -> Tensor:
        return wav[:, None]


class ResidualKMeansTeacher(nn.Module):
    """Acoustic teacher: waveform ``(B, T)`` -> codes ``(B, Q, L)`` (``L = T // hop + 1``), residual k-means on
    standardised MFCC frames. Buffers (saved with the model): ``mean``/``std`` ``(d,)``, ``centroids (Q, K, d)``,
    ``fitted`` (scalar bool)."""

    def __init__(self, c: MERTConfig, hop: int):
        super().__init__()
        self.num_codebooks, self.codebook_size, self.iters, self.seed = (c.num_codebooks, c.codebook_size,
                                                                         c.teacher_kmeans_iters, c.teacher_seed)
        self.mfcc = MFCC(c.sample_rate, c.teacher_n_mfcc, n_fft=c.teacher_n_fft, hop_length=hop,
                         n_mels=c.teacher_n_mels, center=True, pad_mode="constant")
        d = c.teacher_n_mfcc
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.register_buffer("centroids", torch.zeros(c.num_codebooks, c.codebook_size, d))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def frames(self, wav: Tensor) -> Tensor:
        """``(B, T)`` -> MFCC frames ``(B, L, d)`` (float32 outside autocast, not standardised)."""
        with torch.autocast(wav.device.type, enabled=False):
            return self.mfcc(wav.float()).transpose(1, 2)

    @torch.no_grad()
    def fit(self, frames: Tensor) -> None:
        """Fit the statistics and the ``Q`` residual codebooks on MFCC frames ``(N, d)`` (seeded, deterministic)."""
        frames = frames.float()
        self.mean.copy_(frames.mean(0))
        self.std.copy_(frames.std(0).clamp(min=1e-5) if frames.shape[0] > 1 else torch.ones_like(self.std))
        resid = (frames - self.mean) / self.std
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for q in range(self.num_codebooks):
                cents, _ = kmeans(resid, self.codebook_size, self.iters)
                self.centroids[q].copy_(cents)
                resid = resid - cents[torch.cdist(resid, cents).argmin(-1)]
        self.fitted.fill_(True)

    @torch.no_grad()
    def forward(self, wav: Tensor) -> Tensor:
        x = (self.frames(wav) - self.mean.float()) / self.std.float()  # (B, L, d)
        codes = []
        for q in range(self.num_codebooks):
            cents = self.centroids[q].float()
            idx = torch.cdist(x, cents[None].expand(x.shape[0], -1, -1)).argmin(-1)  # (B, L)
            codes.append(idx)
            x = x - cents[idx]
        return torch.stack(codes, 1)


class MERT(SSLModel):
    """MERT encoder + acoustic / musical teachers and their prediction heads.

    ``forward(features (B, 1, T), lengths (B,) samples, **masking) -> {"loss", ...}`` is the pretext task;
    ``extract_features`` -> ``depth + 1`` hidden states ``(B, L, D)`` at 75 frames/s (transformers
    ``HubertModel(..., output_hidden_states=True).hidden_states``).
    """

    # ONNX: the traced conv stack / span bookkeeping holds the example's sample count (measured: another length
    # differs by 0.6); export one length of unpadded audio, 1 s at 24 kHz by default
    export_fixed_length = True
    export_length = 24000

    feature_dim = 1

    def __init__(self, config: MERTConfig):
        super().__init__()
        c = self.config = config
        if c.embed_dim % c.num_heads or c.embed_dim % c.conv_pos_groups:
            raise ConfigError(f"MERT embed_dim {c.embed_dim} must divide by num_heads and conv_pos_groups")
        if not 0.0 < c.mask_prob <= 1.0 or c.mask_length < 1:
            raise ConfigError(f"MERT mask_prob must be in (0, 1] and mask_length >= 1, got {c.mask_prob}, "
                              f"{c.mask_length}")
        self.frontend = MERTFrontend(c)
        self.sample_rate = c.sample_rate
        self.num_layers, self.embed_dim = c.depth, c.embed_dim
        self.feature_encoder = ConvFeatureEncoder(c.conv_dim, c.conv_kernel, c.conv_stride, c.conv_bias,
                                                  c.extractor_norm)
        self.hop_length = self.feature_encoder.total_stride
        cdim = self.feature_encoder.out_dim
        self.layer_norm = nn.LayerNorm(cdim, eps=c.layer_norm_eps)
        self.post_extract_proj = nn.Linear(cdim, c.embed_dim)
        self.dropout_input = nn.Dropout(c.dropout_input)
        self.mask_emb = nn.Parameter(torch.empty(c.embed_dim))
        self.pos_conv = ConvPositionalEmbedding(c.embed_dim, c.conv_pos, c.conv_pos_groups)
        self.encoder_layer_norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            RelPosTransformerLayer(c.embed_dim, c.num_heads, c.ffn_dim, num_layers=c.depth,
                                   norm_first=c.layer_norm_first, gated=False, dropout=c.dropout,
                                   attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout,
                                   eps=c.layer_norm_eps)
            for _ in range(c.depth))
        # pretext heads and teachers
        self.teacher = ResidualKMeansTeacher(c, self.hop_length)
        self.final_proj = nn.Linear(c.embed_dim, c.final_dim * c.num_codebooks)  # untie_final_proj: true
        self.label_embs = nn.Parameter(torch.empty(c.num_codebooks * c.codebook_size, c.final_dim))
        self.cqt_head = nn.Linear(c.embed_dim, c.cqt_bins)  # official encoder_cqt_model.fc
        self._init_weights()

    def _init_weights(self) -> None:
        if self.mask_emb.is_meta:
            return
        for m in self.modules():  # fairseq init_bert_params (Linear N(0, 0.02), zero bias)
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv1d) and m.weight.requires_grad:
                nn.init.kaiming_normal_(m.weight)
        nn.init.uniform_(self.mask_emb)
        nn.init.uniform_(self.label_embs)

    # ---- shapes ---------------------------------------------------------------------------------------
    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid frames of items of ``lengths (B,)`` samples (at least 1)."""
        n = conv_output_lengths(torch.as_tensor(lengths).long(), self.config.conv_kernel, self.config.conv_stride)
        return n.clamp(min=1)

    def example_inputs(self, length: int, batch: int = 2, seed: int = 0) -> tuple[tuple, dict]:
        """A waveform ``(B, 1, T)`` of ``length`` frames' worth of samples, the last item shorter."""
        g = torch.Generator().manual_seed(seed)
        hop, rf = self.hop_length, self.frontend.min_samples
        t = (length - 1) * hop + rf
        lengths = torch.tensor([t] + [max(rf, t - 3 * hop * (i + 1)) for i in range(batch - 1)])
        return (0.1 * torch.randn(batch, 1, t, generator=g),), {"lengths": lengths}

    def _wave(self, x: Tensor) -> Tensor:
        if x.ndim == 3 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 2:
            raise AudioError(f"MERT expects a waveform (B, 1, T) or (B, T) at {self.sample_rate} Hz, got "
                             f"{tuple(x.shape)}")
        if x.shape[-1] < self.frontend.min_samples:
            raise AudioError(f"MERT needs at least {self.frontend.min_samples} samples, got {x.shape[-1]}")
        return x

    # ---- encoder --------------------------------------------------------------------------------------
    def conv_features(self, wav: Tensor) -> Tensor:
        """``(B, T)`` -> conv features ``(B, L, C)`` (gradient scaled by ``feature_grad_mult`` in training)."""
        f = self.feature_encoder(wav)
        m = self.config.feature_grad_mult
        if self.training and m != 1.0:
            f = f * m + f.detach() * (1.0 - m)
        return f.transpose(1, 2)

    def encode(self, x: Tensor, valid: Tensor, mask: Tensor | None = None,
               return_hidden: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Projected features ``x (B, L, D)``, valid frames ``(B,)`` -> ``(output, hidden states)``; ``mask (B, L)``
        replaces frames by the mask embedding first. Hidden states: the first layer's input, then every layer's."""
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)
        pad = torch.arange(x.shape[1], device=x.device)[None] >= valid[:, None]
        pad = pad if bool(pad.any()) else None
        if pad is not None:
            x = x.masked_fill(pad[..., None], 0.0)
        x = x + self.pos_conv(x)
        if not self.config.layer_norm_first:
            x = self.encoder_layer_norm(x)
        x = self.drop(x)
        hidden = [x] if return_hidden else []
        drop = self.config.layer_drop if self.training else 0.0
        for layer in self.layers:
            if not (drop > 0 and float(torch.rand(())) < drop):  # layer drop (fairseq encoder_layerdrop)
                x = layer(x, None, pad)
            if return_hidden:
                hidden.append(x)
        if self.config.layer_norm_first:
            x = self.encoder_layer_norm(x)
            if return_hidden:
                hidden[-1] = x
        return x, hidden

    def extract_features(self, x: Tensor, lengths: Tensor | None = None,
                         layers: list[int] | None = None) -> list[Tensor]:
        """Waveform ``(B, T)`` or ``(B, 1, T)`` (+ ``lengths`` in samples) -> ``depth + 1`` states ``(B, L, D)``;
        positions past :meth:`output_lengths` are zero. ``layers`` picks entries by index."""
        if x.ndim == 2:
            x, lengths = self.frontend(x, lengths)
        wav = self._wave(x)
        feats = self.post_extract_proj(self.layer_norm(self.conv_features(wav)))
        valid = self._valid(lengths, wav, feats.shape[1])
        _, hidden = self.encode(feats, valid, return_hidden=True)
        if layers is not None:
            hidden = [hidden[i] for i in layers]
        keep = (torch.arange(feats.shape[1], device=feats.device)[None] < valid[:, None])[..., None]
        return [h * keep.to(h.dtype) for h in hidden]

    def _valid(self, lengths: Tensor | None, wav: Tensor, n: int) -> Tensor:
        if lengths is None:
            return torch.full((wav.shape[0],), n, dtype=torch.long, device=wav.device)
        return self.output_lengths(lengths.to(wav.device)).clamp(max=n)

    # ---- teachers -------------------------------------------------------------------------------------
    def cqt_targets(self, wav: Tensor) -> Tensor:
        """Musical-teacher targets: CQT magnitude ``(B, L, cqt_bins)`` of ``(B, T)`` (hop = conv stride)."""
        c = self.config
        with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
            return cqt(wav.float(), sr=c.sample_rate, hop_length=self.hop_length, fmin=c.cqt_fmin, n_bins=c.cqt_bins,
                       bins_per_octave=c.cqt_bins_per_octave, method="1992", norm=1, window="hann", center=True,
                       pad_mode="constant").transpose(1, 2)

    @torch.no_grad()
    def fit_teacher(self, wav: Tensor, lengths: Tensor | None = None) -> None:
        """Fit the acoustic teacher (MFCC statistics + residual k-means) on the valid frames of ``wav (B, T)``."""
        wav = self._wave(wav)
        frames = self.teacher.frames(wav)  # (B, L, d), L = T // hop + 1
        if lengths is None:
            self.teacher.fit(frames.flatten(0, 1))
            return
        keep = [int(n) // self.hop_length + 1 for n in lengths.tolist()]
        self.teacher.fit(torch.cat([frames[i, :k] for i, k in enumerate(keep)], 0))

    def mix_in_batch(self, wav: Tensor, prob: float, generator: torch.Generator | None = None) -> Tensor:
        """MERT's in-batch noise mixture: each item, with probability ``prob``, gets ``mixture_count`` segments of
        ``mixture_length`` samples cut from the other items (concatenated) added at random positions."""
        b, t = wav.shape
        if b < 2 or prob <= 0:
            return wav
        lo, hi = (min(int(v), t) for v in self.config.mixture_length)
        nlo, nhi = (int(v) for v in self.config.mixture_count)
        out = wav.clone()
        for i in range(b):
            if float(torch.rand((), generator=generator)) >= prob:
                continue
            pool = torch.cat([wav[:i], wav[i + 1:]]).flatten()
            for _ in range(int(torch.randint(nlo, nhi + 1, (), generator=generator))):
                dur = int(torch.randint(max(lo, 1), max(hi, 1) + 1, (), generator=generator))
                src = int(torch.randint(0, pool.numel() - dur + 1, (), generator=generator))
                dst = int(torch.randint(0, t - dur + 1, (), generator=generator))
                out[i, dst:dst + dur] += pool[src:src + dur]
        return out

    # ---- pretext task ---------------------------------------------------------------------------------
    def forward(self, features: Tensor, lengths: Tensor | None = None, *, mask_prob: float | None = None,
                mask_length: int | None = None, mixture_prob: float | None = None,
                acoustic_weight: float | None = None, musical_weight: float | None = None,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Masked prediction on a waveform ``(B, 1, T)``: ``{"loss", "acoustic", "musical", "feature_pen", "acc"}``.

        Options (default: the config's): ``mask_prob``, ``mask_length`` (span masks); ``mixture_prob`` (in-batch
        noise mixture, training only); ``acoustic_weight`` / ``musical_weight`` (0 switches a teacher off, for
        ablations). ``eval()`` mode draws masks from a fixed seed unless a ``generator`` is given.
        """
        c = self.config
        wav = self._wave(features)
        prob = float(c.mask_prob if mask_prob is None else mask_prob)
        span = int(c.mask_length if mask_length is None else mask_length)
        w_ac = float(c.acoustic_weight if acoustic_weight is None else acoustic_weight)
        w_mu = float(c.musical_weight if musical_weight is None else musical_weight)
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(0)
        if not bool(self.teacher.fitted):
            self.fit_teacher(wav, lengths)
        codes = self.teacher(wav)  # (B, Q, Lt), clean audio
        cqt_t = self.cqt_targets(wav) if w_mu > 0 else None
        if self.training:
            wav = self.mix_in_batch(wav, float(c.mixture_prob if mixture_prob is None else mixture_prob), generator)
        conv = self.conv_features(wav)  # (B, L, C)
        n = min(conv.shape[1], codes.shape[-1], cqt_t.shape[1] if cqt_t is not None else conv.shape[1])
        conv = conv[:, :n]
        feature_pen = conv.float().pow(2).mean()
        x = self.dropout_input(self.post_extract_proj(self.layer_norm(conv)))
        valid = self._valid(lengths, wav, n)
        mask = hubert_span_mask(valid, n, prob, span, generator=generator).to(x.device)
        x, _ = self.encode(x, valid, mask=mask)
        xm = x[mask]  # (M, D): masked valid frames
        out: dict[str, Tensor] = {"feature_pen": feature_pen.detach()}
        loss = c.feature_pen_weight * feature_pen
        proj = self.final_proj(xm).chunk(c.num_codebooks, dim=-1)
        embs = self.label_embs.split(c.codebook_size, 0)
        targets = codes[..., :n].transpose(1, 2)[mask]  # (M, Q)
        ce, accs = xm.new_zeros(()), []
        for q in range(c.num_codebooks):
            lq, aq = codebook_nce_loss(proj[q], embs[q], targets[:, q], c.logit_temp)
            ce, accs = ce + lq, accs + [aq]
        out["acoustic"], out["acc"] = ce.detach(), torch.stack(accs).mean()
        if w_ac > 0:
            loss = loss + w_ac * ce
        if cqt_t is not None:
            mse = masked_reconstruction_loss(self.cqt_head(xm), cqt_t[:, :n][mask], kind="mse")
            out["musical"] = mse.detach()
            loss = loss + w_mu * mse
        return {"loss": loss, **out}


# --------------------------------------------------------------------------- checkpoint converter
_FAIRSEQ_CONV = {"0.weight": "conv.weight", "0.bias": "conv.bias", "2.weight": "layer_norm.weight",
                 "2.bias": "layer_norm.bias"}  # fairseq Sequential(conv, dropout, GroupNorm, GELU)
_HF_LAYER = {"attention.": "self_attn.", "layer_norm.": "self_attn_layer_norm.",
             "feed_forward.intermediate_dense.": "fc1.", "feed_forward.output_dense.": "fc2.",
             "final_layer_norm.": "final_layer_norm."}


def _pos_conv(rest: str) -> str:
    if rest.endswith("original0"):
        return "pos_conv.weight_g"
    if rest.endswith("original1"):
        return "pos_conv.weight_v"
    return "pos_conv." + rest.rsplit(".", 1)[1]


def checkpoint_filter_fn(state: dict[str, Tensor], model: MERT) -> dict[str, Tensor]:
    """A MERT / HuBERT state dict -> audiozoo keys.

    Layouts: transformers ``HubertModel`` / HF ``m-a-p/MERT-v1-95M`` ``MERTModel`` (``feature_extractor.conv_layers``,
    ``feature_projection``, ``encoder.pos_conv_embed.conv`` with legacy ``weight_g/_v`` or parametrized
    ``original0/1``, ``encoder.layers.{i}.attention|feed_forward``, ``masked_spec_embed``; a ``mert_model.`` /
    ``hubert.`` prefix is dropped) and the fairseq ``MERTModel`` (``feature_extractor.conv_layers.{i}.0|2``,
    ``post_extract_proj``, ``encoder.pos_conv.0``, ``mask_emb``, ``final_proj``, ``label_embs_concat``,
    ``encoder_cqt_model.fc``). Checkpoints with ``feature_extractor_cqt`` (CQT concatenated to the conv features)
    are refused. Pretext heads / teacher buffers absent from the checkpoint (HF releases have none), or with other
    shapes, keep the model's own values.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not any(k.startswith(("feature_extractor.", "mert_model.", "hubert.")) for k in state):
        return state  # already audiozoo keys
    out: dict[str, Tensor] = {}
    for key, v in state.items():
        k = key.split(".", 1)[1] if key.startswith(("mert_model.", "hubert.")) else key
        if k.startswith("feature_extractor_cqt."):
            continue
        if k.startswith("feature_extractor.conv_layers."):
            i, rest = k[len("feature_extractor.conv_layers."):].split(".", 1)
            rest = _FAIRSEQ_CONV.get(rest, rest)
            out[f"feature_encoder.conv_layers.{i}.{rest}"] = v
        elif k.startswith("feature_projection.layer_norm."):
            out["layer_norm." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("feature_projection.projection."):
            out["post_extract_proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith(("encoder.pos_conv_embed.conv.", "encoder.pos_conv.0.")):
            out[_pos_conv(k)] = v
        elif k.startswith("encoder.layer_norm."):
            out["encoder_layer_norm." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("encoder.layers."):
            i, rest = k[len("encoder.layers."):].split(".", 1)
            for a, b in _HF_LAYER.items():
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            out[f"layers.{i}.{rest}"] = v
        elif k in ("masked_spec_embed", "mask_emb"):
            out["mask_emb"] = v
        elif k == "label_embs_concat":
            out["label_embs"] = v
        elif k.startswith("encoder_cqt_model.fc."):
            out["cqt_head." + k.rsplit(".", 1)[1]] = v
        elif k.startswith(("layer_norm.", "post_extract_proj.", "final_proj.")):
            out[k] = v
    if "post_extract_proj.weight" in out and "post_extract_proj.weight" in model.state_dict():
        got, want = out["post_extract_proj.weight"].shape[1], model.state_dict()["post_extract_proj.weight"].shape[1]
        if got != want:
            raise CheckpointError(f"MERT checkpoint projects {got} input features, the model {want}: a checkpoint "
                                  "with feature_extractor_cqt=True (CQT concatenated to the conv features) is not "
                                  "supported")
    own = model.state_dict()
    for k, v in own.items():
        own_head = k.startswith(("teacher.", "final_proj.", "label_embs", "cqt_head."))
        if own_head and (k not in out or out[k].shape != v.shape):
            out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="ssl",
    paper="MERT: Acoustic Music Understanding Model with Large-Scale Self-supervised Training (Li, Yuan, Zhang, Ma "
          "et al., ICLR 2024)",
    arxiv="2306.00107",
    official_repo="https://github.com/yizhilll/MERT",
    license="Apache-2.0",
    converter=checkpoint_filter_fn,
)
_TINY = dict(conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), embed_dim=32, depth=2, num_heads=2,
             ffn_dim=64, conv_pos=8, conv_pos_groups=4, final_dim=8, num_codebooks=2, codebook_size=16,
             teacher_n_mfcc=8, teacher_n_mels=16, teacher_n_fft=64, teacher_kmeans_iters=5, cqt_bins=12,
             cqt_bins_per_octave=12, cqt_fmin=1000.0, layer_drop=0.0, mixture_length=(8, 40))
_SMALL = dict(conv_dim=(64,) * 7, embed_dim=256, depth=4, num_heads=4, ffn_dim=1024, conv_pos=64, conv_pos_groups=16,
              num_codebooks=4, codebook_size=128, cqt_bins=84, cqt_bins_per_octave=12, mixture_length=(6000, 12000))


@register_model(params=95_548_112, verified="AP", tiny=_TINY, params_source=(
    "encoder 94,371,712 = transformers HubertModel with MERT-v1-95M's config (conv_bias false, feat_proj_layer_norm "
    "true; counted on meta, equal to HubertModel's count; the '95M' of the name) + pretext heads 1,176,400 "
    "(final_proj 768 -> 8 x 64, 8 x 1024 code embeddings, CQT head 768 -> 336)"), **_PAPER)
def mert_base(**overrides) -> MERT:
    """MERT-v1-95M: HuBERT base at 24 kHz (12 x 768, 75 frames/s), 8 x 1024 acoustic codes, 336-bin CQT head."""
    return MERT(build_config(MERTConfig, {}, **overrides))


@register_model(params=3_625_492, verified="A", tiny=_TINY, params_source=(
    "audiozoo small config (not in the paper): 64-channel conv encoder, 4 x 256-d, 4 heads, FFN 1024, 4 x 128 codes, "
    "84-bin CQT (12 per octave): encoder 3,505,344 + heads 120,148, counted on meta"), **_PAPER)
def mert_small(**overrides) -> MERT:
    """A small MERT for CPU pretraining: same conv strides (75 frames/s at 24 kHz), 4 x 256-d, 4 x 128 codes."""
    return MERT(build_config(MERTConfig, _SMALL, **overrides))
