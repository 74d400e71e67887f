"""Four-stem music (drums, bass, other, vocals) for the small Demucs / Conv-TasNet music recipes (issue #15).

Per piece of the music21 corpus (the pieces of ``prepare_melody.py``: Bach chorales, Monteverdi, Palestrina,
trecento, Essen folk songs, Ryan's Mammoth tunes), in the MUSDB stem order of ``demucs.MUSDB_SOURCES``:

* **vocals**: the top line, sung by the WORLD re-synthesis of espeak-ng / flite speech of ``prepare_melody``
  (its ``voice_bank`` / ``sing``: f0 replaced by the melody, vibrato, glides, consonants after rests);
* **bass**: the lowest accompanying part (polyphonic pieces with >= 3 parts) or the bass line of the generated
  chord accompaniment (``prepare_melody._chords``: one diatonic triad per bar), moved down by octaves to a bass
  register, on a GM bass program drawn per piece (``BASS_PROGRAMS``);
* **other**: the middle parts (or the chords) on distinct melodic GM programs drawn per piece and part (no
  voice-like programs);
* **drums**: a GM percussion (channel 10) pattern generated per piece from its metre (time signature, pickup)
  and tempo: kick on the downbeats, snare on the back beats (or beat 2 of compound / triple metres), closed or
  open hi-hat / ride in quarters, eighths or sixteenths, ghost notes, a crash on phrase starts and a fill (snare
  or toms) before some of them; the kit (GM drum presets ``DRUM_KITS``), velocities and a +-6 ms
  humanisation are drawn per piece.

Each stem is rendered separately by fluidsynth (reverb / chorus off) at 16 kHz mono; per piece each stem gets
a level (vocals 0 +- 2 dB, bass and other -5..+2 dB, drums -1..+5 dB around the same active loudness). Clips are
4 s, up to ``--clips`` consecutive windows per piece in which the vocal line sings >= 30 % of the time and every
stem is audible.
The stems of a clip are quantised to 16 bits **on a common scale**, and the mixture is their integer sum, so
``mix == drums + bass + other + vocals`` holds exactly in the files (peak <= 0.95).

Split (as ``prepare_melody``): by piece (seeded hash, 80 / 8 / 12 % train / valid / test) and by voice: test
pieces are sung only by the held-out voices (espeak-ng ``en-us+m7``, ``en-gb+f5``, flite ``kal16``), train and
valid pieces only by the training voices.

Sample rate 16 kHz mono is a CPU-sized choice for the small recipes (the canonical Demucs is 44.1 kHz stereo).

Output (``--out``, default ``cache/music4``): ``{split}/{clip}_{stem}.wav`` (``mix`` and the four stems, 16-bit
PCM) and ``{split}.jsonl`` manifests (``audio_filepath`` = the mixture, ``duration``, ``stems`` = ``{name:
path}``, ``piece``, ``voice``, ``programs``, ``kit``) that the ``separation`` task reads (``pit: false``).

Usage: ``python recipes/separate/prepare_music4.py [--out cache/music4] [--pieces 150] [--clips 5]``. The shipped
``demucs_small.music4`` used ``--pieces 220 --clips 5 --sentences 4``: 970 clips in 890 s wall (2 shared cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

STEMS = ("drums", "bass", "other", "vocals")  # == audiozoo.models.separate.demucs.MUSDB_SOURCES
CLIP_SECONDS = 4.0
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)  # acoustic / electric / fretless / slap / synth bass, contrabass
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # GM/GS percussion presets: standard, room, power, electronic, 808, jazz, brush
KICK, SNARE, SIDE, HAT, PEDAL, OPEN, RIDE, CRASH = 36, 38, 37, 42, 44, 46, 51, 49
TOMS = (50, 48, 47, 45, 43, 41)  # high to low


def _load_melody_module():
    """``prepare_melody.py`` (same folder) as a module: its voices, singing and piece list are reused."""
    name = "_prepare_melody"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("prepare_melody.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # its dataclass needs the module registered
    spec.loader.exec_module(mod)
    return mod


pm = _load_melody_module()
SR = pm.SR  # 16 kHz


# --------------------------------------------------------------------------- pieces -> parts
def load_piece4(path: str, polyphonic: bool, rng: np.random.Generator):
    """``(melody, bass, other, bar, beat, anchor)``: note lists ``[(on, off, midi)]`` in quarter lengths, the bar
    and beat lengths and the offset of the first full bar (after a pickup) in quarter lengths; None if unusable."""
    from music21 import converter

    from audiozoo.data.builders.music_render import extract_parts

    score = converter.parse(path)
    if not hasattr(score, "parts"):
        if hasattr(score, "scores") and len(score.scores):  # an opus of folk songs: one of them
            score = score.scores[int(rng.integers(len(score.scores)))]
        else:
            return None
    parts = extract_parts(score, tempo=60.0)  # seconds at 60 qpm = quarter lengths
    if not parts:
        return None
    melody = pm._top_line([(a, b, p) for a, b, p, _ in parts[0]["notes"]])
    if len(melody) < 8:
        return None
    acc = [[(a, b, p) for a, b, p, _ in q["notes"]] for q in parts[1:]] if polyphonic else []
    acc = [q for q in acc if q]
    if len(acc) >= 2:
        acc.sort(key=lambda q: -np.mean([p for _, _, p in q]))
        other, bass = acc[:-1], acc[-1]
    else:  # generated chords: their bass notes (C2..B2) are the bass, the triads the other stem
        chords = pm._chords(score, melody, rng)
        bass = [n for n in chords if n[2] < 48]
        other = [[n for n in chords if n[2] >= 48]] + acc
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    bar = float(ts.barDuration.quarterLength) if ts is not None else 4.0
    beat = float(ts.beatDuration.quarterLength) if ts is not None else 1.0
    if not 0.25 <= beat <= bar:
        beat = 1.0
    anchor = 0.0
    try:
        for m in score.parts[0].getElementsByClass("Measure"):
            if m.number is not None and m.number >= 1:
                anchor = float(m.offset)
                break
    except Exception:  # noqa: BLE001 - a score without measures: the grid starts at 0
        anchor = 0.0
    return melody, bass, other, bar, beat, anchor


def drum_pattern(bar: float, beat: float, anchor: float, t0: float, scale: float, total: float,
                 rng: np.random.Generator) -> list[tuple[float, float, int, int]]:
    """A drum part ``[(on_s, off_s, gm_drum_key, velocity)]`` over ``[0, total)`` s for a piece with bars of
    ``bar`` quarters (beats of ``beat`` quarters) whose grid passes through quarter ``anchor``; quarter ``t0`` is
    time 0 and one quarter lasts ``scale`` seconds."""
    compound = abs(beat - 1.5) < 1e-6  # 6/8-like metres: beats of dotted quarters
    n_beats = max(1, int(round(bar / beat)))
    sub = int(rng.choice([1, 2, 2, 2, 4])) if scale > 0.3 else int(rng.choice([1, 2, 2]))
    hat = int(rng.choice([HAT, HAT, HAT, RIDE, PEDAL, OPEN]))
    extra_kick = rng.random() < 0.5
    ghost = rng.random() < 0.3
    fill_every = int(rng.choice([4, 8]))
    fill_prob = rng.uniform(0.4, 0.9)
    vel = rng.uniform(0.75, 1.0)
    jitter = 0.006
    out: list[tuple[float, float, int, int]] = []

    def hit(q: float, key: int, v: float) -> None:
        t = (q - t0) * scale + rng.normal(0.0, jitter / 2)
        if 0.0 <= t < total:
            out.append((max(0.0, t), min(total, t + 0.1), key, int(np.clip(v * vel * 127, 20, 127))))

    k0 = int(np.floor((t0 - anchor) / bar)) - 1
    k = k0
    while (anchor + k * bar - t0) * scale < total:
        q0 = anchor + k * bar
        idx = k - k0
        fill = (idx + 1) % fill_every == 0 and rng.random() < fill_prob
        if idx % fill_every == 0:
            hit(q0, CRASH, 0.9)
        for b in range(n_beats):
            qb = q0 + b * beat
            last = b == n_beats - 1
            if fill and last:  # a fill on the last beat: snare or descending toms in sixteenths
                steps = 6 if compound else 4
                toms = rng.random() < 0.6
                for j in range(steps):
                    key = TOMS[min(len(TOMS) - 1, j * len(TOMS) // steps)] if toms else SNARE
                    hit(qb + j * beat / steps, key, 0.7 + 0.3 * j / steps)
                continue
            if b == 0 or (n_beats == 4 and b == 2) or (n_beats == 2 and compound and b == 0):
                hit(qb, KICK, 1.0)
            if (n_beats in (2, 4) and b % 2 == 1) or (n_beats == 3 and b in (1, 2) and rng.random() < 0.8):
                hit(qb, SNARE, 0.95)
            if n_beats == 1 and b == 0:
                hit(qb + beat / 2, SNARE, 0.9)
            if extra_kick and b == n_beats - 1 and not compound:
                hit(qb + beat / 2, KICK, 0.8)
            if ghost and rng.random() < 0.3:
                hit(qb + beat * 0.75, SNARE, 0.35)
            for j in range(sub):
                hit(qb + j * beat / sub, hat, 0.75 if j == 0 else 0.55)
        k += 1
    return out


# --------------------------------------------------------------------------- rendering
def render_notes(notes: list[tuple[float, float, int, int]], channel: int, program: int, duration: float,
                 sf2: str) -> np.ndarray:
    """fluidsynth rendering of one part ``[(on_s, off_s, midi, velocity)]`` on ``channel`` with GM ``program``
    (channel 9: a percussion kit preset): ``(duration * SR,)`` float64 mono."""
    import soundfile as sf

    from audiozoo.data.builders.midi import MidiNote, MidiTrack, midi_bytes, quantize, ticks_to_seconds
    from audiozoo.data.builders.music_render import GAIN, _fix_overlaps

    ns = [MidiNote(a, b, int(p), int(v)) for a, b, p, v in notes if b > a]
    if channel != 9:
        ns = _fix_overlaps(ns)
    ns = [MidiNote(ticks_to_seconds(quantize(x.onset)), ticks_to_seconds(quantize(x.offset)), x.pitch, x.velocity)
          for x in ns]
    track = MidiTrack([x for x in ns if x.offset > x.onset], channel, program, f"c{channel}")
    n = int(round(duration * SR))
    with tempfile.TemporaryDirectory(prefix="azm4") as tmp:
        mid, wav = os.path.join(tmp, "a.mid"), os.path.join(tmp, "a.wav")
        Path(mid).write_bytes(midi_bytes([track], duration + 0.5))
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", str(GAIN), "-R", "0", "-C", "0", "-r", str(SR),
                        "-O", "float", "-F", wav, sf2, mid], check=True, capture_output=True)
        x, _ = sf.read(wav, dtype="float64", always_2d=True)
    x = x.mean(1)[:n]
    return np.pad(x, (0, n - len(x)))


def _active_rms(x: np.ndarray, frame: int = 320) -> float:
    """RMS over the 20-ms frames within 40 dB of the loudest (the level of a stem where it plays)."""
    f = x[: len(x) // frame * frame].reshape(-1, frame)
    e = (f ** 2).mean(1)
    if e.max() <= 0:
        return 0.0
    return float(np.sqrt(e[e > e.max() * 1e-4].mean()))


def make_clips4(piece_id: str, melody, bass, other, bar: float, beat: float, anchor: float, bank, sf2: str, clips: int,
                rng: np.random.Generator) -> list[dict]:
    """Sing, accompany and drum one piece; cut it into up to ``clips`` 4-s clips (module docstring). Each clip:
    ``{"stems": {name: (n,) float64}, ...meta}`` with the stems at their mixing levels."""
    from audiozoo.data.builders.gm import MELODIC_PROGRAMS

    mel, t0, scale, shift, total = pm.place_melody(melody, bank, clips, rng)  # tempo, key, breaths: as prepare_melody

    def place(part, lo: int, hi: int, down_to: float | None = None):
        q = [((a - t0) * scale, min((b - t0) * scale, total), p + shift)
             for a, b, p in part if a >= t0 and (a - t0) * scale < total]
        if down_to is not None and q:  # octaves down until the part sits in a bass register
            while np.mean([p for _, _, p in q]) > down_to:
                q = [(a, b, p - 12) for a, b, p in q]
        return [(a, b, int(np.clip(p, lo, hi)), int(rng.integers(70, 100))) for a, b, p in q if b > a]

    bass_notes = place(bass, 28, 64, down_to=float(rng.uniform(40, 48)))
    other_parts = [q for q in (place(part, 36, 100) for part in other) if q]
    pal = [x for x in MELODIC_PROGRAMS if x not in pm.NO_VOICE_PROGRAMS]
    other_progs = [int(x) for x in rng.choice(pal, size=min(len(other_parts), len(pal)), replace=False)]
    bass_prog = int(rng.choice(BASS_PROGRAMS))
    kit = int(rng.choice(DRUM_KITS))
    drums = drum_pattern(bar, beat, anchor, t0, scale, total, rng)

    vocal, _ = pm.sing(mel, total, bank, rng)
    stems = {"vocals": vocal,
             "bass": render_notes(bass_notes, 0, bass_prog, total, sf2) if bass_notes else np.zeros_like(vocal),
             "drums": render_notes(drums, 9, kit, total, sf2) if drums else np.zeros_like(vocal)}
    oth = np.zeros_like(vocal)
    for ch, (q, prog) in enumerate(zip(other_parts, other_progs), start=1):
        oth = oth + render_notes(q, ch, prog, total, sf2)
    stems["other"] = oth
    # mixing levels: each stem to a common active loudness times a per-piece gain (dB)
    gains_db = {"vocals": rng.uniform(-2, 2), "bass": rng.uniform(-5, 2), "other": rng.uniform(-5, 2),
                "drums": rng.uniform(-1, 5)}  # +4 dB: the active RMS of a percussive stem counts its decays
    for name, x in stems.items():
        r = _active_rms(x)
        stems[name] = x * (0.1 * 10 ** (gains_db[name] / 20) / r) if r > 0 else x
    out = []
    n = int(CLIP_SECONDS * SR)
    for k in range(clips):
        seg = {name: stems[name][k * n:(k + 1) * n] for name in STEMS}
        voiced = sum(min(b, (k + 1) * CLIP_SECONDS) - max(a, k * CLIP_SECONDS)
                     for a, b, _ in mel if b > k * CLIP_SECONDS and a < (k + 1) * CLIP_SECONDS)
        if voiced / CLIP_SECONDS < 0.3:
            continue
        if min(np.sqrt(np.mean(x ** 2)) for x in seg.values()) < 1e-3:  # every stem audible (>= -60 dB of 1.0)
            continue
        out.append({"piece": piece_id, "voice": bank.name, "clip": k, "stems": seg,
                    "programs": {"bass": bass_prog, "other": other_progs}, "kit": kit,
                    "gains_db": {k2: round(float(v), 2) for k2, v in gains_db.items()}})
    return out


def quantise_clip(stems: dict[str, np.ndarray], peak: float = 0.95) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The stems as int16 on one common scale and the mixture as their integer sum: ``mix == sum(stems)``
    exactly, ``max |mix| <= peak`` (full scale 32767)."""
    m = np.sum([stems[s] for s in STEMS], axis=0)
    k = peak * 32767 / max(float(np.abs(m).max()), 1e-9)
    while True:
        q = {s: np.round(stems[s] * k).astype(np.int32) for s in STEMS}
        mix = np.sum([q[s] for s in STEMS], axis=0)
        if np.abs(mix).max() <= 32767 and all(np.abs(v).max() <= 32767 for v in q.values()):
            return {s: v.astype(np.int16) for s, v in q.items()}, mix.astype(np.int16)
        k *= 0.97


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/music4")
    ap.add_argument("--pieces", type=int, default=150)
    ap.add_argument("--clips", type=int, default=5, help="clips per piece (4 s each)")
    ap.add_argument("--sentences", type=int, default=4, help="speech sentences WORLD-analysed per voice")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import soundfile as sf

    from audiozoo.data.builders.music_render import default_soundfont
    from audiozoo.data.manifest import write_manifest

    sf2 = default_soundfont()
    if sf2 is None:
        raise SystemExit("no GM soundfont (apt-get install timgm6mb-soundfont)")
    out = Path(args.out).resolve()  # absolute: the manifests store paths relative to themselves
    t_start = time.time()
    banks = {v: pm.voice_bank(v, n_sentences=args.sentences, seed=args.seed)
             for v in pm.TRAIN_VOICES + pm.TEST_VOICES}
    print(f"voices analysed in {time.time() - t_start:.0f} s", flush=True)
    manifests: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for i, (pid, path, poly) in enumerate(pm.piece_list(args.pieces, args.seed)):
        rng = np.random.default_rng([args.seed, zlib.crc32(pid.encode()), 4])
        split = pm.split_of(pid, args.seed)
        voices = pm.TEST_VOICES if split == "test" else pm.TRAIN_VOICES
        try:
            piece = load_piece4(path, poly, rng)
            if piece is None:
                continue
            bank = banks[voices[int(rng.integers(len(voices)))]]
            clips = make_clips4(pid, *piece, bank, sf2, args.clips, rng)
        except Exception as e:  # noqa: BLE001 - one unreadable corpus file should not stop the build
            print(f"skip {pid}: {type(e).__name__}: {e}", flush=True)
            continue
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for c in clips:
            cid = f"{len(manifests[split]):05d}"
            q, mix = quantise_clip(c["stems"])
            paths = {s: str(d / f"{cid}_{s}.wav") for s in STEMS}
            for s in STEMS:
                sf.write(paths[s], q[s], SR, subtype="PCM_16")
            sf.write(str(d / f"{cid}_mix.wav"), mix, SR, subtype="PCM_16")
            manifests[split].append({"audio_filepath": str(d / f"{cid}_mix.wav"), "duration": CLIP_SECONDS,
                                     "stems": paths, **{k: c[k] for k in ("piece", "voice", "clip", "programs",
                                                                           "kit", "gains_db")}})
        if i % 10 == 0:
            print(f"{i} pieces, {sum(map(len, manifests.values()))} clips, {time.time() - t_start:.0f} s", flush=True)
    for split, items in manifests.items():
        write_manifest(out / f"{split}.jsonl", items)
        print(f"{split}: {len(items)} clips, {len({m['piece'] for m in items})} pieces, voices "
              f"{sorted({m['voice'] for m in items})}", flush=True)
    print(f"done in {time.time() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
