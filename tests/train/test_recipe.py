"""Flat YAML recipes: parsing, typed overrides, errors naming the bad key, train/eval entry points, CLI."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml
from train_toys import ToyAudio, ToyClassifier, ToyConfig, collate

from audiozoo.errors import ConfigError
from audiozoo.train import evaluate_from_recipe, load_recipe, recipe, train_from_recipe

TOY = "toy_cls_recipe_test"


def _write(tmp_path, **changes):
    r = {
        "model": {"name": TOY, "hidden": 8},
        "data": {"train": "train.jsonl", "valid": "valid.jsonl", "test": "test.jsonl", "sample_rate": 8000,
                 "batch_size": 4},
        "task": {"name": "classify", "label_smoothing": 0.1},
        "optim": {"name": "adamw", "lr": "3e-3", "weight_decay": "1e-2", "betas": [0.9, 0.98]},
        "schedule": {"name": "cosine", "warmup_steps": 2},
        "trainer": {"max_steps": 6, "eval_every": 3, "save_every": 3, "progress": False, "device": "cpu",
                    "ema_decay": 0.9},
        "out_dir": str(tmp_path / "run"),
    }
    r.update(changes)
    text = yaml.safe_dump(r).replace("'3e-3'", "3e-3").replace("'1e-2'", "1e-2")  # unquoted, as people write
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def toy_model():
    from audiozoo import registry

    def toy_cls_recipe_test(**kw):
        return ToyClassifier(ToyConfig(**kw))

    registry.register_model(family="classify", paper="toy", arxiv="", params=0, params_source="test",
                            verified="A")(toy_cls_recipe_test)
    yield TOY
    registry._REGISTRY.pop(TOY, None)  # keep the registry clean for registry-wide tests


def _toy_data(*_args, **_kw):
    return {"train": ToyAudio(40), "valid": ToyAudio(12, seed=1), "test": ToyAudio(12, seed=2),
            "labels": ["c0", "c1", "c2", "c3"], "collate_fn": collate}


def test_load_with_typed_overrides_and_defaults(tmp_path):
    r = load_recipe(_write(tmp_path), ["trainer.max_steps=3", "optim.lr=1e-4", "optim.betas=[0.8, 0.99]",
                                       "model.hidden=12", "trainer.clip_grad_norm=1"])
    assert r["optim"]["weight_decay"] == 0.01  # "1e-2" in the file is a float (YAML 1.2), not a string
    assert r["trainer"]["max_steps"] == 3 and r["optim"]["lr"] == 1e-4 and r["optim"]["betas"] == [0.8, 0.99]
    assert r["model"] == {"name": TOY, "hidden": 12}
    assert r["trainer"]["precision"] == "fp32" and r["trainer"]["resume"] is True  # defaults filled
    assert r["eval"] == {"split": "test", "use_ema": True}


@pytest.mark.parametrize("overrides, message", [
    (["trainr.max_steps=3"], "unknown recipe key 'trainr' (did you mean 'trainer'?)"),
    (["trainer.max_step=3"], "unknown recipe key 'trainer.max_step' (did you mean 'max_steps'?)"),
    (["trainer.precision=fp8"], "'trainer.precision' must be one of fp32, bf16, fp16, got 'fp8'"),
    (["trainer.max_steps=0"], "'trainer.max_steps' must be a positive integer"),
    (["data.batch_size=two"], "'data.batch_size' must be a positive integer, got 'two'"),
    (["task.mixupp=0.2"], "unknown recipe key 'task.mixupp' (did you mean 'mixup'?)"),
    (["task.name=segment"], "'task.name' must be one of"),
    (["optim.momentum=0.9"], "unknown recipe key 'optim.momentum'"),
    (["optim.name=lion"], "'optim.name' must be one of"),
    (["schedule.name=poly"], "'schedule.name' must be one of"),
    (["model.name=null"], "'model.name' is required"),
    (["trainer.max_steps=null"], "needs 'trainer.max_steps' or 'trainer.epochs'"),
    (["out_dir.x=1"], "'out_dir' is"),
    (["trainer.max_steps"], "must look like key.sub=value"),
])
def test_errors_name_the_bad_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as e:
        load_recipe(_write(tmp_path), overrides)
    assert message in str(e.value)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping of recipe sections"):
        load_recipe(bad)


def test_train_then_evaluate_from_recipe(tmp_path, toy_model):
    path = _write(tmp_path)
    out = train_from_recipe(path, datasets=_toy_data())
    cfg = json.loads((out / "best" / "config.json").read_text())
    assert cfg["model_name"] == TOY and cfg["config"]["num_classes"] == 4 and cfg["config"]["hidden"] == 8
    assert cfg["metadata"]["labels"] == ["c0", "c1", "c2", "c3"]
    assert cfg["metadata"]["recipe"]["optim"]["lr"] == 3e-3
    res = evaluate_from_recipe(path, out / "last", datasets=_toy_data())
    assert res["split"] == "test" and res["items"] == 12 and res["ema"] is True and res["step"] == 6
    assert 0.0 <= res["accuracy"] <= 1.0 and {"loss", "macro_f1"} <= set(res)
    raw = evaluate_from_recipe(path, out / "last", use_ema=False, datasets=_toy_data())
    assert raw["ema"] is False and raw["loss"] != res["loss"]  # EMA weights differ from the raw ones


def test_cli_train_and_eval(tmp_path, toy_model, monkeypatch, capsys):
    monkeypatch.setattr(recipe, "build_datasets", _toy_data)
    parser = argparse.ArgumentParser(prog="audiozoo")
    recipe.add_cli(parser.add_subparsers(dest="command", required=True))
    path = _write(tmp_path)
    args = parser.parse_args(["train", str(path), "trainer.max_steps=3", "trainer.eval_every=3"])
    assert args.func(args) == 0
    run = tmp_path / "run"
    assert capsys.readouterr().out.strip() == str(run)
    assert json.loads((run / "last" / "trainer_state.json").read_text())["state"]["progress"]["step"] == 3
    args = parser.parse_args(["eval", str(path), "--checkpoint", str(run / "best"), "--split", "valid",
                              "--json", str(tmp_path / "res.json")])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "split" in table and "valid" in table
    saved = json.loads((tmp_path / "res.json").read_text())
    assert saved["split"] == "valid" and saved["items"] == 12


def test_every_shipped_recipe_validates():
    # a recipe whose task, keys or values went stale fails here, without running it
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "recipes"
    paths = sorted(root.rglob("*.yaml"))
    assert any(p.name == "wav2small_distill_fsdd.yaml" for p in paths)
    bad = []
    for p in paths:
        try:
            load_recipe(p)
        except ConfigError as e:
            bad.append(f"{p.relative_to(root)}: {e}")
    assert bad == []
