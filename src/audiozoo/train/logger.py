"""Metric logging: one JSON object per line in ``metrics.jsonl`` (+ TensorBoard when asked and available)."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # strict JSON has no NaN/Infinity
    return v


class MetricsLogger:
    """Appends records to ``<out_dir>/metrics.jsonl``; a no-op when ``enabled`` is False (ranks > 0).

    Args:
        out_dir: run folder.
        enabled: write anything at all.
        tensorboard: also write TensorBoard scalars to ``<out_dir>/tb`` if ``torch.utils.tensorboard``
            (the ``tensorboard`` package) is importable; a warning says so when it is not.
    """

    def __init__(self, out_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.enabled = enabled
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(Path(out_dir) / "tb"))
                except ImportError as e:
                    warnings.warn(f"TensorBoard logging disabled ({e}); pip install tensorboard", stacklevel=2)

    def truncate_after(self, step: int) -> None:
        """Drop records logged after ``step`` (a resumed run re-logs the steps after its checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        os.replace(tmp, self.path)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        rec = {k: _jsonable(v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            split = rec.get("split", "train")
            for k, v in rec.items():
                if k not in ("step", "epoch", "split") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{split}/{k}", v, rec.get("step", 0))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of ``<out_dir>/metrics.jsonl``."""
    p = Path(out_dir) / METRICS_FILE
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []
