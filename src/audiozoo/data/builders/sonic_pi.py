"""The CC0 instrument and drum samples of Debian's ``sonic-pi-samples``, labelled by family.

The family comes from the file-name prefix (``bd_`` bass drum, ``sn_`` snare, ``guit_`` guitar...).
Samples are converted to mono wavs at ``--sample-rate`` and split train/test per family.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MissingDependencyError
from ..sampler import deterministic_split
from .base import Builder, Context, Option, Task

DEFAULT_DIR = "/usr/share/sonic-pi/samples"
FAMILIES = {
    "ambi": "ambient", "bass": "bass", "bd": "bass drum", "drum": "drum", "elec": "electronic",
    "glitch": "glitch", "guit": "guitar", "loop": "loop", "mehackit": "mehackit", "misc": "misc",
    "perc": "percussion", "sn": "snare", "tabla": "tabla", "vinyl": "vinyl",
}


def family(stem: str) -> str:
    """Family label of a sample from its name prefix (unknown prefixes are their own family)."""
    prefix = stem.split("_", 1)[0].lower()
    return FAMILIES.get(prefix, prefix)


class SonicPiBuilder(Builder):
    name = "sonic-pi"
    description = "Sonic Pi's CC0 instrument/drum samples (Debian sonic-pi-samples) with family labels."
    license = (
        "CC0 1.0 (public domain dedication): the samples come from freesound.org, see the package's "
        f"{DEFAULT_DIR}/README.md for each original."
    )
    options = (
        Option("source", str, DEFAULT_DIR, "folder of the sonic-pi *.flac samples"),
        Option("sample_rate", int, 22050, "output sample rate"),
        Option("test_fraction", float, 0.2, "share of each family in the test split"),
        Option("limit", int, None, "only this many samples (a seeded subset; small test builds)"),
        Option("seed", int, 0, "split and subset seed"),
    )
    stat_keys = ("label",)

    def prepare(self, ctx: Context) -> None:
        o = ctx.opts
        src = Path(o["source"])
        files = sorted(src.glob("*.flac")) if src.is_dir() else []
        if not files:
            raise MissingDependencyError(
                f"sonic-pi needs the Sonic Pi samples in {src} (*.flac): apt-get install sonic-pi-samples, "
                "or pass --source DIR"
            )
        if not 0 < o["test_fraction"] < 1:
            raise ConfigError(f"--test-fraction must be in (0, 1), got {o['test_fraction']}")
        if o["limit"] is not None:
            if o["limit"] < 1:
                raise ConfigError(f"--limit must be >= 1, got {o['limit']}")
            # a seeded subset that does not depend on the listing order
            files = sorted(files, key=lambda p: hashlib.sha256(f"{o['seed']}\0{p.name}".encode()).hexdigest())
            files = sorted(files[: o["limit"]])
        ctx.extra["files"] = [f.resolve() for f in files]
        ctx.extra["dir"] = src.resolve()

    def tasks(self, ctx: Context) -> list[Task]:
        return [Task(p.stem, {"path": str(p)}) for p in ctx.extra["files"]]

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any]:
        from ...dsp.io import load_audio

        sr = ctx.opts["sample_rate"]
        wav, _ = load_audio(task.data["path"], sample_rate=sr, mono=True)
        peak = float(wav.abs().max())
        gain = 1.0
        if peak > 0.999:  # resampling overshoot of a full-scale sample: scale instead of clipping
            gain = 0.999 / peak
            wav = wav * gain
        rel = ctx.write_audio(f"wavs/{task.id}.wav", wav, sr)
        return {"audio_filepath": rel, "duration": round(wav.shape[-1] / sr, 6), "label": family(task.id),
                "name": task.id, "source": Path(task.data["path"]).name, "gain": round(gain, 6)}

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        f = ctx.opts["test_fraction"]
        return deterministic_split(items, {"train": 1 - f, "test": f}, seed=ctx.opts["seed"], stratify="label")

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        fams = ", ".join(f"`{k}_` {v}" for k, v in FAMILIES.items())
        return (
            "## Provenance\n\n"
            f"Samples from `{ctx.extra['dir']}` (Debian package `sonic-pi-samples`), decoded, downmixed to "
            f"mono and resampled to {ctx.opts['sample_rate']} Hz (soxr HQ), saved as 16-bit wav. `label` is "
            f"the family from the file-name prefix: {fams}. Split per family (stratified) by a seeded hash: "
            f"{ctx.opts['test_fraction']:g} of each family to test."
        )
