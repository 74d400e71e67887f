"""Kaldi's "yes/no" corpus (OpenSLR SLR1): 60 recordings of 8 Hebrew words "yes"/"no", 8 kHz.

Labels come from the file name (``1`` = yes, ``0`` = no). Split as Kaldi's egs/yesno recipe does
(local/create_yesno_waves_test_train.pl): the first half of the sorted file list trains, the second
half tests. Recordings are referenced in place.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import DataError
from .base import Builder, Context, Option, Task
from .fsdd import find_folder

NAME_RE = re.compile(r"^([01](?:_[01]){7})\.wav$")
WORDS = {"0": "no", "1": "yes"}


class YesNoBuilder(Builder):
    name = "yesno"
    description = "Kaldi yes/no corpus: 60 recordings of 8 words 'yes'/'no' each, one speaker, 8 kHz."
    license = (
        "waves_yesno (OpenSLR SLR1, made for the Kaldi project by an anonymous contributor): no license stated. "
        "This folder only references the recordings."
    )
    options = (Option("source", str, None, "shared data folder (or the yesno folder itself)"),)
    stat_keys = ("label",)

    def prepare(self, ctx: Context) -> None:
        ctx.extra["dir"] = find_folder(ctx.opts["source"], "yesno", "[01]_*.wav").resolve()

    def tasks(self, ctx: Context) -> list[Task]:
        files = sorted(p for p in ctx.extra["dir"].glob("*.wav") if NAME_RE.match(p.name))
        if not files:
            raise DataError(f"no yes/no recordings (e.g. 0_1_1_0_0_1_1_0.wav) in {ctx.extra['dir']}")
        return [Task(p.stem, {"path": str(p), "index": i, "count": len(files)}) for i, p in enumerate(files)]

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any]:
        from ...dsp.io import audio_info

        words = [WORDS[b] for b in task.id.split("_")]
        info = audio_info(task.data["path"])
        # Kaldi's split: line i (1-based) of the sorted list trains while i <= n/2
        subset = "train" if task.data["index"] + 1 <= task.data["count"] / 2 else "test"
        return {"audio_filepath": task.data["path"], "duration": round(info["duration"], 6), "label": words,
                "text": " ".join(words), "speaker": "yesno", "subset": subset}

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {n: [it for it in items if it["subset"] == n] for n in ("train", "test")}

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        return (
            "## Provenance\n\n"
            f"Real recordings from `{ctx.extra['dir']}` (Kaldi waves_yesno, OpenSLR SLR1), referenced in place. "
            "`label` is the list of the 8 words, `text` the same words joined by spaces. The speaker says the "
            "Hebrew words *ken* (yes) and *lo* (no). Split as Kaldi's `egs/yesno` recipe: first 30 files of the "
            "sorted list train, last 30 test."
        )
