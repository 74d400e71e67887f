"""Vocal-melody mixtures for the Mel-RoFormer recipe (issue #15): a "sung" line with an exactly known f0 over a
rendered accompaniment, split by piece.

Per piece of the music21 corpus (Bach chorales, Monteverdi madrigals, Palestrina, trecento pieces: the top part is
the melody and the other parts the accompaniment; Essen folk songs and Ryan's Mammoth tunes, monophonic: a
generated chord accompaniment, one diatonic triad per bar, block or broken):

* **vocal line**: the melody (monophonic top line), moved to a tempo where its median note lasts 0.25-0.6 s
  and transposed into the singer's range, sung by a **WORLD re-synthesis of speech** (``pyworld``, ``pitch``
  extra): the spectral envelope and aperiodicity of the voiced frames of espeak-ng / flite sentences, one
  "syllable" (a run of voiced speech frames, stretched) per note, with the f0 **replaced by the melody** plus
  vibrato (4.5-6.5 Hz, up to +-0.4 semitone, after 150 ms), glides into legato notes (0-60 ms) and a slow
  drift (+-10 cents); unvoiced speech frames (consonant noise) may precede a note after a rest;
* **accompaniment**: the other parts (or the chords), transposed with the melody, rendered by fluidsynth with
  General MIDI programs drawn per piece and part (no choir / voice programs);
* **labels** at the model's frames (hop 256 at 16 kHz, frame ``i`` centred at ``i * 256`` samples): the f0 the
  synthesiser was given (Hz; 0 where no note sounds, including consonants) and note onsets; and the note list.

Clips are 4 s, 16 kHz mono; up to ``--clips`` per piece from consecutive windows that are at least 30 % voiced.
The split is **by piece** (a seeded hash: 80 % train, 8 % valid, 12 % test) and **by voice**: train and valid
pieces are sung by the training voices, test pieces by held-out voices only (espeak-ng ``en-us+m7``, ``en-gb+f5``,
flite ``kal16``), so test melodies, accompaniments and voices are never seen in training or tuning.

Output (``--out``, default ``cache/melody_vocals``): ``{train,valid,test}.npz`` with ``vocal`` / ``accomp``
``(N, 64000)`` int16 (full scale 1.0), ``f0`` ``(N, 251)`` float32 Hz, ``onset`` ``(N, 251)`` uint8, ``var_db``
``(N,)`` the vocal-to-accompaniment ratio used for evaluation mixtures (uniform -3..+3 dB, seeded), and
``{split}.json`` (piece, voice, programs, notes of every clip). Deterministic for a seed.

Usage: ``python recipes/separate/prepare_melody.py [--out cache/melody_vocals] [--pieces 260] [--clips 4]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
HOP = 256  # mel_roformer_small's STFT hop (16 ms)
CLIP_SECONDS = 4.0
FRAME_PERIOD = 5.0  # ms, WORLD analysis / synthesis
TRAIN_VOICES = ("espeak:en-us", "espeak:en-gb", "espeak:en-us+m3", "espeak:en-us+f2", "espeak:en-gb+f3",
                "espeak:en-gb-scotland+m4", "espeak:en-gb-x-rp+f4", "espeak:en-029+m2", "flite:slt", "flite:rms",
                "flite:awb")
TEST_VOICES = ("espeak:en-us+m7", "espeak:en-gb+f5", "flite:kal16")
FEMALE = ("+f", "flite:slt")
# (corpus composer, how many pieces of --pieces, polyphonic?)
SOURCES = (("bach", 0.30, True), ("monteverdi", 0.12, True), ("palestrina", 0.17, True), ("trecento", 0.08, True),
           ("essenFolksong", 0.06, False), ("ryansMammoth", 0.27, False))
NO_VOICE_PROGRAMS = {52, 53, 54, 85, 91}  # choir aahs, voice oohs, synth voice, lead 6 (voice), pad 4 (choir)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore on a sunny morning.",
    "A long walk in the quiet forest made everyone feel calm again.",
    "We painted the old wooden fence a bright shade of yellow.",
    "Every evening the lonely sailor sang about the distant island.",
    "My mother always said that patience is a beautiful virtue.",
    "Bright lanterns glowed along the narrow road to the village.",
    "Nobody knew where the little grey owl had hidden its nest.",
    "The orchestra played a gentle melody while the rain fell softly.",
    "Open the window and let the warm summer air come in.",
    "Under the silver moon we danced until the early morning light.",
    "Lovely roses bloom in the garden when the weather is mild.",
)


# --------------------------------------------------------------------------- voices (WORLD analysis of speech)
@dataclass
class VoiceBank:
    """Frames of one speaking voice, WORLD-analysed at 16 kHz / 5 ms: voiced runs ("syllables") and unvoiced runs
    (consonants), each a list of ``(sp (n, 513), ap (n, 513))``."""

    name: str
    female: bool
    voiced: list[tuple[np.ndarray, np.ndarray]]
    unvoiced: list[tuple[np.ndarray, np.ndarray]]


def speak(voice: str, text: str) -> np.ndarray:
    """espeak-ng / flite speech of ``text`` at 16 kHz mono float64."""
    import soundfile as sf
    from scipy.signal import resample_poly

    engine, name = voice.split(":", 1)
    with tempfile.TemporaryDirectory(prefix="azmel") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        if engine == "espeak":
            subprocess.run(["espeak-ng", "-v", name, "-w", raw, text], check=True, capture_output=True)
        else:
            subprocess.run(["flite", "-voice", name, "-t", text, "-o", raw], check=True, capture_output=True)
        x, sr = sf.read(raw, dtype="float64", always_2d=True)
    x = x.mean(1)
    if sr != SR:
        g = np.gcd(int(sr), SR)
        x = resample_poly(x, SR // g, int(sr) // g)
    return x


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` runs of True in a 1-D mask."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def voice_bank(voice: str, n_sentences: int = 6, seed: int = 0) -> VoiceBank:
    """WORLD (DIO + StoneMask, CheapTrick, D4C) analysis of ``n_sentences`` sentences spoken by ``voice``."""
    import pyworld as pw

    rng = np.random.default_rng([seed, zlib.crc32(voice.encode())])
    voiced, unvoiced = [], []
    for k in rng.permutation(len(SENTENCES))[:n_sentences]:
        x = speak(voice, SENTENCES[k])
        f0, t = pw.dio(x, SR, frame_period=FRAME_PERIOD)
        f0 = pw.stonemask(x, f0, t, SR)
        sp = pw.cheaptrick(x, f0, t, SR)
        ap = pw.d4c(x, f0, t, SR)
        energy = 10 * np.log10(sp.mean(1) + 1e-20)
        loud = energy > energy.max() - 45.0
        for a, b in _runs((f0 > 0) & loud):
            for s in range(a, b - 5, 24):  # syllable-sized pieces of <= 120 ms
                e = min(b, s + 24)
                if e - s >= 6:
                    voiced.append((sp[s:e], ap[s:e]))
        for a, b in _runs((f0 == 0) & loud):
            if b - a >= 3:
                e = min(b, a + 12)
                unvoiced.append((sp[a:e], ap[a:e]))
    if not voiced:
        raise RuntimeError(f"voice {voice}: no voiced frames found")
    return VoiceBank(voice, any(f in voice for f in FEMALE), voiced, unvoiced)


# --------------------------------------------------------------------------- pieces
def _top_line(notes: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Monophonic top line: the highest pitch at each onset, each note cut at the next onset."""
    by_on: dict[float, tuple[float, float, int]] = {}
    for on, off, p in notes:
        if on not in by_on or p > by_on[on][2]:
            by_on[on] = (on, off, p)
    seq = sorted(by_on.values())
    out = []
    for i, (on, off, p) in enumerate(seq):
        if i + 1 < len(seq):
            off = min(off, seq[i + 1][0])
        if off - on > 1e-3:
            out.append((on, off, p))
    return out


def _chords(score, melody: list[tuple[float, float, int]], rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """A generated accompaniment (times in quarter lengths): per bar the diatonic triad that best covers the
    bar's melody pitch classes (duration-weighted), as a bass note plus a block or broken triad."""
    key = score.analyze("key")
    degrees = (1, 4, 5, 6, 2) if key.mode == "major" else (1, 4, 5, 6, 3)
    tonic = key.tonic.pitchClass
    scale = [p.pitchClass for p in key.getScale(key.mode).getPitches("C4", "C5")][:7]
    triads = {d: [scale[(d - 1 + 2 * j) % 7] for j in range(3)] for d in degrees}
    if key.mode == "minor":  # harmonic minor dominant
        triads[5][1] = (tonic + 11) % 12
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    bar = float(ts.barDuration.quarterLength) if ts is not None else 4.0
    style = rng.integers(3)  # 0 block, 1 broken (eighths), 2 bass + off-beat chords
    end = max(off for _, off, _ in melody)
    out = []
    t = 0.0
    while t < end - 1e-6:
        w = np.zeros(12)
        for on, off, p in melody:
            ov = min(off, t + bar) - max(on, t)
            if ov > 0:
                w[p % 12] += ov
        best = max(degrees, key=lambda d: sum(w[c] for c in triads[d]) + (0.1 if d in (1, 5) else 0.0))
        root = triads[best][0]
        out.append((t, t + bar, 36 + root))  # bass C2..B2
        chord = [55 + (c - 55) % 12 for c in triads[best]]  # G3..F#4
        if style == 0:
            out += [(t, t + bar, c) for c in chord]
        elif style == 1:
            k, step = 0, 0.5
            while t + k * step < t + bar - 1e-6:
                out.append((t + k * step, t + (k + 1) * step, chord[[0, 1, 2, 1][k % 4]]))
                k += 1
        else:
            for b in np.arange(0.5, bar, 1.0):
                out += [(t + b, t + b + 0.5, c) for c in chord]
        t += bar
    return out


def load_piece(path: str, polyphonic: bool, rng: np.random.Generator):
    """``(melody [(on, off, midi)], accompaniment parts [[(on, off, midi)]])`` in quarter lengths, or None."""
    from music21 import converter

    from audiozoo.data.builders.music_render import extract_parts

    score = converter.parse(path)
    if not hasattr(score, "parts"):
        if hasattr(score, "scores") and len(score.scores):  # an opus of several folk songs: take one
            score = score.scores[int(rng.integers(len(score.scores)))]
        else:
            return None
    parts = extract_parts(score, tempo=60.0)  # seconds at 60 qpm = quarter lengths
    if not parts:
        return None
    melody = _top_line([(a, b, p) for a, b, p, _ in parts[0]["notes"]])
    if len(melody) < 8:
        return None
    if polyphonic and len(parts) > 1:
        accomp = [[(a, b, p) for a, b, p, _ in q["notes"]] for q in parts[1:]]
    else:
        accomp = [_chords(score, melody, rng)]
    return melody, accomp


# --------------------------------------------------------------------------- singing
def contour(times: np.ndarray, notes: list[tuple[float, float, float]], rng: np.random.Generator) -> np.ndarray:
    """f0 (Hz) at ``times`` (s) for ``notes`` ``[(on, off, midi)]`` (0 outside notes): vibrato after 150 ms,
    glides from a legato predecessor, slow drift. The same function gives the synthesis and the labels."""
    f0 = np.zeros_like(times)
    for i, (on, off, p) in enumerate(notes):
        # every random draw happens whatever ``times`` is, so labels at other times repeat the synthesis
        g, rate, depth, ph1, drift, ph2 = (rng.uniform(0.0, 0.06), rng.uniform(4.5, 6.5), rng.uniform(0.0, 0.4),
                                           rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi))
        sel = (times >= on) & (times < off)
        if not sel.any():
            continue
        t = times[sel] - on
        midi = np.full_like(t, p)
        if i > 0 and on - notes[i - 1][1] < 0.02:  # legato: glide from the previous pitch
            w = np.clip(t / g, 0.0, 1.0)
            midi = notes[i - 1][2] + (p - notes[i - 1][2]) * (3 * w ** 2 - 2 * w ** 3)
        fade = np.clip((t - 0.15) / 0.2, 0.0, 1.0)
        midi = midi + depth * fade * np.sin(2 * np.pi * rate * t + ph1)
        midi = midi + 0.1 * np.sin(2 * np.pi * drift * t + ph2)
        f0[sel] = 440.0 * 2.0 ** ((midi - 69.0) / 12.0)
    return f0


def sing(notes: list[tuple[float, float, float]], duration: float, bank: VoiceBank,
         rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """WORLD synthesis of ``notes`` ``[(on_s, off_s, midi)]`` by ``bank``'s voice.

    Returns the audio ``(duration * SR,)`` and the seed of the f0 contour: ``contour(times, notes,
    np.random.default_rng(seed))`` gives the synthesised f0 at any times (the labels)."""
    import pyworld as pw

    n = int(round(duration * 1000 / FRAME_PERIOD)) + 1
    t = np.arange(n) * FRAME_PERIOD / 1000.0
    seed = int(rng.integers(2**31))
    f0 = contour(t, notes, np.random.default_rng(seed))
    sp = np.full((n, bank.voiced[0][0].shape[1]), 1e-16)
    ap = np.ones_like(sp)
    gain = np.zeros(n)
    for i, (on, off, _) in enumerate(notes):
        a, b = int(np.ceil(on * 200)), min(n, int(np.ceil(off * 200)))
        if b <= a:
            continue
        s, q = bank.voiced[int(rng.integers(len(bank.voiced)))]
        idx = np.minimum((np.arange(b - a) * len(s) / max(1, b - a) * rng.uniform(0.6, 1.0)).astype(int), len(s) - 1)
        sp[a:b], ap[a:b] = s[idx], q[idx]
        gain[a:b] = 10 ** (rng.uniform(-3, 3) / 20)
        # a consonant before a note that follows a rest
        rest = i == 0 or on - notes[i - 1][1] > 0.06
        if rest and bank.unvoiced and rng.random() < 0.5:
            cs, cq = bank.unvoiced[int(rng.integers(len(bank.unvoiced)))]
            k = min(len(cs), a, 12)
            if k > 0 and not f0[a - k:a].any():
                sp[a - k:a], ap[a - k:a] = cs[-k:], cq[-k:]
                gain[a - k:a] = 0.7
    # 20 ms amplitude ramps at every level change (no clicks)
    g = np.convolve(gain, np.ones(4) / 4, mode="same")
    y = pw.synthesize(f0, sp * (g[:, None] ** 2 + 1e-12), ap, SR, FRAME_PERIOD)
    y = y[: int(round(duration * SR))]
    return np.pad(y, (0, int(round(duration * SR)) - len(y))), seed


# --------------------------------------------------------------------------- accompaniment
def render(parts: list[list[tuple[float, float, int]]], programs: list[int], duration: float, sf2: str) -> np.ndarray:
    """fluidsynth rendering of ``parts`` (seconds, MIDI) with GM ``programs``: ``(duration * SR,)``."""
    import soundfile as sf

    from audiozoo.data.builders.midi import MidiNote, MidiTrack, midi_bytes, quantize, ticks_to_seconds
    from audiozoo.data.builders.music_render import CHANNELS, GAIN, _fix_overlaps

    tracks = []
    for ch, notes, prog in zip(CHANNELS, parts, programs):
        ns = _fix_overlaps([MidiNote(a, b, int(p), 80) for a, b, p in notes if b > a])
        ns = [MidiNote(ticks_to_seconds(quantize(x.onset)), ticks_to_seconds(quantize(x.offset)), x.pitch, x.velocity)
              for x in ns]
        tracks.append(MidiTrack([x for x in ns if x.offset > x.onset], ch, prog, f"p{ch}"))
    with tempfile.TemporaryDirectory(prefix="azmel") as tmp:
        mid, wav = os.path.join(tmp, "a.mid"), os.path.join(tmp, "a.wav")
        Path(mid).write_bytes(midi_bytes(tracks, duration + 0.5))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", str(GAIN), "-R", "0", "-C", "0", "-r", str(SR),
                        "-O", "float", "-F", wav, sf2, mid], check=True, capture_output=True)
        x, _ = sf.read(wav, dtype="float64", always_2d=True)
    x = x.mean(1)[: int(round(duration * SR))]
    return np.pad(x, (0, int(round(duration * SR)) - len(x)))


# --------------------------------------------------------------------------- one piece -> clips
def split_of(piece: str, seed: int) -> str:
    h = zlib.crc32(f"{seed}:{piece}".encode()) % 100
    return "train" if h < 80 else "valid" if h < 88 else "test"


def frame_times(n_samples: int) -> np.ndarray:
    """Centre times (s) of the model's frames ``i * HOP / SR``, ``L = n // HOP + 1``."""
    return np.arange(n_samples // HOP + 1) * HOP / SR


def place_melody(melody, bank: VoiceBank, clips: int, rng: np.random.Generator
                 ) -> tuple[list[tuple[float, float, int]], float, float, int, float]:
    """The melody ``[(start, end, midi)]`` (quarter lengths) moved to a tempo where its median note lasts 0.25-0.6 s,
    transposed into the singer's range and cut to ``clips`` clips: ``(notes in seconds, t0, seconds per quarter
    length, semitone shift, total seconds)``."""
    durs = np.array([b - a for a, b, _ in melody])
    scale = rng.uniform(0.25, 0.6) / float(np.median(durs))  # seconds per quarter length
    centre = rng.uniform(64, 70) if bank.female else rng.uniform(52, 58)
    shift = int(round(centre - np.median([p for _, _, p in melody])))
    t0 = melody[0][0]
    total = clips * CLIP_SECONDS
    mel = [((a - t0) * scale, (b - t0) * scale, p + shift) for a, b, p in melody if (a - t0) * scale < total]
    # random gaps after some notes (breaths, detached singing), leaving at least 120 ms of note
    mel = [(a, b - (rng.uniform(0.03, min(0.25, b - a - 0.12)) if rng.random() < 0.35 and b - a > 0.2 else 0.0), p)
           for a, b, p in mel]
    mel = [(a, min(b, total), p) for a, b, p in mel if min(b, total) - a > 0.03]
    return mel, t0, scale, shift, total


def make_clips(piece_id: str, melody, accomp, bank: VoiceBank, sf2: str, clips: int,
               rng: np.random.Generator) -> list[dict]:
    """Sing and accompany one piece; cut it into up to ``clips`` 4-s clips that are >= 30 % voiced."""
    from audiozoo.data.builders.gm import LOW_PROGRAMS, MELODIC_PROGRAMS

    mel, t0, scale, shift, total = place_melody(melody, bank, clips, rng)
    acc = []
    for part in accomp:
        q = [((a - t0) * scale, min((b - t0) * scale, total), int(np.clip(p + shift, 24, 108)))
             for a, b, p in part if a >= t0 and (a - t0) * scale < total]
        if q:
            acc.append(q)
    progs, used = [], set()
    for q in acc:
        pal = LOW_PROGRAMS if np.mean([p for _, _, p in q]) < 52 else MELODIC_PROGRAMS
        pal = [x for x in pal if x not in used and x not in NO_VOICE_PROGRAMS] or [0]
        progs.append(int(pal[rng.integers(len(pal))]))
        used.add(progs[-1])
    vocal, cseed = sing(mel, total, bank, rng)
    music = render(acc, progs, total, sf2) if acc else np.zeros_like(vocal)
    out = []
    n = int(CLIP_SECONDS * SR)
    for k in range(clips):
        a = k * CLIP_SECONDS
        t = a + frame_times(n)
        f0 = contour(t, mel, np.random.default_rng(cseed))  # exactly the synthesised contour at frame centres
        if (f0 > 0).mean() < 0.3:
            continue
        v, m = vocal[k * n:(k + 1) * n], music[k * n:(k + 1) * n]
        if np.sqrt(np.mean(m ** 2)) < 1e-4:
            continue
        onset = np.zeros(len(t), np.uint8)
        notes = [(max(x - a, 0.0), min(y - a, CLIP_SECONDS), p) for x, y, p in mel if y > a and x < a + CLIP_SECONDS]
        for x, _, _ in mel:
            if a <= x < a + CLIP_SECONDS:
                onset[min(len(t) - 1, int(round((x - a) * SR / HOP)))] = 1
        out.append({"piece": piece_id, "voice": bank.name, "programs": progs, "clip": k, "vocal": v, "accomp": m,
                    "f0": f0.astype(np.float32), "onset": onset,
                    "notes": [[round(x, 5), round(y, 5), int(p)] for x, y, p in notes]})
    return out


# --------------------------------------------------------------------------- main
def piece_list(n_pieces: int, seed: int) -> list[tuple[str, str, bool]]:
    from music21 import corpus

    out = []
    for comp, frac, poly in SOURCES:
        paths = sorted(str(p) for p in corpus.getComposer(comp))
        if comp == "bach":
            paths = [p for p in paths if os.path.basename(p).startswith("bwv")]
        rng = np.random.default_rng([seed, zlib.crc32(comp.encode())])
        k = max(1, int(round(frac * n_pieces)))
        if comp == "essenFolksong":  # 31 opus files of many songs: several songs from each
            picks = [paths[i % len(paths)] for i in range(k)]
            out += [(f"{comp}/{os.path.basename(p)}#{j}", p, poly) for j, p in enumerate(picks)]
        else:
            out += [(f"{comp}/{os.path.basename(paths[i])}", paths[i], poly) for i in rng.permutation(len(paths))[:k]]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/melody_vocals")
    ap.add_argument("--pieces", type=int, default=260)
    ap.add_argument("--clips", type=int, default=4, help="clips per piece (4 s each)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from audiozoo.data.builders.music_render import default_soundfont

    sf2 = default_soundfont()
    if sf2 is None:
        raise SystemExit("no GM soundfont (apt-get install timgm6mb-soundfont)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    banks = {v: voice_bank(v, seed=args.seed) for v in TRAIN_VOICES + TEST_VOICES}
    print(f"voices analysed in {time.time() - t_start:.0f} s", flush=True)
    data: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for i, (pid, path, poly) in enumerate(piece_list(args.pieces, args.seed)):
        rng = np.random.default_rng([args.seed, zlib.crc32(pid.encode())])
        split = split_of(pid, args.seed)
        voices = TEST_VOICES if split == "test" else TRAIN_VOICES
        try:
            piece = load_piece(path, poly, rng)
        except Exception as e:  # one unreadable corpus file should not stop the build
            print(f"skip {pid}: {type(e).__name__}: {e}", flush=True)
            continue
        if piece is None:
            continue
        bank = banks[voices[int(rng.integers(len(voices)))]]
        data[split] += make_clips(pid, *piece, bank, sf2, args.clips, rng)
        if i % 20 == 0:
            print(f"{i} pieces, {sum(map(len, data.values()))} clips, {time.time() - t_start:.0f} s", flush=True)
    for split, items in data.items():
        rng = np.random.default_rng([args.seed, zlib.crc32(split.encode())])
        q = lambda x: np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)  # noqa: E731
        peak = [max(np.abs(it["vocal"]).max(), np.abs(it["accomp"]).max(), 1e-9) for it in items]
        np.savez(out / f"{split}.npz",
                 vocal=np.stack([q(it["vocal"] * 0.9 / p) for it, p in zip(items, peak)]),
                 accomp=np.stack([q(it["accomp"] * 0.9 / p) for it, p in zip(items, peak)]),
                 f0=np.stack([it["f0"] for it in items]), onset=np.stack([it["onset"] for it in items]),
                 var_db=rng.uniform(-3.0, 3.0, len(items)).astype(np.float32))
        meta = [{k: it[k] for k in ("piece", "voice", "programs", "clip", "notes")} for it in items]
        (out / f"{split}.json").write_text(json.dumps(meta) + "\n")
        print(f"{split}: {len(items)} clips, {len({m['piece'] for m in meta})} pieces, voices "
              f"{sorted({m['voice'] for m in meta})}", flush=True)
    print(f"done in {time.time() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
