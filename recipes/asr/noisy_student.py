"""Noisy student training of ``conformer_aed_small`` on the ``asr-pseudo`` pool (GigaSpeech 2 §4 at CPU scale).

Iteration 0 is the pool's own labels (the teacher of ``audiozoo data build asr-pseudo``, Whisper tiny.en by
default, force-aligned, segmented and filtered). Iteration ``k >= 1``:

1. the student trains (``recipes/asr/noisy_student.yaml``: SpecAugment, speed perturbation; the pool itself is
   noisy and reverberant in part) on the filtered labels of the current teacher **plus** the synthetic labelled
   speech of ``recipes/asr/prepare.py`` (``cache/asr/train.jsonl``), starting from ``--init`` (the shipped
   ``conformer_aed_small.synth_en``, a fine-tune) for iteration 1 and from the previous student afterwards;
2. it is scored on held-out real speech (``test_real``: CMU ARCTIC + FSDD take 0) and held-out synthetic sentences
   (``test_synth``), with its CTC head (best path) and its attention decoder (greedy);
3. it re-labels the pool as the next teacher: the same asr-pseudo stages (``--collected`` = the pool's recordings)
   with the student as teacher (``--relabel-decoder``) and as aligner, and the same filters (the agreement
   filter then compares the student's attention text with its own CTC text).

    python recipes/asr/noisy_student.py --pool cache/asr/pseudo_whisper --iterations 2 --steps 500

Writes ``OUT/results.json`` (every row: iteration, model, test set, decoder, WER, CER, RTF, training hours) and
prints a markdown table. Long: run it in the background (one CPU thread; ~15-25 min per iteration here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def hours(manifest: Path) -> float:
    from audiozoo.data.manifest import read_manifest

    return round(sum(float(it["duration"]) for it in read_manifest(manifest)) / 3600, 4)


def merge(out: Path, parts: list[Path]) -> Path:
    """One training manifest (absolute paths) from several."""
    from audiozoo.data.manifest import read_manifest, write_manifest

    items = []
    for p in parts:
        for it in read_manifest(p):
            keep = {k: it[k] for k in ("audio_filepath", "duration", "text", "offset", "speaker") if k in it}
            items.append(keep)
    write_manifest(out, items, relative=False)
    return out


def evaluate(spec: str, tests: list[Path], decoders: list[str]) -> list[dict]:
    sys.path.insert(0, str(HERE))
    from eval_wer import transcribe_all

    from audiozoo.data.manifest import read_manifest
    from audiozoo.eval.asr import cer, wer

    rows = []
    for man in tests:
        items = read_manifest(man)
        refs = [it["text"] for it in items]
        for dec in decoders:
            hyps, rtf = transcribe_all(spec, items, 1, dec)
            rows.append({"test": man.stem, "decoder": dec if spec != "whisper" else "beam1", "items": len(items),
                         "wer": round(wer(refs, hyps), 4), "cer": round(cer(refs, hyps), 4), "rtf": round(rtf, 4),
                         "examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:3]]})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "examples"}), flush=True)
    return rows


def relabel(pool: Path, out: Path, teacher: str | None, aligner: str) -> Path:
    """The asr-pseudo stages over the pool's recordings with ``teacher`` and ``aligner``; ``teacher=None`` keeps the
    pool's transcripts (its ``transcribe/`` stage is copied, so only alignment, segmentation and filters re-run)."""
    import shutil

    import audiozoo.pipelines.asr_pseudo  # noqa: F401  (installs the model backend)
    from audiozoo.data.builders import build

    summary = json.loads((pool / "summary.json").read_text())
    if teacher is None:
        teacher = summary["options"]["teacher"]
        if not (out / "transcribe").is_dir():
            shutil.copytree(pool / "transcribe", out / "transcribe")
    opts = dict(summary["options"])
    for k in ("sources", "piper_hours", "synth_hours", "sentences", "noise_prob", "rir_prob", "exclude", "source",
              "seed", "collected"):
        opts.pop(k, None)
    collected = summary["options"].get("collected") or str(pool / "collect")
    return build("asr-pseudo", out, progress=False, **{**opts, "collected": collected, "teacher": teacher,
                                                      "aligner": aligner})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=Path, required=True, help="a finished asr-pseudo run folder")
    ap.add_argument("--labelled", type=Path, default=Path("cache/asr/train.jsonl"))
    ap.add_argument("--tests", type=Path, nargs="+",
                    default=[Path("cache/asr/test_real.jsonl"), Path("cache/asr/test_synth.jsonl")])
    ap.add_argument("--recipe", type=Path, default=HERE / "noisy_student.yaml")
    ap.add_argument("--init", default="conformer_aed_small.synth_en", help="first student's starting weights")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500, help="training steps per student")
    ap.add_argument("--relabel-decoder", default="attention", choices=["attention", "ctc"],
                    help="the student's decoder when it re-labels the pool")
    ap.add_argument("--relabel-teacher", default="student", choices=["student", "keep"],
                    help="student: the student transcribes the pool anew (Xie et al.'s noisy student); keep: the "
                         "pool's transcripts stay and the student only re-aligns and re-filters them (its CTC head "
                         "is the aligner and the agreement judge)")
    ap.add_argument("--baselines", nargs="*", default=["conformer_aed_small.synth_en"],
                    help="also score these (e.g. 'whisper')")
    ap.add_argument("--out", type=Path, default=Path("runs/noisy_student"))
    ap.add_argument("--benchmark", type=Path, default=None,
                    help="also write the pool's per-stage counts, the iterations and the rows here (JSON)")
    args = ap.parse_args()
    import torch

    from audiozoo.train.recipe import train_from_recipe, validate_recipe

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    res_path = args.out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {"rows": [], "iterations": []}

    def save() -> None:
        res_path.write_text(json.dumps(results, indent=1) + "\n")

    done = {(r["model"], r["test"], r["decoder"]) for r in results["rows"]}
    for spec in args.baselines:
        decs = ["beam1"] if spec == "whisper" else ["ctc", "attention"]  # decoder names as the rows store them
        if any((spec, t.stem, d) not in done for t in args.tests for d in decs):
            rows = evaluate(spec, args.tests, ["attention"] if spec == "whisper" else ["ctc", "attention"])
            results["rows"] += [{"iteration": "baseline", "model": spec, **r} for r in rows]
            save()

    labels = args.pool / "filter" / "kept.jsonl"
    prev = args.init
    base = yaml.safe_load(args.recipe.read_text())
    for k in range(1, args.iterations + 1):
        it_dir = args.out / f"iter{k}"
        it_dir.mkdir(parents=True, exist_ok=True)
        train = merge(it_dir / "train.jsonl", [labels, args.labelled])
        recipe = json.loads(json.dumps(base))
        recipe["model"]["name"] = prev
        recipe["data"]["train"] = str(train)
        recipe["trainer"].update(max_steps=args.steps, eval_every=args.steps)
        recipe["out_dir"] = str(it_dir / "run")
        t0 = time.time()
        if not (it_dir / "trained").is_file():  # an interrupted run resumes from run/last
            train_from_recipe(validate_recipe(recipe))
            (it_dir / "trained").write_text(f"{args.steps}\n")
        student = str(it_dir / "run" / "best")
        info = {"iteration": k, "init": prev, "teacher_labels": str(labels), "pseudo_hours": hours(labels),
                "labelled_hours": hours(args.labelled), "steps": args.steps, "train_wall_s": round(time.time() - t0)}
        if not any(r["model"] == student for r in results["rows"]):
            rows = evaluate(student, args.tests, ["ctc", "attention"])
            results["rows"] += [{"iteration": k, "model": student, **r} for r in rows]
        t1 = time.time()
        teacher = f"{student}#{args.relabel_decoder}" if args.relabel_teacher == "student" else None
        labels = relabel(args.pool, args.out / f"relabel{k}", teacher, student)
        teacher = teacher or f"{json.loads((args.pool / 'summary.json').read_text())['options']['teacher']} (kept)"
        info.update(next_teacher=teacher, relabel_wall_s=round(time.time() - t1),
                    next_labels=str(labels), next_pseudo_hours=hours(labels))
        results["iterations"] = [x for x in results["iterations"] if x["iteration"] != k] + [info]
        save()
        prev = student

    if args.benchmark:
        pool = json.loads((args.pool / "summary.json").read_text())
        relabels = {}
        for k in range(1, args.iterations + 1):
            p = args.out / f"relabel{k}" / "summary.json"
            if p.is_file():
                relabels[f"relabel{k}"] = {x: v for x, v in json.loads(p.read_text()).items() if x != "options"}
        args.benchmark.parent.mkdir(parents=True, exist_ok=True)
        args.benchmark.write_text(json.dumps({
            "description": "Noisy student training of conformer_aed_small on the asr-pseudo pool "
                           "(recipes/asr/noisy_student.py); WER/CER after GigaSpeech 2 normalisation",
            "command": " ".join(sys.argv), "pool": pool, "relabels": relabels, **results}, indent=1) + "\n")
    print("\n| iteration | model | test | decoder | WER | CER |\n|---|---|---|---|---|---|")
    for r in results["rows"]:
        print(f"| {r['iteration']} | {r['model']} | {r['test']} | "
              f"{r['decoder']} | {r['wer']:.3f} | {r['cer']:.3f} |")


if __name__ == "__main__":
    main()
