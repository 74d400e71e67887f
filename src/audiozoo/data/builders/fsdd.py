"""Free Spoken Digit Dataset (FSDD): 5 speakers x 10 digits x 50 takes, 8 kHz.

The recordings are referenced in place (absolute paths into the shared data), not copied.
Split convention of the FSDD README: takes 0-4 test, 5-49 train; with ``--valid`` takes 5-9 become a
validation set carved from train (by take, so no recording session leaks between subsets).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ...errors import DataError
from .base import Builder, Context, Option, Task, shared_data_root

NAME_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def find_folder(source: str | None, sub: str, pattern: str) -> Path:
    """``<shared>/<sub>``, or ``source`` itself when it directly holds the files."""
    root = shared_data_root(source)
    if (root / sub).is_dir():
        return root / sub
    if any(root.glob(pattern)):
        return root
    raise DataError(f"no '{sub}' recordings found in {root} (expected {root / sub} with {pattern} files)")


class FSDDBuilder(Builder):
    name = "fsdd"
    description = "Free Spoken Digit Dataset: spoken digits 0-9 by 5 speakers, 8 kHz (real recordings)."
    license = (
        "FSDD recordings: CC BY-SA 4.0 (Zohar Jackson et al., github.com/Jakobovski/free-spoken-digit-dataset). "
        "This folder only references them."
    )
    options = (
        Option("source", str, None, "shared data folder (or the fsdd folder itself)"),
        Option("valid", bool, False, "carve takes 5-9 out of train as a validation split", flag=True),
    )
    stat_keys = ("label", "speaker")

    def prepare(self, ctx: Context) -> None:
        ctx.extra["dir"] = find_folder(ctx.opts["source"], "fsdd", "*_*_*.wav").resolve()

    def tasks(self, ctx: Context) -> list[Task]:
        tasks = []
        for p in sorted(ctx.extra["dir"].glob("*.wav")):
            m = NAME_RE.match(p.name)
            if m is None:  # not a {digit}_{speaker}_{take}.wav recording
                continue
            digit, speaker, take = int(m[1]), m[2], int(m[3])
            tasks.append(Task(p.stem, {"path": str(p), "digit": digit, "speaker": speaker, "take": take}))
        if not tasks:
            raise DataError(f"no {{digit}}_{{speaker}}_{{take}}.wav files in {ctx.extra['dir']}")
        return tasks

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any]:
        from ...dsp.io import audio_info

        d = task.data
        info = audio_info(d["path"])
        return {"audio_filepath": d["path"], "duration": round(info["duration"], 6), "label": d["digit"],
                "speaker": d["speaker"], "take": d["take"], "text": DIGIT_WORDS[d["digit"]]}

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        def which(it: dict[str, Any]) -> str:
            if it["take"] <= 4:
                return "test"
            if ctx.opts["valid"] and it["take"] <= 9:
                return "valid"
            return "train"

        names = ["train", "valid", "test"] if ctx.opts["valid"] else ["train", "test"]
        return {n: [it for it in items if which(it) == n] for n in names}

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        return (
            "## Provenance\n\n"
            f"Real recordings from `{ctx.extra['dir']}` (Free Spoken Digit Dataset), referenced in place. "
            "`label` is the digit (int), `text` the digit as an English word, `speaker` the speaker, "
            "`take` the take number from the file name "
            "`{digit}_{speaker}_{take}.wav`. Split: takes 0-4 test, 5-49 train"
            + (", takes 5-9 valid (carved from train)." if ctx.opts["valid"] else ".")
        )
