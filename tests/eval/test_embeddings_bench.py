"""The offline embedding benchmark: probe (vs scikit-learn), log-mel baseline, word cutting, the table, and a full
run over synthetic tasks with a tiny encoder (``audiozoo bench-embeddings``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.dsp.io import save_audio
from audiozoo.eval.embeddings_bench import (
    Clip,
    ProbeTask,
    cut_words,
    fit_logistic,
    linear_probe,
    logmel_stats,
    majority_accuracy,
    markdown_table,
)
from audiozoo.hub import save_pretrained
from audiozoo.pipelines.bench_embeddings import BASELINE, CHANCE, build_tasks, run

SR = 16000


def test_fit_logistic_matches_sklearn():
    lm = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int) + (x[:, 1] > 0.8).astype(int)
    ref = lm.LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(x, y)
    w, b = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 3, 0.5)
    p = torch.softmax(torch.from_numpy(x) @ w + b, 1).numpy()
    np.testing.assert_allclose(p, ref.predict_proba(x), atol=1e-5)


def _clip(kind: str, i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    n = int(SR * rng.uniform(0.3, 0.6))
    t = np.arange(n) / SR
    amp = rng.uniform(0.05, 0.5)
    if kind == "noise":
        return (amp * rng.normal(size=n) / 3).astype(np.float32)
    f0 = {"low": 300.0, "high": 1500.0}[kind] * rng.uniform(0.95, 1.05)
    return (amp * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.28)) + 0.002 * rng.normal(size=n)).astype(np.float32)


def test_probe_separates_tones_from_noise_but_not_random_labels():
    kinds = ["low", "high", "noise"]
    feats = torch.stack([logmel_stats(torch.from_numpy(_clip(k, i)), SR) for i in range(30) for k in kinds])
    y = np.array([j for _ in range(30) for j in range(3)])
    tr, te = np.arange(60), np.arange(60, 90)
    r = linear_probe(feats[tr], y[tr], feats[te], y[te])
    assert feats.shape == (90, 128) and r["accuracy"] >= 0.95 and r["n_test"] == 30 and r["C"] > 0
    assert majority_accuracy(y[tr], y[te]) == pytest.approx(1 / 3)
    shuffled = np.random.default_rng(1).permutation(y)  # labels unrelated to the audio: about chance
    assert linear_probe(feats[tr], shuffled[tr], feats[te], shuffled[te])["accuracy"] < 0.6


def test_cut_words_finds_eight_bursts():
    rng = np.random.default_rng(0)
    x = 0.001 * rng.normal(size=SR * 6)
    onsets = [0.5 + 0.65 * k for k in range(8)]
    for k, on in enumerate(onsets):
        a = int(on * SR)
        n = int(SR * (0.3 + 0.02 * k))
        x[a:a + n] += 0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR) * np.hanning(n)
    cuts = cut_words(torch.from_numpy(x), SR)
    assert cuts is not None and len(cuts) == 8
    for (a, b), on, k in zip(cuts, onsets, range(8)):
        centre = on + (0.3 + 0.02 * k) / 2
        assert a / SR < centre < b / SR and b - a < 0.6 * SR
    assert cut_words(torch.from_numpy(x[: int(2.4 * SR)]), SR) is None  # only 3 words there


@pytest.fixture(scope="module")
def synthetic_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    clips = []
    for i in range(24):
        for kind in ("low", "high", "noise"):
            p = root / f"{kind}_{i}.wav"
            save_audio(p, _clip(kind, 100 + i), SR)
            clips.append(Clip(str(p), kind, f"g{i % 4}"))
    folds = [([i for i, c in enumerate(clips) if c.group != g], [i for i, c in enumerate(clips) if c.group == g])
             for g in ("g0", "g1")]
    return ProbeTask("tones", "two tones vs noise", clips, folds, ["g0", "g1"])


def test_run_table_has_chance_baseline_and_model_rows(synthetic_task, tmp_path, capsys):
    torch.manual_seed(0)
    enc = audiozoo.create_model("ssast_tiny_patch", **audiozoo.model_info("ssast_tiny_patch").tiny)
    folder = str(save_pretrained(enc, tmp_path / "enc"))
    res = run([synthetic_task], models=[folder, "no_such_model.x"])
    scores = res["scores"]
    assert list(scores) == [CHANCE, BASELINE, folder] and "no_such_model.x" in res["skipped_models"]
    assert scores[CHANCE]["tones"]["accuracy"] == pytest.approx(1 / 3)
    assert scores[BASELINE]["tones"]["accuracy"] >= 0.9 and len(scores[BASELINE]["tones"]["folds"]) == 2
    assert 0.0 <= scores[folder]["tones"]["accuracy"] <= 1.0 and res["models"][folder]["embed_dim"] == 32
    md = markdown_table(res)
    assert md.splitlines()[0] == "| model | tones |" and f"| {CHANCE} | 33.3 |" in md and f"| {BASELINE} |" in md


def test_missing_data_is_skipped(tmp_path, capsys):
    tasks, skipped = build_tasks(["fsdd_digits_loso", "yesno_words", "sonic_pi_family"], data_root=tmp_path,
                                 cache=tmp_path / "cache", sonic_pi_dir=str(tmp_path / "none"))
    assert tasks == [] and set(skipped) == {"fsdd_digits_loso", "yesno_words", "sonic_pi_family"}
    assert "sonic-pi-samples" in skipped["sonic_pi_family"] and "FSDD" in skipped["fsdd_digits_loso"]
    out = tmp_path / "bench"
    assert main(["bench-embeddings", "--tasks", "yesno_words", "--models", "ast_tiny.fsdd_digits", "--data",
                 str(tmp_path), "-o", str(out), "--quiet"]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["skipped"]["yesno_words"].startswith("the yes/no recordings are not in")
    assert "skipped" in out.with_suffix(".md").read_text() and "skipped" in capsys.readouterr().out
