"""The basic-pitch training task: loss as Keras computes it, frame targets, learning, recipe round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.train.losses import weighted_bce
from audiozoo.train.recipe import evaluate_from_recipe, train_from_recipe
from audiozoo.train.tasks.transcribe import TranscriptionTask, note_targets

SR, HOP = 22050, 256


def _keras_bce(p: np.ndarray, t: np.ndarray, ls: float) -> np.ndarray:
    """tf.keras binary_crossentropy on float32 probabilities, element-wise (before the mean)."""
    # clipped in float32 as Keras does (1 - 1e-7 rounds to 1 - 2**-23 there), then evaluated in float64
    p = np.clip(p.astype(np.float32), np.float32(1e-7), np.float32(1 - 1e-7)).astype(np.float64)
    t = t * (1 - ls) + 0.5 * ls
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def test_weighted_bce_matches_the_keras_formulas():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (3, 7, 11))
    p[0, 0, 0], p[0, 0, 1] = 0.0, 1.0  # clipping path
    t = (rng.uniform(0, 1, p.shape) > 0.8).astype(np.float64)
    pt, tt = torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    el = _keras_bce(p, t, 0.2)
    # float32 logs of probabilities in [1e-7, 1]: relative error ~1e-6
    assert float(weighted_bce(pt, tt, label_smoothing=0.2)) == pytest.approx(el.mean(), rel=1e-5)
    w = 0.95
    want = w * el[t == 1].mean() + (1 - w) * el[t == 0].mean()  # weighted_transcription_loss
    assert float(weighted_bce(pt, tt, label_smoothing=0.2, positive_weight=w)) == pytest.approx(want, rel=1e-5)
    # no positives in the batch: only the negative term remains
    z = torch.zeros_like(tt)
    assert float(weighted_bce(pt, z, positive_weight=w)) == pytest.approx(0.05 * _keras_bce(p, 0 * t, 0).mean(),
                                                                           rel=1e-5)
    with pytest.raises(ConfigError, match="differ"):
        weighted_bce(pt, tt[:, :, :3])


def test_note_targets_frames():
    fs = HOP / SR  # 11.6 ms
    notes = np.array([[0.1, 0.3, 60.0], [0.25, 0.26, 21.0], [5.0, 6.0, 64.0], [0.0, 1.0, 120.0]])
    t = note_targets(notes, start_s=0.05, n_frames=40, frame_s=fs)
    assert t["note"].shape == (40, 88) and t["contour"].shape == (40, 264)
    k = 60 - 21
    frames = np.nonzero(t["note"][:, k])[0]
    times = 0.05 + frames * fs
    assert times.min() >= 0.1 and times.max() < 0.3  # onset <= t < offset
    assert 0.05 + (frames.min() - 1) * fs < 0.1 and 0.05 + (frames.max() + 1) * fs >= 0.3  # and no frame more
    onset_frames = np.nonzero(t["onset"][:, k])[0]
    assert onset_frames.tolist() == [round((0.1 - 0.05) / fs)]
    assert t["onset"][:, 0].sum() == 1  # a note shorter than a frame still has an onset
    assert t["note"][:, 64 - 21].sum() == 0  # outside the crop
    assert t["note"].sum() + 0 == t["contour"].sum()  # pitch 120 (out of range) is dropped
    np.testing.assert_array_equal(t["contour"][:, 3 * k + 1], t["note"][:, k])  # semitone centre bin


def _piece(folder, name: str, seconds: float, notes: list[tuple[float, float, int]]) -> dict:
    """A harmonic-tone rendering of ``notes`` and its notes.json (music-render's layout)."""
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for on, off, pitch in notes:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        env = ((t >= on) & (t < off)) * np.exp(-3 * np.clip(t - on, 0, None))
        y += env * sum(0.3 / h * np.sin(2 * math.pi * h * f0 * t) for h in (1, 2, 3))
    (folder / name).mkdir()
    sf.write(folder / name / "mix.wav", (0.5 * y / max(1e-9, np.abs(y).max())).astype(np.float32), SR)
    doc = {"notes": [{"onset": a, "offset": b, "pitch": p} for a, b, p in notes]}
    (folder / name / "notes.json").write_text(json.dumps(doc))
    return {"audio_filepath": f"{name}/mix.wav", "duration": seconds, "notes": f"{name}/notes.json"}


def _scale(start: int) -> list[tuple[float, float, int]]:
    return [(0.1 + 0.3 * i, 0.35 + 0.3 * i, start + 2 * i) for i in range(6)]


def test_tiny_transcriber_learns_targets():
    """30 Adam steps on one fixed crop of a tiny NMP: the total loss falls by more than 25 %."""
    torch.manual_seed(0)
    model = audiozoo.create_model("basic_pitch_nmp", **audiozoo.model_info("basic_pitch_nmp").tiny)
    task = TranscriptionTask(positive_weight={"onset": 0.95})
    task.models = {"model": model}
    notes = [(0.05, 0.3, 21), (0.2, 0.6, 25), (0.45, 0.7, 28)]
    t = np.arange(int(0.75 * SR)) / SR
    y = sum(((t >= a) & (t < b)) * np.sin(2 * math.pi * 440 * 2 ** ((p - 69) / 12) * h * t) / h
            for a, b, p in notes for h in (1, 2))
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "notes.json"
        path.write_text(json.dumps({"notes": [{"onset": a, "offset": b, "pitch": p} for a, b, p in notes]}))
        batch = {"audio": torch.tensor(0.3 * y, dtype=torch.float32)[None], "crop_start": [0], "notes": [str(path)]}
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(30):
            out = task.training_step(batch)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.75 * losses[0], losses[::5]


def test_recipe_trains_and_scores_notes(tmp_path):
    """A transcription recipe runs end to end (3 steps) and `eval` scores whole pieces with mir_eval."""
    items = [_piece(tmp_path, f"p{i}", 2.2, _scale(55 + 3 * i)) for i in range(3)]
    for split, its in (("train", items[:2]), ("test", items[2:])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(it) + "\n" for it in its))
    recipe = {
        "model": {"name": "basic_pitch_nmp"},
        "data": {"train": str(tmp_path / "train.jsonl"), "valid": str(tmp_path / "test.jsonl"),
                 "test": str(tmp_path / "test.jsonl"), "sample_rate": SR, "crop_seconds": 43844 / SR,
                 "batch_size": 2, "eval_batch_size": 1, "num_workers": 0},
        "task": {"name": "transcribe", "positive_weight": {"onset": 0.95}},
        "optim": {"name": "adam", "lr": 1e-3},
        "trainer": {"max_steps": 3, "eval_every": 3, "save_every": 3, "progress": False, "log_every": 1},
        "out_dir": str(tmp_path / "run"),
    }
    out = train_from_recipe(recipe)
    res = evaluate_from_recipe(recipe, out / "last")
    for k in ("onset_f1", "offset_f1", "onset_precision", "onset_recall", "loss_onset"):
        assert k in res and np.isfinite(res[k]), k
    assert res["items"] == 1 and res["step"] == 3
    # the released weights, evaluated as the recipe builds them (no checkpoint folder), transcribe the
    # clean harmonic scale almost perfectly: a check that targets, windows and scoring line up in time
    recipe["model"] = {"name": "basic_pitch_nmp.icassp_2022"}
    rel = evaluate_from_recipe(recipe, None)
    assert rel["onset_f1"] > 0.8, rel


def test_bad_task_options():
    with pytest.raises(ConfigError, match="unknown heads"):
        TranscriptionTask(positive_weight={"onsets": 0.9})
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        TranscriptionTask(positive_weight={"onset": 1.5})


def test_freeze_batchnorm_keeps_released_statistics():
    """Fine-tuning the released weights: BatchNorm running statistics stay, outputs at step 0 are unchanged."""
    model = audiozoo.create_model("basic_pitch_nmp.icassp_2022")
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    task = TranscriptionTask(freeze_batchnorm=True)
    task.models = {"model": model}
    model.train()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "notes.json"
        path.write_text(json.dumps({"notes": [{"onset": 0.2, "offset": 0.8, "pitch": 60}]}))
        wav = 0.1 * torch.sin(2 * math.pi * 261.6 * torch.arange(22050) / SR)[None]
        out = task.training_step({"audio": wav, "crop_start": [0], "notes": [str(path)]})
        with torch.no_grad():
            ref = audiozoo.create_model("basic_pitch_nmp.icassp_2022").eval()(wav)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the training-mode forward equals the released model's inference (BatchNorm folded, so ~1e-7)
    got = model(wav)
    assert torch.allclose(got["onset"], ref["onset"], atol=1e-5) and torch.isfinite(out["loss"])
