"""How FID / MKL under a Melception respond to known degradations of held-out clips (docs/models/melception.md).

Takes the test split of recipes/classify/melception_small.yaml (8 classes, clips <= 2 s at 22.05 kHz) and
scores, against it, (a) the same clips (0 by construction), (b) the training split (a different sample of the
same distribution: the FID floor of these set sizes), (c) the test clips with white noise at several SNRs
and low-passed at several cut-offs (paired: FID and MKL), (d) one class against another.

    python recipes/classify/melception_small_check.py [--model melception_small.project8] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiozoo.dsp import load_audio
from audiozoo.eval.generation import DEFAULT_MELCEPTION, classifier_outputs, fid, mkl
from audiozoo.resolve import resolve_model

SR = 22050


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _noise(x: torch.Tensor, snr_db: float, g: torch.Generator) -> torch.Tensor:
    n = torch.randn(x.shape, generator=g)
    p = x.square().mean().clamp(min=1e-12)
    return x + n * (p / 10 ** (snr_db / 10)).sqrt()


def _lowpass(x: torch.Tensor, hz: float) -> torch.Tensor:
    spec = torch.fft.rfft(x)
    spec[int(hz / (SR / 2) * (spec.shape[-1] - 1)):] = 0
    return torch.fft.irfft(spec, x.shape[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MELCEPTION)
    ap.add_argument("--data", default="cache/melception_small")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    model = resolve_model(args.model, "classify", trained=True).eval()
    data = Path(args.data)
    test, train = _read(data / "test.jsonl"), _read(data / "train.jsonl")
    wav = {r["audio_filepath"]: load_audio(r["audio_filepath"], sample_rate=SR)[0] for r in test + train}
    ref = [wav[r["audio_filepath"]] for r in test]
    emb, logits = classifier_outputs(model, ref, sample_rate=SR)
    name = args.model
    rows = []

    def score(what: str, clips: list[torch.Tensor] | None = None, e=None, lg=None, paired: bool = True) -> None:
        if clips is not None:
            e, lg = classifier_outputs(model, clips, sample_rate=SR)
        row = {"comparison": what, "n": int(e.shape[0]), "fid": round(fid(emb, e, embedding=name), 3),
               "mkl": round(mkl(logits, lg), 4) if paired else None}
        rows.append(row)
        print(row, flush=True)

    score("test vs itself", e=emb, lg=logits)
    score("test vs train (other clips, same classes)", [wav[r["audio_filepath"]] for r in train], paired=False)
    g = torch.Generator().manual_seed(0)
    for snr in (30, 20, 10, 0):
        score(f"white noise, SNR {snr} dB", [_noise(x, snr, g) for x in ref])
    for hz in (6000, 3000, 1500, 750):
        score(f"low-pass {hz} Hz", [_lowpass(x, hz) for x in ref])
    labels = [r["label"] for r in test]
    by = {lab: torch.tensor([i for i, x in enumerate(labels) if x == lab]) for lab in sorted(set(labels))}
    pred = logits.argmax(-1)
    names = (model.pretrained_metadata or {}).get("labels") or sorted(by)
    acc = float(sum(names[int(p)] == lab for p, lab in zip(pred, labels)) / len(labels))
    print({"test accuracy (whole clips)": round(acc, 4)})
    cls = {}
    for a in by:
        for b in by:
            if a < b:
                cls[f"{a} vs {b}"] = round(fid(emb[by[a]], emb[by[b]], embedding=name), 1)
    print({"class vs class FID (min, median, max)": (min(cls.values()), sorted(cls.values())[len(cls) // 2],
                                                    max(cls.values()))})
    if args.json:
        Path(args.json).write_text(json.dumps({"model": name, "rows": rows, "accuracy": acc, "class_fid": cls},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
