"""Codec2 and Opus against every audiozoo codec weight set, on held-out real speech (issue #14's baseline table).

Test speech (real recordings, never trained on): the 6 CMU ARCTIC utterances (2 speakers, 16 kHz, with their
prompts) and the 3 LibriSpeech utterances of librosa's examples (22.05 kHz, resampled to 16 kHz; no transcript is
stored, so their WER reference is Whisper's transcript of the unprocessed recording and the WER column counts
ARCTIC only, ``WER*`` all 9 against the recording's transcript). Every manifest that a codec recipe under
``recipes/codec/`` trains or validates on is read and any test clip found there is dropped (and reported).

Rows: the unprocessed recording; Codec2 3200 / 2400 / 1600 / 1400 / 1300 / 1200 / 700C; Opus 6 / 8 / 12 kbit/s;
every codec weight set (``list_models("codec", with_weights=True)``, loaded by ``resolve_model(spec,
family="codec")``) at each of its bandwidths (``target_bandwidths`` or numbers of codebooks), plus any ``--models``
spec (``name.tag``, a checkpoint folder, or a composite ``codec+vocoder``). Everything is scored at 16 kHz against
the 16 kHz recording, outputs aligned (``audiozoo.eval.codecs.align_to_reference``).

Columns: MR-STFT distance (``multi_resolution_stft_distance``: spectral convergence + log magnitude), mel distance
(L1 of log mels, 80 bands, n_fft 1024, hop 256: the codec task's ``mel_l1``), PESQ narrow-band at 8 kHz (every
row), PESQ wide-band at 16 kHz (not for Codec2, an 8 kHz codec), STOI, DNSMOS OVRL, Whisper tiny.en WER, and the
bitrate actually used (Codec2: bytes written; Opus: packet bytes; neural: frames x codebooks x log2(size) per s).

    OMP_NUM_THREADS=1 python recipes/codec/eval_codecs.py [--models SPEC ...] [--no-judges] [--out-json ...]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from audiozoo.dsp.io import load_audio, resample
from audiozoo.dsp.mel import MelSpectrogram
from audiozoo.eval import codecs
from audiozoo.eval.speech import multi_resolution_stft_distance, pesq, stoi
from audiozoo.registry import list_models
from audiozoo.resolve import resolve_model

SR = 16000
ROOT = Path(__file__).resolve().parents[2]
ARCTIC = {  # the CMU ARCTIC prompts (as recipes/asr/prepare.py)
    "cmu_arctic_us_aew_a0001": "Author of the danger trail, Philip Steels, etc.",
    "cmu_arctic_us_aew_a0002": "Not at this particular case, Tom, apologized Whittemore.",
    "cmu_arctic_us_aew_a0003": "For the twentieth time that evening the two men shook hands.",
    "cmu_arctic_us_axb_a0004": "Lord, but I'm glad to see you again, Phil.",
    "cmu_arctic_us_axb_a0005": "Will we ever forget it.",
    "cmu_arctic_us_axb_a0006": "God bless 'em, I hope I'll go on seeing them forever.",
}
LIBRISPEECH = ("198-209-0000", "3436-172162-0000", "5703-47212-0000")
BANDS = [("<= 1 kbit/s", 0, 1000), ("1-2 kbit/s", 1000, 2000), ("2-4 kbit/s", 2000, 4000),
         ("4-13 kbit/s", 4000, 13000)]


def shared_data() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", ROOT / ".." / "shared" / "data")).resolve()
    if not (root / "speech_sources").is_dir():
        raise SystemExit(f"shared data not found at {root} (set AUDIOZOO_SHARED_DATA)")
    return root


def trained_on() -> set[str]:
    """Audio paths listed in the train/valid manifests of every codec recipe (resolved absolute)."""
    seen: set[str] = set()
    for recipe in sorted((ROOT / "recipes" / "codec").glob("*.yaml")):
        data = (yaml.safe_load(recipe.read_text()) or {}).get("data", {}) or {}
        for key in ("train", "valid"):
            paths = data.get(key)
            for m in [paths] if isinstance(paths, str) else (paths or []):
                mp = ROOT / m
                if not mp.is_file():
                    continue
                for line in mp.read_text().splitlines():
                    if line.strip():
                        p = json.loads(line)["audio_filepath"]
                        seen.add(str((mp.parent / p).resolve() if not os.path.isabs(p) else Path(p).resolve()))
    return seen


def test_clips(root: Path) -> tuple[list[dict], list[str]]:
    items = []
    for stem, text in ARCTIC.items():
        items.append({"path": root / "speech_sources" / "cmu_arctic" / f"{stem}.wav", "text": text, "id": stem})
    for name in LIBRISPEECH:
        items.append({"path": root / "librosa" / f"{name}.ogg", "text": None, "id": f"librispeech_{name}"})
    items = [it for it in items if it["path"].is_file()]
    used = trained_on()
    dropped = [it["id"] for it in items if str(it["path"].resolve()) in used]
    items = [it for it in items if str(it["path"].resolve()) not in used]
    for it in items:
        wav, _ = load_audio(it["path"], sample_rate=SR, mono=True)
        x = np.asarray(wav, dtype=np.float32).reshape(-1)
        it["audio"] = (0.9 * x / max(1e-3, float(np.abs(x).max()))).astype(np.float32)  # peak-normalised
    return items, dropped


# ----------------------------------------------------------------------------- neural codecs
def bandwidth_options(model: torch.nn.Module) -> list[tuple[str, dict]]:
    """``[(label, encode kwargs)]``: each target bandwidth, or numbers of codebooks 1, 2, 4, ... N."""
    params = inspect.signature(model.encode).parameters
    bws = getattr(model, "target_bandwidths", None)
    if bws and "bandwidth" in params:
        return [(f"{b:g} kbps", {"bandwidth": float(b)}) for b in bws]
    n = int(getattr(model, "num_codebooks", 1) or 1)
    if n > 1 and "n_q" in params:
        qs = sorted({q for q in (1, 2, 4, 8, 16, 32) if q < n} | {n})
        return [(f"n_q={q}", {"n_q": q}) for q in qs]
    return [("", {})]


@torch.no_grad()
def neural_roundtrip(model: torch.nn.Module, x: np.ndarray, kw: dict) -> tuple[np.ndarray, float]:
    """Encode/decode ``x`` (16 kHz) at the model's rate; returns (16 kHz output aligned to ``x``, bit/s)."""
    rate = int(model.sample_rate)
    xin = np.asarray(resample(x, SR, rate), dtype=np.float32) if rate != SR else x
    hop = int(getattr(model, "hop_length", 1) or 1)
    padded = np.pad(xin, (0, (-len(xin)) % hop))
    codes = model.encode(torch.from_numpy(padded)[None], **kw)
    y = model.decode(codes)[0].float().numpy()
    y = np.asarray(resample(y, rate, SR), dtype=np.float32) if rate != SR else y
    y, _ = codecs.align_to_reference(y, x, SR // 10, SR // 1000)
    k = int(getattr(model, "codebook_size", 0) or 0)
    frames = codes.shape[-1]
    q = codes.shape[1] if codes.ndim == 3 else 1
    bits = frames * q * math.log2(k) if k > 1 else float("nan")
    return y, bits / (len(padded) / rate)


# ----------------------------------------------------------------------------- metrics
_MEL = MelSpectrogram(SR, 1024, 256, n_mels=80, power=1.0, htk=True, norm=None, pad_mode="reflect")


def mel_distance(y: np.ndarray, x: np.ndarray) -> float:
    a, b = (torch.log(_MEL(torch.from_numpy(v)[None]).clamp(min=1e-7)) for v in (y, x))
    return float((a - b).abs().mean())


def score_row(outputs: list[np.ndarray], items: list[dict], narrowband_only: bool, judges: bool,
              rec_texts: list[str] | None) -> dict:
    m: dict[str, list[float]] = {k: [] for k in ("mrstft", "mel", "pesq_nb", "pesq_wb", "stoi")}
    for y, it in zip(outputs, items):
        x = it["audio"]
        d = multi_resolution_stft_distance(torch.from_numpy(y), torch.from_numpy(x))
        m["mrstft"].append(float(d["total"]))
        m["mel"].append(mel_distance(y, x))
        x8, y8 = (np.asarray(resample(v, SR, 8000), dtype=np.float32) for v in (x, y))
        m["pesq_nb"].append(float(pesq(y8, x8, 8000, mode="nb")))
        if not narrowband_only:
            m["pesq_wb"].append(float(pesq(y, x, SR, mode="wb")))
        m["stoi"].append(float(stoi(y, x, SR)))
    row = {k: (float(np.mean(v)) if v else None) for k, v in m.items()}
    if judges:
        from audiozoo.eval.judges import dnsmos, intelligibility, whisper_wer

        row["dnsmos_ovrl"] = float(dnsmos(outputs, SR)["ovrl"].mean())
        arctic = [i for i, it in enumerate(items) if it["text"]]
        res = intelligibility([outputs[i] for i in arctic], SR, [items[i]["text"] for i in arctic])
        row["wer"] = 100 * float(res["wer"])
        from audiozoo.eval.judges import transcribe

        hyps = list(res["hypotheses"])
        rest = [i for i, it in enumerate(items) if not it["text"]]
        hyp_all = [""] * len(items)
        for j, i in enumerate(arctic):
            hyp_all[i] = hyps[j]
        if rest:
            for i, h in zip(rest, transcribe([outputs[i] for i in rest], SR)):
                hyp_all[i] = h
        row["hypotheses"] = hyp_all
        if rec_texts is not None:
            row["wer_vs_recording"] = 100 * float(whisper_wer(hyp_all, rec_texts))
    return row


def band_of(bitrate: float | None) -> str:
    if bitrate is None or not math.isfinite(bitrate):
        return "n/a"
    for name, lo, hi in BANDS:
        if lo < bitrate <= hi:
            return name
    return "> 13 kbit/s"


def fmt(v: float | None, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"


def markdown_tables(rows: list[dict]) -> str:
    rec = next((r for r in rows if r["system"] == "recording (unprocessed)"), None)
    head = ("| system | bit/s used | MR-STFT ↓ | mel ↓ | PESQ-NB ↑ | PESQ-WB ↑ | STOI ↑ | DNSMOS OVRL ↑ | WER % ↓ | "
            "WER* % ↓ |\n|---|---|---|---|---|---|---|---|---|---|\n")

    def line(r: dict) -> str:
        br = "–" if r["bitrate"] is None else f"{r['bitrate']:.0f}"
        return (f"| {r['system']} | {br} | {fmt(r['mrstft'], 3)} | {fmt(r['mel'], 3)} | {fmt(r['pesq_nb'])} | "
                f"{fmt(r['pesq_wb'])} | {fmt(r['stoi'], 3)} | {fmt(r.get('dnsmos_ovrl'))} | {fmt(r.get('wer'), 1)} | "
                f"{fmt(r.get('wer_vs_recording'), 1)} |\n")

    out = []
    for name, lo, hi in BANDS + [("> 13 kbit/s", 13000, float("inf"))]:
        sel = [r for r in rows if r is not rec and r["bitrate"] is not None and lo < r["bitrate"] <= hi]
        if not sel:
            continue
        sel.sort(key=lambda r: r["bitrate"])
        out.append(f"**{name}**\n\n" + head + (line(rec) if rec else "") + "".join(line(r) for r in sel))
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["bitrate"] is None:
            continue
        g = r["system"].split(" ")[0]
        groups.setdefault(g, []).append((r["bitrate"] / 1000, r["pesq_nb"]))
    for g, pts in groups.items():
        pts.sort()
        ax.plot(*zip(*pts), marker="o", label=g)
    rec = next((r for r in rows if r["bitrate"] is None), None)
    if rec:
        ax.axhline(rec["pesq_nb"], color="gray", ls=":", label="recording")
    ax.set_xscale("log")
    ax.set_xlabel("bit rate used (kbit/s)")
    ax.set_ylabel("PESQ narrow-band (8 kHz)")
    ax.set_title("Held-out real speech (CMU ARCTIC + LibriSpeech, 9 clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=None,
                    help="codec specs, optionally LABEL=SPEC (default: every codec weight set)")
    ap.add_argument("--codec2", nargs="*", default=list(codecs.CODEC2_MODES))
    ap.add_argument("--opus", nargs="*", type=float, default=[6.0, 8.0, 12.0])
    ap.add_argument("--no-judges", action="store_true", help="skip DNSMOS and Whisper (fast)")
    ap.add_argument("--out-json", default=str(ROOT / "benchmarks" / "results" / "codec_baselines.json"))
    ap.add_argument("--out-md", default=None, help="write the tables here (default: print)")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "models" / "codec_baselines_pesq.png"))
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    items, dropped = test_clips(shared_data())
    print(f"{len(items)} held-out clips ({sum(len(it['audio']) for it in items) / SR:.1f} s); dropped as trained-on: "
          f"{dropped or 'none'}", flush=True)
    judges = not a.no_judges
    rows: list[dict] = []
    rec_texts = None

    def add(system: str, outputs: list[np.ndarray], bitrate: float | None, narrowband: bool, **extra) -> None:
        t = time.time()
        outputs = [np.clip(o, -1.0, 1.0) for o in outputs]  # as a 16-bit file would store an overshooting decoder
        row = {"system": system, "bitrate": bitrate, **extra,
               **score_row(outputs, items, narrowband, judges, rec_texts)}
        row["band"] = band_of(bitrate)
        rows.append(row)
        print(f"{system:40s} {fmt(bitrate, 0):>7s} bit/s  PESQ-NB {fmt(row['pesq_nb'])}  PESQ-WB "
              f"{fmt(row['pesq_wb'])}  STOI {fmt(row['stoi'], 3)}  DNSMOS {fmt(row.get('dnsmos_ovrl'))}  WER "
              f"{fmt(row.get('wer'), 1)}  ({time.time() - t:.0f} s)", flush=True)

    add("recording (unprocessed)", [it["audio"] for it in items], None, False)
    if judges:
        rec_texts = rows[0]["hypotheses"]
        rows[0]["wer_vs_recording"] = 0.0
    if codecs.codec2_available():
        for mode in a.codec2:
            outs = [codecs.codec2_roundtrip(it["audio"], SR, mode) for it in items]
            br = float(np.sum([o.bitrate * len(it["audio"]) for o, it in zip(outs, items)]) /
                       sum(len(it["audio"]) for it in items))
            add(f"Codec2 {mode}", [o.audio for o in outs], br, True, nominal_bitrate=outs[0].nominal_bitrate,
                delay_samples=[o.delay for o in outs])
    else:
        print("Codec2 rows skipped: c2enc/c2dec not installed (apt-get install codec2)", file=sys.stderr)
    if codecs.opus_available():
        for kbps in a.opus:
            outs = [codecs.opus_roundtrip(it["audio"], SR, kbps) for it in items]
            br = float(np.sum([o.bitrate * len(it["audio"]) for o, it in zip(outs, items)]) /
                       sum(len(it["audio"]) for it in items))
            add(f"Opus {kbps:g}k", [o.audio for o in outs], br, False, nominal_bitrate=kbps * 1000)
    else:
        print("Opus rows skipped: opusenc/opusdec not installed (apt-get install opus-tools)", file=sys.stderr)
    specs = a.models if a.models is not None else list_models("codec", with_weights=True)
    for spec in specs:
        label_name, _, spec = spec.rpartition("=") if "=" in spec and not os.path.exists(spec) else ("", "", spec)
        try:
            model = resolve_model(spec, family="codec").eval()
        except Exception as err:  # a registered but absent weight set: say so, go on
            print(f"{spec}: not evaluated ({type(err).__name__}: {err})", file=sys.stderr)
            continue
        for label, kw in bandwidth_options(model):
            res = [neural_roundtrip(model, it["audio"], kw) for it in items]
            br = float(np.mean([r[1] for r in res]))
            narrow = int(model.sample_rate) <= 8000
            add(f"{label_name or spec} {label}".strip(), [r[0] for r in res], br, narrow, spec=spec, encode_kwargs=kw)
    out = {"clips": [it["id"] for it in items], "dropped_trained_on": dropped, "sample_rate": SR,
           "judges": judges, "rows": rows}
    Path(a.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out_json).write_text(json.dumps(out, indent=1))
    md = markdown_tables(rows)
    if a.out_md:
        Path(a.out_md).write_text(md)
    print(md)
    if a.plot and plot(rows, Path(a.plot)):
        print(f"plot: {a.plot}")


if __name__ == "__main__":
    main()
