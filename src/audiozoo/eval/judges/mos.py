"""DNSMOS: Microsoft's no-reference speech quality predictors (P.835 SIG/BAK/OVRL and P.808 MOS).

DNSMOS P.835 (Reddy et al., ICASSP 2022, arXiv:2110.01763) predicts the three ITU-T P.835 ratings —
speech signal quality (SIG), background-noise intrusiveness (BAK) and overall quality (OVRL) — from the
raw 16 kHz waveform; DNSMOS P.808 (Reddy et al., ICASSP 2021, arXiv:2010.15258) predicts one MOS from a
log-mel spectrogram. The ONNX files come from the ``speechmos`` wheel (Microsoft, MIT).

The computation follows the DNS Challenge's ``dnsmos_local.py`` (as ``speechmos`` repackages it), written
here without librosa: audio shorter than 9.01 s is tiled to that length; 9.01 s windows every 1 s are
scored and averaged; the raw P.835 outputs go through the published cubic/quadratic calibration
polynomials; P.808 sees the 120-band power-mel (n_fft 321, hop 160, dB relative to the window's maximum,
80 dB range, ``(dB + 40) / 40``) of each window minus its last 10 ms. Window bounds use the reference's
float arithmetic, which skips a few 1 s hops whose rounded end falls one sample short (kept for parity).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from audiozoo.dsp.mel import MelSpectrogram, power_to_db
from audiozoo.errors import AudioError, require

from ._audio import WavBatch, as_wav_list, num_threads
from .files import judge_file

__all__ = ["SAMPLE_RATE", "DNSMOS", "dnsmos", "dnsmos_p808_features"]

SAMPLE_RATE = 16000
INPUT_LENGTH = 9.01  # seconds per scored window (DNSMOS' training clip length)

# Calibration polynomials of dnsmos_local.py (highest power first), mapping raw network outputs to MOS.
_POLY = {
    False: {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
            "ovrl": (-0.06766283, 1.11546468, 0.04602535)},
    True: {"sig": (-0.01019296, 0.02751166, 1.19576786, -0.24348726),
           "bak": (-0.04976499, 0.44276479, -0.1644611, 0.96883132),
           "ovrl": (-0.00533021, 0.005101, 1.18058466, -0.11236046)},
}


@functools.lru_cache(maxsize=1)
def _mel() -> MelSpectrogram:
    return MelSpectrogram(SAMPLE_RATE, n_fft=321, hop_length=160, n_mels=120, power=2.0).double()


def dnsmos_p808_features(segment: torch.Tensor) -> torch.Tensor:
    """P.808 input of one 9.01 s window: ``(T,)`` 16 kHz audio -> ``(L, 120)`` scaled dB mel (L = 900)."""
    mel = _mel()(segment[:-160].double())  # (120, L); the reference drops the window's last 160 samples
    db = power_to_db(mel, ref="max", amin=1e-10, top_db=80.0)
    return ((db + 40.0) / 40.0).T.float()


class DNSMOS:
    """DNSMOS P.835 + P.808 scorer.

    Args:
        personalized: use the personalised P.835 model (``pdnsmos``, trained to penalise interfering
            talkers) — it needs ``speechmos``' ``pdnsmos_models`` file and is not pinned here, so only
            ``False`` is accepted for now.
    """

    def __init__(self, personalized: bool = False) -> None:
        if personalized:
            raise NotImplementedError("personalised DNSMOS is not pinned in audiozoo yet")
        ort = require("onnxruntime", "DNSMOS", extra="judges")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads()
        opts.inter_op_num_threads = 1
        cpu = ["CPUExecutionProvider"]
        self.p835 = ort.InferenceSession(str(judge_file("dnsmos/sig_bak_ovr.onnx")), opts, providers=cpu)
        self.p808 = ort.InferenceSession(str(judge_file("dnsmos/model_v8.onnx")), opts, providers=cpu)
        self.personalized = personalized

    def score(self, wav: np.ndarray) -> dict[str, float]:
        """Scores of one 16 kHz waveform ``(T,)`` in [-1, 1]: ``{"sig", "bak", "ovrl", "p808"}``."""
        peak = float(np.abs(wav).max())
        if peak > 1.01:  # a little resampling overshoot is clipped; louder input is an error
            raise AudioError(f"DNSMOS expects samples in [-1, 1], got a peak of {peak:.3f}")
        wav = np.clip(wav, -1.0, 1.0)
        fs = SAMPLE_RATE
        need = int(INPUT_LENGTH * fs)
        audio = wav
        while len(audio) < need:  # short clips are tiled (as the reference does)
            audio = np.concatenate([audio, audio])
        num_hops = int(np.floor(len(audio) / fs) - INPUT_LENGTH) + 1
        segs = []
        for idx in range(num_hops):
            seg = audio[int(idx * fs): int((idx + INPUT_LENGTH) * fs)]
            if len(seg) >= need:
                segs.append(seg)
        x = np.stack(segs).astype(np.float32)  # (N, 144160)
        raw = self.p835.run(None, {"input_1": x})[0]  # (N, 3): SIG, BAK, OVRL before calibration
        feats = torch.stack([dnsmos_p808_features(torch.from_numpy(s)) for s in x]).numpy()
        p808 = self.p808.run(None, {"input_1": np.ascontiguousarray(feats)})[0][:, 0]
        poly = _POLY[self.personalized]
        out = {k: float(np.mean(np.polyval(poly[k], raw[:, i].astype(np.float64))))
               for i, k in enumerate(("sig", "bak", "ovrl"))}
        out["p808"] = float(np.mean(p808))
        return out

    def __call__(self, wavs: WavBatch, sample_rate: int) -> dict[str, torch.Tensor]:
        items, single = as_wav_list(wavs, sample_rate, sample_rate, "DNSMOS")
        for i, w in enumerate(items):  # the caller's samples must be in [-1, 1] ...
            if float(np.abs(w).max()) > 1.01:
                raise AudioError(f"DNSMOS expects samples in [-1, 1], waveform {i} has a peak of "
                                 f"{float(np.abs(w).max()):.3f}")
        if sample_rate != SAMPLE_RATE:
            # ... but resampling a legal waveform may overshoot 1 (Gibbs ringing): scaled back, not refused
            items, _ = as_wav_list(items, sample_rate, SAMPLE_RATE, "DNSMOS")
            items = [w / max(1.0, float(np.abs(w).max())) for w in items]
        scores = [self.score(w) for w in items]
        out = {k: torch.tensor([s[k] for s in scores], dtype=torch.float64) for k in ("sig", "bak", "ovrl", "p808")}
        return {k: v[0] for k, v in out.items()} if single else out


@functools.lru_cache(maxsize=1)
def _scorer() -> DNSMOS:
    return DNSMOS()


def dnsmos(wavs: WavBatch, sample_rate: int) -> dict[str, Any]:
    """DNSMOS of speech: ``{"sig", "bak", "ovrl", "p808"}`` (MOS on 1..5, higher is better).

    Args:
        wavs: a ``(T,)`` or ``(B, T)`` waveform tensor/array in [-1, 1], or a list of 1-D waveforms, at
            ``sample_rate`` (resampled to 16 kHz with soxr; the reference expects 16 kHz input).
    Returns:
        each key a float64 tensor: 0-d for one ``(T,)`` waveform, ``(B,)`` otherwise.
    """
    return _scorer()(wavs, sample_rate)
