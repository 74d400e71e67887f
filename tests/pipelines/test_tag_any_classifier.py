"""`audiozoo tag` works with any trained classifier, not only AST (issue #11: the pipeline read AST-only
front-end attributes). A tiny PANNs CNN14 and a tiny PaSST are trained for a few steps on tones vs noise,
saved as checkpoint folders with their labels, and tagged through the CLI on clips they never saw."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.hub import save_pretrained

SR = 32000


def _clip(kind: str, rng: np.random.Generator, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(300, 900) * t)
    else:
        x = rng.standard_normal(t.shape)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _train(name: str, overrides: dict, steps: int = 40) -> torch.nn.Module:
    torch.manual_seed(0)
    model = audiozoo.create_model(name, **{**audiozoo.model_info(name).tiny, **overrides, "num_classes": 2})
    rng = np.random.default_rng(0)
    wav = torch.from_numpy(np.stack([_clip(k, rng) for k in ["tone", "noise"] * 8]))
    y = torch.tensor([0, 1] * 8)
    feats, lengths = model.frontend(wav)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(feats, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name,overrides", [("panns_cnn14", {}), ("passt_tiny", {})])
def test_tag_cli_with_a_trained_non_ast_classifier(name, overrides, tmp_path, capsys):
    model = _train(name, overrides)
    ck = save_pretrained(model, tmp_path / name, metadata={"labels": ["tone", "noise"]})
    rng = np.random.default_rng(123)  # clips never seen in training, at another rate (resampled by the pipeline)
    files = []
    for i, kind in enumerate(["tone", "noise", "tone", "noise"]):
        p = tmp_path / f"{i}_{kind}.wav"
        sf.write(p, _clip(kind, rng, seconds=1.5), SR)
        files.append((p, kind))
    assert main(["tag", *[str(p) for p, _ in files], "-m", str(ck), "-k", "2"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    got = [re.findall(r": ([a-z]+) \(", ln)[0] for ln in lines]
    assert got == [k for _, k in files]
