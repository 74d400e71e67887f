"""Terms of the ``tts`` task for flow-VAE acoustic models (PortaSpeech): the ``vae_flow`` option.

PortaSpeech (Ren et al. 2021, arXiv:2109.15166; official ``tasks/tts/ps_flow.py``) trains in two stages:

1. steps ``< postflow_start``: ``lambda_l1 * L1 + lambda_ssim * (1 - SSIM)`` of the fVAE mel (NATSpeech's
   ``mel_losses: l1:0.5|ssim:0.5``), the word-duration loss (``lambda_word_dur``; L1 of ``ln(d + 1)`` per word, plus
   ``lambda_sent_dur`` times the L1 of the sentence totals), and the KL of the flow-prior VAE (``lambda_kl``; held at
   0, i.e. logged but not back-propagated, before ``kl_start`` steps, then clamped below at ``kl_min``);
2. steps ``>= postflow_start``: the post-glow NLL alone (``lambda_postflow``), the rest logged (its inputs are
   detached by the model, so nothing else moves; NATSpeech also freezes it). ``two_stage=False``: every term from
   the start (with the post-glow term from ``postflow_start``).

NATSpeech's defaults: ``kl_start`` 10000, ``postflow_start`` 160000 (of 480000 steps); the post-glow has its own
optimiser there (lr 1e-3); here one optimiser serves both stages (the stage-2 parameters get no gradient in stage 1
and vice versa, so the stages do not interfere; Adam skips parameters without a gradient).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError
from ..losses.tts import masked_mel_loss
from ..losses.vae_flow import flow_prior_kl, mel_ssim_loss, postflow_nll, word_duration_loss

__all__ = ["VAEFlowTerms"]


class VAEFlowTerms:
    """Settings and loss of the ``vae_flow`` option (see the module docstring)."""

    def __init__(self, lambda_l1: float = 0.5, lambda_ssim: float = 0.5, lambda_word_dur: float = 1.0,
                 lambda_sent_dur: float = 0.0, lambda_kl: float = 1.0, kl_start: int = 10000, kl_min: float = 0.0,
                 lambda_postflow: float = 1.0, postflow_start: int = 160000, two_stage: bool = True) -> None:
        ws = dict(lambda_l1=lambda_l1, lambda_ssim=lambda_ssim, lambda_word_dur=lambda_word_dur,
                  lambda_sent_dur=lambda_sent_dur, lambda_kl=lambda_kl, lambda_postflow=lambda_postflow)
        if any(v < 0 for v in ws.values()) or kl_start < 0 or postflow_start < 0:
            raise ConfigError(f"vae_flow weights and steps must be >= 0, got {ws}, {kl_start}, {postflow_start}")
        self.__dict__.update({k: float(v) for k, v in ws.items()})
        self.kl_start, self.kl_min = int(kl_start), float(kl_min)
        self.postflow_start, self.two_stage = int(postflow_start), bool(two_stage)

    def forward_kwargs(self, t: dict[str, Tensor]) -> dict[str, Any]:
        """Model keyword arguments of a prepared batch (teacher forcing: durations and the target mel)."""
        return {"durations": t["durations"], "mel": t["mel"], "mel_lengths": t["mel_lengths"],
                "max_frames": t["mel"].shape[-1]}

    def terms(self, out: Any, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """``{"loss", "mel_l1", ...}`` of one batch at optimizer step ``step`` (0-based)."""
        mel, mel_len = batch["mel"], batch["mel_lengths"]
        t: dict[str, Tensor] = {"l1": masked_mel_loss(out.mel_fvae, mel, mel_len, "l1")}
        if self.lambda_ssim > 0:
            t["ssim"] = mel_ssim_loss(out.mel_fvae.float(), mel.float(), mel_len)
        dur_t = out.word_durations.to(out.word_durations_pred.dtype)  # the teacher's frames summed per word
        t["wdur"] = word_duration_loss(out.word_durations_pred, dur_t, out.word_lengths, self.lambda_sent_dur)
        if out.posterior is None:
            raise ConfigError("the vae_flow terms need the model's posterior (pass the target mel)")
        t["kl"] = flow_prior_kl(*out.posterior)
        stage2 = step >= self.postflow_start and out.postflow is not None
        if stage2:
            t["postflow"] = postflow_nll(*out.postflow)
        kl = torch.clamp(t["kl"], min=self.kl_min) if step >= self.kl_start else t["kl"].detach()
        stage1 = self.lambda_l1 * t["l1"] + self.lambda_ssim * t.get("ssim", 0.0) \
            + self.lambda_word_dur * t["wdur"] + self.lambda_kl * kl
        if stage2:
            post = self.lambda_postflow * t["postflow"]
            loss = post if self.two_stage else stage1 + post
        else:
            loss = stage1
        return {"loss": loss, "mel_l1": t["l1"].detach(), **{k: v.detach() for k, v in t.items()}}
