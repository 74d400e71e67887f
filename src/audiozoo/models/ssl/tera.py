"""TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech.

Paper: Andy T. Liu, Shang-Wen Li, Hung-yi Lee, "TERA: Self-Supervised Learning of Transformer Encoder
Representation for Speech", IEEE/ACM TASLP 29, 2021, arXiv:2007.06028. Official code: s3prl
(https://github.com/s3prl/s3prl, Apache-2.0): network ``upstream/mockingjay/model.py::TransformerModel`` and
``TransformerSpecPredictionHead``, alterations ``pretrain/mockingjay/task.py::generate_masked_acoustic_model_data``,
config ``pretrain/tera/exp_model_config/logMelBase-T-F-M.yaml``, front end ``upstream/baseline/preprocessor.py``.

A post-LN (BERT) Transformer encoder over 80-bin log-mel frames (input projection + sinusoidal positions +
LayerNorm), pretrained to reconstruct the clean frames from an altered copy (Sec. III), L1 on the altered
positions only:

- time alteration: spans of 7 frames covering 15 % of each utterance; the spans are zeroed (80 %), replaced by
  other frames (10 %) or left unchanged (10 %), as BERT;
- frequency (channel) alteration: one band of up to 20 % of the bins zeroed over the whole utterance;
- magnitude alteration: with probability 0.15 Gaussian noise (std 0.2) on the whole batch (no label of its own).

Base: 3 layers x 768, 12 heads, FFN 3072, GELU, dropout 0.1 (the released default ``..._960hr_drop1``; the
100-hour config file says 0.3), LayerNorm eps 1e-12; inputs longer than 1500 frames are cut into equal chunks
(``sequence_length``) as the s3prl upstream does. Departure: the shared MLP block applies dropout after the
activation too (BERT does not; identical in eval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ...config import build_config
from ...dsp.features import FeatureExtractor
from ...dsp.mel import mel_filterbank
from ...dsp.stft import Spectrogram, stft_lengths
from ...errors import AudioError, ConfigError
from ...nn import TransformerEncoder, band_mask, span_starts
from ...registry import register_model
from ...train.losses.ssl import masked_reconstruction_loss
from ..contracts import SSLModel


@dataclass
class TERAConfig:
    n_mels: int = 80  # input_dim (log-mel bins)
    embed_dim: int = 768  # hidden_size
    depth: int = 3
    num_heads: int = 12
    intermediate_size: int = 3072
    dropout: float = 0.1  # hidden_dropout_prob
    attn_dropout: float = 0.1  # attention_probs_dropout_prob
    layer_norm_eps: float = 1e-12
    max_length: int = 1500  # sequence_length: longer inputs are cut into equal chunks
    # alterations (logMelBase-T-F-M.yaml)
    time_proportion: float = 0.15  # mask_proportion
    time_span: tuple[int, int] = (7, 7)  # mask_consecutive_min / _max
    freq_max_fraction: float = 0.2  # mask_frequency
    noise_proportion: float = 0.15
    noise_std: float = 0.2
    loss: str = "l1"  # "l1" | "mse"
    # front-end (OnlinePreprocessor: win 25 ms, hop 10 ms, n_freq 201, log mel + CMVN)
    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    target_level: float = -25.0  # dB RMS of each utterance before the STFT


class TERAFrontend(FeatureExtractor):
    """Waveform ``(B, T)`` at 16 kHz -> per-utterance normalised log-mel ``(B, n_mels, L)`` and frame lengths.

    s3prl's on-the-fly preprocessor: each utterance scaled to ``target_level`` dB RMS, centred STFT (Hann 400,
    hop 160, reflect padding), power, HTK mel filters without normalisation over 0-8 kHz (torchaudio's
    ``MelScale`` defaults), ``log(x + 1e-10)``, then CMVN over the utterance's frames (unbiased std + 1e-10).
    Padded frames are zero. ``L = T // hop + 1``.
    """

    config_class = TERAConfig
    config_fields = ("sample_rate", "n_mels", "n_fft", "hop_length", "target_level")

    def __init__(self, config: TERAConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.n_features, self.hop_length = c.sample_rate, c.n_mels, c.hop_length
        self.min_samples = c.n_fft // 2 + 1
        self.min_samples_reason = f"reflect padding by n_fft/2={c.n_fft // 2} needs more samples than that"
        self.spec = Spectrogram(c.n_fft, c.hop_length, c.n_fft, "hann", center=True, pad_mode="reflect", power=2.0)
        self.register_constant("fb", mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, 0.0, c.sample_rate / 2,
                                                    htk=True, norm=None, dtype=torch.float64))

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return stft_lengths(n_samples, self.config.n_fft, self.config.hop_length, center=True)

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        valid = (torch.arange(wav.shape[-1], device=wav.device)[None] < lengths[:, None]).to(wav.dtype)
        rms = ((wav * valid).pow(2).sum(-1) / lengths.clamp(min=1)).sqrt()
        return wav * valid * (10 ** (self.config.target_level / 20) / (rms + 1e-10))[:, None], lengths

    def compute(self, wav: Tensor) -> Tensor:
        power = self.spec(wav.double())
        return torch.log(torch.matmul(self.fb.to(power.dtype), power) + 1e-10)

    def finish(self, feats: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        valid = (torch.arange(feats.shape[-1], device=feats.device)[None] < frames[:, None])[:, None, :]
        n = frames.clamp(min=1).to(feats.dtype)[:, None, None]
        mean = (feats * valid).sum(-1, keepdim=True) / n
        var = ((feats - mean).pow(2) * valid).sum(-1, keepdim=True) / (n - 1).clamp(min=1)
        return ((feats - mean) / (var.sqrt() + 1e-10)) * valid, frames


def sinusoid_table(length: int, dim: int) -> Tensor:
    """``(length, dim)`` sin (even channels) / cos (odd) positions, computed in float64 as s3prl's numpy table."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    angle = pos / torch.pow(10000.0, 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim)[None]
    angle[:, 0::2] = torch.sin(angle[:, 0::2])
    angle[:, 1::2] = torch.cos(angle[:, 1::2])
    return angle.float()


class TERA(SSLModel):
    """TERA encoder with its reconstruction head.

    ``extract_features(features (B, n_mels, L), lengths)`` -> ``depth + 1`` hidden states ``(B, L, D)`` (the
    input representation after its LayerNorm, then every layer), as s3prl's ``hidden_states``; ``forward`` is
    the alteration + L1 reconstruction pretext task.
    """

    def __init__(self, config: TERAConfig):
        super().__init__()
        c = self.config = config
        if c.loss not in ("l1", "mse"):
            raise ConfigError(f"TERAConfig.loss must be 'l1' or 'mse', got {c.loss!r}")
        if not 1 <= c.time_span[0] <= c.time_span[1]:
            raise ConfigError(f"TERAConfig.time_span must be (min, max) with 1 <= min <= max, got {c.time_span}")
        self.frontend = TERAFrontend(c)
        self.num_layers, self.embed_dim = c.depth, c.embed_dim
        self.input_proj = nn.Linear(c.n_mels, c.embed_dim)  # spec_transform
        self.input_norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self.input_drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.embed_dim, c.depth, c.num_heads, c.intermediate_size / c.embed_dim, True,
                                          norm_first=False, eps=c.layer_norm_eps, drop=c.dropout,
                                          attn_drop=c.attn_dropout, act="gelu", final_norm=False)
        # TransformerSpecPredictionHead: dense -> GELU -> LayerNorm -> output
        self.spec_head = nn.Sequential(nn.Linear(c.embed_dim, c.embed_dim), nn.GELU(),
                                       nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps),
                                       nn.Linear(c.embed_dim, c.n_mels))
        self._init_weights()

    def _init_weights(self) -> None:
        if self.input_proj.weight.is_meta:
            return
        for m in self.modules():  # TransformerInitModel: N(0, 0.02) Linear weights, zero biases, LayerNorm 1 / 0
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """One output frame per input frame: ``(B,)``."""
        return torch.as_tensor(lengths).long().clamp(min=1)

    def _check(self, features: Tensor) -> None:
        if features.ndim != 3 or features.shape[1] != self.config.n_mels or features.shape[-1] < 1:
            raise AudioError(f"TERA expects features (B, {self.config.n_mels}, L), got shape {tuple(features.shape)}")

    def _encode(self, x: Tensor, lengths: Tensor | None) -> list[Tensor]:
        """``x (B, L, n_mels)`` -> ``depth + 1`` hidden states ``(B, L, D)`` (no chunking)."""
        b, n, _ = x.shape
        h = self.input_drop(self.input_norm(self.input_proj(x) + sinusoid_table(n, self.embed_dim).to(x)))
        kpm = None
        if lengths is not None:
            kpm = torch.arange(n, device=x.device)[None] >= lengths.to(x.device)[:, None]
            kpm = kpm if bool(kpm.any()) else None
        _, hidden = self.encoder(h, kpm, return_hidden=True)
        return [h] + hidden

    def extract_features(self, x: Tensor, lengths: Tensor | None = None,
                         layers: list[int] | None = None) -> list[Tensor]:
        """Features ``(B, n_mels, L)`` (or a 16 kHz waveform ``(B, T)``) -> ``depth + 1`` hidden states ``(B, L, D)``;
        ``layers`` picks entries by index; frames past ``lengths`` are zero."""
        if x.ndim == 2:
            x, lengths = self.frontend(x, lengths)
        self._check(x)
        b, _, n = x.shape
        lengths = torch.full((b,), n, dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long()
        lengths = lengths.to(x.device)
        seq = x.transpose(1, 2)
        chunks = math.ceil(n / self.config.max_length)
        outs, start = [], 0
        for part in torch.chunk(seq, chunks, dim=1):  # s3prl: equal chunks of at most sequence_length frames
            valid = (lengths - start).clamp(0, part.shape[1])
            outs.append(self._encode(part, torch.where(valid > 0, valid, part.shape[1])))
            start += part.shape[1]
        states = [torch.cat([o[i] for o in outs], dim=1) for i in range(self.num_layers + 1)]
        if layers is not None:
            states = [states[i] for i in layers]
        keep = (torch.arange(n, device=x.device)[None] < lengths[:, None])[..., None].to(x.dtype)
        return [s * keep for s in states]

    # ---- pretext task ---------------------------------------------------------------------------------
    def alter(self, features: Tensor, lengths: Tensor | None = None, *, time_proportion: float | None = None,
              time_span: tuple[int, int] | None = None, freq_max_fraction: float | None = None,
              noise_proportion: float | None = None, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor]:
        """The three alterations of ``features (B, n_mels, L)`` -> ``(altered (B, L, n_mels), labels (B, L, n_mels)
        bool)``: True where the loss looks (altered time spans on all bins; the altered band on valid frames)."""
        c = self.config
        tp = c.time_proportion if time_proportion is None else float(time_proportion)
        lo, hi = tuple(time_span or c.time_span)
        fr = c.freq_max_fraction if freq_max_fraction is None else float(freq_max_fraction)
        nz = c.noise_proportion if noise_proportion is None else float(noise_proportion)
        b, nbins, n = features.shape
        spec = features.transpose(1, 2).clone()
        label = torch.zeros(b, n, nbins, dtype=torch.bool, device=features.device)
        lens = [n] * b if lengths is None else torch.as_tensor(lengths).clamp(max=n).tolist()
        bands = band_mask(b, nbins, fr, generator).to(features.device) if fr > 0 else None
        for i, li in enumerate(lens):
            if tp > 0:
                span = int(torch.randint(lo, hi + 1, (1,), generator=generator))
                count = round(li * tp / span)
                starts = span_starts(li, span, count, generator)
                if len(starts):
                    where = (starts[:, None] + torch.arange(span)).flatten().clamp(max=n - 1).to(features.device)
                    dice = float(torch.rand((), generator=generator))
                    if dice < 0.8:
                        spec[i, where] = 0.0
                    elif dice < 0.9:  # replaced by other random frames of the utterance
                        other = span_starts(li, span, count, generator)
                        src = (other[:, None] + torch.arange(span)).flatten().clamp(max=n - 1).to(features.device)
                        spec[i, where] = spec[i, src[: len(where)]] if len(src) >= len(where) else spec[i, where]
                    label[i, where] = True
            if bands is not None and bool(bands[i].any()):
                spec[i, :, bands[i]] = 0.0
                label[i, :li, bands[i]] = True
        if nz > 0 and float(torch.rand((), generator=generator)) < nz:
            noise = torch.randn(spec.shape, generator=generator, dtype=spec.dtype) * c.noise_std
            spec = spec + noise.to(spec.device)
        return spec, label

    def forward(self, features: Tensor, lengths: Tensor | None = None, *, time_proportion: float | None = None,
                time_span: tuple[int, int] | None = None, freq_max_fraction: float | None = None,
                noise_proportion: float | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Alter ``features (B, n_mels, L)`` and reconstruct them: ``{"loss", "l1" | "mse"}`` over the altered
        positions. The keyword arguments override the config's alterations (0 disables one); ``eval()`` mode
        draws them from a fixed seed unless a ``generator`` is given."""
        self._check(features)
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(0)
        spec, label = self.alter(features, lengths, time_proportion=time_proportion, time_span=time_span,
                                 freq_max_fraction=freq_max_fraction, noise_proportion=noise_proportion,
                                 generator=generator)
        lens = None if lengths is None else torch.as_tensor(lengths).to(features.device)
        last = self._encode(spec, lens)[-1]
        pred = self.spec_head(last).float()
        target = features.transpose(1, 2).float()
        # over the altered positions; nothing altered (very short inputs): a zero loss that keeps the graph
        loss = masked_reconstruction_loss(pred, target, label, kind=self.config.loss)
        return {"loss": loss, self.config.loss: loss.detach()}



# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Any], model: TERA) -> dict[str, Tensor]:
    """s3prl's checkpoint (``{"Transformer": TransformerModel state, "SpecHead": head state, ...}``, or the same
    flattened as ``Transformer.*`` / ``SpecHead.*``) -> audiozoo keys. Old TF-style ``gamma``/``beta`` names are
    accepted; separate query/key/value projections are fused."""
    flat: dict[str, Tensor] = {}
    for k, v in state.items():
        if isinstance(v, dict) and k in ("Transformer", "SpecHead"):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, Tensor):
            flat[k] = v
    if not any(k.startswith(("Transformer.", "SpecHead.")) for k in flat):
        return state
    flat = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in flat.items()}
    out: dict[str, Tensor] = {}
    t, h = "Transformer.", "SpecHead."
    for w in ("weight", "bias"):
        out[f"input_proj.{w}"] = flat[f"{t}input_representations.spec_transform.{w}"]
        out[f"input_norm.{w}"] = flat[f"{t}input_representations.LayerNorm.{w}"]
        for i in range(model.config.depth):
            s, d = f"{t}encoder.layer.{i}.", f"encoder.blocks.{i}."
            qkv = [flat[s + f"attention.self.{n}.{w}"] for n in ("query", "key", "value")]
            out[d + f"attn.qkv.{w}"] = torch.cat(qkv)
            out[d + f"attn.proj.{w}"] = flat[s + f"attention.output.dense.{w}"]
            out[d + f"norm1.{w}"] = flat[s + f"attention.output.LayerNorm.{w}"]
            out[d + f"mlp.fc1.{w}"] = flat[s + f"intermediate.dense.{w}"]
            out[d + f"mlp.fc2.{w}"] = flat[s + f"output.dense.{w}"]
            out[d + f"norm2.{w}"] = flat[s + f"output.LayerNorm.{w}"]
        if f"{h}dense.{w}" in flat:
            out[f"spec_head.0.{w}"] = flat[f"{h}dense.{w}"]
            out[f"spec_head.2.{w}"] = flat[f"{h}LayerNorm.{w}"]
            out[f"spec_head.3.{w}"] = flat[f"{h}output.{w}"]
    return out


# --------------------------------------------------------------------------- registered variants
_TINY = dict(n_mels=16, embed_dim=32, depth=2, num_heads=2, intermediate_size=64, max_length=48)


@register_model(family="ssl", paper="TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech "
                "(Liu, Li & Lee, IEEE/ACM TASLP 2021)", arxiv="2007.06028",
                params=21_981_008, params_source="computed: encoder 21,327,360 (input projection + 3 x 768 layers; "
                "the paper's ~21.3M) + reconstruction head 653,648 (s3prl TransformerSpecPredictionHead, 80 bins)",
                verified="A", tiny=_TINY, official_repo="https://github.com/s3prl/s3prl", license="Apache-2.0",
                converter=checkpoint_filter_fn)
def tera_base(**overrides) -> TERA:
    """TERA base (logMelBase-T-F-M): 3 x 768, 80 log-mel bins, time + frequency + magnitude alteration."""
    return TERA(build_config(TERAConfig, {}, **overrides))
