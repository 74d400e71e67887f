"""A mel-spectrogram codec followed by a vocoder: codes -> mel -> waveform (Lyra, SpecVQGAN + MelGAN).

Built by :func:`audiozoo.resolve.resolve_model` from a composite spec (``"specvqgan_speech.TAG+hifigan_v1.universal"``
or ``"...+griffinlim:64"``); this file imports no other model file: both parts arrive as constructed modules. The
codec must code a mel (``encode_mel`` / ``decode_mel``, e.g. :class:`audiozoo.models.codec.specvqgan.SpecVQGAN`)
computed exactly as the vocoder's own front end computes it (checked: sample rate, FFT, hop, window, bands, band
edges, centring, log): then the vocoder receives the mel it was trained on.
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError

__all__ = ["MelCodecSystem"]

_FRONTEND_KEYS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max", "center", "log",
                  "amin")


class MelCodecSystem(nn.Module):
    """``encode(wav (B, T)) -> codes (B, Q, T // hop_length)`` by the codec; ``decode(codes) -> wav (B, L *
    hop_length)``: the codec's decoded mel through the vocoder. Family ``codec``; ``sample_rate``, ``hop_length``,
    ``frame_rate``, ``num_codebooks``, ``codebook_size``, ``bitrate`` are the codec's."""

    family = "codec"

    def __init__(self, codec: nn.Module, vocoder: nn.Module):
        super().__init__()
        self.check_codec(codec)
        cf, vf = getattr(codec, "frontend", None), getattr(vocoder, "frontend", None)
        if cf is None or vf is None or not hasattr(cf, "get_config") or not hasattr(vf, "get_config"):
            raise ConfigError(f"cannot check that {type(codec).__name__}'s mel is {type(vocoder).__name__}'s input: "
                              "both need a feature-extractor front end")
        cc, vc = cf.get_config(), vf.get_config()
        bad = [f"{k}: codec {cc.get(k)!r} vs vocoder {vc.get(k)!r}" for k in _FRONTEND_KEYS if cc.get(k) != vc.get(k)]
        if cc.get("type") != vc.get("type") or bad:
            raise ConfigError(f"cannot compose {type(codec).__name__} with {type(vocoder).__name__}: the codec's mel "
                              f"is not the vocoder's input ({'; '.join(bad) or 'different front ends'})")
        self.codec, self.vocoder = codec, vocoder
        self.sample_rate, self.hop_length = int(codec.sample_rate), int(codec.hop_length)
        self.frame_rate = float(codec.frame_rate)
        self.num_codebooks, self.codebook_size = int(codec.num_codebooks), int(codec.codebook_size)
        self.model_name = "+".join(str(getattr(m, "model_name", type(m).__name__)) for m in (codec, vocoder))

    @staticmethod
    def check_codec(codec: nn.Module) -> None:
        """Raise :class:`ConfigError` unless ``codec`` codes mel spectrograms (``encode_mel`` / ``decode_mel``)."""
        if not (callable(getattr(codec, "decode_mel", None)) and callable(getattr(codec, "encode_mel", None))):
            raise ConfigError(f"{type(codec).__name__} codes waveforms, not mel spectrograms: it cannot be followed "
                              "by a vocoder (compose a mel codec such as specvqgan_speech)")

    @property
    def config(self) -> Any:
        return getattr(self.codec, "config", None)

    @property
    def bitrate(self) -> float:
        return self.num_codebooks * math.log2(self.codebook_size) * self.frame_rate

    def encode(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> codes ``(B, Q, T // hop_length)``."""
        return self.codec.encode(wav)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(B, Q, L)`` -> waveform ``(B, L * hop_length)`` (the vocoder's output padded or trimmed to it)."""
        mel = self.codec.decode_mel(codes)
        out = self.vocoder(mel)
        wav = out[0] if isinstance(out, (tuple, list)) else out
        n = codes.shape[-1] * self.hop_length
        return F.pad(wav, (0, max(0, n - wav.shape[-1])))[..., :n]

    def forward(self, wav: Tensor) -> Tensor:
        """Round trip ``wav (B, T) -> codes -> wav (B, (T // hop_length) * hop_length)``."""
        return self.decode(self.encode(wav))
