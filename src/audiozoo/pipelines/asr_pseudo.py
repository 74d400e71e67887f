"""The model backend of the ``asr-pseudo`` data pipeline (:mod:`audiozoo.data.builders.asr_pseudo`).

The data layer imports no model; this module gives it its teacher and aligner (importing it installs them with
:func:`~audiozoo.data.builders.asr_pseudo.set_model_backend`; the ``audiozoo`` command line does so):

* teacher ``whisper`` (``whisper:beamN``, default beam 5 as GigaSpeech 2's transcription): Whisper tiny.en through
  CTranslate2 (:mod:`audiozoo.eval.judges`); any other spec is an audiozoo ``asr`` model (``NAME.TAG``, a run
  folder), optionally ``SPEC#ctc`` (best path of its CTC head, the default for models with one),
  ``SPEC#attention`` (greedy) or ``SPEC#beamN``. Long recordings are decoded in windows of at most 25 s cut at the
  quietest point (:func:`audiozoo.pipelines.asr.energy_segments`).
* aligner: an audiozoo ``asr`` model with a CTC head (:class:`audiozoo.pipelines.asr.AlignPipeline`: CTC Viterbi,
  :func:`audiozoo.nn.ctc.forced_align`); text normalised by :func:`audiozoo.eval.asr.normalize_text`, agreement
  by :func:`audiozoo.eval.asr.cer`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..data.builders.asr_pseudo import set_model_backend
from ..errors import ConfigError, DataError

__all__ = ["CTCAligner", "ModelTeacher", "WhisperTeacher", "make_aligner", "make_teacher"]

WINDOW_SECONDS = 25.0
SILENCE_PEAK = 10 ** (-50 / 20)


def _windows(wav: torch.Tensor, sample_rate: int) -> list[tuple[int, int]]:
    from .asr import energy_segments

    return [(a, b) for a, b in energy_segments(wav, sample_rate, WINDOW_SECONDS)
            if b > a and float(wav[a:b].abs().max()) >= SILENCE_PEAK]


class WhisperTeacher:
    """Whisper tiny.en (CTranslate2 int8) over windows of at most 25 s."""

    def __init__(self, beam_size: int = 5) -> None:
        from ..eval.judges.asr import WhisperJudge

        self.judge = WhisperJudge(beam_size=beam_size)
        self.name = f"whisper-tiny.en:beam{beam_size}"

    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> list[dict[str, Any]]:
        wins = _windows(wav, sample_rate)
        texts = self.judge.transcribe([wav[a:b] for a, b in wins], sample_rate) if wins else []
        return [{"start": a / sample_rate, "end": b / sample_rate, "text": t} for (a, b), t in zip(wins, texts)]


class ModelTeacher:
    """An audiozoo ``asr`` model (:class:`audiozoo.pipelines.asr.ASRPipeline`) over windows of at most 25 s."""

    def __init__(self, spec: str) -> None:
        from .asr import ASRPipeline

        model, _, how = spec.partition("#")
        m = re.fullmatch(r"beam(\d+)", how)
        beam, decoder = (int(m.group(1)), "attention") if m else (1, how or "auto")
        if decoder not in ("auto", "ctc", "attention"):
            raise ConfigError(f"teacher {spec!r}: the decoder after '#' must be ctc, attention or beamN")
        self.pipe = ASRPipeline(model, beam_size=beam, decoder=decoder, word_timestamps=False)
        self.name = f"{model}#{self.pipe.decoder}" + (f"{beam}" if beam > 1 else "")

    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> list[dict[str, Any]]:
        from ..dsp.io import resample

        if sample_rate != self.pipe.sample_rate:
            wav = resample(wav, sample_rate, self.pipe.sample_rate)
        sr = self.pipe.sample_rate
        return [{"start": a / sr, "end": b / sr, "text": self.pipe.transcribe_segment(wav[a:b])["text"]}
                for a, b in _windows(wav, sr)]


class CTCAligner:
    """Forced alignment and best-path text of an audiozoo ``asr`` model's CTC head."""

    def __init__(self, spec: str) -> None:
        from .asr import AlignPipeline

        self.pipe = AlignPipeline(spec)
        self.name = spec
        self.tok = self.pipe.tokenizer

    def normalize(self, text: str) -> str:
        from ..eval.asr import normalize_text

        return normalize_text(text)

    def unknown_chars(self, text: str) -> list[str]:
        unk = self.tok.unk_id
        return sorted({c for c in set(text) if c != " " and (unk in self.tok.encode(c) or not self.tok.encode(c))})

    def cer(self, reference: str, hypothesis: str) -> float:
        from ..eval.asr import cer

        return cer(reference, hypothesis)

    @torch.no_grad()
    def align(self, wav: torch.Tensor, sample_rate: int, text: str) -> dict[str, Any]:
        from ..dsp.io import resample
        from ..nn.ctc import ctc_greedy_decode, min_ctc_frames

        if sample_rate != self.pipe.sample_rate:
            wav = resample(wav, sample_rate, self.pipe.sample_rate)
        if wav.shape[-1] < self.pipe.model.frontend.num_samples(8):
            raise DataError(f"{wav.shape[-1]} samples: too short to align")
        lp = self.pipe.ctc_log_probs(wav)
        ids = self.tok.encode(text)
        if min_ctc_frames(ids) > lp.shape[0]:
            raise DataError(f"the text needs {min_ctc_frames(ids)} CTC frames, the audio has {lp.shape[0]}")
        words, _ = self.pipe._align_tokens(lp, ids, 0.0)
        hyp, frames = ctc_greedy_decode(lp[None], blank=self.pipe.model.blank_id, return_frames=True)
        fs = float(self.pipe.model.frame_shift)
        greedy = [(self.tok.decode([i]), f * fs) for i, f in zip(hyp[0], frames[0])]
        return {"text": text, "words": words, "greedy": greedy}


def make_teacher(spec: str) -> Any:
    """``whisper`` / ``whisper:beamN`` or an audiozoo ``asr`` model spec (see the module docstring)."""
    m = re.fullmatch(r"whisper(?::beam(\d+))?", spec)
    if m:
        return WhisperTeacher(beam_size=int(m.group(1) or 5))
    return ModelTeacher(spec)


def make_aligner(spec: str) -> CTCAligner:
    return CTCAligner(spec)


def _wer(refs: Any, hyps: Any) -> float:
    from ..eval.asr import wer

    return wer(refs, hyps)


set_model_backend(make_teacher, make_aligner, _wer)
