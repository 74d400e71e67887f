"""Synthetic spoken digits from a natural neural voice turned into many pseudo-speakers (issue #13).

``build_piper_synth(out, n_voices, takes)`` renders ``n_voices x 10 digits x takes`` clips:

* **Source voice**: Piper ``en_US-joe-medium`` (VITS, the ``piper-speech`` corpus's voice,
  :func:`audiozoo.data.builders.piper_speech.load_voice`), the digit word alone ("zero" ... "nine", FSDD's
  words) ending in ``.``, ``!`` or ``?`` (falling / emphatic / rising intonation), phonemised by espeak-ng as
  Piper does. Each take draws its own VITS noise (seeded) and ``length_scale`` 0.8-1.5 (slow isolated words,
  like FSDD's), ``noise_scale`` 0.3-0.9, ``noise_w`` 0.4-1.2.
* **Pseudo-speaker** (fixed per voice, seeded): WORLD re-synthesis with the transforms of
  :func:`audiozoo.dsp.pitch.world_voice` (as the AdaSpeech voices): F0 scale log-uniform 0.6-1.8 (Joe's low male
  register up to female / child ranges), intonation range 0.5-1.5, spectral-envelope (vocal-tract length) warp
  0.86-1.18; voice 0 is Joe himself through WORLD.
* **Channel**: leading / trailing silence cut (|x| < 1e-3 of the peak-normalised clip, 30 ms kept), a random
  level (0.2-0.95 peak), resampled through 8 kHz like FSDD (band-limited to 4 kHz), stored as 8 kHz PCM-16.

Clips are cached in ``out`` (``{voice:03d}_{take}_{digit}.wav``) and reused; a fresh machine rebuilds them (one
thread: ~0.15 s a clip). Nothing here is an FSDD speaker: no real recording is used.

Two more sources of voices share the WORLD pseudo-speaker and channel steps (``_revoice``):

* ``build_festival_synth(out, n_voices, takes)``: the three English festival voices built from recordings of
  real people (``kal_diphone``, ``ked_diphone``: US male diphone voices; ``cmu_us_slt_arctic_hts``: ARCTIC's US
  female, HTS), round robin over the pseudo-speakers (voices 0-2 are the three unchanged), festival's
  ``Duration_Stretch`` 0.9-1.6 per take; the same pseudo-speaker ranges as Piper. ~0.4 s a clip.
* ``revoice_fsdd(clips, speakers, out, k)``: ``k`` WORLD pseudo-speakers made from each *real* FSDD speaker
  (every clip of that speaker re-synthesised with the speaker's fixed F0 x 0.75-1.5, intonation range x 0.6-1.4,
  vocal-tract warp 0.9-1.15: moderate ranges, since every FSDD speaker is an adult man). Each re-voiced clip keeps
  its source speaker, so a leave-one-speaker-out fold drops the held-out speaker's re-voicings with him. WORLD
  analyses the 16 kHz up-sampled clip (at 8 kHz D4C makes the re-synthesis breathy). ~0.06 s a clip.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiozoo.dsp import resample

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tts"))
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PIPER_SR = 22050


def voice_params(n_voices: int, seed: int = 0) -> list[tuple[float, float, float]]:
    """``(f0_scale, warp, f0_range)`` of each pseudo-speaker (voice 0: Joe, unchanged)."""
    rng = random.Random(seed)
    out = [(1.0, 1.0, 1.0)]
    while len(out) < n_voices:
        out.append((float(np.exp(rng.uniform(np.log(0.6), np.log(1.8)))), rng.uniform(0.86, 1.18),
                    rng.uniform(0.5, 1.5)))
    return out


def _trim(w: np.ndarray, sr: int) -> np.ndarray:
    """Drop leading / trailing samples below 1e-3 of the peak, keeping 30 ms either side."""
    w = w / max(float(np.abs(w).max()), 1e-6)
    nz = np.nonzero(np.abs(w) > 1e-3)[0]
    if len(nz) == 0:
        return w
    pad = int(0.03 * sr)
    return w[max(0, nz[0] - pad): nz[-1] + pad]


def build_piper_synth(out: Path, n_voices: int, takes: int, seed: int = 0
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``n_voices * 10 * takes`` synthetic digit clips as 16 kHz waveforms ``(n_i,)`` and labels ``(N,)``
    (module docstring), rendered once into ``out`` and read back from there."""
    from digits_loso import read16k

    out.mkdir(parents=True, exist_ok=True)
    voices = voice_params(n_voices, seed)
    todo = [(v, t, d) for v in range(n_voices) for t in range(takes) for d in range(10)]
    paths = [out / f"{v:03d}_{t}_{d}.wav" for v, t, d in todo]
    if not all(p.exists() for p in paths):
        from audiozoo.data.builders.piper_speech import load_voice, piper_sentences
        from audiozoo.text.phonemes import EspeakPhonemizer

        voice = load_voice()
        assert voice.sample_rate == PIPER_SR
        phonemizer = EspeakPhonemizer("en-us", stress=True, punctuation=True)
        ids = {(d, p): voice.phonemes_to_ids(piper_sentences(phonemizer.phonemize(DIGITS[d] + p))[0])[0]
               for d in range(10) for p in ".!?"}
        for (v, t, d), path in zip(todo, paths):
            if path.exists():
                continue
            rng = random.Random(f"{seed}-{v}-{t}-{d}")
            audio, _ = voice.synthesize_ids(
                ids[d, rng.choice(".!?")], seed=rng.randrange(2**31), length_scale=rng.uniform(0.8, 1.5),
                noise_scale=rng.uniform(0.3, 0.9), noise_w=rng.uniform(0.4, 1.2))
            _revoice(_trim(audio.astype(np.float64), PIPER_SR), PIPER_SR, voices[v], rng, path)
    wavs = [read16k(p) for p in paths]
    return wavs, torch.tensor([d for _, _, d in todo])


def _revoice(w: np.ndarray, sr: int, voice: tuple[float, float, float], rng: random.Random, path: Path,
             trim: bool = True) -> None:
    """WORLD re-synthesis of ``w`` ``(T,)`` at ``sr`` as pseudo-speaker ``voice`` = ``(f0_scale, warp,
    f0_range)``, trimmed of silence (unless ``trim`` is False), at a random level (0.2-0.95 peak), band-limited
    through 8 kHz and written to ``path`` as 8 kHz PCM-16 (FSDD's format)."""
    from audiozoo.dsp.pitch import world_analyse, world_voice

    f0_scale, warp, f0_range = voice
    y = world_voice(world_analyse(w, sr), f0_scale, warp, f0_range)
    y8 = resample(torch.from_numpy((_trim(y, sr) if trim else y).astype(np.float32)), sr, 8000)
    y8 = y8 / y8.abs().max().clamp_min(1e-6) * rng.uniform(0.2, 0.95)
    sf.write(path, y8.numpy(), 8000, subtype="PCM_16")


FESTIVAL_EN = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def build_festival_synth(out: Path, n_voices: int, takes: int, seed: int = 0
                         ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``n_voices * 10 * takes`` digit clips of the English festival voices made into pseudo-speakers (module
    docstring) as 16 kHz waveforms ``(n_i,)`` and labels ``(N,)``, rendered once into ``out``."""
    from digits_loso import read16k

    from audiozoo.data.builders.base import run_tool
    from audiozoo.data.builders.speech_synth import ensure_festival_voices

    out.mkdir(parents=True, exist_ok=True)
    voices = [(1.0, 1.0, 1.0)] * len(FESTIVAL_EN) + voice_params(n_voices + 1, seed + 1)[1:]
    todo = [(v, t, d) for v in range(n_voices) for t in range(takes) for d in range(10)]
    paths = [out / f"{v:03d}_{t}_{d}.wav" for v, t, d in todo]
    if not all(p.exists() for p in paths):
        ensure_festival_voices(FESTIVAL_EN, "festival digits")
        with tempfile.TemporaryDirectory(prefix="azdigits") as tmp:
            raw = os.path.join(tmp, "raw.wav")
            for (v, t, d), path in zip(todo, paths):
                if path.exists():
                    continue
                rng = random.Random(f"festival-{seed}-{v}-{t}-{d}")
                stretch = rng.uniform(0.9, 1.6)
                run_tool(["text2wave", "-eval", f"(voice_{FESTIVAL_EN[v % len(FESTIVAL_EN)]})", "-eval",
                          f"(Parameter.set 'Duration_Stretch {stretch:.3f})", "-o", raw], "festival text2wave",
                         input=DIGITS[d] + rng.choice(".!?"))
                w, sr = sf.read(raw, dtype="float64", always_2d=True)
                _revoice(_trim(w.mean(1), sr), sr, voices[v], rng, path)
    wavs = [read16k(p) for p in paths]
    return wavs, torch.tensor([d for _, _, d in todo])


def revoice_fsdd(clips: list[torch.Tensor], speakers: list[str], out: Path, k: int, seed: int = 0
                 ) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """``k`` WORLD pseudo-speakers of every real FSDD speaker (module docstring): for the 16 kHz ``clips``
    ``(n_i,)`` of ``speakers``, the re-voiced clips (16 kHz), the index of each one's source clip and its source
    speaker (so a fold can drop the held-out speaker's re-voicings). Rendered once into ``out``."""
    from digits_loso import read16k

    out.mkdir(parents=True, exist_ok=True)
    params = {}
    for s in sorted(set(speakers)):
        rng = random.Random(f"revoice-{seed}-{s}")
        params[s] = [(float(np.exp(rng.uniform(np.log(0.75), np.log(1.5)))), rng.uniform(0.9, 1.15),
                      rng.uniform(0.6, 1.4)) for _ in range(k)]
    wavs, src, spk = [], [], []
    for i, (w, s) in enumerate(zip(clips, speakers)):
        for j in range(k):
            path = out / f"{s}_{i:05d}_{j}.wav"
            if not path.exists():
                # no trimming: the clip keeps the real recording's own leading / trailing silence
                _revoice(w.double().numpy(), 16000, params[s][j], random.Random(f"revoice-{seed}-{i}-{j}"), path,
                         trim=False)
            wavs.append(read16k(path))
            src.append(i)
            spk.append(s)
    return wavs, src, spk


if __name__ == "__main__":
    import time

    torch.set_num_threads(1)
    t0 = time.time()
    n_voices, takes = int(sys.argv[1]), int(sys.argv[2])
    w, y = build_piper_synth(Path(sys.argv[3] if len(sys.argv) > 3 else "cache/digits_piper"), n_voices, takes)
    print(len(w), "clips", f"{sum(x.numel() for x in w) / 16000:.0f} s audio", f"{time.time() - t0:.0f}s")
