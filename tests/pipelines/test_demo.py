"""`audiozoo demo --quick` writes real outputs: spectrogram PNGs, JSON, scored tagging when weights exist."""

from __future__ import annotations

import json

import pytest

from audiozoo.demo import run_demo


@pytest.mark.slow
def test_demo_quick_writes_outputs(tmp_path):
    summary = run_demo(tmp_path, quick=True)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["inputs"] == summary["inputs"] > 0
    pngs = list((tmp_path / "features").glob("*.png"))
    assert len(pngs) == len(summary["pipelines"]["features"]) and all(p.stat().st_size > 1000 for p in pngs)
    tagged = summary["pipelines"]["audio-classification"]
    assert "ast_tiny.fsdd_digits" in tagged  # the shipped checkpoint is found and used
    for acc in tagged["ast_tiny.fsdd_digits"]["accuracy"].values():
        assert 0.0 <= acc["accuracy"] <= 1.0 and acc["n"] > 0
