"""Acoustic-model (text-to-mel) training: FastSpeech 2 style, with ground-truth durations, pitch and energy.

Batches come from a manifest with ``phoneme_ids`` (token ids) and ``durations`` (frames per id), e.g. the
``piper-speech`` corpus, whose durations are the Piper voice's own (frames of 256 samples at 22.05 kHz, the
hop of HiFi-GAN's mel: ground truth with no aligner). Per item the task computes, once (cached in memory by
``audio_filepath``), float32 and outside autocast:

* the target log-mel with the model's :meth:`mel_extractor` (HiFi-GAN's ``VocoderMel``: ``L = T // 256``
  frames, frame ``i`` centred on sample ``256 i + 128``);
* F0 on the same grid (WORLD DIO + StoneMask, FastSpeech 2's choice, on the waveform shifted by half a hop so
  that frame ``i`` is centred on ``256 i + 128``), unvoiced frames linearly interpolated (ming024), as
  ``ln F0``;
* energy, the L2 norm of the STFT magnitude per frame (FastSpeech 2 Section 2.3), on the same grid.

Pitch and energy are normalised with the corpus mean / std, computed from the training set at the start of
training (``on_fit_start``, also filling the cache) and stored in the model's ``pitch_stats`` /
``energy_stats`` buffers, so a checkpoint carries them. Phoneme-level models get the mean over each token's
frames (ming024's ``phoneme_level``). CWT models (``pitch_level="cwt"``, the FastSpeech 2 paper's variant) also
get, per utterance, the ``ln F0`` contour normalised to zero mean / unit variance over its frames, its Mexican-hat
CWT pitch spectrogram ``(L, 10)`` (:func:`audiozoo.dsp.cwt.pitch_cwt`) and its ``[mean, std]`` in the corpus units
(``pitch_spectrogram``, ``pitch_moments``); the frame pitch still feeds the bucket embedding under teacher forcing.

Loss (:mod:`audiozoo.train.losses.tts`): ``lambda_mel * (mel + post-net mel) + lambda_duration * duration +
lambda_pitch * pitch + lambda_energy * energy``, ming024's sum with unit weights by default. For a CWT model
the pitch term is the paper's: ``lambda_pitch * (pitch + pitch_mean + pitch_std)``, MSE of the pitch spectrogram
over valid frames and of the utterance mean and std. Validation reports
the same terms under teacher forcing; ``mel_l1`` (post-net output, L1 in ln units) is the monitored value.

Duration-only models (a ``duration_predictor`` and no ``pitch_stats``: FastSpeech) train on the mel and the
manifest's durations (the Transformer TTS teacher's, for the paper's recipe): ``lambda_mel * (mel + post-net mel)
+ lambda_duration * duration``.

Autoregressive models (``model.autoregressive``: Transformer TTS, Tacotron 2) need no durations, pitch or energy
(a batch's ``speaker_embedding`` (B, S), SV2TTS's d-vectors, is passed to the model as is): the target
is the mel alone (``L = sum(durations)`` frames when the manifest has durations, else ``T // hop``), the model
runs teacher-forced, and the loss is ``lambda_mel * (mel + post-net mel) + lambda_stop * stop-token BCE
(stop_pos_weight on the last frame) + lambda_guided_attn * guided attention`` (on the first
``guided_attn_heads`` heads of the last ``guided_attn_layers`` decoder layers, as espnet; 0 = off).

Waveform models (a ``waveform_decoder``: FastSpeech 2s) add, on a random slice of ``segment_frames`` frames decoded
to waveform, Parallel WaveGAN's multi-resolution STFT loss and (with discriminators, the default Parallel WaveGAN's)
an LSGAN term: the ``waveform`` option (:class:`~audiozoo.train.tasks._wave_terms.WaveformTerms`), its defaults the
paper's. With discriminators the engine runs two optimiser stages per batch (discriminators, then the model).

Flow-VAE models (``model.vae_flow``: PortaSpeech) run teacher-forced on the manifest's durations (summed per word)
and the target mel; the loss is the ``vae_flow`` option's (:class:`~audiozoo.train.tasks._vae_flow_terms.VAEFlowTerms`:
mel L1 + SSIM, word duration, flow-prior KL with its start step, post-glow NLL in a second stage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...dsp.cwt import CWT_NUM_SCALES, pitch_cwt
from ...dsp.pitch import energy as frame_energy
from ...dsp.pitch import f0_world, f0_yin, interpolate_unvoiced
from ...errors import ConfigError, DataError
from ..losses.tts import (
    duration_loss,
    guided_attention_loss,
    masked_mel_loss,
    masked_value_loss,
    sequence_mask,
    stop_token_loss,
)
from ._vae_flow_terms import VAEFlowTerms
from ._wave_terms import WaveformTerms
from .base import Task, register_task, unwrap

__all__ = ["TTSTask", "cwt_targets", "pad_lists", "token_average"]

PITCH_METHODS = ("dio", "harvest", "yin")


def pad_lists(seqs: Sequence[Sequence[int]], value: int = 0, device: torch.device | str = "cpu"
              ) -> tuple[Tensor, Tensor]:
    """Integer lists -> ``(B, N_max)`` long (padded with ``value``) and lengths ``(B,)``."""
    if not seqs or any(len(s) == 0 for s in seqs):
        raise DataError("every item needs a non-empty token / duration list")
    n = max(len(s) for s in seqs)
    out = torch.full((len(seqs), n), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out.to(device), torch.tensor([len(s) for s in seqs], dtype=torch.long, device=device)


def token_average(values: Tensor, durations: Tensor) -> Tensor:
    """Mean of frame values ``(B, L)`` over each token's frames (durations ``(B, N)``) -> ``(B, N)``; 0 for tokens
    with no frame (ming024's phoneme-level pitch/energy)."""
    b, n = durations.shape
    ends = durations.cumsum(1)
    token = torch.searchsorted(ends, torch.arange(values.shape[1], device=values.device).expand(b, -1).contiguous(),
                               right=True).clamp(max=n - 1)
    valid = torch.arange(values.shape[1], device=values.device)[None] < ends[:, -1:]
    sums = torch.zeros(b, n, dtype=values.dtype, device=values.device).scatter_add_(1, token, values * valid)
    return sums / durations.clamp_min(1).to(values.dtype)


def cwt_targets(pitch: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
    """FastSpeech 2's CWT pitch targets from the corpus-normalised frame pitch ``(B, L)`` (``frames (B,)`` valid):
    ``(spectrogram (B, L, 10), moments (B, 2))``.

    Per utterance the contour is normalised to zero mean / unit variance over its valid frames (the same as
    normalising ``ln F0`` itself) and transformed alone (:func:`~audiozoo.dsp.cwt.pitch_cwt`); ``moments`` are
    its mean and std (population) in the corpus units. A flat contour (nothing voiced) gives zeros.
    """
    b, big_l = pitch.shape
    spec = torch.zeros(b, big_l, CWT_NUM_SCALES, dtype=torch.float32)
    moments = torch.zeros(b, 2, dtype=torch.float32)
    for i in range(b):
        p = pitch[i, : int(frames[i])].detach().double().cpu()
        if p.numel() == 0:
            continue
        mean, std = p.mean(), p.std(unbiased=False)
        moments[i] = torch.stack([mean, std]).float()
        if float(std) > 1e-6:
            spec[i, : p.numel()] = pitch_cwt((p - mean) / std).float()
    return spec.to(pitch.device), moments.to(pitch.device)


@register_task("tts")
class TTSTask(Task):
    """Train an acoustic model on (token ids, durations, audio) batches: FastSpeech-style (non-autoregressive)
    or autoregressive (Transformer TTS; see the module docstring).

    Args:
        mel_loss: ``"l1"`` (ming024) or ``"mse"``.
        lambda_mel, lambda_duration, lambda_pitch, lambda_energy: loss weights (1 each in FastSpeech 2).
        pitch_method: ``"dio"`` (WORLD DIO + StoneMask, FastSpeech 2), ``"harvest"`` or ``"yin"`` (pure torch).
        f0_min, f0_max: F0 search range in Hz.
        token_key, duration_key: manifest keys of the ids and the frames per id.
        cache: keep each item's targets in memory (keyed by ``audio_filepath``).
        max_frames_mismatch: tolerated difference between ``sum(durations)`` and the audio's frames (the
            target mel is cropped / padded with silence to ``sum(durations)``).
        lambda_stop, stop_pos_weight: stop-token BCE weight and its positive-frame weight (autoregressive).
        lambda_guided_attn, guided_attn_sigma, guided_attn_layers, guided_attn_heads: guided attention loss
            (autoregressive; 0 = off).
        guided_attn_target: ``"diagonal"`` (espnet's prior) or ``"durations"`` (the path of the manifest's
            durations, ``guided_attn_sigma`` in tokens; :func:`~audiozoo.train.losses.guided_attention_loss`).
        waveform: settings of :class:`~audiozoo.train.tasks._wave_terms.WaveformTerms` (``segment_frames``,
            ``lambda_stft``, ``lambda_adv``, ``discriminators``, ``d_optim``...) for waveform models (FastSpeech 2s;
            their defaults when omitted); an error for mel models.
        vae_flow: settings of :class:`~audiozoo.train.tasks._vae_flow_terms.VAEFlowTerms` (``lambda_kl``,
            ``kl_start``, ``postflow_start``, ``two_stage``...) for flow-VAE models (PortaSpeech; defaults NATSpeech's).
        lambda_prosody: implicit-prosody models (DelightfulTTS, ``config.prosody``): when > 0 the target mel is
            also the prosody reference (the utterance and phoneme encoders' vectors condition the decoder, as in
            training in the paper) and the predictors learn them: ``lambda_prosody * (L1(u_pred, u_ref.detach())
            + L1(p_pred, p_ref.detach()))`` over real tokens (coqui: 0.5 each). 0: no reference, the predictors'
            vectors are used and learn through the mel loss only.
        optim, schedule: as :class:`~audiozoo.train.tasks.base.Task`.

    Model key: the first model of the recipe (``model: {name: fastspeech2_small}``).
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, mel_loss: str = "l1", lambda_mel: float = 1.0, lambda_duration: float = 1.0,
                 lambda_pitch: float = 1.0, lambda_energy: float = 1.0, pitch_method: str = "dio",
                 f0_min: float = 65.0, f0_max: float = 600.0, token_key: str = "phoneme_ids",
                 duration_key: str = "durations", cache: bool = True, max_frames_mismatch: int = 1,
                 lambda_stop: float = 1.0, stop_pos_weight: float = 5.0, lambda_guided_attn: float = 0.0,
                 guided_attn_sigma: float = 0.4, guided_attn_layers: int = 2, guided_attn_heads: int = 2,
                 guided_attn_target: str = "diagonal", waveform: Mapping[str, Any] | None = None,
                 vae_flow: Mapping[str, Any] | None = None, lambda_prosody: float = 0.0,
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim=optim, schedule=schedule)
        if mel_loss not in ("l1", "mse"):
            raise ConfigError(f"mel_loss must be 'l1' or 'mse', got {mel_loss!r}")
        if pitch_method not in PITCH_METHODS:
            raise ConfigError(f"pitch_method must be one of {PITCH_METHODS}, got {pitch_method!r}")
        if not 0 < f0_min < f0_max:
            raise ConfigError(f"need 0 < f0_min < f0_max, got {f0_min}, {f0_max}")
        weights = dict(lambda_mel=lambda_mel, lambda_duration=lambda_duration, lambda_pitch=lambda_pitch,
                       lambda_energy=lambda_energy, lambda_stop=lambda_stop, lambda_guided_attn=lambda_guided_attn,
                       lambda_prosody=lambda_prosody)
        bad = {k: v for k, v in weights.items() if v < 0}
        if bad:
            raise ConfigError(f"loss weights must be >= 0, got {bad}")
        self.mel_loss = mel_loss
        self.lambda_mel, self.lambda_duration = float(lambda_mel), float(lambda_duration)
        self.lambda_pitch, self.lambda_energy = float(lambda_pitch), float(lambda_energy)
        self.lambda_prosody = float(lambda_prosody)
        self.pitch_method, self.f0_min, self.f0_max = pitch_method, float(f0_min), float(f0_max)
        self.token_key, self.duration_key = token_key, duration_key
        self.use_cache = bool(cache)
        self.max_frames_mismatch = int(max_frames_mismatch)
        if stop_pos_weight <= 0 or guided_attn_sigma <= 0 or guided_attn_layers < 1 or guided_attn_heads < 1:
            raise ConfigError("need stop_pos_weight > 0, guided_attn_sigma > 0, guided_attn_layers/heads >= 1")
        self.lambda_stop, self.stop_pos_weight = float(lambda_stop), float(stop_pos_weight)
        self.lambda_guided_attn, self.guided_attn_sigma = float(lambda_guided_attn), float(guided_attn_sigma)
        self.guided_attn_layers, self.guided_attn_heads = int(guided_attn_layers), int(guided_attn_heads)
        if guided_attn_target not in ("diagonal", "durations"):
            raise ConfigError(f"guided_attn_target must be 'diagonal' or 'durations', got {guided_attn_target!r}")
        self.guided_attn_target = guided_attn_target
        self._cache: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
        self._mel: nn.Module | None = None
        self.waveform = None if waveform is None else WaveformTerms(**dict(waveform))
        self.vae_flow = VAEFlowTerms(**dict(vae_flow or {}))

    # ---- targets ----------------------------------------------------------------------------------------
    def _acoustic(self) -> nn.Module:
        m = unwrap(self.model)
        kinds = ("pitch_stats", "autoregressive", "duration_predictor")
        if not hasattr(m, "mel_extractor") or not any(getattr(m, k, None) is not None for k in kinds):
            raise ConfigError(f"the tts task trains FastSpeech-style acoustic models (mel_extractor(), pitch_stats "
                              f"and energy_stats buffers), duration-only or autoregressive ones; got "
                              f"{type(m).__name__}")
        return m

    # ---- waveform models (FastSpeech 2s) ---------------------------------------------------------------
    def _wave(self) -> WaveformTerms | None:
        """The waveform terms of a model with a ``waveform_decoder`` (the ``waveform`` option or its defaults)."""
        if getattr(self._acoustic(), "waveform_decoder", None) is None:
            if self.waveform is not None:
                raise ConfigError("the tts task's waveform option needs a model with a waveform decoder")
            return None
        if self.waveform is None:
            self.waveform = WaveformTerms()
        return self.waveform

    def setup(self, trainer: Any) -> None:
        """Waveform models: their discriminators join ``trainer.models`` (optimised, checkpointed, resumed)."""
        super().setup(trainer)
        wave = self._wave()
        if wave is not None:
            wave.setup(trainer, self.device)
            self.models = dict(trainer.models)

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """One optimiser; waveform models with discriminators: ``[discriminators', model's]``."""
        wave = self._wave()
        got = None if wave is None else wave.configure_optimizers(models, self.optim_cfg, self.schedule_cfg,
                                                                  self.total_steps)
        return got if got is not None else super().configure_optimizers(models)

    def _autoregressive(self) -> bool:
        return bool(getattr(self._acoustic(), "autoregressive", False))

    def _prosody_reference(self) -> bool:
        """Whether the target mel is also the prosody reference (``lambda_prosody`` > 0 on a prosody model)."""
        if self.lambda_prosody <= 0:
            return False
        if not getattr(getattr(self._acoustic(), "config", None), "prosody", False):
            raise ConfigError("lambda_prosody > 0 needs an implicit-prosody model (config.prosody: DelightfulTTS)")
        return True

    def _duration_only(self) -> bool:
        return not self._autoregressive() and not hasattr(self._acoustic(), "pitch_stats")

    def _mel_fn(self) -> nn.Module:
        if self._mel is None:
            self._mel = self._acoustic().mel_extractor()
        return self._mel

    @torch.no_grad()
    def item_targets(self, wav: Tensor, num_frames: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(mel (n_mels, L), ln F0 (L,), energy (L,))`` of one waveform ``(T,)``, ``L = num_frames``, float32 CPU.

        ``ln F0`` is interpolated across unvoiced frames (0 everywhere when nothing is voiced).
        """
        m = self._acoustic()
        hop = int(m.hop_length)
        wav = wav.detach().float().cpu().reshape(-1)
        have = wav.shape[-1] // hop
        if abs(have - num_frames) > self.max_frames_mismatch:
            raise DataError(f"durations add up to {num_frames} frames but the audio has {have} frames of {hop} "
                            "samples; the durations do not belong to this audio")
        need = num_frames * hop
        wav = wav[:need] if wav.shape[-1] >= need else torch.nn.functional.pad(wav, (0, need - wav.shape[-1]))
        mel_fn = self._mel_fn()
        mel = mel_fn(wav[None])[0][0]
        # half-hop shift: centred frames of the shifted signal sit on HiFi-GAN's frame centres (256 i + 128)
        shifted = wav[hop // 2:]
        sr = int(m.sample_rate)
        if self.pitch_method == "yin":
            f0, voiced = f0_yin(shifted, sr, hop_length=hop, f0_min=self.f0_min, f0_max=self.f0_max)
        else:
            f0, voiced = f0_world(shifted, sr, hop_length=hop, f0_min=self.f0_min, f0_max=self.f0_max,
                                  method=self.pitch_method)
        f0 = interpolate_unvoiced(f0, voiced)
        lf0 = torch.where(f0 > 0, torch.log(f0.clamp_min(1e-3)), torch.zeros_like(f0))
        en = frame_energy(shifted, int(m.config.n_fft), hop, int(m.config.win_length))
        fix = lambda x: x[:num_frames] if x.shape[-1] >= num_frames else torch.nn.functional.pad(  # noqa: E731
            x, (0, num_frames - x.shape[-1]), mode="replicate" if x.shape[-1] else "constant")
        return mel[:, :num_frames], fix(lf0[None])[0], fix(en[None])[0]

    def _targets(self, key: str | None, wav: Tensor, num_frames: int) -> tuple[Tensor, Tensor, Tensor]:
        if key is not None and self.use_cache and key in self._cache:
            return self._cache[key]
        t = self.item_targets(wav, num_frames)
        if key is not None and self.use_cache:
            self._cache[key] = t
        return t

    # ---- statistics -------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_statistics(self, dataset: Any) -> dict[str, float]:
        """Corpus mean / std of ln F0 (voiced frames) and energy over ``dataset`` (items with ``audio``,
        durations and ``audio_filepath``); written to the model's ``pitch_stats`` / ``energy_stats``."""
        m = self._acoustic()
        lf0_sum = lf0_sq = lf0_n = 0.0
        e_sum = e_sq = e_n = 0.0
        for i in range(len(dataset)):
            it = dataset[i]
            dur = it.get(self.duration_key)
            if dur is None:
                raise DataError(f"item {i} has no {self.duration_key!r}")
            _, lf0, en = self._targets(it.get("audio_filepath"), it["audio"], int(sum(dur)))
            v = lf0[lf0 > 0].double()
            lf0_sum, lf0_sq, lf0_n = lf0_sum + float(v.sum()), lf0_sq + float((v * v).sum()), lf0_n + v.numel()
            ed = en.double()
            e_sum, e_sq, e_n = e_sum + float(ed.sum()), e_sq + float((ed * ed).sum()), e_n + ed.numel()
        if lf0_n < 2 or e_n < 2:
            raise DataError("not enough voiced frames to compute pitch statistics")
        p_mean = lf0_sum / lf0_n
        e_mean = e_sum / e_n
        stats = {"pitch_mean": p_mean, "pitch_std": math.sqrt(max(lf0_sq / lf0_n - p_mean ** 2, 1e-8)),
                 "energy_mean": e_mean, "energy_std": math.sqrt(max(e_sq / e_n - e_mean ** 2, 1e-8))}
        m.pitch_stats.copy_(torch.tensor([stats["pitch_mean"], stats["pitch_std"]]))
        m.energy_stats.copy_(torch.tensor([stats["energy_mean"], stats["energy_std"]]))
        return stats

    def on_fit_start(self) -> None:
        if self._autoregressive() or self._duration_only():
            return  # no pitch / energy targets
        m = self._acoustic()
        if float(m.pitch_stats[1]) > 0 and float(m.energy_stats[1]) > 0:
            return  # resumed, or a pre-trained model: keep its statistics
        loader = getattr(self.trainer, "train_loader", None)
        ds = getattr(loader, "dataset", None)
        if ds is None:
            raise ConfigError("the tts task computes pitch / energy statistics from the training set: the trainer "
                              "has no train_loader.dataset")
        self.fit_statistics(ds)

    # ---- steps ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def mel_target(self, key: str | None, wav: Tensor, num_frames: int) -> Tensor:
        """The target log-mel ``(n_mels, num_frames)`` of one waveform ``(T,)`` alone (autoregressive models: no
        pitch / energy), cropped / padded with silence to ``num_frames``; cached as :meth:`item_targets`."""
        ck = None if key is None else f"mel:{key}"
        if ck is not None and self.use_cache and ck in self._cache and self._cache[ck][0].shape[-1] == num_frames:
            return self._cache[ck][0]
        hop = int(self._acoustic().hop_length)
        wav = wav.detach().float().cpu().reshape(-1)
        if abs(wav.shape[-1] // hop - num_frames) > self.max_frames_mismatch:
            raise DataError(f"durations add up to {num_frames} frames but the audio has {wav.shape[-1] // hop} frames "
                            f"of {hop} samples; the durations do not belong to this audio")
        need = num_frames * hop
        wav = wav[:need] if wav.shape[-1] >= need else torch.nn.functional.pad(wav, (0, need - wav.shape[-1]))
        mel = self._mel_fn()(wav[None])[0][0][:, :num_frames]
        if ck is not None and self.use_cache:
            self._cache[ck] = (mel, torch.empty(0), torch.empty(0))
        return mel

    def _prepare_mel_only(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        m = self._acoustic()
        for k in (self.token_key, "audio") + ((self.duration_key,) if self._duration_only() else ()):
            if k not in batch:
                raise DataError(f"the tts task needs {k!r} in each batch; got keys {sorted(batch)}")
        dev, hop = self.device, int(m.hop_length)
        tokens, lengths = pad_lists(batch[self.token_key], device=dev)
        audio, alen = batch["audio"], batch.get("lengths")
        n_samples = [int(alen[i]) if alen is not None else audio.shape[-1] for i in range(len(tokens))]
        if batch.get(self.duration_key) is not None:
            frames = [int(sum(d)) for d in batch[self.duration_key]]
        else:
            frames = [n // hop for n in n_samples]
        if min(frames) < 1:
            raise DataError(f"an utterance is shorter than one frame of {hop} samples")
        keys = batch.get("audio_filepath") or [None] * len(tokens)
        mels = torch.full((len(tokens), int(m.n_mels), max(frames)), math.log(1e-5))
        with torch.autocast(audio.device.type, enabled=False):
            for i in range(len(tokens)):
                mels[i, :, :frames[i]] = self.mel_target(keys[i], audio[i, ..., :n_samples[i]], frames[i])
        out = {"tokens": tokens, "lengths": lengths, "mel": mels.to(dev),
               "mel_lengths": torch.tensor(frames, dtype=torch.long, device=dev)}
        if batch.get(self.duration_key) is not None:
            out["durations"], d_len = pad_lists(batch[self.duration_key], device=dev)
            if not torch.equal(lengths, d_len):
                raise DataError(f"{self.token_key} and {self.duration_key} lengths differ: {lengths.tolist()} vs "
                                f"{d_len.tolist()}")
        return out

    def prepare_batch(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Padded model inputs and targets of a collated batch (see the module docstring)."""
        if self._autoregressive() or self._duration_only():
            return self._prepare_mel_only(batch)
        m = self._acoustic()
        for k in (self.token_key, self.duration_key, "audio"):
            if k not in batch:
                raise DataError(f"the tts task needs {k!r} in each batch (a manifest with token ids and durations, "
                                f"e.g. piper-speech); got keys {sorted(batch)}")
        p_mean, p_std = (float(x) for x in m.pitch_stats)
        e_mean, e_std = (float(x) for x in m.energy_stats)
        if p_std <= 0 or e_std <= 0:
            raise ConfigError("the model's pitch/energy statistics are not set (train through the engine, which "
                              "computes them, or call TTSTask.fit_statistics(dataset))")
        dev = self.device
        tokens, lengths = pad_lists(batch[self.token_key], device=dev)
        durations, d_len = pad_lists(batch[self.duration_key], device=dev)
        if not torch.equal(lengths, d_len):
            raise DataError(f"{self.token_key} and {self.duration_key} lengths differ: {lengths.tolist()} vs "
                            f"{d_len.tolist()}")
        frames = durations.sum(1)
        big_l = int(frames.max())
        audio, alen = batch["audio"], batch.get("lengths")
        keys = batch.get("audio_filepath") or [None] * len(tokens)
        mels = torch.full((len(tokens), int(m.n_mels), big_l), math.log(1e-5))
        pitch, en = torch.zeros(len(tokens), big_l), torch.zeros(len(tokens), big_l)
        with torch.autocast(audio.device.type, enabled=False):
            for i in range(len(tokens)):
                n_i = int(alen[i]) if alen is not None else audio.shape[-1]
                mel, lf0, e = self._targets(keys[i], audio[i, ..., :n_i], int(frames[i]))
                f = int(frames[i])
                mels[i, :, :f] = mel
                pitch[i, :f] = torch.where(lf0 > 0, (lf0 - p_mean) / p_std, torch.zeros_like(lf0))
                en[i, :f] = (e - e_mean) / e_std
        out = {"tokens": tokens, "lengths": lengths, "durations": durations, "mel": mels.to(dev),
               "mel_lengths": frames, "pitch": pitch.to(dev), "energy": en.to(dev)}
        if m.config.pitch_level == "phoneme":
            out["pitch"] = token_average(out["pitch"], durations)
        if m.config.pitch_level == "cwt":
            out["pitch_spectrogram"], out["pitch_moments"] = cwt_targets(out["pitch"], frames)
        if m.config.energy_level == "phoneme":
            out["energy"] = token_average(out["energy"], durations)
        return out

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        t = self.prepare_batch(batch)
        if self._autoregressive():
            spk = batch.get("speaker_embedding")  # SV2TTS: a d-vector per item (B, S) conditions the decoder
            kw = {} if spk is None else {"speaker_embedding": torch.as_tensor(spk, dtype=torch.float32).to(self.device)}
            out = self.model(t["tokens"], t["lengths"], mel=t["mel"], mel_lengths=t["mel_lengths"],
                             return_attention=self.lambda_guided_attn > 0, **kw)
            return {**t, "out": out}
        if getattr(self._acoustic(), "vae_flow", False):  # PortaSpeech: teacher-forced on the target mel too
            return {**t, "out": self.model(t["tokens"], t["lengths"], **self.vae_flow.forward_kwargs(t))}
        if self._duration_only():
            out = self.model(t["tokens"], t["lengths"], durations=t["durations"], max_frames=t["mel"].shape[-1])
            return {**t, "out": out}
        wave = self._wave()
        kw = {} if wave is None else {"segment_frames": wave.segment_frames,
                                       "segment_starts": wave.starts(t["mel_lengths"], unwrap(self.model).training)}
        if self._prosody_reference():
            kw.update(mel=t["mel"], mel_lengths=t["mel_lengths"])
        out = self.model(t["tokens"], t["lengths"], durations=t["durations"], pitch=t["pitch"], energy=t["energy"],
                         max_frames=t["mel"].shape[-1], **kw)
        if wave is not None:  # the audio samples of the decoded slices
            t["wav_real"] = wave.real_segments(batch["audio"], batch.get("lengths"), t["mel_lengths"],
                                               out.segment_starts, int(self._acoustic().hop_length)).to(self.device)
        return {**t, "out": out}

    def training_step(self, batch: dict[str, Any], optimizer_idx: int | None = None) -> dict[str, Tensor]:
        out, m = batch["out"], self._acoustic()
        mel_len, tok_len = batch["mel_lengths"], batch["lengths"]
        if self._autoregressive():
            return self._autoregressive_step(batch)
        if getattr(m, "vae_flow", False):
            return self.vae_flow.terms(out, batch, int(getattr(self.trainer, "step", 0) or 0))
        if self._duration_only():
            return self._duration_step(batch)
        wave = self._wave()
        if wave is not None and optimizer_idx == 0 and wave.discriminators(self.models):  # stage 0: discriminators
            return wave.discriminator_step(out.wav, batch["wav_real"], self.models, self.trainer)
        terms = {"mel_before": masked_mel_loss(out.mel_before, batch["mel"], mel_len, self.mel_loss)}
        if m.config.postnet:
            terms["mel_postnet"] = masked_mel_loss(out.mel, batch["mel"], mel_len, self.mel_loss)
        terms["duration"] = duration_loss(out.log_durations, batch["durations"], tok_len)
        for name in ("pitch", "energy"):
            level = getattr(m.config, f"{name}_level")
            if level == "cwt":  # the paper's pitch loss: spectrogram, utterance mean and std (MSE each)
                spec = batch["pitch_spectrogram"]
                valid = sequence_mask(mel_len, spec.shape[1])[..., None].expand_as(spec)
                terms[name] = masked_value_loss(out.pitch_spectrogram, spec, valid)
                every = torch.ones_like(batch["pitch_moments"][:, 0], dtype=torch.bool)
                for j, k in enumerate(("pitch_mean", "pitch_std")):
                    terms[k] = masked_value_loss(out.pitch_moments[:, j], batch["pitch_moments"][:, j], every)
                continue
            valid = sequence_mask(mel_len if level == "frame" else tok_len, batch[name].shape[1])
            terms[name] = masked_value_loss(getattr(out, name), batch[name], valid)
        if self._prosody_reference():  # the predictors learn the reference encoders' vectors (coqui's L1 terms)
            terms["u_prosody"] = (out.u_prosody_pred.float() - out.u_prosody_ref.detach().float()).abs().mean()
            valid = sequence_mask(tok_len, out.p_prosody_ref.shape[1])[..., None].float()
            err = (out.p_prosody_pred.float() - out.p_prosody_ref.detach().float()).abs() * valid
            terms["p_prosody"] = err.sum() / (valid.sum() * err.shape[-1]).clamp_min(1.0)
        pitch_terms = terms["pitch"] + terms.get("pitch_mean", 0.0) + terms.get("pitch_std", 0.0)
        loss = (self.lambda_mel * sum(v for k, v in terms.items() if k.startswith("mel_"))
                + self.lambda_duration * terms["duration"] + self.lambda_pitch * pitch_terms
                + self.lambda_energy * terms["energy"]
                + self.lambda_prosody * (terms.get("u_prosody", 0.0) + terms.get("p_prosody", 0.0)))
        if wave is not None:  # FastSpeech 2s: MR-STFT (+ adversarial in the model's stage) on the decoded slices
            adv = optimizer_idx == 1 and wave.adversarial_on(self.models, self.trainer)
            w = wave.generator_terms(out.wav, batch["wav_real"], self.models, adv)
            loss = loss + w.pop("loss")
            terms.update(w, g_loss=loss)
        with torch.no_grad():
            mel_l1 = masked_mel_loss(out.mel.detach(), batch["mel"], mel_len, "l1")
        return {"loss": loss, "mel_l1": mel_l1, **{k: v.detach() for k, v in terms.items()}}

    def _autoregressive_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out, mel_len, tok_len = batch["out"], batch["mel_lengths"], batch["lengths"]
        terms = {"mel_before": masked_mel_loss(out.mel_before, batch["mel"], mel_len, self.mel_loss)}
        if getattr(self._acoustic(), "postnet", None) is not None:
            terms["mel_postnet"] = masked_mel_loss(out.mel, batch["mel"], mel_len, self.mel_loss)
        loss = self.lambda_mel * sum(terms.values())
        if self.lambda_stop > 0 and torch.isfinite(out.stop_logits).all():
            terms["stop"] = stop_token_loss(out.stop_logits, mel_len, self.stop_pos_weight)
            loss = loss + self.lambda_stop * terms["stop"]
        if self.lambda_guided_attn > 0:
            if out.attention is None:
                raise ConfigError("guided attention needs the model's attention (forward(..., return_attention=True))")
            attn = out.attention[:, -self.guided_attn_layers:, : self.guided_attn_heads]
            durs = None
            if self.guided_attn_target == "durations":
                durs = batch.get("durations")
                if durs is None:
                    raise ConfigError("guided_attn_target='durations' needs the manifest's durations")
            terms["guided_attn"] = guided_attention_loss(attn, tok_len, mel_len, self.guided_attn_sigma, durs)
            loss = loss + self.lambda_guided_attn * terms["guided_attn"]
        with torch.no_grad():
            mel_l1 = masked_mel_loss(out.mel.detach(), batch["mel"], mel_len, "l1")
        return {"loss": loss, "mel_l1": mel_l1, **{k: v.detach() for k, v in terms.items()}}

    def _duration_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out, mel_len, tok_len = batch["out"], batch["mel_lengths"], batch["lengths"]
        terms = {"mel_before": masked_mel_loss(out.mel_before, batch["mel"], mel_len, self.mel_loss)}
        if getattr(self._acoustic(), "postnet", None) is not None:
            terms["mel_postnet"] = masked_mel_loss(out.mel, batch["mel"], mel_len, self.mel_loss)
        terms["duration"] = duration_loss(out.log_durations, batch["durations"], tok_len)
        loss = self.lambda_mel * (terms["mel_before"] + terms.get("mel_postnet", 0.0)) \
            + self.lambda_duration * terms["duration"]
        with torch.no_grad():
            mel_l1 = masked_mel_loss(out.mel.detach(), batch["mel"], mel_len, "l1")
        return {"loss": loss, "mel_l1": mel_l1, **{k: v.detach() for k, v in terms.items()}}
