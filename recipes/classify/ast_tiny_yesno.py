"""Data for recipes/classify/ast_tiny_yesno.yaml: the words of Kaldi's yes/no corpus, one manifest line each.

Each of the 60 recordings (``audiozoo data build yesno``: one speaker, 8 kHz, ~6 s) holds 8 Hebrew words,
*ken* (yes) or *lo* (no), whose order is the file name. A per-recording label would be nearly useless
(almost every recording holds both words) and 30 training recordings are too few to learn 8 positions at
once, so the task here is per-word classification: this script finds the 8 words of each recording by
energy (see :func:`word_segments`) and writes one segment per word (``offset``/``duration`` into the
original file, the NeMo convention ``audiozoo.data.AudioDataset`` reads) labelled yes/no by its position.

Split: Kaldi's (first 30 sorted recordings train, last 30 test, as the builder); the last 5 training
recordings become the validation split (by recording, so no recording is in two splits). A recording where
the detector does not find exactly 8 words would be left out and reported (none is, on the 60 recordings).

    python recipes/classify/ast_tiny_yesno.py          # -> cache/yesno_words/{train,valid,test}.jsonl
    audiozoo train recipes/classify/ast_tiny_yesno.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiozoo.data.builders import build
from audiozoo.dsp import load_audio

HOP_S = 0.01  # 10 ms energy frames


def _runs_above(energy_db: torch.Tensor, threshold: float, min_frames: int) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, v in enumerate((energy_db > threshold).tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= min_frames:
                runs.append((start, i))
            start = None
    return runs


def word_segments(wav: torch.Tensor, sr: int, count: int, *, smooth_s: float = 0.05, min_s: float = 0.05,
                  step_db: float = 0.5, half_width_s: float = 0.35) -> list[tuple[float, float]] | None:
    """``count`` word segments ``(start_s, end_s)`` of a ``(T,)`` waveform, in time order, or None.

    A fixed threshold fails on this corpus (word tails overlap the next word's onset in some recordings,
    and clicks set the peak in others), but the number of words is known: the threshold on the smoothed
    10 ms energy (dB) is lowered in ``step_db`` steps from the peak, and among the thresholds giving
    exactly ``count`` stretches of at least ``min_s`` (word nuclei) the widest stable range is used.
    Each word spans from the midpoint to the previous nucleus to the midpoint to the next one, at most
    ``half_width_s`` either side of its nucleus' centre.
    """
    hop = max(1, round(HOP_S * sr))
    n = wav.numel() // hop
    power = wav[: n * hop].view(n, hop).pow(2).mean(1)
    w = max(1, round(smooth_s / HOP_S))
    power = torch.nn.functional.avg_pool1d(power[None, None], w, 1, w // 2, count_include_pad=False)[0, 0, :n]
    energy_db = 10 * power.clamp_min(1e-10).log10()
    lo, t = float(energy_db.quantile(0.1)), float(energy_db.max()) - step_db
    best, cur = None, None  # (highest threshold, lowest threshold, runs) of a stable range
    while t > lo:
        runs = _runs_above(energy_db, t, round(min_s / HOP_S))
        cur = ((cur[0] if cur else t), t, runs) if len(runs) == count else None
        if cur and (best is None or cur[0] - cur[1] > best[0] - best[1]):
            best = cur
        t -= step_db
    if best is None:
        return None
    centres = [(s + e) / 2 * HOP_S for s, e in best[2]]
    dur = wav.numel() / sr
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [dur]
    return [(round(max(bounds[i], c - half_width_s), 3), round(min(bounds[i + 1], c + half_width_s), 3))
            for i, c in enumerate(centres)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="cache/yesno_words", help="folder for the word manifests")
    ap.add_argument("--corpus", default="cache/yesno", help="folder of `audiozoo data build yesno`")
    ap.add_argument("--source", default=None, help="shared data folder (default: ../shared/data)")
    ap.add_argument("--valid-recordings", type=int, default=5, help="last N training recordings -> valid")
    args = ap.parse_args(argv)

    build("yesno", args.corpus, **({"source": args.source} if args.source else {}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped = []
    for split in ("train", "test"):
        recs = [json.loads(line) for line in (Path(args.corpus) / f"{split}.jsonl").read_text().splitlines()]
        recs.sort(key=lambda r: r["audio_filepath"])
        groups = {split: recs}
        if split == "train" and args.valid_recordings > 0:
            groups = {"train": recs[: -args.valid_recordings], "valid": recs[-args.valid_recordings:]}
        for name, items in groups.items():
            lines = []
            for rec in items:
                wav, sr = load_audio(rec["audio_filepath"], sample_rate=None, mono=True)
                segs = word_segments(wav.flatten(), sr, len(rec["label"]))
                if segs is None:
                    skipped.append(Path(rec["audio_filepath"]).name)
                    continue
                for k, ((s, e), word) in enumerate(zip(segs, rec["label"])):
                    lines.append(json.dumps({"audio_filepath": rec["audio_filepath"], "offset": round(s, 3),
                                             "duration": round(e - s, 3), "label": word, "position": k,
                                             "recording": Path(rec["audio_filepath"]).stem}))
            (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
            print(f"{name}: {len(items)} recordings, {len(lines)} words -> {out / f'{name}.jsonl'}")
    for s in skipped:
        print(f"left out {s}: 8 words not found")


if __name__ == "__main__":
    main()
