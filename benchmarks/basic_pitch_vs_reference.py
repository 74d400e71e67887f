"""Benchmark: audiozoo's ``transcription`` pipeline vs the official basic-pitch 0.4.0 ``predict`` (ONNX Runtime).

Same weights on both sides (audiozoo converts the ``nmp.onnx`` shipped in the basic-pitch wheel; the
reference runs that file on ONNX Runtime). In one run:

1. quality: 20 rendered Bach chorales (``music-render`` corpus, exact score notes) transcribed by both,
   scored against the score with ``note_metrics`` (mir_eval: onset-only F1, onset+offset F1), plus the
   agreement between the two pipelines' note lists;
2. speed: a 60 s recording (rendered pieces concatenated), end-to-end wall time from the wav path to note
   events for audiozoo fp32, audiozoo bf16 autocast (network only) and the reference, interleaved, median
   of ``--repeats``; the network alone is timed too;
3. everything goes to ``benchmarks/results/basic_pitch_cpu.json`` and a summary is printed.

    python benchmarks/basic_pitch_vs_reference.py --pieces 20 --threads 2 --repeats 3 \
        --out benchmarks/results/basic_pitch_cpu.json

Thread settings: ``torch.set_num_threads(N)`` for audiozoo; the reference's ``Model`` is built as basic-pitch
builds it, then its ONNX Runtime session is replaced by one on the same file with
``intra_op_num_threads=N, inter_op_num_threads=1`` (basic-pitch itself passes no SessionOptions).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
SR = 22050


# ------------------------------------------------------------------------------------------------ helpers
def _quiet() -> contextlib.ExitStack:
    """Silence basic-pitch's prints ("Predicting MIDI for ...") and its missing-backend warnings."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def load_reference(onnx_path: Path, threads: int) -> Any:
    """basic-pitch's ``Model`` on ONNX Runtime with an ``intra_op_num_threads=threads`` session."""
    logging.getLogger().setLevel(logging.ERROR)  # basic_pitch/__init__ warns about TF/CoreML/TFLite at import
    import onnxruntime as ort
    from basic_pitch.inference import Model

    model = Model(onnx_path)
    if model.model_type != Model.MODEL_TYPES.ONNX:
        raise RuntimeError(f"basic-pitch picked {model.model_type}, expected ONNX")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    model.model = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    return model


def reference_notes(model: Any, wav_path: Path) -> list[tuple[float, float, int, float]]:
    """Reference ``predict`` -> sorted [(start_s, end_s, pitch, amplitude)]."""
    from basic_pitch.inference import predict

    with _quiet():
        _, _, events = predict(str(wav_path), model_or_model_path=model)
    return sorted((float(s), float(e), int(p), float(a)) for s, e, p, a, _ in events)


def audiozoo_notes(pipe: Any, wav_path: Path) -> list[tuple[float, float, int, float]]:
    """audiozoo ``transcription`` pipeline -> sorted [(start_s, end_s, pitch, amplitude)]."""
    out = pipe(str(wav_path))
    return sorted((n["start_s"], n["end_s"], n["pitch_midi"], n["amplitude"]) for n in out["notes"])


class Bf16Autocast(torch.nn.Module):
    """Runs the wrapped network under ``torch.autocast("cpu", bfloat16)``; post-processing stays fp32."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(x)


def _key(n: tuple[float, float, int, float], decimals: int = 5) -> tuple[float, float, int]:
    # Both pipelines put notes on the same frame grid; rounding to 10 us only absorbs float printing
    # (audiozoo rounds to 1 us) — a one-frame difference is 11.6 ms and never collapses.
    return (round(n[0], decimals), round(n[1], decimals), n[2])


def agreement(a: list, b: list) -> dict[str, Any]:
    """How many notes (start, end, pitch) the two lists share (multiset), and the amplitude gap on those."""
    ca, cb = Counter(_key(n) for n in a), Counter(_key(n) for n in b)
    same = sum((ca & cb).values())
    amp_a = {_key(n): n[3] for n in a}
    amp_b = {_key(n): n[3] for n in b}
    gaps = [abs(amp_a[k] - amp_b[k]) for k in (ca & cb)]
    return {"n_a": len(a), "n_b": len(b), "identical": same, "only_a": len(a) - same, "only_b": len(b) - same,
            "all_identical": same == len(a) == len(b),
            "max_amplitude_diff_on_identical": float(max(gaps)) if gaps else 0.0}


def score(notes: list, ref_iv: np.ndarray, ref_p: np.ndarray) -> dict[str, float]:
    from audiozoo.eval.metrics import note_metrics

    est_iv = np.array([[s, e] for s, e, _, _ in notes], dtype=float).reshape(-1, 2)
    est_p = np.array([p for _, _, p, _ in notes], dtype=float)
    m = note_metrics(est_iv, est_p, ref_iv, ref_p, pitch_unit="midi")
    return {k: float(v) for k, v in m.items()}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


# ------------------------------------------------------------------------------------------------- stages
def quality(items: list[dict], root: Path, pipe: Any, pipe16: Any, ref_model: Any) -> dict[str, Any]:
    """Per piece: F1s of audiozoo fp32, the reference and audiozoo bf16 against the score, and agreement."""
    rows = []
    for it in items:
        meta = json.loads((root / it["notes"]).read_text())
        ref_iv = np.array([[n["onset"], n["offset"]] for n in meta["notes"]], dtype=float)
        ref_p = np.array([n["pitch"] for n in meta["notes"]], dtype=float)
        wav = root / it["audio_filepath"]
        ours, theirs = audiozoo_notes(pipe, wav), reference_notes(ref_model, wav)
        ours16 = audiozoo_notes(pipe16, wav)
        mo, mr = score(ours, ref_iv, ref_p), score(theirs, ref_iv, ref_p)
        rows.append({"piece": it["title"], "duration_s": it["duration"], "score_notes": len(ref_p),
                     "audiozoo": mo, "reference": mr, "audiozoo_bf16": score(ours16, ref_iv, ref_p),
                     "agreement": agreement(ours, theirs), "agreement_bf16_vs_fp32": agreement(ours16, ours)})
        print(f"  {it['title']:14s} F1 az {mo['f1']:.4f} ref {mr['f1']:.4f} | F1+off az "
              f"{mo['f1_with_offsets']:.4f} ref {mr['f1_with_offsets']:.4f} | identical notes "
              f"{rows[-1]['agreement']['identical']}/{len(ours)} vs {len(theirs)}")
    mean = {side: {k: float(np.mean([r[side][k] for r in rows])) for k in rows[0][side]}
            for side in ("audiozoo", "reference", "audiozoo_bf16")}
    tot = {k: int(sum(r["agreement"][k] for r in rows)) for k in ("n_a", "n_b", "identical")}
    return {
        "pieces": rows,
        "mean": mean,
        "difference_audiozoo_minus_reference": {k: mean["audiozoo"][k] - mean["reference"][k]
                                                for k in mean["audiozoo"]},
        "difference_bf16_minus_fp32": {k: mean["audiozoo_bf16"][k] - mean["audiozoo"][k] for k in mean["audiozoo"]},
        "agreement_bf16_vs_fp32_total": {
            "fp32_notes": sum(r["agreement_bf16_vs_fp32"]["n_b"] for r in rows),
            "bf16_notes": sum(r["agreement_bf16_vs_fp32"]["n_a"] for r in rows),
            "identical_notes": sum(r["agreement_bf16_vs_fp32"]["identical"] for r in rows)},
        "agreement_total": {"audiozoo_notes": tot["n_a"], "reference_notes": tot["n_b"],
                            "identical_notes": tot["identical"],
                            "pieces_all_identical": sum(r["agreement"]["all_identical"] for r in rows),
                            "max_amplitude_diff_on_identical": max(
                                r["agreement"]["max_amplitude_diff_on_identical"] for r in rows)},
    }


def make_long_wav(items: list[dict], root: Path, seconds: float, path: Path) -> Path:
    """Concatenate rendered mixes (in manifest order, looping) to exactly ``seconds`` and write a wav."""
    need, parts, k = int(round(seconds * SR)), [], 0
    while sum(p.shape[0] for p in parts) < need:
        x, sr = sf.read(root / items[k % len(items)]["audio_filepath"], dtype="float32", always_2d=True)
        if sr != SR:
            raise RuntimeError(f"expected {SR} Hz renders, got {sr}")
        parts.append(x.mean(axis=1))
        k += 1
    sf.write(path, np.concatenate(parts)[:need], SR, subtype="FLOAT")
    return path


def speed(wav: Path, pipe32: Any, pipe16: Any, ref_model: Any, repeats: int) -> dict[str, Any]:
    from basic_pitch.inference import run_inference

    from audiozoo.dsp.io import load_audio

    x, _ = load_audio(str(wav), mono=True)
    x = x.reshape(-1)
    e2e = {
        "audiozoo_fp32": lambda: audiozoo_notes(pipe32, wav),
        "audiozoo_bf16": lambda: audiozoo_notes(pipe16, wav),
        "reference_ort": lambda: reference_notes(ref_model, wav),
    }

    def ref_net() -> Any:
        with _quiet():
            return run_inference(str(wav), ref_model)

    net = {  # network + windowing only (audiozoo from the decoded tensor; the reference decodes the file too)
        "audiozoo_fp32": lambda: pipe32.activations(x),
        "audiozoo_bf16": lambda: pipe16.activations(x),
        "reference_ort": ref_net,
    }
    results: dict[str, Any] = {}
    for label, fns in (("end_to_end", e2e), ("network", net)):
        first = {k: f() for k, f in fns.items()}  # warm-up (and the outputs to compare)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):  # interleaved so machine noise hits all three alike
            for k, f in fns.items():
                times[k].append(_timed(f)[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        results[label] = {
            "times_s": times, "median_s": med,
            "ratio_reference_over_audiozoo_fp32": med["reference_ort"] / med["audiozoo_fp32"],
            "ratio_reference_over_audiozoo_bf16": med["reference_ort"] / med["audiozoo_bf16"],
            "ratio_fp32_over_bf16": med["audiozoo_fp32"] / med["audiozoo_bf16"],
            "realtime_factor": {k: 60.0 / v for k, v in med.items()},
        }
        if label == "end_to_end":
            results["notes_bf16_vs_fp32"] = agreement(first["audiozoo_bf16"], first["audiozoo_fp32"])
            results["notes_fp32_vs_reference"] = agreement(first["audiozoo_fp32"], first["reference_ort"])
        else:
            results["activation_max_abs_diff"] = {
                f"{k}_{a}_vs_{b}": float(np.max(np.abs(first[a][k] - first[b][k][: first[a][k].shape[0]])))
                for k in ("note", "onset", "contour")
                for a, b in (("audiozoo_fp32", "reference_ort"), ("audiozoo_bf16", "audiozoo_fp32"))
            }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / "cache" / "music_render20"), help="music-render corpus folder")
    ap.add_argument("--pieces", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the speed-test recording")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "basic_pitch_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import audiozoo
    from audiozoo.data.builders import build
    from audiozoo.models.transcribe.basic_pitch import find_basic_pitch_onnx

    root = Path(args.data)
    manifest = build("music-render", root, progress=False, pieces=args.pieces)
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][: args.pieces]
    onnx_path = find_basic_pitch_onnx()
    ref_model = load_reference(onnx_path, args.threads)
    pipe32 = audiozoo.pipeline("transcription")
    pipe16 = audiozoo.pipeline("transcription", model=Bf16Autocast(pipe32.model))

    print(f"quality: {len(items)} pieces from {manifest}")
    q = quality(items, root, pipe32, pipe16, ref_model)
    wav = make_long_wav(items, root, args.seconds, root / f"bench_{int(args.seconds)}s.wav")
    print(f"speed: {wav} ({args.seconds:.0f} s), {args.threads} threads, median of {args.repeats}")
    s = speed(wav, pipe32, pipe16, ref_model, args.repeats)

    from importlib.metadata import version

    import onnxruntime as ort

    result = {
        "benchmark": "basic_pitch_vs_reference",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "onnxruntime": ort.__version__,
                    "basic_pitch": version("basic-pitch"), "audiozoo": audiozoo.__version__},
        "settings": {"pieces": len(items), "corpus": str(manifest), "onnx": str(onnx_path),
                     "seconds": args.seconds, "threads": args.threads, "repeats": args.repeats,
                     "torch_threads": torch.get_num_threads(),
                     "ort_session": f"CPUExecutionProvider, intra_op_num_threads={args.threads}, "
                                    "inter_op_num_threads=1 (replaces basic-pitch's default session)",
                     "bf16": "torch.autocast('cpu', bfloat16) around the network only",
                     "metrics": "audiozoo.eval.metrics.note_metrics (mir_eval; 50 ms onset, 50 cents, "
                                "offset max(50 ms, 20 %))"},
        "quality": q,
        "speed": s,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")

    m, d = q["mean"], q["difference_audiozoo_minus_reference"]
    a = q["agreement_total"]
    print("\n== summary ==")
    for side in ("audiozoo", "reference", "audiozoo_bf16"):
        print(f"{side:13s} mean F1 {m[side]['f1']:.4f}  F1 w/ offsets {m[side]['f1_with_offsets']:.4f}")
    print(f"difference (audiozoo - reference): F1 {d['f1']:+.5f}, F1 w/ offsets {d['f1_with_offsets']:+.5f}")
    print(f"identical notes: {a['identical_notes']} of {a['audiozoo_notes']} (audiozoo) / {a['reference_notes']} "
          f"(reference); pieces fully identical {a['pieces_all_identical']}/{len(items)}")
    for label in ("end_to_end", "network"):
        r = s[label]
        med = r["median_s"]
        print(f"{label:10s} median s: fp32 {med['audiozoo_fp32']:.3f}, bf16 {med['audiozoo_bf16']:.3f}, "
              f"reference {med['reference_ort']:.3f} | ref/fp32 {r['ratio_reference_over_audiozoo_fp32']:.2f}, "
              f"ref/bf16 {r['ratio_reference_over_audiozoo_bf16']:.2f}")
    d16, a16 = q["difference_bf16_minus_fp32"], q["agreement_bf16_vs_fp32_total"]
    print(f"bf16 - fp32: F1 {d16['f1']:+.5f}, F1 w/ offsets {d16['f1_with_offsets']:+.5f}; identical notes "
          f"{a16['identical_notes']} of {a16['fp32_notes']} fp32 / {a16['bf16_notes']} bf16")
    b = s["notes_bf16_vs_fp32"]
    print(f"bf16 vs fp32 notes (60 s): {b['identical']} identical of {b['n_b']} fp32 / {b['n_a']} bf16")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
