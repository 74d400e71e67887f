"""ClassificationTask pieces: losses, mixup, targets, validation metrics."""

from __future__ import annotations

import pytest
import torch
from train_toys import ToyClassifier

from audiozoo.errors import ConfigError, DataError
from audiozoo.train import ClassificationTask
from audiozoo.train.tasks.classify import feature_lengths, macro_f1, mean_average_precision


def _task(**kw):
    task = ClassificationTask(**kw)
    task.models = {"model": ToyClassifier(num_classes=3)}
    return task


def _batch(b=6, t=64, multi=False):
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 2, (b, 3), generator=g) if multi else torch.arange(b) % 3
    return {"audio": torch.randn(b, t, generator=g), "lengths": torch.tensor([t] * (b - 1) + [40]), "label": label}


@pytest.mark.parity
def test_metrics_match_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score

    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (200,), generator=g)
    pred = torch.where(torch.rand(200, generator=g) < 0.6, target, torch.randint(0, 6, (200,), generator=g))
    # Only integer counts and one mean: equal to float64 rounding.
    assert macro_f1(pred, target) == pytest.approx(f1_score(target, pred, average="macro"), abs=1e-12)
    scores = torch.rand(100, 4, generator=g, dtype=torch.float64)  # continuous: no ties
    y = (torch.rand(100, 4, generator=g) < 0.3).long()
    y[:, 3] = 0  # a class without positives is skipped (AudioSet convention)
    ref = sum(average_precision_score(y[:, c], scores[:, c]) for c in range(3)) / 3
    assert mean_average_precision(scores, y) == pytest.approx(ref, abs=1e-12)


def test_training_step_losses():
    task = _task(label_smoothing=0.1)
    batch = _batch()
    torch.manual_seed(0)
    out = task.training_step(batch)
    feats = task.model.frontend(batch["audio"])
    torch.manual_seed(0)
    ref = torch.nn.functional.cross_entropy(task.model(feats), batch["label"], label_smoothing=0.1)
    assert out["loss"].item() == pytest.approx(ref.item(), abs=1e-6)  # float32 recomputation
    assert 0.0 <= out["accuracy"].item() <= 1.0

    multi = _task(multi_label=True)
    out = multi.training_step(_batch(multi=True))
    assert out["loss"].requires_grad and "accuracy" not in out
    assert multi.monitor == "mAP"


def test_mixup_mixes_waveforms_and_targets():
    task = _task(mixup=0.5)
    batch = _batch()
    torch.manual_seed(3)
    out = task.training_step(batch)
    torch.manual_seed(3)
    mixed, perm, lam = task._mix(batch)
    assert perm is not None and 0.0 < lam < 1.0
    torch.testing.assert_close(mixed["audio"], lam * batch["audio"] + (1 - lam) * batch["audio"][perm])
    assert torch.equal(mixed["lengths"], torch.maximum(batch["lengths"], batch["lengths"][perm]))
    logits = task.model(task.model.frontend(mixed["audio"]))
    y = batch["label"]
    ce = torch.nn.functional.cross_entropy
    ref = lam * ce(logits, y) + (1 - lam) * ce(logits, y[perm])
    assert out["loss"].item() == pytest.approx(ref.item(), abs=1e-6)


def test_validation_metrics_and_label_errors():
    task = _task()
    task.on_validation_start()
    with torch.no_grad():
        task.validation_step(_batch())
    m = task.validation_end()
    assert set(m) == {"loss", "accuracy", "macro_f1"} and 0 <= m["accuracy"] <= 1
    bad = _batch()
    bad["label"] = torch.tensor([0, 1, 2, 3, 0, 1])
    with pytest.raises(DataError, match="out of range"):
        task.training_step(bad)
    with pytest.raises(DataError, match="'audio' or 'features'"):
        task.training_step({"label": bad["label"]})
    with pytest.raises(ConfigError, match="label_smoothing"):
        ClassificationTask(label_smoothing=1.0)


def test_feature_lengths():
    lengths = torch.tensor([64, 40, 1])
    # Proportional fallback: 40 of 64 samples -> ceil(40/64 * 8) = 5 of 8 frames; never below 1.
    assert feature_lengths(object(), lengths, 64, 8).tolist() == [8, 5, 1]

    class WithLengths:
        def output_lengths(self, n):
            return n // 8

    assert feature_lengths(WithLengths(), lengths, 64, 8).tolist() == [8, 5, 0]
    assert feature_lengths(object(), None, 64, 8) is None


def test_frontend_returning_frame_lengths_is_used():
    class LengthFrontend(torch.nn.Module):  # AST-style: forward(wav, lengths) -> (features, frame lengths)
        def forward(self, wav, lengths=None):
            feats = wav[:, :64].reshape(wav.shape[0], 8, 8)
            return feats, lengths // 8

    task = _task()
    task.model.frontend = LengthFrontend()
    feats, lengths = task.inputs(_batch())
    assert feats.shape == (6, 8, 8) and lengths.tolist() == [8, 8, 8, 8, 8, 5]


def test_specaugment_and_time_shift_apply_only_in_training():
    task = _task(specaugment={"freq_masks": 1, "freq_width": 4, "time_masks": 1, "time_width": 5}, time_shift=3)
    feats = torch.randn(4, 16, 30) + 5.0
    torch.manual_seed(0)
    out = task.augment(feats, torch.tensor([30, 30, 30, 20]))
    assert out.shape == feats.shape and not torch.equal(out, feats)
    assert (out == 0).any()  # masked cells (mask value 0)
    torch.manual_seed(0)
    assert torch.equal(out, task.augment(feats, torch.tensor([30, 30, 30, 20])))  # global RNG: replayable
    with pytest.raises(ConfigError, match="specaugment"):
        _task(specaugment={"freq_mask": 1})


def test_register_task_names_recipes_tasks():
    from audiozoo.train.recipe import validate_recipe
    from audiozoo.train.tasks import TASKS, Task, get_task_class, register_task

    assert {"classify", "gan", "vocoder", "superres", "flow_vocoder", "rave", "transcribe", "distill",
            "autoencoder"} <= set(TASKS)
    assert get_task_class("classify") is ClassificationTask and ClassificationTask.task_name == "classify"

    @register_task("toy_task_for_test")
    class ToyTask(Task):
        def __init__(self, *, weight: float = 1.0, optim=None, schedule=None):
            super().__init__(optim, schedule)

    try:
        assert get_task_class("toy_task_for_test") is ToyTask
        r = validate_recipe({"model": {"name": "x"}, "data": {"train": "t.jsonl"}, "trainer": {"max_steps": 1},
                             "task": {"name": "toy_task_for_test", "weight": 2.0}})
        assert r["task"]["weight"] == 2.0
        with pytest.raises(ConfigError, match="wight"):  # unknown task keys still name themselves
            validate_recipe({**r, "task": {"name": "toy_task_for_test", "wight": 2.0}})
        with pytest.raises(ConfigError, match="taken"):
            register_task("classify")(ToyTask)
    finally:
        TASKS.pop("toy_task_for_test", None)
    with pytest.raises(ConfigError, match="unknown task"):
        get_task_class("toy_task_for_test")
