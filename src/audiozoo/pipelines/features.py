"""``features`` pipeline: an audio file -> log-mel / Kaldi fbank features, a spectrogram PNG and a summary.

This is the toolkit's first real pipeline: it needs no trained weights, so its outputs are measurements of
the input, not model predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..dsp.kaldi import kaldi_fbank
from ..dsp.mel import MelSpectrogram, power_to_db
from .base import AudioInput, Pipeline, ensure_dir
from .plots import save_image_png
from .streaming import frames_in_chunks


class FeaturesPipeline(Pipeline):
    """Compute an 80/128-bin log-mel spectrogram (Slaney mel, 25 ms / 10 ms) and Kaldi fbank per input.

    Returns per input: duration, sample rate, peak/RMS level, feature shapes and statistics, and (with
    ``out_dir``) writes ``<stem>.png`` (log-mel image) and ``<stem>.json``.
    """

    task = "features"
    #: Longer inputs are analysed ``long_chunk_seconds`` at a time (the same frames, in bounded memory).
    max_offline_seconds: float = 30.0
    long_chunk_seconds: float = 10.0

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, out_dir: str | Path | None = None, **kw):
        super().__init__(**kw)
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.out_dir = Path(out_dir) if out_dir is not None else None
        win, hop = int(0.025 * sample_rate), int(0.010 * sample_rate)
        n_fft = 1 << (win - 1).bit_length()
        self.hop, self.win = hop, win
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, win_length=win,
                                  n_mels=n_mels, power=2.0).to(self.device)

    def _forward(self, a: AudioInput) -> dict[str, Any]:
        wav = a.wav.to(self.device)

        def fbank_of(x: torch.Tensor) -> torch.Tensor:
            return kaldi_fbank(x, self.sample_rate, num_mel_bins=self.n_mels)

        if wav.numel() > self.max_offline_seconds * self.sample_rate:  # frame by frame: equal to one pass
            chunk = max(1, int(self.long_chunk_seconds * self.sample_rate / self.hop))
            power = frames_in_chunks(self.mel, wav, self.hop, self.mel.n_fft, chunk)
            fbank = frames_in_chunks(fbank_of, wav, self.hop, self.win, chunk).cpu()
        else:
            power = self.mel(wav)
            fbank = fbank_of(wav).cpu() if wav.numel() >= self.win else None
        logmel = power_to_db(power, top_db=80.0).cpu()  # top_db is relative to the whole input's maximum
        rms = float(wav.pow(2).mean().sqrt())
        result: dict[str, Any] = {
            "input": a.source,
            "sample_rate": self.sample_rate,
            "duration_s": round(wav.numel() / self.sample_rate, 4),
            "peak": round(float(wav.abs().max()), 6),
            "rms_dbfs": round(20 * torch.log10(torch.tensor(max(rms, 1e-10))).item(), 3),
            "log_mel": {"shape": list(logmel.shape), "n_mels": self.n_mels, "hop_length": self.hop,
                        "mean_db": round(float(logmel.mean()), 3), "max_db": round(float(logmel.max()), 3)},
        }
        if fbank is not None:
            result["kaldi_fbank"] = {"shape": list(fbank.shape), "mean": round(float(fbank.mean()), 4),
                                     "std": round(float(fbank.std()), 4)}
        if self.out_dir is not None:
            d = ensure_dir(self.out_dir)
            stem = Path(a.source).stem if not a.source.startswith("<") else f"input{len(list(d.glob('*.json')))}"
            png = d / f"{stem}.png"
            save_spectrogram_png(logmel, png, self.sample_rate, self.hop, title=Path(a.source).name)
            result["png"] = str(png)
            (d / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        return result


def save_spectrogram_png(logmel: torch.Tensor, path: str | Path, sample_rate: int, hop: int, title: str = "") -> None:
    """Write a log-mel spectrogram ``(n_mels, L)`` in dB as a PNG with time/mel axes (matplotlib)."""
    n_mels, frames = logmel.shape
    save_image_png(logmel.numpy(), path, extent=(0, frames * hop / sample_rate, 0, n_mels), ylabel="mel bin",
                   title=title, cmap="magma", colorbar={"format": "%+.0f dB"})
