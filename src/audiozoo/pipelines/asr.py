"""Speech recognition and forced alignment pipelines (CLI ``audiozoo asr`` and ``audiozoo align``).

:class:`ASRPipeline` (``audiozoo.pipeline("asr", model=...)``): audio -> text with word timestamps.

* **Long recordings** are cut into segments of at most ``max_segment_seconds`` at the quietest point (lowest
  100 ms energy) of each segment's last half, a simple energy VAD, so no word is cut at a window edge when
  there is a pause to cut at; each segment is decoded alone, so memory is bounded by one segment.
* **Decoding**: the model's attention decoder, greedy (``beam_size=1``) or beam search; or (``decoder="ctc"``,
  and by default for greedy decoding of a model with a CTC head) the best path of its CTC head.
* **Word timestamps**: the decoded text is force-aligned (:func:`audiozoo.nn.ctc.forced_align`, CTC Viterbi)
  to the model's CTC posteriors of the segment; each word gets the frames of its first to last character,
  times ``frame * frame_shift`` plus the segment's start. Models without a CTC head give text without times.

:class:`AlignPipeline` (``audiozoo.pipeline("align", model=...)``): audio + its transcript -> the time span of every
word and character (JSON, or a Praat TextGrid). The transcript is normalised as the model was trained
(:func:`audiozoo.eval.asr.normalize_text`: lower case, no punctuation); the CTC posteriors of long audio are
computed in windows with context on both sides and stitched, so memory stays bounded; the Viterbi alignment
itself needs ``frames x (2 * characters + 1)`` bytes (10 minutes of speech: about 250 MB).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import AudioError, ConfigError, DataError
from ..eval.asr import normalize_text
from ..nn.ctc import ctc_greedy_decode, forced_align, min_ctc_frames, token_spans, word_spans
from ..resolve import resolve_model
from .base import AudioInput, Pipeline

__all__ = ["DEFAULT_ASR_MODEL", "ASRPipeline", "AlignPipeline", "energy_segments", "read_transcript", "to_srt",
           "to_textgrid", "to_vtt"]

#: the shipped small checkpoint (a CPU-trained Conformer CTC/attention model; see docs/models/conformer_aed.md)
DEFAULT_ASR_MODEL = "conformer_aed_small.pseudo_en"


def energy_segments(wav: torch.Tensor, sample_rate: int, max_seconds: float, smooth_seconds: float = 0.1
                    ) -> list[tuple[int, int]]:
    """Cut ``wav (T,)`` into ``[start, end)`` sample ranges of at most ``max_seconds``.

    Each cut is placed at the frame of lowest energy (10 ms frames, averaged over ``smooth_seconds``) within the
    second half of the segment it ends, so cuts fall in pauses when the speech has any.
    """
    if max_seconds <= 0:
        raise ConfigError(f"max_seconds must be > 0, got {max_seconds}")
    t = int(wav.shape[-1])
    limit = max(1, int(max_seconds * sample_rate))
    if t <= limit:
        return [(0, t)]
    hop = max(1, sample_rate // 100)
    frames = wav[: t // hop * hop].float().reshape(-1, hop).pow(2).mean(-1)
    k = max(1, int(round(smooth_seconds * 100)))
    energy = F.avg_pool1d(frames[None, None], k, stride=1, padding=k // 2, count_include_pad=False)[0, 0]
    out, start = [], 0
    while t - start > limit:
        lo, hi = (start + limit // 2) // hop, min((start + limit) // hop, energy.numel())
        cut = start + limit if hi <= lo else int(energy[lo:hi].argmin()) * hop + lo * hop
        cut = min(max(cut, start + hop), start + limit)
        out.append((start, cut))
        start = cut
    out.append((start, t))
    return out


def _fmt_time(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(segments: list[dict[str, Any]]) -> str:
    """SubRip subtitles of ``[{"start", "end", "text"}]`` (segments with text only)."""
    rows = [s for s in segments if s.get("text")]
    return "".join(f"{i}\n{_fmt_time(s['start'], ',')} --> {_fmt_time(s['end'], ',')}\n{s['text']}\n\n"
                   for i, s in enumerate(rows, 1))


def to_vtt(segments: list[dict[str, Any]]) -> str:
    """WebVTT subtitles of ``[{"start", "end", "text"}]``."""
    rows = [s for s in segments if s.get("text")]
    return "WEBVTT\n\n" + "".join(f"{_fmt_time(s['start'], '.')} --> {_fmt_time(s['end'], '.')}\n{s['text']}\n\n"
                                  for s in rows)


def _tier(name: str, items: list[dict[str, Any]], key: str, duration: float) -> list[str]:
    """One Praat interval tier; gaps between items become empty intervals so the tier covers [0, duration]."""
    ivs, t = [], 0.0
    for it in items:
        if it["start"] > t + 1e-6:
            ivs.append((t, it["start"], ""))
        ivs.append((it["start"], it["end"], it[key]))
        t = it["end"]
    if duration > t + 1e-6 or not ivs:
        ivs.append((t, max(duration, t), ""))
    lines = ['        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
             f"        xmax = {duration:.4f}", f"        intervals: size = {len(ivs)}"]
    for i, (a, b, text) in enumerate(ivs, 1):
        text = text.replace('"', '""')
        lines += [f"        intervals [{i}]:", f"            xmin = {a:.4f}", f"            xmax = {b:.4f}",
                  f'            text = "{text}"']
    return lines


def to_textgrid(result: dict[str, Any]) -> str:
    """A Praat TextGrid (long text format) with a ``words`` and a ``chars`` tier of an alignment result."""
    dur = float(result["duration_s"])
    out = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {dur:.4f}",
           "tiers? <exists>", "size = 2", "item []:"]
    for i, (name, items, key) in enumerate((("words", result["words"], "word"), ("chars", result["chars"], "char")), 1):
        out += [f"    item [{i}]:", *_tier(name, items, key, dur)]
    return "\n".join(out) + "\n"


class _ASRBase(Pipeline):
    def __init__(self, model: Any = DEFAULT_ASR_MODEL, **kw: Any):
        super().__init__(**kw)
        self.model_spec = model if isinstance(model, (str, os.PathLike)) else getattr(model, "model_name",
                                                                                      type(model).__name__)
        self.model_spec = str(self.model_spec)
        self.model = resolve_model(model, "asr", trained=True).to(self.device).eval()
        self.sample_rate = int(self.model.frontend.sample_rate)
        self.tokenizer = self.model.tokenizer

    @property
    def has_ctc(self) -> bool:
        return getattr(self.model, "ctc_head", None) is not None

    @torch.no_grad()
    def _encode(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames = self.model.frontend(wav.float().to(self.device)[None])
        return self.model.encode(feats, frames)

    def _align_tokens(self, log_probs: torch.Tensor, ids: list[int], offset_s: float
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Word and character spans (seconds) of ``ids`` force-aligned to ``log_probs (T, V)``."""
        if not ids:
            return [], []
        labels, scores = forced_align(log_probs, torch.tensor(ids), blank=self.model.blank_id)
        spans = token_spans(labels, scores, blank=self.model.blank_id)
        texts = [self.tokenizer.decode([s.token]) for s in spans]
        space = self.tokenizer.encode(" ")
        words = word_spans(spans, separator=space, texts=texts)
        fs = float(self.model.frame_shift)

        def item(kind: str, name: str, s: Any) -> dict[str, Any]:
            return {kind: name, "start": round(offset_s + s.start * fs, 3), "end": round(offset_s + s.end * fs, 3),
                    "score": round(math.exp(s.score), 4)}

        chars = [item("char", t, s) for t, s in zip(texts, spans) if t.strip()]
        return [item("word", str(w.token), w) for w in words], chars


class ASRPipeline(_ASRBase):
    """Audio -> ``{"input", "model", "decoder", "text", "segments": [{start, end, text}], "words": [{word, start,
    end, score}], "duration_s"}``; ``words`` is empty for models without a CTC head.

    Args:
        model: an ``asr`` model spec (weight set, checkpoint folder...); default the shipped small model.
        beam_size: 1 = greedy decoding, > 1 = beam search (attention decoder).
        decoder: ``"attention"`` (the model's decoder), ``"ctc"`` (best path of the CTC head: no autoregressive
            loop, so no runaway repetitions; the better one for weakly trained models such as the shipped small
            model) or ``"auto"``: CTC for greedy decoding of a model with a CTC head, else attention.
        max_segment_seconds: longest segment decoded at once (long inputs are cut at pauses).
        max_tokens_per_second: cap on hypothesis length (tokens per second of audio; stops runaway decoding).
        silence_dbfs: segments whose peak is below this are skipped as silence.
    """

    task = "asr"

    def __init__(self, model: Any = DEFAULT_ASR_MODEL, beam_size: int = 1, decoder: str = "auto",
                 max_segment_seconds: float = 20.0, max_tokens_per_second: float = 30.0, silence_dbfs: float = -50.0,
                 word_timestamps: bool = True, **kw: Any):
        super().__init__(model, **kw)
        if beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
        if decoder not in ("auto", "attention", "ctc"):
            raise ConfigError(f"decoder must be 'auto', 'attention' or 'ctc', got {decoder!r}")
        if decoder == "auto":
            decoder = "ctc" if self.has_ctc and beam_size == 1 else "attention"
        if decoder == "ctc" and not self.has_ctc:
            raise ConfigError(f"{self.model_spec} has no CTC head; use decoder='attention'")
        self.decoder = decoder
        self.beam_size, self.max_segment_seconds = int(beam_size), float(max_segment_seconds)
        self.max_tokens_per_second, self.silence_dbfs = float(max_tokens_per_second), float(silence_dbfs)
        self.word_timestamps = bool(word_timestamps)

    @torch.no_grad()
    def transcribe_segment(self, wav: torch.Tensor, offset_s: float = 0.0) -> dict[str, Any]:
        """One segment ``(T,)`` at :attr:`sample_rate` -> ``{"text", "words"}``."""
        if wav.shape[-1] < self.model.frontend.num_samples(8):  # shorter than the encoders' receptive field
            return {"text": "", "words": []}
        memory, mem_len = self._encode(wav)
        if self.decoder == "ctc":
            ids = ctc_greedy_decode(self.model.ctc_log_probs(memory), mem_len.cpu(), blank=self.model.blank_id)[0]
        else:
            max_len = max(4, int(self.max_tokens_per_second * wav.shape[-1] / self.sample_rate))
            toks, lens = self.model.generate_from_memory(memory, mem_len, "beam" if self.beam_size > 1 else "greedy",
                                                         beam_size=self.beam_size, max_len=max_len)
            ids = toks[0, : int(lens[0])].tolist()
        text = " ".join(self.tokenizer.decode(ids).split())
        words: list[dict[str, Any]] = []
        if self.word_timestamps and self.has_ctc and ids:
            lp = self.model.ctc_log_probs(memory)[0, : int(mem_len[0])].cpu()
            ids = self.tokenizer.encode(text)
            if min_ctc_frames(ids) <= lp.shape[0]:
                words, _ = self._align_tokens(lp, ids, offset_s)
        return {"text": text, "words": words}

    def _process(self, a: AudioInput) -> dict[str, Any]:
        wav = a.wav
        n = int(wav.shape[-1])
        if n == 0:
            raise AudioError(f"{a.source}: empty audio")
        segments, words = [], []
        for start, end in energy_segments(wav, self.sample_rate, self.max_segment_seconds):
            seg = wav[start:end]
            peak = float(seg.abs().max()) if seg.numel() else 0.0
            t0, t1 = start / self.sample_rate, end / self.sample_rate
            if peak < 10 ** (self.silence_dbfs / 20):
                segments.append({"start": round(t0, 3), "end": round(t1, 3), "text": ""})
                continue
            r = self.transcribe_segment(seg, t0)
            segments.append({"start": round(t0, 3), "end": round(t1, 3), "text": r["text"]})
            words += r["words"]
        text = " ".join(s["text"] for s in segments if s["text"])
        return {"input": a.source, "model": self.model_spec, "decoder": self.decoder, "text": text,
                "segments": segments, "words": words, "duration_s": round(n / self.sample_rate, 3)}


class AlignPipeline(_ASRBase):
    """Forced alignment of a known transcript: ``align(audio, text) -> {"input", "model", "text", "duration_s",
    "frame_shift_s", "words": [{word, start, end, score}], "chars": [{char, start, end, score}]}``.

    ``score`` is the mean posterior of the aligned frames (``exp`` of the mean log-probability): low values mark
    words the model hardly hears (mismatched transcript, noise). Needs a model with a CTC head.

    Args:
        window_seconds, context_seconds: CTC posteriors of long audio are computed in windows of
            ``window_seconds`` with ``context_seconds`` of extra audio on both sides (discarded).
    """

    task = "align"

    def __init__(self, model: Any = DEFAULT_ASR_MODEL, window_seconds: float = 30.0, context_seconds: float = 2.0,
                 **kw: Any):
        super().__init__(model, **kw)
        if not self.has_ctc:
            raise ConfigError(f"{self.model_spec}: forced alignment needs a model with a CTC head (ctc=True)")
        if window_seconds <= 0 or context_seconds < 0:
            raise ConfigError(f"need window_seconds > 0 and context_seconds >= 0, got {window_seconds}, "
                              f"{context_seconds}")
        self.window_seconds, self.context_seconds = float(window_seconds), float(context_seconds)

    @torch.no_grad()
    def ctc_log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """CTC log-posteriors ``(T', V)`` of ``wav (T,)``, in windows for long audio."""
        spf = int(round(self.model.frame_shift * self.sample_rate))  # samples per CTC frame
        n = int(wav.shape[-1])
        win = max(1, int(self.window_seconds * self.sample_rate) // spf)
        ctx = int(self.context_seconds * self.sample_rate) // spf
        total = math.ceil(n / spf)
        if total <= win + 2 * ctx:
            memory, mem_len = self._encode(wav)
            return self.model.ctc_log_probs(memory)[0, : int(mem_len[0])].cpu()
        parts = []
        for core in range(0, total, win):
            a, b = max(0, core - ctx), min(total, core + win + ctx)
            memory, mem_len = self._encode(wav[a * spf : b * spf])
            lp = self.model.ctc_log_probs(memory)[0, : int(mem_len[0])].cpu()
            lo = core - a
            parts.append(lp[lo : lo + min(win, total - core)])
        return torch.cat(parts)

    def align(self, audio: Any, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise DataError(f"the transcript must be a string, got {type(text).__name__}")
        a = self.preprocess(audio)
        norm = normalize_text(text)
        if not norm:
            raise DataError("the transcript is empty after normalisation (nothing to align)")
        ids = self.tokenizer.encode(norm)
        unk = self.tokenizer.unk_id
        if unk is not None and unk in ids:
            bad = sorted({c for c in norm if self.tokenizer.encode(c) == [unk]})
            raise DataError(f"the transcript has characters the model cannot align: {bad}")
        lp = self.ctc_log_probs(a.wav)
        need = min_ctc_frames(ids)
        if need > lp.shape[0]:
            raise DataError(f"{a.source}: {a.wav.shape[-1] / self.sample_rate:.2f} s of audio holds {lp.shape[0]} "
                            f"frames of {self.model.frame_shift * 1000:.0f} ms, the transcript needs {need}")
        words, chars = self._align_tokens(lp, ids, 0.0)
        return {"input": a.source, "model": self.model_spec, "text": norm,
                "duration_s": round(a.wav.shape[-1] / self.sample_rate, 3),
                "frame_shift_s": float(self.model.frame_shift), "words": words, "chars": chars}

    def align_to_file(self, audio: Any, text: str, output: str | os.PathLike) -> dict[str, Any]:
        """:meth:`align` and write ``output`` as JSON (``.json``) or a Praat TextGrid (``.TextGrid``)."""
        res = self.align(audio, text)
        out = Path(output)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".textgrid":
            out.write_text(to_textgrid(res), encoding="utf-8")
        else:
            out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return res

    def _process(self, a: AudioInput) -> dict[str, Any]:
        raise ConfigError("AlignPipeline needs a transcript: call align(audio, text)")


def read_transcript(text_or_path: str) -> str:
    """``TEXT`` as given, or the contents of the file it names (UTF-8)."""
    p = Path(text_or_path)
    if len(text_or_path) < 4096 and p.suffix.lower() in (".txt", ".lab") and p.is_file():
        return p.read_text(encoding="utf-8")
    return text_or_path


