"""Speaker-verification EER of the GE2E speaker encoder (``ge2e_speaker_encoder.resemblyzer``).

Conditions (every unordered pair of utterances is a trial; target = same speaker):

* ``fsdd_digits``: FSDD's five speakers, 50 single spoken digits each (digits 0-9 x takes 0-4; 0.2-0.9 s, far
  shorter than the encoder's 1.6 s partials), 8 kHz resampled to 16 kHz;
* ``fsdd_5digits``: the same speakers, 10 utterances each made of 5 digits (takes 5-49) joined end to end
  (~2-3 s: the utterance length the encoder is used at);
* ``synthetic``: 4 espeak-ng voices + 4 flite voices, 6 sentences each (text below, written for this recipe),
  synthesised with the binaries;
* ``espeak_only`` / ``flite_only``: the same, one engine at a time (espeak-ng's variants share one formant
  synthesiser, which makes them hard to tell apart).

Each condition is also run with a randomly initialised encoder of the same architecture (control). Audio is
volume-normalised by the encoder's front end; resemblyzer's webrtcvad silence trimming is not applied.

    python recipes/embed/ge2e_eer.py            # -> benchmarks/results/ge2e_eer.json (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch

import audiozoo
from audiozoo.dsp.io import load_audio, resample
from audiozoo.eval.speaker import speaker_verification

ROOT = Path(__file__).resolve().parents[2]
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb-scotland+m4")
FLITE_VOICES = ("slt", "rms", "awb", "kal16")
SENTENCES = (
    "The little boat drifted slowly past the old stone bridge.",
    "Please remember to close the window before you leave the house.",
    "A cold wind blew across the empty field all afternoon.",
    "She found three shiny coins hidden under the kitchen table.",
    "Our train was late, so we walked along the river instead.",
    "Bright lanterns hung from every tree in the quiet garden.",
)


def shared_data() -> Path:
    env = os.environ.get("AUDIOZOO_SHARED_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    if not (p / "fsdd").is_dir():
        raise SystemExit(f"FSDD not found under {p} (set AUDIOZOO_SHARED_DATA)")
    return p


def to_16k(path: Path) -> torch.Tensor:
    wav, sr = load_audio(path, mono=True)
    return resample(wav, sr, 16000) if sr != 16000 else wav


def fsdd_digits(root: Path) -> tuple[list[torch.Tensor], list[str]]:
    wavs, spk = [], []
    for s in FSDD_SPEAKERS:
        for d in range(10):
            for take in range(5):
                wavs.append(to_16k(root / "fsdd" / f"{d}_{s}_{take}.wav"))
                spk.append(s)
    return wavs, spk


def fsdd_5digits(root: Path) -> tuple[list[torch.Tensor], list[str]]:
    wavs, spk = [], []
    for s in FSDD_SPEAKERS:
        for k in range(10):
            # utterance k: digits k, k+1, ..., k+4 (mod 10), the j-th with take 5 + 8 j + k (all in 5..46;
            # no digit take is used twice)
            parts = [to_16k(root / "fsdd" / f"{(k + j) % 10}_{s}_{5 + 8 * j + k}.wav") for j in range(5)]
            wavs.append(torch.cat(parts))
            spk.append(s)
    return wavs, spk


def synthesise(engine: str, voice: str, text: str, tmp: Path) -> torch.Tensor:
    out = tmp / "x.wav"
    if engine == "espeak":
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True)
    else:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
    return to_16k(out)


def synthetic(engines: tuple[str, ...]) -> tuple[list[torch.Tensor], list[str]]:
    wavs, spk = [], []
    with tempfile.TemporaryDirectory(prefix="ge2e_eer") as tmp:
        for engine, voices in (("espeak", ESPEAK_VOICES), ("flite", FLITE_VOICES)):
            if engine not in engines:
                continue
            tool = "espeak-ng" if engine == "espeak" else "flite"
            if not shutil.which(tool):
                raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
            for v in voices:
                for text in SENTENCES:
                    wavs.append(synthesise(engine, v, text, Path(tmp)))
                    spk.append(f"{engine}:{v}")
    return wavs, spk


@torch.no_grad()
def embed_all(model, wavs: list[torch.Tensor]) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    emb = torch.cat([model.embed(w.float()) for w in wavs])
    return emb, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "ge2e_eer.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = shared_data()
    model = audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()
    torch.manual_seed(0)
    control = audiozoo.create_model("ge2e_speaker_encoder").eval()

    synth_all = synthetic(("espeak", "flite"))
    n_esp = len(ESPEAK_VOICES) * len(SENTENCES)
    conditions = {
        "fsdd_digits": fsdd_digits(root),
        "fsdd_5digits": fsdd_5digits(root),
        "synthetic": synth_all,
        "espeak_only": (synth_all[0][:n_esp], synth_all[1][:n_esp]),
        "flite_only": (synth_all[0][n_esp:], synth_all[1][n_esp:]),
    }
    results = {}
    for name, (wavs, spk) in conditions.items():
        emb, secs = embed_all(model, wavs)
        emb_rand, _ = embed_all(control, wavs)
        audio_s = sum(w.numel() for w in wavs) / 16000
        r = speaker_verification(emb, spk)
        results[name] = {
            "utterances": len(wavs), "speakers": len(set(spk)), "audio_seconds": round(audio_s, 2),
            "mean_utterance_seconds": round(audio_s / len(wavs), 3),
            **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()},
            "random_init": {k: round(v, 5) for k, v in speaker_verification(emb_rand, spk).items()
                            if k in ("eer", "nn_accuracy")},
            "embed_seconds": round(secs, 2), "real_time_factor": round(secs / audio_s, 4),
        }
        print(f"{name:>13}: EER {100 * r['eer']:5.2f} %  1-NN {100 * r['nn_accuracy']:5.1f} %  "
              f"(target {r['target_mean']:.3f} / non-target {r['nontarget_mean']:.3f}; random init EER "
              f"{100 * results[name]['random_init']['eer']:.1f} %; {len(wavs)} utts, {r['n_target']} + "
              f"{r['n_nontarget']} trials)")
    out = {
        "model": "ge2e_speaker_encoder.resemblyzer",
        "resemblyzer": metadata.version("resemblyzer"),
        "torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
        "note": "all unordered pairs of utterances as trials; cosine similarity; EER interpolated on the ROC "
                "(audiozoo.eval.speaker.eer); no VAD trimming; random_init = same architecture, seed 0",
        "conditions": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
