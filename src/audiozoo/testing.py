"""Helpers for parity tests and benchmarks against reference packages (as ``numpy.testing``): nothing here is
used by models, pipelines or training."""

from __future__ import annotations

import csv
import importlib
import os
import tempfile
from pathlib import Path
from types import ModuleType


def import_panns_inference_offline(home: str | os.PathLike | None = None) -> ModuleType:
    """``panns_inference.models``, imported without network access.

    ``panns_inference.config`` reads ``~/panns_data/class_labels_indices.csv`` at import and downloads it when
    missing; HOME points, during the import only, at ``home`` (a new temporary folder by default) holding a
    527-row CSV of the same layout (``index, mid, display_name``; the names are placeholders).
    """
    root = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="panns_home_"))
    (root / "panns_data").mkdir(parents=True, exist_ok=True)
    with open(root / "panns_data" / "class_labels_indices.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        for i in range(527):
            w.writerow([i, f"/m/x{i}", f"class {i}"])
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(root)
    try:
        return importlib.import_module("panns_inference.models")
    finally:
        if old is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old
