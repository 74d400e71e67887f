"""Vocoder training: mel -> waveform, with the generator's own mel front-end computing the input.

Models: ``{"generator": G}`` (reconstruction only: one optimizer) or ``{"generator": G, "mpd": D, ...}``
(HiFi-GAN style GAN, :class:`~audiozoo.train.tasks.gan.GANTask`: D step then G step). Per micro-batch the
waveform crop ``batch["audio"] (B, T)`` is trimmed to a multiple of the generator's hop, its log-mel is
computed by ``generator.frontend`` (no gradient: the front-end has no parameters), and the generator
re-synthesises the crop. Reconstruction terms (``losses``):

* ``"mel"``: HiFi-GAN's L1 between the log-mels of the real and generated waveforms (Kong et al. 2020,
  Sec. 2.3; weight 45 in ``jik876/hifi-gan`` ``train.py``), computed with the generator's front-end.
* ``"mrstft"``: Parallel WaveGAN's multi-resolution STFT loss (Yamamoto et al. 2020, arXiv:1910.11480,
  Sec. 2.3): for each (n_fft, hop, win) spectral convergence ``||S| - |S^||_F / ||S||_F`` plus the L1 of log
  magnitudes, averaged over resolutions (PWG: (1024, 120, 600), (2048, 240, 1200), (512, 50, 240) at 24 kHz).
* ``"apnet"``: APNet's amplitude, anti-wrapping phase, STFT consistency/real/imaginary and mel terms
  (:func:`audiozoo.train.losses.phase.apnet_reconstruction_losses`, official weights 45/100/20/45); needs a
  generator with ``forward_with_spectra`` (:class:`audiozoo.models.vocoder.apnet.APNet`).

The monitored validation metric is ``mel_l1`` (the L1 between log-mels of real and generated speech), the
same number for every choice of ``losses`` so runs can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...dsp.stft import get_window, stft
from ...errors import ConfigError, DataError
from ...nn.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from ...nn.discriminators_mbd import MultiBandDiscriminator
from ..losses import feature_matching_loss, generator_adversarial_loss
from ..losses.phase import amplitude_phase_spectrum, apnet_reconstruction_losses
from ..optim import build_optimizer, build_scheduler
from .base import batch_size, unwrap
from .gan import GANTask

# ``discriminators: {name: {kind: ..., **kwargs}}`` in a recipe's task section
DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "mpd": MultiPeriodDiscriminator, "msd": MultiScaleDiscriminator, "mbd": MultiBandDiscriminator}

__all__ = ["PWG_RESOLUTIONS", "VocoderTask", "multi_resolution_stft_loss"]

LOSSES = ("mel", "mrstft", "apnet")
# (n_fft, hop, win) of Parallel WaveGAN (Yamamoto et al. 2020, Sec. 2.3)
PWG_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def multi_resolution_stft_loss(fake: Tensor, real: Tensor,
                               resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS) -> tuple[Tensor, Tensor]:
    """Parallel WaveGAN's multi-resolution STFT loss of waveforms ``(B, T)``.

    Returns ``(spectral convergence, log-magnitude L1)``, each averaged over the resolutions (PWG adds them).
    Magnitudes are ``sqrt(max(|X|^2, 1e-7))`` as PWG's ``stft`` (a floor that keeps the log and sqrt finite).
    """
    if fake.shape != real.shape or fake.ndim != 2:
        raise DataError(f"multi_resolution_stft_loss needs two (B, T) waveforms of one shape, got "
                        f"{tuple(fake.shape)} and {tuple(real.shape)}")
    sc = lm = fake.new_zeros((), dtype=torch.float32)
    for n_fft, hop, win in resolutions:
        window = get_window("hann", int(win), device=fake.device)
        mags = []
        for x in (fake.float(), real.float()):
            s = stft(x, int(n_fft), int(hop), int(win), window, center=True, pad_mode="reflect")
            mags.append(torch.sqrt(torch.clamp(s.real.square() + s.imag.square(), min=1e-7)))
        m_hat, m = mags
        sc = sc + torch.linalg.norm(m - m_hat) / torch.linalg.norm(m).clamp(min=1e-7)
        lm = lm + F.l1_loss(torch.log(m_hat), torch.log(m))
    n = len(resolutions)
    return sc / n, lm / n


class VocoderTask(GANTask):
    """Train a mel vocoder on waveform crops (see the module docstring).

    Args:
        losses: reconstruction terms, any of ``"mel"``, ``"mrstft"``, ``"apnet"``.
        lambda_mel: weight of the mel L1 (HiFi-GAN 45).
        lambda_stft: weight of the MR-STFT loss (PWG weighs it 1 beside its adversarial term 4; with a
            mel term at 45 we default to 45/2 so both matter).
        stft_resolutions: MR-STFT ``(n_fft, hop, win)`` triples (default PWG's).
        phase_kind: APNet phase loss, ``"cos"`` (official code) or ``"aw"`` (paper).
        gain_db: ``[low, high]``: train on crops scaled by a random gain in that range (dB), see
            :meth:`augment_gain`; ``None`` (default): no augmentation.
        lambda_adv, lambda_fm, adversarial, warmup_adv_steps, optim, schedule, d_optim, d_schedule:
            as :class:`GANTask` (used only when discriminators are given).

    Batches: ``{"audio": (B, T), "lengths": (B,)}`` of fixed-length crops (padding is not masked: train on
    ``crop_seconds`` crops as HiFi-GAN and APNet do).
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, losses: Sequence[str] = ("mel", "mrstft"), lambda_mel: float = 45.0,
                 lambda_stft: float = 22.5, stft_resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS,
                 phase_kind: str = "cos", lambda_adv: float = 1.0, lambda_fm: float = 2.0,
                 adversarial: str = "lsgan", optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None, d_optim: Mapping[str, Any] | None = None,
                 d_schedule: Mapping[str, Any] | None = None, generator_key: str = "generator",
                 warmup_adv_steps: int = 0, gain_db: Sequence[float] | None = None,
                 lambda_amp_sc: float = 0.0,
                 discriminators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(lambda_adv=lambda_adv, lambda_fm=lambda_fm, lambda_recon=1.0, adversarial=adversarial,
                         optim=optim, schedule=schedule, d_optim=d_optim, d_schedule=d_schedule,
                         generator_key=generator_key, warmup_adv_steps=warmup_adv_steps)
        losses = [losses] if isinstance(losses, str) else list(losses)
        bad = [x for x in losses if x not in LOSSES]
        if not losses or bad:
            raise ConfigError(f"VocoderTask losses must be a non-empty subset of {LOSSES}, got {losses}")
        if phase_kind not in ("cos", "aw"):
            raise ConfigError(f"phase_kind must be 'cos' or 'aw', got {phase_kind!r}")
        for r in stft_resolutions:
            if len(r) != 3 or not all(int(v) > 0 for v in r) or int(r[2]) > int(r[0]):
                raise ConfigError(f"each STFT resolution is (n_fft, hop, win) with win <= n_fft, got {r}")
        self.losses = losses
        self.lambda_mel, self.lambda_stft = float(lambda_mel), float(lambda_stft)
        self.stft_resolutions = tuple(tuple(int(v) for v in r) for r in stft_resolutions)
        self.phase_kind = phase_kind
        if lambda_amp_sc < 0 or (lambda_amp_sc > 0 and "apnet" not in losses):
            raise ConfigError(f"lambda_amp_sc (>= 0) weighs the spectral convergence of a predicted amplitude: it "
                              f"needs the 'apnet' losses, got lambda_amp_sc={lambda_amp_sc}, losses={losses}")
        self.lambda_amp_sc = float(lambda_amp_sc)
        self.discriminator_specs = {str(k): dict(v) for k, v in (discriminators or {}).items()}
        for name, spec in self.discriminator_specs.items():
            if spec.get("kind") not in DISCRIMINATORS:
                raise ConfigError(f"discriminator {name!r}: kind must be one of {sorted(DISCRIMINATORS)}, "
                                  f"got {spec.get('kind')!r}")
        if gain_db is not None and (len(gain_db) != 2 or float(gain_db[0]) > float(gain_db[1])):
            raise ConfigError(f"gain_db must be [low, high] in dB with low <= high, got {gain_db}")
        self.gain_db = None if gain_db is None else (float(gain_db[0]), float(gain_db[1]))

    # ---- models / optimizers --------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """``models[generator_key]``, or the only model (a recipe's single ``model:``)."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return super().generator

    def setup(self, trainer: Any) -> None:
        """Builds the recipe's ``discriminators`` (not registered models) beside the generator, as trainer
        models, so that they are optimised, checkpointed and resumed with the run."""
        super().setup(trainer)
        if self.discriminator_specs and len(trainer.models) == 1:
            self.generator_key = next(iter(trainer.models))
        for name, spec in self.discriminator_specs.items():
            if name not in trainer.models:
                kw = {k: v for k, v in spec.items() if k != "kind"}
                trainer.models[name] = DISCRIMINATORS[spec["kind"]](**kw).to(self.device).train()
        self.models = dict(trainer.models)

    @property
    def adversarial_on(self) -> bool:
        """Whether discriminators were given (else reconstruction-only, one optimizer)."""
        return len(self.models) > 1

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """GAN: ``[D, G]`` as :class:`GANTask`; generator only: ``[G]``."""
        if len(models) > 1:
            return super().configure_optimizers(models)
        params = [p for p in unwrap(next(iter(models.values()))).parameters() if p.requires_grad]
        opt = build_optimizer(params, **self.optim_cfg)
        return [opt], [build_scheduler(opt, total_steps=self.total_steps, **self.schedule_cfg)]

    # ---- data -> (mel, wav) ---------------------------------------------------------------------
    def _gen(self) -> nn.Module:
        return unwrap(self.generator)

    def target(self, batch: Mapping[str, Any]) -> Tensor:
        """The waveform crop ``(B, T')``, ``T'`` the largest multiple of the generator's hop <= T."""
        if "audio" not in batch:
            raise DataError(f"VocoderTask batches need 'audio' (B, T); got {sorted(batch)}")
        wav = batch["audio"]
        if wav.ndim == 3:  # (B, 1, T)
            wav = wav.squeeze(1)
        hop = int(self._gen().hop_length)
        n = wav.shape[-1] // hop * hop
        if n < 2 * hop:
            raise DataError(f"VocoderTask: crops of {wav.shape[-1]} samples are shorter than 2 hops ({2 * hop})")
        return wav[..., :n].float()

    def generator_input(self, batch: Mapping[str, Any]) -> Tensor:
        """Log-mel ``(B, n_mels, L)`` of the crop, by the generator's front-end."""
        with torch.no_grad():
            mel, _ = self._gen().frontend(self.target(batch))
        return mel

    def augment_gain(self, wav: Tensor) -> Tensor:
        """Random gain per item, uniform in ``gain_db`` dB, capped so that no item exceeds a 0.99 peak.

        A log-mel vocoder sees loudness as an offset of its input; trained at one recording level, it fails
        on louder or quieter speech (our first run: trained at -41 dBFS, tested at -21 dBFS).
        """
        lo, hi = self.gain_db
        db = torch.rand(wav.shape[0], 1, device=wav.device) * (hi - lo) + lo
        gain = torch.pow(10.0, db / 20.0)
        peak = wav.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
        return wav * torch.minimum(gain, 0.99 / peak)

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        if self.gain_db is not None and self.generator.training and "audio" in batch:
            batch = {**batch, "audio": self.augment_gain(batch["audio"])}
            out["audio"] = batch["audio"]
        real = self.target(batch)
        mel = self.generator_input(batch)
        out["real"], out["mel"] = real, mel
        if "apnet" in self.losses:
            g = self._gen()
            if not hasattr(g, "forward_with_spectra"):
                raise ConfigError(f"losses 'apnet' need an APNet-style generator (forward_with_spectra); "
                                  f"got {type(g).__name__}")
            spec = g.forward_with_spectra(mel)
            out["spectra"], fake = spec, spec.wav
        else:
            fake = self.generator(mel)
            fake = fake[0] if isinstance(fake, (tuple, list)) else fake
        n = min(fake.shape[-1], real.shape[-1])
        out["fake"], out["real"] = fake[..., :n], real[..., :n]
        return out

    # ---- losses ---------------------------------------------------------------------------------
    def _mel(self, wav: Tensor) -> Tensor:
        return self._gen().frontend(wav)[0]

    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every reconstruction term (unweighted) and their weighted sum ``recon``; also ``mel_l1``."""
        fake, real = batch["fake"].float(), batch["real"].float()
        out: dict[str, Tensor] = {}
        total = fake.new_zeros(())
        mel_hat = self._mel(fake)
        mel_real = self._mel(real)
        n = min(mel_hat.shape[-1], mel_real.shape[-1])
        out["mel_l1"] = F.l1_loss(mel_hat[..., :n], mel_real[..., :n])
        if "mel" in self.losses:
            total = total + self.lambda_mel * out["mel_l1"]
        if "mrstft" in self.losses:
            out["stft_sc"], out["stft_mag"] = multi_resolution_stft_loss(fake, real, self.stft_resolutions)
            total = total + self.lambda_stft * (out["stft_sc"] + out["stft_mag"])
        if "apnet" in self.losses:
            g, s = self._gen(), batch["spectra"]
            c = g.config
            ap = apnet_reconstruction_losses(s.log_amplitude, s.phase, s.real, s.imag, fake, real, batch["mel"],
                                             self._mel, c.n_fft, c.hop_length, c.win_length, self.phase_kind)
            total = total + ap["total"]
            if self.lambda_amp_sc > 0:
                # spectral convergence of the predicted amplitude: a linear-magnitude term dominated by the loud
                # bins, which APNet's log-amplitude MSE (dominated by the many quiet bins) under-weights
                amp = torch.exp(amplitude_phase_spectrum(real, c.n_fft, c.hop_length, c.win_length)[0]) - 1e-5
                amp_hat = torch.exp(s.log_amplitude)
                n = min(amp.shape[-1], amp_hat.shape[-1])
                amp, amp_hat = amp[..., :n], amp_hat[..., :n]
                sc = torch.linalg.norm(amp_hat - amp) / torch.linalg.norm(amp).clamp(min=1e-7)
                out["amp_sc"] = sc
                total = total + self.lambda_amp_sc * sc
            if "mel" in self.losses:  # apnet's total already holds 45 L_Mel: do not count it twice
                total = total - self.lambda_mel * out["mel_l1"]
            out.update({f"ap_{k}": ap[k] for k in ("A", "P", "S")})
        out["recon"] = total
        return out

    def reconstruction_loss(self, fake: Tensor, real: Tensor, batch: Mapping[str, Any]) -> Tensor:
        return self.reconstruction_terms({**batch, "fake": fake, "real": real})["recon"]

    # ---- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        batch = {**batch, "target": batch["real"]}
        if self.adversarial_on:
            if optimizer_idx == 0:
                return super().training_step(batch, 0)
            return self._generator_step(batch)
        return self._generator_step(batch)

    def _generator_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        terms = self.reconstruction_terms(batch)
        loss = terms["recon"]
        logs = {k: v.detach() for k, v in terms.items()}
        if self.adversarial_on and self._adv_on():
            real, fake = batch["real"], batch["fake"]
            adv, fm = loss.new_zeros(()), loss.new_zeros(())
            for d in self.discriminators.values():
                (_, fr), (lf, ff) = self.discriminate(d, real, fake)
                adv = adv + generator_adversarial_loss(lf, self.adversarial)
                fm = fm + feature_matching_loss(fr, ff)
            loss = loss + self.lambda_adv * adv + self.lambda_fm * fm
            logs.update(g_adv=adv.detach(), g_fm=fm.detach())
        return {"loss": loss, **logs}

    def validation_step(self, batch: dict[str, Any]) -> None:
        batch = self.shared_forward(batch)
        terms = self.reconstruction_terms(batch)
        self._accumulate(terms, batch_size(batch))

