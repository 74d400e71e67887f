"""A text-to-speech system: an acoustic model (family ``tts``) followed by a vocoder (family ``vocoder``).

A model that speaks waveforms itself (``outputs_waveform = True``: FastSpeech 2s) is a system with no vocoder.

Built by :func:`audiozoo.resolve.resolve_model` from a composite spec (``"fastspeech2_small.piper_joe+
hifigan_v1.universal"``, or ``"...+griffinlim:32"``); this file imports no other model file: both parts arrive
as constructed modules.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError


class TTSSystem(nn.Module):
    """``synthesize(tokens (B, N), lengths, **controls) -> (wav (B, T), wav_lengths (B,))``.

    Attributes: ``acoustic``, ``vocoder``, ``sample_rate`` (the vocoder's), ``hop_length``, ``family = "tts"``.
    The acoustic model's mel must be the vocoder's input: same ``n_mels``, hop and sample rate (checked; against the
    vocoder's ``mel_hop_length`` / ``mel_sample_rate`` where it has them).
    """

    family = "tts"

    def __init__(self, acoustic: nn.Module, vocoder: nn.Module | None = None):
        super().__init__()
        waveform = bool(getattr(acoustic, "outputs_waveform", False))
        name = str(getattr(acoustic, "model_name", type(acoustic).__name__))
        if waveform and vocoder is not None:
            raise ConfigError(f"{name} outputs a waveform itself: give it without a vocoder (no '+VOCODER')")
        if not waveform and vocoder is None:
            raise ConfigError(f"{name} outputs a mel spectrogram: it needs a vocoder ('{name}+hifigan_v1.universal')")
        if vocoder is None:
            self.acoustic, self.vocoder = acoustic, None
            self.sample_rate = int(acoustic.sample_rate)
            self.hop_length = int(acoustic.hop_length)
            self.model_name = name
            return
        # a vocoder that changes the rate (HiFiNet: 16 kHz mel -> 48 kHz) states its mel's own rate and hop
        v_hop = getattr(vocoder, "mel_hop_length", getattr(vocoder, "hop_length", None))
        v_rate = getattr(vocoder, "mel_sample_rate", getattr(vocoder, "sample_rate", None))
        for what, a, v in (("n_mels", getattr(acoustic, "n_mels", None), getattr(vocoder, "n_mels", None)),
                           ("hop_length", getattr(acoustic, "hop_length", None), v_hop),
                           ("sample_rate", getattr(acoustic, "sample_rate", None), v_rate)):
            if a is not None and v is not None and int(a) != int(v):
                raise ConfigError(f"cannot compose {type(acoustic).__name__} with {type(vocoder).__name__}: the "
                                  f"acoustic model's {what} is {a}, the vocoder's {v}")
        self.acoustic, self.vocoder = acoustic, vocoder
        self.sample_rate = int(getattr(vocoder, "sample_rate", getattr(acoustic, "sample_rate", 0)))
        self.hop_length = int(getattr(vocoder, "hop_length", getattr(acoustic, "hop_length", 0)))
        self.model_name = "+".join(str(getattr(m, "model_name", type(m).__name__)) for m in (acoustic, vocoder))

    @property
    def config(self) -> Any:
        return getattr(self.acoustic, "config", None)

    @torch.no_grad()
    def synthesize(self, tokens: Tensor, lengths: Tensor | None = None, **controls: Any) -> tuple[Tensor, Tensor]:
        """Token ids -> waveform ``(B, T)`` at :attr:`sample_rate` and sample lengths; ``controls`` go to the
        acoustic model's ``synthesize`` (``alpha``, ``pitch_shift``, ``energy_scale``...)."""
        if self.vocoder is None:  # the model's own waveform decoder
            return self.acoustic.synthesize(tokens, lengths, **controls)
        mel, frames = self.acoustic.synthesize(tokens, lengths, **controls)
        return self.vocoder(mel, frames)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None, **controls: Any) -> tuple[Tensor, Tensor]:
        return self.synthesize(tokens, lengths, **controls)
