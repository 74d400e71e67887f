"""Training engine: accumulation, precision, EMA, checkpoints, multiple optimizers, errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader
from train_toys import ToyAudio, ToyClassifier, collate

from audiozoo.errors import CheckpointError, ConfigError
from audiozoo.train import ClassificationTask, Task, Trainer, export_pretrained, read_metrics

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9}


def _loader(n=40, batch=4, shuffle=True, **kw):
    return DataLoader(ToyAudio(n, **kw), batch_size=batch, shuffle=shuffle, collate_fn=collate)


def _trainer(tmp_path, name="run", model=None, task=None, train=None, valid=None, **kw):
    torch.manual_seed(0)
    model = model or ToyClassifier()
    kw = {"max_steps": 5, "log_every": 1, "device": "cpu", "progress": False, "seed": 3, **kw}
    return Trainer(task or ClassificationTask(optim=SGD), model, train or _loader(), valid,
                   out_dir=tmp_path / name, **kw)


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def test_grad_accumulation_equals_larger_batch(tmp_path):
    # 36 items: batch 8 gives 5 batches (the last of 4), batch 4 x accum 2 gives windows 2,2,2,2,1 —
    # the shorter final window is divided by its own size, so both see the same gradients.
    _trainer(tmp_path, "big", train=_loader(36, 8), max_steps=8).fit()
    _trainer(tmp_path, "acc", train=_loader(36, 4), max_steps=8, grad_accum=2).fit()
    a, b = _weights(tmp_path / "big" / "last"), _weights(tmp_path / "acc" / "last")
    err = max(float((a[k] - b[k]).abs().max()) for k in a)
    # Same gradients summed in another order (two half-batch means vs one mean): a few float32 ulps
    # per step; SGD is linear in the gradient, so a wrong 1/accum factor would show at ~1e-2.
    assert err < 1e-6, err


def test_bf16_autocast_runs_on_cpu(tmp_path):
    model = ToyClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary = _trainer(tmp_path, model=model, precision="bf16", valid=_loader(12, 6, False, seed=1)).fit()
    assert torch.bfloat16 in model.seen_dtypes  # the conv ran under autocast
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
    assert len(losses) == 5 and all(torch.isfinite(torch.tensor(losses)))
    w = _weights(tmp_path / "run" / "last")
    assert all(v.dtype == torch.float32 for v in w.values())  # master weights stay fp32
    assert any(not torch.equal(w[k], before[k]) for k in w)
    assert summary["last_valid"]["accuracy"] >= 0.0


def test_fp16_needs_cuda(tmp_path):
    with pytest.raises(ConfigError, match="fp16"):
        _trainer(tmp_path, precision="fp16", device="cpu").fit()


class _Recorder(ClassificationTask):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.history: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self):
        self.history.append({k: v.clone() for k, v in self.trainer.main_model.state_dict().items()})

    def on_train_step_end(self, step, logs):
        self.history.append({k: v.clone() for k, v in self.trainer.main_model.state_dict().items()})


def test_ema_follows_closed_form(tmp_path):
    task = _Recorder(optim=SGD)
    _trainer(tmp_path, task=task, ema_decay=0.8, max_steps=6).fit()
    ema = load_file(str(tmp_path / "run" / "last" / "ema.safetensors"))
    expected = dict(task.history[0])
    for w in task.history[1:]:
        expected = {k: 0.8 * expected[k] + 0.2 * w[k] for k in w}
    for k in ema:
        # lerp_ vs the written-out formula round differently: ~1 ulp per update, 6 updates.
        torch.testing.assert_close(ema[k], expected[k], rtol=0, atol=1e-6)
    final = task.history[-1]
    assert any(not torch.equal(ema[k], final[k]) for k in ema)


class _Scripted(ClassificationTask):
    """Validation returns a scripted score sequence; best = max."""

    monitor, monitor_mode = "score", "max"

    def __init__(self, scores, **kw):
        super().__init__(**kw)
        self.scores = list(scores)

    def validation_end(self):
        return {"score": self.scores.pop(0)}


def test_best_and_last_checkpoints(tmp_path):
    task = _Scripted([0.1, 0.5, 0.3, 0.2], optim=SGD)
    _trainer(tmp_path, task=task, valid=_loader(12, 6, False, seed=1), max_steps=8, eval_every=2,
             save_every=3).fit()
    run = tmp_path / "run"
    best = json.loads((run / "best" / "trainer_state.json").read_text())["state"]
    last = json.loads((run / "last" / "trainer_state.json").read_text())["state"]
    assert best["progress"]["step"] == 4 and best["progress"]["best"] == 0.5 and best["metrics"] == {"score": 0.5}
    assert last["progress"]["step"] == 8 and last["progress"]["best_step"] == 4
    valid = [(r["step"], r["score"]) for r in read_metrics(run) if r["split"] == "valid"]
    assert valid == [(2, 0.1), (4, 0.5), (6, 0.3), (8, 0.2)]
    # Only safetensors + JSON: nothing a loader would have to unpickle.
    assert {p.suffix for p in (run / "best").iterdir()} <= {".json", ".safetensors"}
    assert not list(run.glob(".*"))  # no temporary folders left behind


def test_hub_model_checkpoint_has_config(tmp_path):
    model = ToyClassifier()
    model.model_name = "toy_classifier"  # what create_model sets: the folder becomes a hub checkpoint
    _trainer(tmp_path, model=model, max_steps=2, ema_decay=0.5).fit()
    cfg = json.loads((tmp_path / "run" / "last" / "config.json").read_text())
    assert cfg["model_name"] == "toy_classifier" and cfg["config"]["num_classes"] == 4
    assert cfg["metadata"]["step"] == 2
    # Shipping: a plain hub folder whose model.safetensors holds the EMA weights.
    export_pretrained(tmp_path / "run" / "last", tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.json", "model.safetensors"]
    ema = load_file(str(tmp_path / "run" / "last" / "ema.safetensors"))
    shipped = _weights(tmp_path / "export")
    assert all(torch.equal(shipped[k], ema[k]) for k in ema)
    assert json.loads((tmp_path / "export" / "config.json").read_text())["metadata"]["weights"] == "ema"


def test_resume_in_process_matches_straight_run(tmp_path):
    _trainer(tmp_path, "straight", max_steps=9, save_every=3, ema_decay=0.9).fit()
    _trainer(tmp_path, "split", max_steps=7, save_every=3, ema_decay=0.9).fit()  # last/ at step 7
    # A run folder's last/ continues (epochs of 10 micro-batches: step 7 is mid-epoch).
    _trainer(tmp_path, "split", max_steps=9, save_every=3, ema_decay=0.9).fit(resume=True)
    for name in ("model.safetensors", "ema.safetensors", "trainer_state.safetensors"):
        a = load_file(str(tmp_path / "straight" / "last" / name))
        b = load_file(str(tmp_path / "split" / "last" / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name  # bitwise


def test_resume_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a complete training checkpoint"):
        _trainer(tmp_path).fit(resume=tmp_path / "nowhere")
    _trainer(tmp_path, max_steps=2).fit()
    other = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="holds models"):
        _trainer(tmp_path, model={"model": ToyClassifier(), "extra": other}).fit(resume=True)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_steps or epochs"):
        Trainer(ClassificationTask(), ToyClassifier(), _loader(), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="precision"):
        Trainer(ClassificationTask(), ToyClassifier(), _loader(), max_steps=1, precision="fp8", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="grad_accum"):
        Trainer(ClassificationTask(), ToyClassifier(), _loader(), max_steps=1, grad_accum=0, out_dir=tmp_path)

    class NoLoss(ClassificationTask):
        def training_step(self, batch, optimizer_idx=0):
            return {"accuracy": torch.tensor(1.0)}

    with pytest.raises(ConfigError, match="differentiable 'loss'"):
        _trainer(tmp_path, "noloss", task=NoLoss(optim=SGD)).fit()


def test_epochs_and_epoch_end_validation(tmp_path):
    _trainer(tmp_path, max_steps=None, epochs=2, valid=_loader(12, 6, False, seed=1)).fit()
    recs = read_metrics(tmp_path / "run")
    # 40 items / batch 4 = 10 steps per epoch; validation after each epoch (eval_every=None).
    assert [(r["step"], r["epoch"]) for r in recs if r["split"] == "valid"] == [(10, 1), (20, 2)]
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())["state"]["progress"]
    assert state["step"] == 20 and state["epoch"] == 2 and state["batch_in_epoch"] == 0


class _TwoStage(Task):
    """Two optimizers, SGD lr 1: stage 0 minimises a·x, stage 1 minimises (a + b)·x, in that order."""

    def configure_optimizers(self, models):
        m = models["model"]
        o0 = torch.optim.SGD([m.a], lr=1.0)
        o1 = torch.optim.SGD([m.b], lr=1.0)
        return [o0, o1], [None, None]

    def training_step(self, batch, optimizer_idx=0):
        m, x = self.model, batch["x"].mean()
        if optimizer_idx == 0:
            return {"loss": (m.a * x) ** 2 / 2}
        return {"loss": ((m.a + m.b) * x) ** 2 / 2, "stage1": torch.tensor(1.0)}


class _AB(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))
        self.b = nn.Parameter(torch.tensor(2.0))


def test_several_optimizers_step_in_order_without_cross_gradients(tmp_path):
    x = 0.5
    loader = [{"x": torch.full((2,), x)}] * 3
    model = _AB()
    Trainer(_TwoStage(), model, loader, max_steps=3, device="cpu", progress=False, out_dir=tmp_path).fit()
    a, b = 1.0, 2.0
    for _ in range(3):
        a = a - a * x * x  # d/da of (a x)^2 / 2 only: stage 1's loss must not leak into a's gradient
        b = b - (a + b) * x * x  # uses the a already updated by stage 0 (D-then-G order)
    assert model.a.item() == pytest.approx(a, abs=1e-6) and model.b.item() == pytest.approx(b, abs=1e-6)
    assert model.a.requires_grad and model.b.requires_grad  # flags restored after each stage
