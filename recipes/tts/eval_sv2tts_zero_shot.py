"""Zero-shot voice cloning test of an SV2TTS synthesizer on voices it never heard (GE2E closeness, WER, DNSMOS).

    python recipes/tts/eval_sv2tts_zero_shot.py --model runs/sv2tts_small_voices/best \
        --baseline runs/tacotron2_small_piper/best --out recipes/tts/results_sv2tts_small_voices.json

Data: ``prepare_sv2tts_voices.py`` (``cache/sv2tts_voices``). For every held-out voice (never in training):

* **reference**: one clip of the voice reading a train-split sentence (``heldout/V/refs``); the synthesizer gets
  its GE2E d-vector through the ``tts`` pipeline (``speaker_wav=``), exactly as ``audiozoo tts --speaker-wav``;
* **texts**: the first ``--n-test`` test-split sentences (never in any training split), spoken by
  ``synthesizer + hifigan_v1.universal`` with the pre-net dropout on (the paper's inference), seeded per sentence;
* **centroids** (``audiozoo.eval.speaker.voice_ranking``): every voice's (held-out and training) recorded clips of
  the *next* ``--n-test`` test sentences (the same texts for every voice, other texts than the synthesised ones:
  these voices share one speaker's timing, so GE2E also hears the text); GE2E's normalised mean. A cloned voice
  passes when its utterances are closer (mean cosine) to its target's centroid than to any other voice's
  (``target_rank`` 1), among the held-out voices and among all voices of the set (held-out + training).

Rows per voice: the recorded voice itself (the ceiling), the clone, and with ``--baseline`` a single-speaker model
(no voice input: how close the Piper voice already is to the target). Also Whisper tiny.en WER / CER against the
texts, DNSMOS OVRL, and the median F0 of voiced frames (WORLD DIO; the voices differ most in F0 register, so this
shows whether the clone moved its pitch towards the target's). ``--f0-from-wavs`` adds the F0 column to an
existing results JSON from its ``--save-wavs`` folder (no synthesis). With ``--vocoded`` the held-out centroids
are also computed from the recorded clips re-synthesised by the vocoder (copy-synthesis), so vocoder colouring is
common to both sides.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio, resample
from audiozoo.eval.judges import dnsmos, intelligibility
from audiozoo.eval.speaker import voice_ranking
from audiozoo.pipelines import pipeline

SR = 22050


def median_f0(wavs: list[torch.Tensor]) -> float:
    """Median F0 (Hz) over the voiced frames of all ``wavs`` (WORLD DIO + StoneMask, 65-600 Hz)."""
    from audiozoo.dsp.pitch import f0_world

    f0 = torch.cat([f0_world(w.reshape(-1).double().numpy(), SR, frame_period_ms=5.0, f0_min=65.0, f0_max=600.0,
                             method="dio")[0].reshape(-1) for w in wavs])
    return round(float(f0[f0 > 0].median()), 1) if bool((f0 > 0).any()) else 0.0


def add_f0(results_path: Path, wav_dir: Path, root: Path) -> None:
    """Median F0 of the saved clones / baselines and of the recorded target clips, into the results JSON."""
    res = json.loads(results_path.read_text())
    for v, row in res["voices"].items():
        rec = [load_audio(r["audio_filepath"], mono=True)[0]
               for r in read_manifest(root / "heldout" / v / "test" / "manifest.jsonl")[: res["n_test"]]]
        row["recorded"]["median_f0_hz"] = median_f0(rec)
        row["reference_median_f0_hz"] = median_f0([load_audio(row["reference"], mono=True)[0]])
        for name in [k for k in row if k not in ("recorded", "reference", "reference_median_f0_hz")]:
            files = sorted((wav_dir / v).glob(f"*_{name.split()[0]}.wav"))
            row[name]["median_f0_hz"] = median_f0([load_audio(f, mono=True)[0] for f in files])
        print(v, {k: r["median_f0_hz"] for k, r in row.items() if isinstance(r, dict)}, flush=True)
    results_path.write_text(json.dumps(res, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the SV2TTS synthesizer (run folder or weight set)")
    ap.add_argument("--data", default="cache/sv2tts_voices")
    ap.add_argument("--vocoder", default="hifigan_v1.universal")
    ap.add_argument("--baseline", default=None, help="a single-speaker acoustic model to compare with")
    ap.add_argument("--n-test", type=int, default=8)
    ap.add_argument("--voices", default=None, help="comma-separated held-out voices (default: all)")
    ap.add_argument("--vocoded", type=int, default=1, help="1: also rank against copy-synthesis centroids")
    ap.add_argument("--seed", type=int, default=0, help="another pre-net dropout draw (sentence i: i + 1000 seed)")
    ap.add_argument("--save-wavs", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--f0-from-wavs", action="store_true", help="add median F0 to --out from --save-wavs, then stop")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.data)
    if args.f0_from_wavs:
        add_f0(Path(args.out), Path(args.save_wavs), root)
        return
    meta = json.loads((root / "voices.json").read_text())
    held, trained = list(meta["heldout_voices"]), list(meta["train_voices"])
    ge2e = audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()

    def embed(wavs: list[torch.Tensor], sr: int = SR) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([ge2e.embed(resample(w.reshape(1, -1).float(), sr, 16000), sample_rate=16000)
                              for w in wavs])

    def clips(manifest: Path, lo: int, hi: int) -> tuple[list[dict], list[torch.Tensor]]:
        rows = read_manifest(manifest)[lo:hi]
        return rows, [load_audio(r["audio_filepath"], mono=True)[0].reshape(-1) for r in rows]

    t0 = time.perf_counter()
    n = args.n_test
    cents: dict[str, dict[str, torch.Tensor]] = {"recorded": {}}
    # every voice's clips of the same n..2n test sentences (centroid texts, never the synthesised ones)
    centroid_clips = {v: clips(root / "heldout" / v / "test" / "manifest.jsonl", n, 2 * n)[1] for v in held}
    centroid_clips.update({v: clips(root / "train_voices" / v / "test" / "manifest.jsonl", n, 2 * n)[1]
                           for v in trained})
    for v, rec in centroid_clips.items():
        cents["recorded"][v] = F.normalize(embed(rec).mean(0), dim=0)
    if args.vocoded:  # copy-synthesis of the held-out voices' centroid clips through the vocoder
        voc = pipeline("vocode", model=args.vocoder)
        cents["vocoded"] = {v: F.normalize(embed([voc.vocode(voc.mel_of(w)).clamp(-1, 1)
                                                  for w in centroid_clips[v]]).mean(0), dim=0) for v in held}
    print(f"centroids: {time.perf_counter() - t0:.0f} s", flush=True)

    def rank(e: torch.Tensor, target: str) -> dict:
        among_held = {v: cents["recorded"][v] for v in held}
        out = {"all_voices": voice_ranking(e, cents["recorded"], target),
               "heldout_voices": voice_ranking(e, among_held, target)}
        if "vocoded" in cents:
            out["heldout_vocoded"] = voice_ranking(e, cents["vocoded"], target)
        for r in out.values():
            r.pop("voices")
        return out

    def score(wavs: list[torch.Tensor], texts: list[str], target: str) -> dict:
        row = rank(embed(wavs), target)
        intel = intelligibility(wavs, SR, texts)
        row.update(wer=round(intel["wer"], 4), cer=round(intel["cer"], 4),
                   dnsmos_ovrl=round(float(dnsmos(wavs, SR)["ovrl"].mean()), 3), median_f0_hz=median_f0(wavs))
        return row

    systems = {"clone": pipeline("tts", model=f"{args.model}+{args.vocoder}")}
    if args.baseline:
        systems["single-speaker baseline"] = pipeline("tts", model=f"{args.baseline}+{args.vocoder}")
    results = {"model": args.model, "baseline": args.baseline, "vocoder": args.vocoder, "data": str(root),
               "n_test": n, "seed": args.seed, "heldout_voices": meta["heldout_voices"], "voices": {}}
    for v in args.voices.split(",") if args.voices else held:
        rows, rec = clips(root / "heldout" / v / "test" / "manifest.jsonl", 0, n)
        texts = [r["text"] for r in rows]
        ref = read_manifest(root / "heldout" / v / "refs" / "manifest.jsonl")[0]["audio_filepath"]
        res = {"reference": ref, "recorded": score(rec, texts, v)}
        for name, pipe in systems.items():
            wavs = []
            t1 = time.perf_counter()
            for i, text in enumerate(texts):
                torch.manual_seed(i + 1000 * args.seed)  # the pre-net dropout stays on at inference (paper)
                kw = {"speaker_wav": ref} if name == "clone" else {}
                wavs.append(pipe.synthesize(text, **kw)["audio"])
            res[name] = {**score(wavs, texts, v), "synth_seconds": round(time.perf_counter() - t1, 1)}
            if args.save_wavs:
                from audiozoo.dsp.io import save_audio

                d = Path(args.save_wavs) / v
                d.mkdir(parents=True, exist_ok=True)
                for i, w in enumerate(wavs):
                    save_audio(d / f"{i:02d}_{name.split()[0]}.wav", w[None], SR)
        results["voices"][v] = res
        brief = {k: (r["all_voices"]["target_rank"], r["heldout_voices"]["target_rank"], r["wer"])
                 for k, r in res.items() if isinstance(r, dict)}
        print(v, "(rank among all, rank among held-out, WER):", json.dumps(brief), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    summary = {}
    for name in ["recorded", *systems]:
        rs = [results["voices"][v][name] for v in results["voices"]]
        summary[name] = {
            "closest_among_all": sum(r["all_voices"]["target_rank"] == 1 for r in rs),
            "closest_among_heldout": sum(r["heldout_voices"]["target_rank"] == 1 for r in rs),
            "mean_to_target": round(sum(r["all_voices"]["to_target"] for r in rs) / len(rs), 4),
            "mean_best_other": round(sum(r["all_voices"]["best_other"][1] for r in rs) / len(rs), 4),
            "wer": round(sum(r["wer"] for r in rs) / len(rs), 4), "voices": len(rs)}
    results["summary"] = summary
    results["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
