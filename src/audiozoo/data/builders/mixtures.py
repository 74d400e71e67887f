"""Fixed-length mixtures for separation and enhancement, built from any source manifests.

* ``speech+speech``: two utterances of distinct speakers; the first is set ``snr`` dB above the second,
  drawn uniformly from ``--sir`` (wsj0-2mix draws 0-5 dB, Hershey et al. 2016, "Deep clustering").
* ``speech+noise``: one utterance plus a noise at an SNR cycled from ``--snr`` (noise looped when short).

Every mixture is exactly the sum of the sources written beside it (32-bit float wavs); levels: the
first speech source at -25 dBFS RMS, the other scaled to the SNR (power over the whole fixed-length
segment), then all scaled together if the mixture would clip. Deterministic from ``--seed``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import AudioError, ConfigError, DataError
from ..manifest import read_manifest, where
from .base import Builder, Context, Option, Task, file_sha1

KINDS = ("speech+speech", "speech+noise")
REF_DBFS = -25.0  # RMS level of the first speech source (a common choice, e.g. the DNS challenge)


def _power(x: np.ndarray) -> float:
    return float(np.mean(x.astype(np.float64) ** 2))


class MixturesBuilder(Builder):
    name = "mixtures"
    description = "Speech+speech and speech+noise mixtures with their sources (stems) and SNRs."
    license = "Inherits the licenses of the source corpora (see their README.md files, listed above)."
    options = (
        Option("speech", str, None, "speech manifest(s) (items with 'speaker' for speech+speech)", nargs="+"),
        Option("noise", str, None, "noise manifest(s), needed for speech+noise", nargs="+"),
        Option("kinds", str, None, "mixture kinds (default: speech+speech, and speech+noise when --noise "
               "is given)", nargs="+", choices=KINDS),
        Option("count", int, 100, "mixtures per kind"),
        Option("snr", float, [0.0, 5.0, 10.0], "speech+noise SNRs in dB (cycled)", nargs="+"),
        Option("sir", float, [0.0, 5.0], "speech+speech level range in dB (first over second speaker)",
               nargs="+"),
        Option("seconds", float, 4.0, "length of every mixture in seconds"),
        Option("sample_rate", int, 16000, "output sample rate"),
        Option("seed", int, 0, "selection, offsets and levels seed"),
    )
    stat_keys = ("kind", "snr")

    def prepare(self, ctx: Context) -> None:
        o = ctx.opts
        if not o["speech"]:
            raise ConfigError("mixtures needs --speech MANIFEST [MANIFEST ...]")
        kinds = o["kinds"] or (["speech+speech", "speech+noise"] if o["noise"] else ["speech+speech"])
        if "speech+noise" in kinds and not o["noise"]:
            raise ConfigError("speech+noise mixtures need --noise MANIFEST [MANIFEST ...]")
        if o["count"] < 1 or not o["seconds"] > 0 or o["sample_rate"] < 1000:
            raise ConfigError("--count must be >= 1, --seconds > 0 and --sample-rate >= 1000")
        if len(o["sir"]) != 2 or o["sir"][0] > o["sir"][1]:
            raise ConfigError(f"--sir takes two values LOW HIGH, got {o['sir']}")
        if not o["snr"] or not all(math.isfinite(s) for s in o["snr"]):
            raise ConfigError(f"--snr needs finite dB values, got {o['snr']}")
        ctx.extra["kinds"] = kinds
        ctx.extra["manifests"] = {k: [str(Path(m).resolve()) for m in (o[k] or [])] for k in ("speech", "noise")}
        pools = {}
        for k, paths in ctx.extra["manifests"].items():
            pools[k] = [it for m in paths for it in read_manifest(m) if it["duration"] > 0]
            if paths and not pools[k]:
                raise DataError(f"no items with duration > 0 in the {k} manifest(s) {paths}")
        ctx.extra["pools"] = pools
        if "speech+speech" in kinds:
            by_spk: dict[str, list[int]] = defaultdict(list)
            has_speaker = all(it.get("speaker") is not None for it in pools["speech"])
            for i, it in enumerate(pools["speech"]):
                # without speaker labels, each file counts as its own speaker (said in the README)
                by_spk[str(it["speaker"]) if has_speaker else it["audio_filepath"]].append(i)
            if len(by_spk) < 2:
                raise DataError("speech+speech mixtures need utterances of at least 2 distinct speakers")
            ctx.extra["by_speaker"] = dict(sorted(by_spk.items()))
            ctx.extra["has_speaker"] = has_speaker

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        # the same options over edited source manifests would give other mixtures
        return {"sources": {m: file_sha1(m) for ms in ctx.extra["manifests"].values() for m in ms},
                "kinds": ctx.extra["kinds"]}

    def tasks(self, ctx: Context) -> list[Task]:
        o, pools = ctx.opts, ctx.extra["pools"]
        tasks = []
        for ki, kind in enumerate(ctx.extra["kinds"]):
            for i in range(o["count"]):
                rng = np.random.default_rng(np.random.SeedSequence([o["seed"], ki, i]))
                if kind == "speech+speech":
                    spk = list(ctx.extra["by_speaker"])
                    a, b = rng.choice(len(spk), size=2, replace=False)
                    srcs = [("s1", "speech", int(rng.choice(ctx.extra["by_speaker"][spk[a]]))),
                            ("s2", "speech", int(rng.choice(ctx.extra["by_speaker"][spk[b]])))]
                    snr = round(float(rng.uniform(*o["sir"])), 2)
                else:
                    srcs = [("speech", "speech", int(rng.integers(len(pools["speech"])))),
                            ("noise", "noise", int(rng.integers(len(pools["noise"]))))]
                    snr = float(o["snr"][i % len(o["snr"])])
                # a start position (fraction of the free room) and a placement per source
                plan = [(name, pool, idx, float(rng.uniform()), float(rng.uniform())) for name, pool, idx in srcs]
                short = "ss" if kind == "speech+speech" else "sn"
                tasks.append(Task(f"{short}_{i:05d}", {"kind": kind, "snr": snr, "plan": plan}))
        return tasks

    def _segment(self, ctx: Context, item: dict[str, Any], u_start: float, u_place: float, loop: bool
                 ) -> tuple[np.ndarray, float]:
        """A ``seconds``-long piece of ``item``: a random window of a long file; a short file is placed
        at a random position in silence (speech) or looped (noise). Returns (samples, source offset s)."""
        from ...dsp.io import load_audio

        sr, n = ctx.opts["sample_rate"], round(ctx.opts["seconds"] * ctx.opts["sample_rate"])
        base, dur = float(item.get("offset", 0.0)), float(item["duration"])
        start = u_start * max(0.0, dur - ctx.opts["seconds"])
        try:
            wav, _ = load_audio(item["audio_filepath"], sample_rate=sr, offset=base + start,
                                duration=min(dur - start, ctx.opts["seconds"]))
        except AudioError as e:
            raise DataError(f"{where(item)}: cannot load {item['audio_filepath']}: {e}") from e
        x = wav.numpy().astype(np.float32)
        if len(x) >= n:
            return x[:n], base + start
        if loop:
            return np.resize(x, n), base + start  # np.resize repeats the signal
        pos = int(u_place * (n - len(x)))
        out = np.zeros(n, np.float32)
        out[pos : pos + len(x)] = x
        return out, base + start

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        d = task.data
        pools = ctx.extra["pools"]
        sigs, used = {}, []
        for name, pool, idx, u_start, u_place in d["plan"]:
            item = pools[pool][idx]
            sigs[name], off = self._segment(ctx, item, u_start, u_place, loop=(pool == "noise"))
            used.append({"name": name, "audio_filepath": item["audio_filepath"], "offset": round(off, 4),
                         **{k: item[k] for k in ("speaker", "text") if k in item}})
        (n1, x1), (n2, x2) = list(sigs.items())
        p1, p2 = _power(x1), _power(x2)
        if p1 == 0.0 or p2 == 0.0:
            return None  # a silent source cannot be set to an SNR: skip this draw
        g1 = math.sqrt(10 ** (REF_DBFS / 10) / p1)
        g2 = g1 * math.sqrt(p1 / p2 / 10 ** (d["snr"] / 10))  # P(g1 x1) / P(g2 x2) = snr dB
        x1, x2 = (x1 * g1).astype(np.float32), (x2 * g2).astype(np.float32)
        peak = float(np.abs(x1 + x2).max())
        if peak > 0.99:  # one gain for all: keeps the SNR and mixture = sum of sources
            x1, x2 = (x1 * (0.99 / peak)).astype(np.float32), (x2 * (0.99 / peak)).astype(np.float32)
        mix = x1 + x2
        sr, base = ctx.opts["sample_rate"], f"mix/{task.id}"
        stems = {n1: ctx.write_audio(f"{base}/{n1}.wav", x1, sr, "FLOAT"),
                 n2: ctx.write_audio(f"{base}/{n2}.wav", x2, sr, "FLOAT")}
        entry = {
            "audio_filepath": ctx.write_audio(f"{base}/mixture.wav", mix, sr, "FLOAT"),
            "duration": round(len(mix) / sr, 6),
            "kind": d["kind"],
            "snr": d["snr"],
            "stems": stems,
            "sources": used,
        }
        if d["kind"] == "speech+noise":
            entry.update({k: used[0][k] for k in ("speaker", "text") if k in used[0]})
        else:
            entry["speakers"] = [u.get("speaker") for u in used]
        return entry

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        srcs = "\n".join(f"- {k}: `{m}`" for k, ms in ctx.extra["manifests"].items() for m in ms)
        note = ""
        if "speech+speech" in ctx.extra["kinds"] and not ctx.extra.get("has_speaker", True):
            note = "\n\nThe speech manifest has no `speaker` labels: distinct files stand in for distinct speakers."
        return (
            "## Provenance\n\n"
            f"Sources:\n{srcs}\n\n"
            f"Kinds: {', '.join(ctx.extra['kinds'])}. Each `mix/<id>/` holds `mixture.wav` and its sources "
            "(`s1.wav`/`s2.wav` or `speech.wav`/`noise.wav`, 32-bit float, the mixture is exactly their "
            "sum). Manifest: `stems` (the sources), `snr` (dB of the first source over the second), "
            "`sources` (original files and offsets). The first source is at "
            f"{REF_DBFS:g} dBFS RMS before clipping protection; powers are over the whole "
            f"{ctx.opts['seconds']:g} s segment (short speech is zero padded at a random position, short "
            "noise looped)." + note
        )
