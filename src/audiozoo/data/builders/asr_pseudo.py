"""Pseudo-labelled ASR data from long unlabelled recordings: the GigaSpeech 2 pipeline at CPU scale.

``audiozoo data build asr-pseudo --out DIR [--teacher whisper|NAME.TAG|RUN_DIR] [--aligner NAME.TAG] ...`` runs
five resumable stages, each in its own folder ``DIR/<stage>/`` with its own manifest (GigaSpeech 2, Yang et al.,
ACL 2025, arXiv:2406.11546, §3: crawl -> transcribe -> forced-align -> segment -> filter; ``SpeechColab/
GigaSpeech2`` ``pipeline/``):

1. ``collect/``: long *unlabelled* recordings (16 kHz mono): paragraphs of several train-split WordNet sentences
   read by the Piper voice (sentence by sentence, joined with pauses) and by espeak-ng/flite voices (one call per
   paragraph), and the real recordings of ``../shared/data`` that no test set uses (FSDD takes 5-49 joined per
   speaker into long takes, the yes/no corpus joined by five, SiSec 2011 speech, the LibriSpeech clips of
   ``librosa/``, the two clips of unknown origin next to CMU ARCTIC). A share of them gets room reverberation
   (``rirs/``) and background noise (``noise/``, SNR 5-20 dB). Every recording's text, when known, is kept aside
   as ``reference_text`` and read only by the summary (to score the pipeline), never by a later stage.
   **Never used**: the CMU ARCTIC prompts a0001-a0006 and FSDD takes 0-4 (``recipes/asr/prepare.py``'s
   ``test_real``), sentences and audio files of the ``--exclude`` manifests (held-out sets), and the Piper
   builder's held-out sentences.
2. ``transcribe/``: a teacher (Whisper tiny.en, or any audiozoo ``asr`` model) transcribes each recording in
   windows of at most ``--window-seconds`` cut at pauses (GigaSpeech 2 decodes 30 s windows).
3. ``align/``: the teacher's text of each window (numbers spelled out, then normalised as scored) is
   force-aligned to the window with an audiozoo CTC model (CTC Viterbi, :func:`audiozoo.nn.ctc.forced_align`),
   and the window is cut at word boundaries in pauses into segments of 1-30 s (``--target-seconds``); each
   segment keeps the CTC model's own best-path text of its frames (``ctc_text``) and the mean posterior of its
   aligned words (``align_score``).
4. ``filter/``: drops segments, recording *why* (``dropped.jsonl``: ``reasons``), in this order: ``charset``
   (characters the aligner's vocabulary lacks), ``align_failed`` (the text does not fit the window),
   ``duration`` (outside ``--min-seconds``..``--max-seconds``), ``chars_per_second`` (outside
   ``--min-cps``..``--max-cps``: hallucinated or missing text), ``language`` (share of English words below
   ``--min-english``; GigaSpeech 2 uses a fastText LID at 0.95, here a WordNet lexicon stands in), ``agreement``
   (CER between the teacher's text and the CTC model's text above ``--max-cer``). ``kept.jsonl`` is a training
   manifest (``audio_filepath``, ``offset``, ``duration``, ``text``).
5. ``summary.json``: per stage hours in, hours kept, segments dropped per reason, and (where the recordings' text is
   known) the teacher's WER against it before and after filtering.

The teacher and the aligner are models, which the data layer does not import: they come from a *backend*
installed by :mod:`audiozoo.pipelines.asr_pseudo` (imported by the CLI), or set by :func:`set_model_backend`
(tests use a fake teacher). A stage whose folder is complete is skipped (its ``.done``); an interrupted stage
resumes item by item (the :class:`~audiozoo.data.builders.base.Builder` journal).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...errors import ConfigError, DataError, MissingDependencyError
from ..manifest import atomic_write_text, read_manifest, write_manifest
from .base import Builder, Context, Option, Task, run_tool, shared_data_root

log = logging.getLogger("audiozoo.data")

SAMPLE_RATE = 16000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# test_real of recipes/asr/prepare.py: never collected, whatever --exclude says
ARCTIC_TEST = re.compile(r"_a000[1-6]\.wav$")
FSDD_TEST_TAKES = range(0, 5)  # FSDD's usual test takes (prepare.py scores take 0)
DROP_REASONS = ("charset", "align_failed", "duration", "chars_per_second", "language", "agreement")
STOPWORDS = frozenset(
    "a an the and or but if of at by for with about against between into through during before after above below to "
    "from up down in out on off over under again further then once here there when where why how all any both each "
    "few more most other some such no nor not only own same so than too very can will just should now i me my we our "
    "you your he him his she her it its they them their what which who whom this that these those am is are was were "
    "be been being have has had having do does did doing would could shall may might must yes ok okay oh don't can't "
    "won't isn't aren't wasn't weren't didn't doesn't haven't hasn't couldn't wouldn't shouldn't i'm i'll i've i'd "
    "it's that's there's you're we're they're let's he's she's what's".split())


# -- the model backend ----------------------------------------------------------------------------------------
class Teacher(Protocol):
    """Transcribes one long recording: ``transcribe(wav (T,), sample_rate) -> [{"start", "end", "text"}]`` (seconds;
    the windows it decoded)."""

    name: str

    def transcribe(self, wav: Any, sample_rate: int) -> list[dict[str, Any]]: ...


class Aligner(Protocol):
    """A CTC model: ``align(wav (T,), sample_rate, text)`` -> ``{"text": normalised text, "words": [{"word", "start",
    "end", "score"}], "greedy": [[char, time_s], ...] (its own best path, spaces included)}``; raises
    :class:`DataError` when the text does not fit. ``unknown_chars(text)``: characters of the normalised text
    it cannot align. ``normalize(text)``, ``cer(ref, hyp)``."""

    name: str

    def normalize(self, text: str) -> str: ...

    def unknown_chars(self, text: str) -> list[str]: ...

    def align(self, wav: Any, sample_rate: int, text: str) -> dict[str, Any]: ...

    def cer(self, reference: str, hypothesis: str) -> float: ...


_BACKEND: dict[str, Callable[..., Any]] = {}


def set_model_backend(teacher: Callable[[str], Teacher], aligner: Callable[[str], Aligner],
                      wer: Callable[[Sequence[str], Sequence[str]], float] | None = None) -> None:
    """Install the factories that turn ``--teacher`` / ``--aligner`` specs into objects (see the module doc), and
    the corpus WER ``wer(references, hypotheses)`` the summary scores the teacher with."""
    _BACKEND["teacher"], _BACKEND["aligner"] = teacher, aligner
    if wer is not None:
        _BACKEND["wer"] = wer


def _backend(kind: str, spec: str) -> Any:
    if kind not in _BACKEND:
        raise MissingDependencyError(
            "asr-pseudo needs a model backend for its teacher and aligner: `import audiozoo.pipelines.asr_pseudo` "
            "(the `audiozoo` command line does) or call audiozoo.data.builders.asr_pseudo.set_model_backend(...)")
    return _BACKEND[kind](spec)


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- stage 1: collect -----------------------------------------------------------------------------------------
def _excluded(manifests: Sequence[str]) -> tuple[set[str], set[str]]:
    """Lower-cased sentences and resolved audio paths of the held-out manifests."""
    texts, files = set(), set()
    for m in manifests:
        for it in read_manifest(m):
            if it.get("text"):
                texts.add(str(it["text"]).strip().lower())
            files.add(os.path.realpath(it["audio_filepath"]))
    return texts, files


def _augment(wav: np.ndarray, rng: np.random.Generator, noises: list[Path], rirs: list[Path], noise_prob: float,
             rir_prob: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Reverberation (convolution with a measured RIR, peak kept) then additive noise at an SNR of 5-20 dB."""
    from ...dsp.io import load_audio

    info: dict[str, Any] = {}
    peak = float(np.abs(wav).max()) or 1.0
    if rirs and rng.random() < rir_prob:
        p = rirs[int(rng.integers(len(rirs)))]
        rir = load_audio(str(p), sample_rate=SAMPLE_RATE)[0].numpy()
        rir = rir[int(np.abs(rir).argmax()):]  # direct path at t = 0: no delay
        wet = np.convolve(wav, rir / (np.abs(rir).max() + 1e-9))[: len(wav)]
        wav = wet * (peak / (np.abs(wet).max() + 1e-9))
        info["rir"] = p.name
    if noises and rng.random() < noise_prob:
        p = noises[int(rng.integers(len(noises)))]
        noise = load_audio(str(p), sample_rate=SAMPLE_RATE)[0].numpy()
        if len(noise) < len(wav):
            noise = np.tile(noise, len(wav) // max(1, len(noise)) + 1)
        start = int(rng.integers(0, len(noise) - len(wav) + 1))
        noise = noise[start : start + len(wav)]
        snr = float(rng.uniform(5, 20))
        gain = np.sqrt(np.mean(wav**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
        wav = wav + gain * noise
        info.update(noise=p.name, snr_db=round(snr, 1))
    top = float(np.abs(wav).max())
    if top > 0.99:
        wav = wav * (0.99 / top)
    return wav.astype(np.float32), info


def _join(pieces: Sequence[np.ndarray], rng: np.random.Generator, pause: tuple[float, float]) -> np.ndarray:
    out = []
    for i, p in enumerate(pieces):
        if i:
            out.append(np.zeros(int(rng.uniform(*pause) * SAMPLE_RATE), np.float32))
        out.append(np.asarray(p, np.float32))
    return np.concatenate(out)


def _synth_espeak_flite(text: str, voice: str) -> np.ndarray:
    import tempfile

    from ...dsp.io import load_audio

    engine, name = voice.split(":", 1)
    with tempfile.TemporaryDirectory(prefix="azpseudo") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        if engine == "espeak":
            run_tool(["espeak-ng", "-v", name, "-w", raw, "--stdin"], "espeak-ng", input=text)
        else:
            txt = os.path.join(tmp, "text.txt")
            Path(txt).write_text(text, encoding="utf-8")
            run_tool(["flite", "-voice", name, "-f", txt, "-o", raw], "flite")
        return load_audio(raw, sample_rate=SAMPLE_RATE)[0].numpy()


class CollectStage(Builder):
    """Stage 1 of ``asr-pseudo``: long unlabelled recordings (see the module docstring)."""

    name = "asr-pseudo-collect"
    description = "Long unlabelled recordings (Piper/espeak-ng/flite paragraphs, real recordings), augmented."
    license = "Synthetic audio: see piper-speech and speech-synth; real recordings: see ../shared/data/README.md."
    options = (
        Option("sources", str, ["piper", "synth", "real"], "which recordings", nargs="+",
               choices=("piper", "synth", "real")),
        Option("piper_hours", float, 0.3, "hours of Piper paragraphs"),
        Option("synth_hours", float, 0.2, "hours of espeak-ng/flite paragraphs"),
        Option("sentences", str, "3-8", "sentences per paragraph, 'MIN-MAX'"),
        Option("noise_prob", float, 0.5, "share of recordings with background noise (SNR 5-20 dB)"),
        Option("rir_prob", float, 0.3, "share of recordings with room reverberation"),
        Option("exclude", str, [], "held-out manifests: their sentences and audio files are never used", nargs="*"),
        Option("source", str, None, "folder of the real recordings (default: ../shared/data)"),
        Option("seed", int, 0, "paragraphs, voices and augmentation"),
    )
    stat_keys = ("kind",)

    def prepare(self, ctx: Context) -> None:
        o = ctx.opts
        m = re.fullmatch(r"(\d+)-(\d+)", o["sentences"] or "")
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 30:
            raise ConfigError(f"--sentences must be 'MIN-MAX' with 1 <= MIN <= MAX <= 30, got {o['sentences']!r}")
        ctx.extra["sent_range"] = (int(m.group(1)), int(m.group(2)))
        for k in ("noise_prob", "rir_prob"):
            if not 0 <= o[k] <= 1:
                raise ConfigError(f"--{k.replace('_', '-')} must be in [0, 1], got {o[k]}")
        ex_text, ex_files = _excluded(o["exclude"])
        ctx.extra["exclude_files"] = ex_files
        root = None
        try:
            root = shared_data_root(o["source"])
        except DataError:
            if "real" in o["sources"] or o["noise_prob"] or o["rir_prob"]:
                raise
        ctx.extra["root"] = str(root) if root else "/"
        ctx.extra["noises"] = sorted((root / "noise").glob("*.wav")) if root else []
        ctx.extra["rirs"] = sorted((root / "rirs").glob("*.wav")) if root else []
        tasks: list[Task] = []
        rng = np.random.default_rng(o["seed"])
        if "piper" in o["sources"] or "synth" in o["sources"]:
            from .piper_speech import _source, sentence_split
            from .speech_synth import ESPEAK_MULTI, FLITE_MULTI

            pool = [s for s in _source("wordnet") if sentence_split(s) == "train" and s.lower() not in ex_text]
            order = [pool[i] for i in rng.permutation(len(pool))]
            lo, hi = ctx.extra["sent_range"]
            pos = 0
            voices = [f"espeak:{v}" for v in ESPEAK_MULTI] + [f"flite:{v}" for v in FLITE_MULTI]
            # ~3.2 s per WordNet sentence (measured on piper-speech): enough paragraphs for the hours asked
            for kind, hours in (("piper", o["piper_hours"]), ("synth", o["synth_hours"])):
                if kind not in o["sources"] or hours <= 0:
                    continue
                n = 0
                while n * (lo + hi) / 2 * 3.2 < hours * 3600 and pos < len(order):
                    k = int(rng.integers(lo, hi + 1))
                    sents = order[pos : pos + k]
                    pos += k
                    voice = "piper" if kind == "piper" else voices[n % len(voices)]
                    tasks.append(Task(f"{kind}_{n:05d}", {"kind": kind, "voice": voice, "sentences": sents}))
                    n += 1
        if "real" in o["sources"] and root is not None:
            tasks += self._real_tasks(root, ex_files, rng)
        ctx.extra["tasks"] = tasks

    @staticmethod
    def _real_tasks(root: Path, ex_files: set[str], rng: np.random.Generator) -> list[Task]:
        ok = lambda p: os.path.realpath(p) not in ex_files  # noqa: E731
        tasks = []
        fsdd: dict[str, list[Path]] = {}
        for p in sorted((root / "fsdd").glob("*.wav")):
            digit, speaker, take = p.stem.split("_")
            if int(take) not in FSDD_TEST_TAKES and ok(p):
                fsdd.setdefault(speaker, []).append(p)
        for speaker, files in fsdd.items():
            files = [files[i] for i in rng.permutation(len(files))]
            for j in range(0, len(files), 60):  # ~60 digits (~30 s of speech + pauses) per long take
                part = files[j : j + 60]
                tasks.append(Task(f"fsdd_{speaker}_{j // 60:02d}", {
                    "kind": "real", "voice": f"fsdd:{speaker}", "files": [str(p) for p in part],
                    "reference": " ".join(DIGITS[int(p.stem.split("_")[0])] for p in part)}))
        yesno = [p for p in sorted((root / "yesno").glob("*.wav")) if ok(p)]
        for j in range(0, len(yesno), 5):
            part = yesno[j : j + 5]
            ref = " ".join(("yes" if w == "1" else "no") for p in part for w in p.stem.split("_"))
            tasks.append(Task(f"yesno_{j // 5:02d}", {"kind": "real", "voice": "yesno", "files": [str(p) for p in part],
                                                      "reference": ref}))
        others = sorted((root / "speech_sources" / "sisec2011_speech").glob("*.wav"))
        others += [p for p in sorted((root / "librosa").glob("*.ogg")) if re.fullmatch(r"\d+-\d+-\d+", p.stem)]
        others += [p for p in sorted((root / "speech_sources" / "cmu_arctic").glob("*.wav"))
                   if not ARCTIC_TEST.search(p.name) and not p.stem.startswith("cmu_arctic")]
        for p in others:
            if ok(p):
                tasks.append(Task(f"real_{p.stem}", {"kind": "real", "voice": p.parent.name, "files": [str(p)],
                                                     "reference": None}))
        return tasks

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        return {"exclude_sha1": [_sha1(Path(m)) for m in ctx.opts["exclude"]]}

    def tasks(self, ctx: Context):
        return ctx.extra["tasks"]

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        from ...dsp.io import load_audio

        d = task.data
        rng = np.random.default_rng([ctx.opts["seed"], int(hashlib.sha1(task.id.encode()).hexdigest()[:8], 16)])
        if d["kind"] == "piper":
            from .piper_speech import load_voice, piper_sentences

            if "voice" not in ctx.extra:
                from ...text.phonemes import EspeakPhonemizer

                ctx.extra["voice"] = load_voice()
                ctx.extra["phonemizer"] = EspeakPhonemizer("en-us", stress=True, punctuation=True)
            voice = ctx.extra["voice"]
            pieces = []
            for s in d["sentences"]:
                for ph in piper_sentences(ctx.extra["phonemizer"].phonemize(s)):
                    ids, _ = voice.phonemes_to_ids(ph)
                    audio, _ = voice.synthesize_ids(ids, np.random.SeedSequence(int(rng.integers(2**31))))
                    audio = audio * (0.95 / max(0.01, float(np.abs(audio).max())))
                    pieces.append(load_audio(audio, sample_rate=SAMPLE_RATE,
                                             array_sample_rate=voice.sample_rate)[0].numpy())
            wav = _join(pieces, rng, (0.25, 0.9))
            reference, speaker = " ".join(d["sentences"]), "piper:en_US-joe-medium"
        elif d["kind"] == "synth":
            wav = _synth_espeak_flite(" ".join(d["sentences"]), d["voice"])
            reference, speaker = " ".join(d["sentences"]), d["voice"]
        else:
            pieces = [load_audio(f, sample_rate=SAMPLE_RATE)[0].numpy() for f in d["files"]]
            wav = _join(pieces, rng, (0.2, 0.7)) if len(pieces) > 1 else pieces[0]
            reference, speaker = d["reference"], d["voice"]
        if wav.size == 0 or not np.abs(wav).max() > 0:
            return None
        wav = wav * (0.9 / float(np.abs(wav).max()))
        wav, aug = _augment(wav, rng, ctx.extra["noises"], ctx.extra["rirs"], ctx.opts["noise_prob"],
                            ctx.opts["rir_prob"])
        rel = ctx.write_audio(f"wavs/{task.id}.wav", wav, SAMPLE_RATE)
        return {"audio_filepath": rel, "duration": round(len(wav) / SAMPLE_RATE, 4), "kind": d["kind"],
                "speaker": speaker, "augment": aug, "reference_text": reference,
                "sources": [os.path.relpath(f, ctx.extra.get("root", "/")) for f in d.get("files", [])]}


# -- stage 2: transcribe --------------------------------------------------------------------------------------
class _ModelStage(Builder):
    """A stage reading the previous stage's manifest (``input``) whose items need a model."""

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        return {"input_sha1": _sha1(Path(ctx.opts["input"]))}

    def tasks(self, ctx: Context):
        return [Task(Path(it["audio_filepath"]).stem + f"_{i:05d}", {"item": it})
                for i, it in enumerate(read_manifest(ctx.opts["input"]))]

    @staticmethod
    def _audio(item: dict[str, Any]) -> Any:
        from ...dsp.io import load_audio

        return load_audio(item["audio_filepath"], sample_rate=SAMPLE_RATE)[0]


class TranscribeStage(_ModelStage):
    """Stage 2 of ``asr-pseudo``: the teacher's text of every window of every recording."""

    name = "asr-pseudo-transcribe"
    description = "Teacher transcripts of long recordings, in windows."
    license = "As the input recordings."
    options = (Option("input", str, None, "collect manifest"), Option("teacher", str, "whisper", "teacher spec"))

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        if "teacher" not in ctx.extra:
            ctx.extra["teacher"] = _backend("teacher", ctx.opts["teacher"])
        item = task.data["item"]
        windows = ctx.extra["teacher"].transcribe(self._audio(item), SAMPLE_RATE)
        keep = {k: item[k] for k in ("audio_filepath", "duration", "kind", "speaker") if k in item}
        return {**keep, "teacher": ctx.extra["teacher"].name,
                "windows": [{"start": round(float(w["start"]), 3), "end": round(float(w["end"]), 3),
                             "text": str(w["text"]).strip()} for w in windows]}


# -- stage 3: align and segment -------------------------------------------------------------------------------
def segment_words(words: Sequence[dict[str, Any]], t0: float, t1: float, *, target: float = 4.0,
                  max_seconds: float = 30.0, min_seconds: float = 1.0, pause: float = 0.2, pad: float = 0.15
                  ) -> list[tuple[float, float, list[int]]]:
    """Cut aligned words into utterances at word boundaries: ``[(start_s, end_s, word indices)]``.

    A cut goes into a pause (gap between words >= ``pause``) once the utterance is ``target`` seconds long, or
    before the word that would make it longer than ``max_seconds`` (the widest gap of the utterance then, if it
    has one); a last utterance shorter than ``min_seconds`` joins the previous one when that stays within
    ``max_seconds``. Edges get up to ``pad`` seconds of the neighbouring gap (half of it at most), clipped to
    the window ``[t0, t1]``.
    """
    if not words:
        return []
    groups: list[list[int]] = [[0]]
    for i in range(1, len(words)):
        cur = groups[-1]
        start, gap = words[cur[0]]["start"], words[i]["start"] - words[i - 1]["end"]
        if words[i]["end"] - start > max_seconds:  # this word would overflow: cut at the widest gap so far
            gaps = [(words[j]["start"] - words[j - 1]["end"], j) for j in cur[1:]]
            best = max(gaps, default=(-1.0, 0))
            if best[0] >= pause:
                k = cur.index(best[1])
                groups[-1], rest = cur[:k], cur[k:]
                groups.append(rest + [i])
                if words[i]["end"] - words[rest[0]]["start"] <= max_seconds:
                    continue
                groups[-1] = rest
            groups.append([i])
        elif gap >= pause and words[i - 1]["end"] - start >= target:
            groups.append([i])
        else:
            cur.append(i)
    if len(groups) > 1:
        last, prev = groups[-1], groups[-2]
        if words[last[-1]]["end"] - words[last[0]]["start"] < min_seconds and \
                words[last[-1]]["end"] - words[prev[0]]["start"] <= max_seconds:
            groups[-2:] = [prev + last]
    out = []
    for g in groups:
        a, b = g[0], g[-1]
        before = words[a]["start"] - (words[a - 1]["end"] if a > 0 else t0)
        after = (words[b + 1]["start"] if b + 1 < len(words) else t1) - words[b]["end"]
        s = max(t0, words[a]["start"] - min(pad, max(0.0, before) / 2))
        e = min(t1, words[b]["end"] + min(pad, max(0.0, after) / 2))
        out.append((round(s, 3), round(e, 3), g))
    return out


class AlignStage(_ModelStage):
    """Stage 3 of ``asr-pseudo``: CTC forced alignment of the teacher's text, then segmentation."""

    name = "asr-pseudo-align"
    description = "Teacher text force-aligned with a CTC model and cut into utterances at word boundaries."
    license = "As the input recordings."
    options = (
        Option("input", str, None, "transcribe manifest"), Option("aligner", str, None, "aligner spec"),
        Option("target_seconds", float, 4.0, "cut in a pause once an utterance is this long"),
        Option("max_seconds", float, 30.0, "longest utterance"), Option("min_seconds", float, 1.0, "shortest"),
        Option("pause", float, 0.2, "shortest gap between words to cut at (s)"),
        Option("spell_numbers", int, 1, "1: spell out numbers of the teacher's text first (audiozoo.text), 0: no",
               choices=(0, 1)),
    )

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        from ...text.normalize import normalize_english

        if "aligner" not in ctx.extra:
            ctx.extra["aligner"] = _backend("aligner", ctx.opts["aligner"])
        al: Aligner = ctx.extra["aligner"]
        o, item = ctx.opts, task.data["item"]
        wav = self._audio(item)
        segments, windows = [], []
        for wi, w in enumerate(item["windows"]):
            raw = w["text"]
            text = al.normalize(normalize_english(raw) if o["spell_numbers"] and raw else raw)
            a, b = int(w["start"] * SAMPLE_RATE), int(w["end"] * SAMPLE_RATE)
            rec = {"window": wi, "start": w["start"], "end": w["end"], "text": text, "teacher_text": raw}
            bad = al.unknown_chars(text)
            if not text:
                rec["status"] = "empty"
            elif bad:
                rec.update(status="charset", chars=bad)
            else:
                try:
                    res = al.align(wav[a:b], SAMPLE_RATE, text)
                except DataError as e:
                    res = None
                    rec.update(status="align_failed", error=str(e)[:200])
                if res is not None:
                    rec["status"] = "aligned"
                    words = [{**x, "start": x["start"] + w["start"], "end": x["end"] + w["start"]}
                             for x in res["words"]]
                    greedy = [(c, t + w["start"]) for c, t in res["greedy"]]
                    for s, e, idx in segment_words(words, w["start"], w["end"], target=o["target_seconds"],
                                                   max_seconds=o["max_seconds"], min_seconds=o["min_seconds"],
                                                   pause=o["pause"]):
                        ctc = " ".join("".join(c for c, t in greedy if s <= t < e).split())
                        segments.append({"window": wi, "offset": s, "duration": round(e - s, 3),
                                         "text": " ".join(words[i]["word"] for i in idx), "ctc_text": ctc,
                                         "align_score": round(float(np.mean([words[i]["score"] for i in idx])), 4)})
            windows.append(rec)
        keep = {k: item[k] for k in ("audio_filepath", "duration", "kind", "speaker", "teacher") if k in item}
        return {**keep, "aligner": al.name, "windows": windows, "segments": segments}


# -- stage 4: filter ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def english_lexicon() -> frozenset[str]:
    """Lower-cased English words: the lemmas of WordNet 3.0 (``wordnet-base``, the text source of the speech
    builders) with their inflections approximated (plural/verb endings are stripped before lookup) plus a list
    of function words, which WordNet lacks."""
    words: set[str] = set(STOPWORDS) | set(DIGITS)
    for pos in ("noun", "verb", "adj", "adv"):
        p = Path(f"/usr/share/wordnet/index.{pos}")
        if p.is_file():
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                if line and not line.startswith(" "):
                    words |= set(line.split(" ", 1)[0].split("_"))
        exc = Path(f"/usr/share/wordnet/{pos}.exc")  # irregular forms: "bought buy"
        if exc.is_file():
            words |= {line.split(" ", 1)[0] for line in exc.read_text(encoding="utf-8", errors="replace").splitlines()}
    if len(words) < 1000:
        raise MissingDependencyError("the language filter reads WordNet's index (apt-get install wordnet-base)")
    return frozenset(words)


def english_rate(text: str) -> float:
    """Share of the words of ``text`` found in :func:`english_lexicon` (after stripping common endings)."""
    lex = english_lexicon()
    words = text.split()
    if not words:
        return 0.0

    def known(w: str) -> bool:
        w = w.replace("'s", "").strip("'")
        if w in lex:
            return True
        for suf in ("s", "es", "ed", "d", "ing", "er", "est", "ly", "ies", "ied", "n't"):  # inflections WordNet lacks
            stem = w[: -len(suf)]
            if w.endswith(suf) and len(stem) >= 3 and (stem in lex or stem + "e" in lex or stem + "y" in lex):
                return True
        return False

    return sum(known(w) for w in words) / len(words)


def filter_reasons(seg: dict[str, Any], o: dict[str, Any], cer: Callable[[str, str], float]) -> list[str]:
    """Why a segment is dropped (empty: kept). ``o``: ``min_seconds``, ``max_seconds``, ``min_cps``, ``max_cps``,
    ``min_english`` (0: off), ``max_cer`` (None: off)."""
    reasons = []
    dur, text = float(seg["duration"]), seg["text"]
    if not o["min_seconds"] <= dur <= o["max_seconds"]:
        reasons.append("duration")
    cps = len(text.replace(" ", "")) / max(dur, 1e-6)
    if not o["min_cps"] <= cps <= o["max_cps"]:
        reasons.append("chars_per_second")
    if o["min_english"] and english_rate(text) < o["min_english"]:
        reasons.append("language")
    if o["max_cer"] is not None:
        seg["agreement_cer"] = round(cer(text, seg["ctc_text"]) if text else 1.0, 4)
        if seg["agreement_cer"] > o["max_cer"]:
            reasons.append("agreement")
    return reasons


def run_filter(align_manifest: Path, out: Path, opts: dict[str, Any], cer: Callable[[str, str], float]
               ) -> tuple[Path, Path]:
    """Stage 4: ``kept.jsonl`` and ``dropped.jsonl`` (with ``reasons``) in ``out``; skipped when its ``.done`` matches
    the input and options."""
    sig = {"input_sha1": _sha1(align_manifest), "options": opts}
    kept_p, drop_p, done = out / "kept.jsonl", out / "dropped.jsonl", out / ".done"
    if done.is_file() and kept_p.is_file() and drop_p.is_file() and json.loads(done.read_text()) == sig:
        return kept_p, drop_p
    out.mkdir(parents=True, exist_ok=True)
    kept, dropped = [], []
    for rec in read_manifest(align_manifest):
        base = {"audio_filepath": rec["audio_filepath"], "kind": rec.get("kind"), "speaker": rec.get("speaker")}
        for w in rec["windows"]:  # windows that never became segments
            if w["status"] in ("charset", "align_failed"):
                dropped.append({**base, "offset": w["start"], "duration": round(w["end"] - w["start"], 3),
                                "text": w["text"], "reasons": [w["status"]], **({"chars": w["chars"]} if "chars" in w
                                                                                else {})})
        for seg in rec["segments"]:
            seg = {**base, **seg}
            reasons = filter_reasons(seg, opts, cer)
            (dropped if reasons else kept).append({**seg, "reasons": reasons} if reasons else seg)
    write_manifest(kept_p, kept, relative=False)
    write_manifest(drop_p, dropped, relative=False)
    atomic_write_text(done, json.dumps(sig) + "\n")
    return kept_p, drop_p


# -- stage 5: summary -----------------------------------------------------------------------------------------
def _hours(items: Sequence[dict[str, Any]]) -> float:
    return round(sum(float(it["duration"]) for it in items) / 3600, 4)


def summarize(out: Path, collect: Path, transcribe: Path, align: Path, kept: Path, dropped: Path,
              wer: Callable[[Sequence[str], Sequence[str]], float] | None = None, spell_numbers: bool = True
              ) -> dict[str, Any]:
    """Per-stage counts (and, with ``wer``, the teacher's WER where the recordings' text is known, its numbers
    spelled out first as the align stage does with ``spell_numbers``)."""
    from ...text.normalize import normalize_english

    col, tra, ali = read_manifest(collect), read_manifest(transcribe), read_manifest(align)
    kp, dr = read_manifest(kept), read_manifest(dropped)
    segs = [s for r in ali for s in r["segments"]]
    reasons: Counter = Counter()
    first: Counter = Counter()
    hours_first: Counter = Counter()
    for d in dr:
        reasons.update(d["reasons"])
        first[d["reasons"][0]] += 1
        hours_first[d["reasons"][0]] += float(d["duration"]) / 3600
    win = [w for r in ali for w in r["windows"]]
    summary: dict[str, Any] = {
        "collect": {"recordings": len(col), "hours": _hours(col),
                    "hours_per_kind": {k: _hours([c for c in col if c.get("kind") == k])
                                       for k in sorted({c.get("kind") for c in col})},
                    "augmented": sum(1 for c in col if c.get("augment"))},
        "transcribe": {"recordings": len(tra), "windows": sum(len(r["windows"]) for r in tra),
                       "teacher": tra[0].get("teacher") if tra else None,
                       "words": sum(len(w["text"].split()) for r in tra for w in r["windows"])},
        "align": {"windows": len(win), "windows_by_status": dict(Counter(w["status"] for w in win)),
                  "segments": len(segs), "hours_segmented": _hours(segs)},
        "filter": {"hours_in": round(_hours(segs) + sum(float(d["duration"]) for d in dr if "window" not in d)
                                     / 3600, 4) if dr else _hours(segs),
                   "segments_kept": len(kp), "hours_kept": _hours(kp),
                   "dropped_segments_per_reason": dict(sorted(reasons.items())),
                   "dropped_by_first_reason": {k: {"segments": first[k], "hours": round(hours_first[k], 4)}
                                               for k in DROP_REASONS if first[k]}},
    }
    if wer is not None:  # the teacher against the withheld text of the recordings that have one
        by_path = {os.path.realpath(c["audio_filepath"]): c.get("reference_text") for c in col}
        refs, hyps, kinds = [], [], []
        for r in tra:
            ref = by_path.get(os.path.realpath(r["audio_filepath"]))
            if ref:
                refs.append(ref)
                hyp = " ".join(w["text"] for w in r["windows"])
                hyps.append(normalize_english(hyp) if spell_numbers and hyp else hyp)
                kinds.append(r.get("kind"))
        if refs:
            summary["teacher_wer_vs_withheld_text"] = {
                "all": round(wer(refs, hyps), 4),
                **{k: round(wer([a for a, kk in zip(refs, kinds) if kk == k],
                                [b for b, kk in zip(hyps, kinds) if kk == k]), 4) for k in sorted(set(kinds))}}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


# -- the builder ----------------------------------------------------------------------------------------------
class AsrPseudoBuilder(Builder):
    name = "asr-pseudo"
    description = ("Pseudo-labelled ASR utterances from long unlabelled recordings (GigaSpeech 2 pipeline): "
                   "collect, teacher transcription, CTC forced alignment + segmentation, filters, summary.")
    license = "As the collected recordings (see collect/README.md)."
    options = (
        *CollectStage.options,
        Option("collected", str, None, "reuse this collect/ folder (another run's) instead of building one"),
        Option("teacher", str, "whisper",
               "teacher: 'whisper' (Whisper tiny.en) or an asr model (NAME.TAG, run folder)"),
        Option("aligner", str, "conformer_aed_small.synth_en", "CTC model for forced alignment and the agreement"),
        *[o for o in AlignStage.options if o.name not in ("input", "aligner")],
        Option("min_cps", float, 2.5, "fewest characters per second (letters, no spaces)"),
        Option("max_cps", float, 25.0, "most characters per second"),
        Option("min_english", float, 0.6, "least share of English words (0: no language filter)"),
        Option("max_cer", float, 0.75, "largest CER between the teacher's and the aligner's own text (the shipped "
               "aligner alone has a CER of 0.5 on clean held-out synthetic speech)"),
    )

    def run(self, out_dir: str | os.PathLike, progress: bool | None = None, **options: Any) -> Path:
        """Run (or resume, or skip) every stage into ``out_dir``; returns ``filter/kept.jsonl``."""
        o = self.resolve_options(options)
        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        for k in ("min_seconds", "max_seconds", "min_cps", "max_cps"):
            if o[k] is None or o[k] < 0:
                raise ConfigError(f"--{k.replace('_', '-')} must be >= 0, got {o[k]}")
        if o["min_seconds"] > o["max_seconds"] or o["min_cps"] > o["max_cps"]:
            raise ConfigError("--min-seconds/--min-cps must not exceed --max-seconds/--max-cps")
        if o["collected"]:
            collect = Path(o["collected"]) / "manifest.jsonl"
            if not (Path(o["collected"]) / ".done").is_file():
                raise DataError(f"--collected {o['collected']}: not a finished collect stage (no .done)")
        else:
            collect = CollectStage().run(out / "collect", progress,
                                         **{x.name: o[x.name] for x in CollectStage.options})
        transcribe = TranscribeStage().run(out / "transcribe", progress, input=str(collect), teacher=o["teacher"])
        seg = {x.name: o[x.name] for x in AlignStage.options if x.name not in ("input", "aligner")}
        align = AlignStage().run(out / "align", progress, input=str(transcribe), aligner=o["aligner"], **seg)
        fopts = {k: o[k] for k in ("min_seconds", "max_seconds", "min_cps", "max_cps", "min_english", "max_cer")}
        aligner = _Lazy(lambda: _backend("aligner", o["aligner"]))
        kept, dropped = run_filter(align, out / "filter", fopts, lambda r, h: aligner().cer(r, h))
        wer = _BACKEND.get("wer")
        summary = summarize(out, collect, transcribe, align, kept, dropped, wer, bool(o["spell_numbers"]))
        summary["options"] = o
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        f = summary["filter"]
        log.info("asr-pseudo: %.3f h collected, %.3f h segmented, %.3f h kept (%d segments); dropped: %s",
                 summary["collect"]["hours"], summary["align"]["hours_segmented"], f["hours_kept"],
                 f["segments_kept"], f["dropped_segments_per_reason"])
        if progress is not False:
            print(json.dumps({k: v for k, v in summary.items() if k != "options"}, indent=1))
        return kept


class _Lazy:
    def __init__(self, make: Callable[[], Any]) -> None:
        self.make, self.obj = make, None

    def __call__(self) -> Any:
        if self.obj is None:
            self.obj = self.make()
        return self.obj


__all__ = ["AlignStage", "Aligner", "AsrPseudoBuilder", "CollectStage", "Teacher", "TranscribeStage",
           "english_rate", "filter_reasons", "run_filter", "segment_words", "set_model_backend", "summarize"]
