"""AdaSpeech on the WORLD voices: train the multi-speaker source model, adapt to unseen voices, evaluate (issue #16).

Data: ``recipes/tts/adaspeech_world_voices.py`` (the Piper voice turned into source and target voices by WORLD,
exact durations; its docstring says what differs between voices).

``train``: ``adaspeech_small`` with one speaker row per source voice, initialised from the shipped
``fastspeech2_small.piper_joe`` where the layouts coincide (phoneme embedding, encoder, variance adaptor, decoder
attention / FFN, mel linear; each decoder LayerNorm's weight / bias become its CLN's scale / shift *biases*, so the
CLN starts as FastSpeech 2's LayerNorm for every speaker); new: speaker table, utterance- and phoneme-level
encoders, phoneme-level predictor, CLN weight matrices. With ``--freeze-encoder 1`` (default) the phoneme embedding
and the encoder stay FastSpeech 2's (frozen), to fit the CPU budget: the text side is already trained on the same
voice's phonemes and durations (every voice here has Piper's timing).
Loss (Section 3.1): mel L1 + duration + pitch + energy MSE (FastSpeech 2) +
the phoneme-level predictor's MSE to the (detached) phoneme-level encoder output. Reference mel in
training = the target utterance itself (the paper's choice). Adam (0.9, 0.98), warm-up then cosine, clip 1, fp32,
one thread, stops after ``--minutes`` or ``--steps``.

``adapt``: for each target voice (never in the source corpus) a new speaker row (the mean of the source rows) is
added and fitted on ``--n`` adaptation utterances of the voice, teacher-forced (durations, pitch, energy of those
utterances), reference mel = the utterance itself, loss = mel L1 + duration + pitch + energy as in training (the
speaker row also feeds the variance predictors, which stay frozen; the paper does not state the fine-tuning loss),
Adam, ``--adapt-steps`` steps, mini-batches of ``--adapt-batch``, dropout off, in two modes:

* ``cln``: :meth:`AdaSpeech.freeze_for_adaptation` (decoder CLN linears + the speaker row; the paper's AdaSpeech);
* ``spk``: the speaker row only (the paper's "Baseline (spk emb)").

Then every system synthesises the target's held-out test sentences from text (predicted durations, pitch, energy;
reference mel = the first adaptation utterance of the target), vocoded by ``hifigan_v1.universal``:
``source`` (unadapted: mean speaker row + the target's reference mel), ``nearest`` (unadapted: the row of the
source voice whose GE2E centroid is closest to the target's), ``spk``, ``cln``, and the target's own
recording (WORLD audio) as the anchor. Metrics: GE2E (``ge2e_speaker_encoder.resemblyzer``, 16 kHz) cosine of each
synthesised utterance to the centroid of every voice's *recorded* held-out test utterances (sources + targets),
averaged per system: ``to_target``, the best other voice, and the rank of the target (1 = closest = the goal);
the same against the centroids of every voice's recorded test utterances passed through the vocoder
(copy-synthesis, ``vs_vocoded_centroids``: both sides then share HiFi-GAN's artefacts);
Whisper tiny.en WER / CER; DNSMOS OVRL.

    OMP_NUM_THREADS=1 python recipes/tts/adaspeech_world.py train --minutes 35
    OMP_NUM_THREADS=1 python recipes/tts/adaspeech_world.py adapt --model runs/adaspeech_world/final \
        --out recipes/tts/results_adaspeech_world.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.hub import save_pretrained
from audiozoo.train.losses.tts import duration_loss, masked_mel_loss, masked_value_loss, sequence_mask

LOG_FLOOR = math.log(1e-5)
SR = 22050


# ----------------------------------------------------------------------------------------------- data
def load_split(root: Path, voice: str, split: str) -> list[dict]:
    return torch.load(root / voice / split / "features.pt")


def corpus_stats(items: list[dict]) -> tuple[list[float], list[float]]:
    """``[mean, std]`` of ln F0 over voiced frames and of energy over all frames (the ``tts`` task's statistics)."""
    lf0 = torch.cat([it["lf0"][it["lf0"] > 0] for it in items]).double()
    en = torch.cat([it["energy"] for it in items]).double()
    return [lf0.mean().item(), lf0.std().item()], [en.mean().item(), en.std().item()]


def collate(items: list[dict], pstats: torch.Tensor, estats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Padded batch: tokens / durations ``(B, N)``, mel ``(B, 80, L)``, normalised pitch / energy ``(B, L)``."""
    b = len(items)
    n = max(len(it["tokens"]) for it in items)
    frames = torch.tensor([int(it["durations"].sum()) for it in items])
    big = int(frames.max())
    tokens, durs = torch.zeros(b, n, dtype=torch.long), torch.zeros(b, n, dtype=torch.long)
    mel = torch.full((b, 80, big), LOG_FLOOR)
    pitch, energy = torch.zeros(b, big), torch.zeros(b, big)
    for i, it in enumerate(items):
        k, f = len(it["tokens"]), int(frames[i])
        tokens[i, :k], durs[i, :k] = it["tokens"], it["durations"]
        mel[i, :, :f] = it["mel"].float()
        lf0 = it["lf0"]
        pitch[i, :f] = torch.where(lf0 > 0, (lf0 - pstats[0]) / pstats[1], torch.zeros_like(lf0))
        energy[i, :f] = (it["energy"] - estats[0]) / estats[1]
    return {"tokens": tokens, "lengths": torch.tensor([len(it["tokens"]) for it in items]), "durations": durs,
            "mel": mel, "mel_lengths": frames, "pitch": pitch, "energy": energy,
            "speaker": torch.tensor([it.get("speaker", 0) for it in items])}


def batches(items: list[dict], size: int, rng: random.Random, pool: int = 8):
    """Endless length-bucketed batches: shuffle, sort pools of ``size * pool`` items by length, shuffle batches."""
    while True:
        order = items[:]
        rng.shuffle(order)
        out = []
        for j in range(0, len(order), size * pool):
            chunk = sorted(order[j:j + size * pool], key=lambda it: int(it["durations"].sum()))
            out += [chunk[k:k + size] for k in range(0, len(chunk), size)]
        rng.shuffle(out)
        yield from out


def losses(model, batch: dict, mel_only: bool = False) -> dict[str, torch.Tensor]:
    out = model(batch["tokens"], batch["lengths"], durations=batch["durations"], pitch=batch["pitch"],
                energy=batch["energy"], speaker=batch["speaker"], mel=batch["mel"], mel_lengths=batch["mel_lengths"],
                max_frames=batch["mel"].shape[-1])
    t = {"mel": masked_mel_loss(out.mel, batch["mel"], batch["mel_lengths"], "l1")}
    if mel_only:
        return t
    t["duration"] = duration_loss(out.log_durations, batch["durations"], batch["lengths"])
    fv = sequence_mask(batch["mel_lengths"], batch["pitch"].shape[1])
    t["pitch"] = masked_value_loss(out.pitch, batch["pitch"], fv)
    t["energy"] = masked_value_loss(out.energy, batch["energy"], fv)
    if out.phoneme_pred is not None and out.phoneme_target is not None:
        tv = sequence_mask(batch["lengths"], batch["tokens"].shape[1])[..., None].expand_as(out.phoneme_pred)
        t["phoneme"] = masked_value_loss(out.phoneme_pred, out.phoneme_target, tv)
    return t


# ----------------------------------------------------------------------------------------------- train
def init_from_fastspeech2(model, fs2) -> dict[str, int]:
    """Copy the FastSpeech 2 weights whose names and shapes coincide; decoder LayerNorms -> CLN biases."""
    src = {k: v.float() for k, v in fs2.state_dict().items()}
    own = model.state_dict()
    copied, cln = 0, 0
    with torch.no_grad():
        for k, v in src.items():
            if k in own and own[k].shape == v.shape:
                own[k].copy_(v)
                copied += 1
            elif k.startswith("decoder.") and (k.endswith(".weight") or k.endswith(".bias")):
                base, kind = k.rsplit(".", 1)
                tgt = f"{base}.{'scale' if kind == 'weight' else 'shift'}.bias"
                if tgt in own and own[tgt].shape == v.shape:
                    own[tgt].copy_(v)
                    cln += 1
    model.load_state_dict(own)
    return {"copied": copied, "cln_biases": cln, "total_tensors": len(own)}


def train(args) -> None:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    root = Path(args.data)
    meta = json.loads((root / "voices.json").read_text())
    items = []
    for sid, v in enumerate(meta["source"]):
        for it in load_split(root, v, "train"):
            items.append({**it, "speaker": sid})
    fs2 = audiozoo.create_model("fastspeech2_small.piper_joe")
    text = dict(fs2.config.text)
    model = audiozoo.create_model("adaspeech_small", n_speakers=len(meta["source"]), text=text)
    info = init_from_fastspeech2(model, fs2) if args.init == "fastspeech2" else {}
    with torch.no_grad():
        model.speaker_embed.weight.normal_(0.0, args.spk_std)  # small rows: the copied backbone starts intact
    pstats, estats = corpus_stats(items)
    model.pitch_stats.copy_(torch.tensor(pstats))
    model.energy_stats.copy_(torch.tensor(estats))
    ps, es = model.pitch_stats.clone(), model.energy_stats.clone()
    print(f"{len(items)} items of {len(meta['source'])} voices; init {info}; pitch {pstats} energy {estats}",
          flush=True)
    if args.freeze_encoder:  # the text side is FastSpeech 2's, already trained on these sentences' phonemes
        for n, p in model.named_parameters():
            if n.startswith(("embed.", "encoder.")):
                p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    t0, log, acc = time.perf_counter(), [], {}

    def lr_at(step: int) -> float:
        """Warm-up, then a cosine to 0.1x over the budget: steps or minutes, whichever runs out first."""
        if step < args.warmup:
            return (step + 1) / args.warmup
        p = max((step - args.warmup) / max(1, args.steps - args.warmup),
                (time.perf_counter() - t0) / (60 * args.minutes))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    out = Path(args.out)
    model.train()
    gen = batches(items, args.batch, rng)
    step = 0
    while step < args.steps and time.perf_counter() - t0 < args.minutes * 60:
        batch = collate(next(gen), ps, es)
        terms = losses(model, batch)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + v.item()
        if step % args.log_every == 0:
            row = {"step": step, "s": round(time.perf_counter() - t0), **{k: round(v / args.log_every, 4)
                                                                          for k, v in acc.items()}}
            log.append(row)
            print(json.dumps(row), flush=True)
            acc = {}
        if step % args.save_every == 0:
            save_pretrained(model.eval(), out / "last", {"step": step})
            model.train()
    model.eval()
    meta_out = {"step": step, "seconds": round(time.perf_counter() - t0, 1), "init": info, "log": log,
                "trainable_params": sum(p.numel() for p in params), "args": vars(args),
                "voices": meta["source"], "recipe": "recipes/tts/adaspeech_world.py train"}
    save_pretrained(model, out / "final", {k: v for k, v in meta_out.items() if k != "log"})
    (out / "train_log.json").write_text(json.dumps(meta_out, indent=1) + "\n")
    print(f"done: {step} steps in {meta_out['seconds']} s", flush=True)


# ----------------------------------------------------------------------------------------------- adapt + eval
def adapt_one(model, items: list[dict], mode: str, args) -> dict:
    """Add a speaker row (mean of the source rows) and fit it (``spk``) or it + the CLN linears (``cln``)."""
    sid = model.add_speaker()
    names = set(model.freeze_for_adaptation()) if mode == "cln" else {"speaker_embed.weight"}
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    tuned = model.adaptation_size()["fine_tuned"] if mode == "cln" else model.speaker_embed.embedding_dim
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.adapt_lr)
    rng = random.Random(args.seed)
    ps, es = model.pitch_stats.clone(), model.energy_stats.clone()
    data = [{**it, "speaker": sid} for it in items]
    full = collate(data, ps, es)
    model.eval()  # dropout off: the fit is deterministic
    with torch.no_grad():
        start = losses(model, full, mel_only=True)["mel"].item()
    t0, curve = time.perf_counter(), []
    gen = batches(data, args.adapt_batch, rng, pool=1)
    for step in range(args.adapt_steps):
        terms = losses(model, collate(next(gen), ps, es))
        terms.pop("phoneme", None)  # the phoneme-level predictor does not see the speaker row: no path to it
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            curve.append([step, round(loss.item(), 4)])
    with torch.no_grad():
        end = losses(model, full, mel_only=True)["mel"].item()
    for p in model.parameters():
        p.requires_grad_(False)
    return {"speaker_id": sid, "fine_tuned_params": tuned, "train_mel_l1": [round(start, 4), round(end, 4)],
            "curve": curve, "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def synthesize(model, vocoder, items: list[dict], speaker: int, ref: torch.Tensor) -> list[torch.Tensor]:
    """Text -> mel (predicted durations / pitch / energy) -> HiFi-GAN, one utterance at a time."""
    wavs = []
    for it in items:
        tok = it["tokens"][None]
        mel, mlen = model.synthesize(tok, torch.tensor([tok.shape[1]]), speaker=torch.tensor([speaker]),
                                     ref_mel=ref[None], ref_lengths=torch.tensor([ref.shape[-1]]))
        wavs.append(vocoder(mel, mlen)[0][0].clamp(-1, 1))
    return wavs


def to16k(wav: torch.Tensor) -> torch.Tensor:
    from audiozoo.dsp.io import resample

    return resample(wav.reshape(1, -1).float(), SR, 16000).reshape(-1)


def adapt(args) -> None:
    from audiozoo.data.manifest import read_manifest
    from audiozoo.dsp.io import load_audio, save_audio
    from audiozoo.eval.judges import dnsmos, intelligibility
    from audiozoo.eval.speaker import voice_ranking
    from audiozoo.pipelines import pipeline
    from audiozoo.resolve import resolve_model

    torch.manual_seed(args.seed)
    root = Path(args.data)
    meta = json.loads((root / "voices.json").read_text())
    voices = meta["source"] + meta["targets"]
    ge2e = audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()

    def embed(wavs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([ge2e.embed(to16k(w)[None], sample_rate=16000) for w in wavs])

    # centroids of every voice's recorded held-out test utterances
    voc = pipeline("vocode", model=args.vocoder)
    vocoder = voc.model
    # per voice, its recorded held-out test utterances (WORLD audio) and the same through the vocoder
    # (copy-synthesis: HiFi-GAN of their log-mel), whose GE2E centroid shares the synthesised audio's vocoder
    rec, cents = {}, {"recorded": {}, "vocoded": {}}
    for v in voices:
        man = read_manifest(root / v / "test" / "manifest.jsonl")[: args.n_test]
        rec[v] = [load_audio(m["audio_filepath"], mono=True)[0].reshape(-1) for m in man]
        cents["recorded"][v] = F.normalize(embed(rec[v]).mean(0), dim=0)
        if args.vocoded_centroids:
            cop = [voc.vocode(voc.mel_of(w)).clamp(-1, 1) for w in rec[v]]
            cents["vocoded"][v] = F.normalize(embed(cop).mean(0), dim=0)
    cents = {k: c for k, c in cents.items() if c}
    texts = [m["text"] for m in read_manifest(root / meta["targets"][0] / "test" / "manifest.jsonl")[: args.n_test]]
    centroid_cos = {k: {a: {b: round(float(c[a] @ c[b]), 3) for b in voices} for a in voices}
                    for k, c in cents.items()}
    print("centroid cosines:", json.dumps(centroid_cos), flush=True)

    def ge2e_row(e: torch.Tensor, centroids: dict, target: str) -> dict:
        r = voice_ranking(e, centroids, target)  # mean cosine to each voice's centroid
        return {"ge2e_to_target": r["to_target"], "ge2e_best_other": r["best_other"],
                "target_rank": r["target_rank"], "utterances_closest_to_target": r["utterances_closest_to_target"],
                "n": r["n"], "ge2e_all": r["voices"]}

    def score(wavs: list[torch.Tensor], target: str, with_text: bool = True) -> dict:
        e = embed(wavs)
        row = ge2e_row(e, cents["recorded"], target)
        if "vocoded" in cents:
            row["vs_vocoded_centroids"] = ge2e_row(e, cents["vocoded"], target)
        if with_text:
            intel = intelligibility(wavs, SR, texts[: len(wavs)])
            row.update(wer=round(intel["wer"], 4), cer=round(intel["cer"], 4),
                       dnsmos_ovrl=round(float(dnsmos(wavs, SR)["ovrl"].mean()), 3))
        return row

    results = {"data": str(root), "model": args.model, "vocoder": args.vocoder, "n_adapt": args.n,
               "adapt_steps": args.adapt_steps, "adapt_lr": args.adapt_lr, "adapt_batch": args.adapt_batch,
               "n_test": args.n_test, "texts": texts, "voices": meta["voices"], "centroid_cosines": centroid_cos,
               "targets": {}}
    for target in (args.targets.split(",") if args.targets else meta["targets"][: args.max_targets]):
        items = load_split(root, target, "train")[: args.n]
        test = load_split(root, target, "test")[: args.n_test]
        ref = items[0]["mel"].float()
        res = {"recorded (WORLD)": score(rec[target], target)}
        print(target, "recorded", json.dumps(res["recorded (WORLD)"]), flush=True)
        # the source voice whose recorded centroid is closest to the target's (GE2E)
        rc = cents["recorded"]
        near = max(range(len(meta["source"])), key=lambda i: float(rc[target] @ rc[meta["source"][i]]))
        for mode in ("source", "nearest", "spk", "cln"):
            model = resolve_model(args.model, "tts").eval()
            for p in model.parameters():
                p.requires_grad_(False)
            if mode == "source":
                info = {"speaker_id": model.add_speaker()}
            elif mode == "nearest":
                info = {"speaker_id": near, "voice": meta["source"][near]}
            else:
                info = adapt_one(model, items, mode, args)
            t0 = time.perf_counter()
            wavs = synthesize(model, vocoder, test, info["speaker_id"], ref)
            info["synth_seconds"] = round(time.perf_counter() - t0, 1)
            row = {**score(wavs, target), "adapt": info}
            res[mode] = row
            print(target, mode, json.dumps({k: v for k, v in row.items() if k != "ge2e_all"}), flush=True)
            if args.save_wavs:
                d = Path(args.save_wavs) / target
                d.mkdir(parents=True, exist_ok=True)
                for i, w in enumerate(wavs):
                    save_audio(d / f"{i:02d}_{mode}.wav", w[None], SR)
        results["targets"][target] = res
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default="cache/adaspeech_world")
    t.add_argument("--out", default="runs/adaspeech_world")
    t.add_argument("--init", default="fastspeech2", choices=["fastspeech2", "random"])
    t.add_argument("--minutes", type=float, default=35.0)
    t.add_argument("--steps", type=int, default=1500, help="also the cosine horizon")
    t.add_argument("--batch", type=int, default=12)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--freeze-encoder", type=int, default=1, help="1: phoneme embedding + encoder stay FastSpeech 2's")
    t.add_argument("--warmup", type=int, default=50)
    t.add_argument("--spk-std", type=float, default=0.1)
    t.add_argument("--log-every", type=int, default=25)
    t.add_argument("--save-every", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("adapt")
    a.add_argument("--data", default="cache/adaspeech_world")
    a.add_argument("--model", default="runs/adaspeech_world/final")
    a.add_argument("--vocoder", default="hifigan_v1.universal")
    a.add_argument("--n", type=int, default=10, help="adaptation utterances per target")
    a.add_argument("--adapt-steps", type=int, default=150)
    a.add_argument("--adapt-lr", type=float, default=3e-3)
    a.add_argument("--adapt-batch", type=int, default=5)
    a.add_argument("--n-test", type=int, default=8, help="held-out test sentences per target")
    a.add_argument("--max-targets", type=int, default=3)
    a.add_argument("--targets", default=None, help="comma-separated target voices (default: the first max-targets)")
    a.add_argument("--vocoded-centroids", type=int, default=1, help="1: also score against copy-synthesis centroids")
    a.add_argument("--save-wavs", default=None)
    a.add_argument("--out", default=None)
    a.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train(args) if args.cmd == "train" else adapt(args)


if __name__ == "__main__":
    main()
