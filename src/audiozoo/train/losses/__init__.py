"""Training losses (DESIGN.md: losses live in ``train/losses/``, never in model files).

One module per kind: ``adversarial`` (GAN + feature matching), ``stft`` (single / multi-resolution STFT, RAVE's
spectral distance), ``mel`` (log-mel L1, multi-scale mel), ``phase`` (APNet amplitude/phase), ``kl`` (Gaussian
posterior KL, soft-label distillation KL), ``regression`` (CCC, masked MSE), ``bce`` (Keras-style weighted BCE),
``separation`` (SI-SDR / SD-SDR / SNR, PIT),
and the others as systems need them. The common names are re-exported here.
"""

from __future__ import annotations

from . import diffusion, flow_matching, quantize  # noqa: F401  (generative losses, used as modules)
from .adversarial import ADVERSARIAL, discriminator_loss, feature_matching_loss, generator_adversarial_loss
from .bce import weighted_bce
from .ctc import ctc_loss, joint_ctc_attention_loss, token_cross_entropy
from .kl import gaussian_kl, rave_kl, soft_label_kl
from .lpaps import LPAPS
from .mel import DAC_MEL_BINS, DAC_MEL_WINDOWS, mel_l1, multi_scale_mel_loss
from .regression import autoencoder_reconstruction_loss, ccc_loss, masked_mse
from .separation import SEPARATION_LOSSES, neg_sd_sdr, neg_si_sdr, neg_snr, pit, separation_loss
from .stft import (
    PWG_RESOLUTIONS,
    RAVE_V1_SCALES,
    multi_resolution_stft_loss,
    spectral_convergence,
    spectral_distance,
    stft_loss,
    stft_magnitude,
)
from .tts import duration_loss, masked_mel_loss, masked_value_loss

__all__ = [
    "ADVERSARIAL", "DAC_MEL_BINS", "DAC_MEL_WINDOWS", "PWG_RESOLUTIONS", "RAVE_V1_SCALES",
    "autoencoder_reconstruction_loss", "ccc_loss",
    "discriminator_loss", "feature_matching_loss", "gaussian_kl", "generator_adversarial_loss", "masked_mse",
    "mel_l1", "multi_resolution_stft_loss", "multi_scale_mel_loss", "rave_kl", "soft_label_kl",
    "spectral_convergence", "spectral_distance", "stft_loss", "stft_magnitude", "weighted_bce",
]
__all__ += ["SEPARATION_LOSSES", "neg_sd_sdr", "neg_si_sdr", "neg_snr", "pit", "separation_loss"]  # issue #15
__all__ += ["ctc_loss", "joint_ctc_attention_loss", "token_cross_entropy"]  # issue #17 (ASR)
__all__ += ["duration_loss", "masked_mel_loss", "masked_value_loss"]  # issue #16 (FastSpeech 2)
__all__ += ["LPAPS"]  # issue #14 (SpecVQGAN's spectrogram perceptual loss)
