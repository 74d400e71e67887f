"""Flat YAML recipes: one file says what to build, train and evaluate.

.. code-block:: yaml

    model: {name: ast_tiny, dropout: 0.1}          # registry name + config overrides
    data:
      build: {name: fsdd, out: cache/fsdd, valid: true}   # optional: corpus builder run first
      train: train.jsonl                            # relative to build.out when build is given, else to the cwd
      valid: valid.jsonl
      test: test.jsonl
      sample_rate: 16000
      crop_seconds: 1.0
      batch_size: 32
      num_workers: 2
      bucketing: null                               # or a number of duration buckets
    task: {name: classify, label_smoothing: 0.1, mixup: 0.0}
    optim: {name: adamw, lr: 1.0e-3, weight_decay: 0.01, betas: [0.9, 0.999]}
    schedule: {name: cosine, warmup_steps: 100}
    trainer: {max_steps: 2000, precision: bf16, eval_every: 200, save_every: 200}
    out_dir: runs/ast_tiny_fsdd

Multi-model tasks (GANs) use ``models: {generator: {name: ...}, mpd: {name: ...}}`` instead of ``model``.
Overrides ``a.b=value`` are parsed as YAML (``trainer.max_steps=100`` is an int, ``optim.betas=[0.8,0.99]``
a list). Floats such as ``1e-3`` are read as floats (YAML 1.2; PyYAML's YAML 1.1 would read a string).
Every unknown key raises :class:`ConfigError` naming it.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import inspect
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import CheckpointError, ConfigError, MissingDependencyError
from .optim import OPTIMIZERS, SCHEDULES

# ----------------------------------------------------------------------------------------------------
# YAML


class _RecipeLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.2 float syntax)."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_value(text: str) -> Any:
    """A YAML-typed value (``"100"`` -> 100, ``"1e-3"`` -> 0.001, ``"[1,2]"`` -> [1, 2], ``"x"`` -> "x")."""
    try:
        return yaml.load(text, Loader=_RecipeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse value {text!r}: {e}") from e


# ----------------------------------------------------------------------------------------------------
# schema

def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos_number(v: Any) -> bool:
    return _number(v) and v > 0


def _opt(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


# key -> (check, what the value must be)
DATA_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "build": (_opt(lambda v: isinstance(v, dict) and "name" in v and "out" in v),
              "a mapping with 'name' and 'out', or null"),
    "train": (_is_str, "a manifest path"),
    "valid": (_opt(_is_str), "a manifest path"),
    "test": (_opt(_is_str), "a manifest path"),
    "sample_rate": (_pos_int, "a positive integer (Hz)"),
    "crop_seconds": (_opt(_pos_number), "a positive number of seconds or null"),
    "eval_crop_seconds": (_opt(_pos_number), "a positive number of seconds or null"),
    "batch_size": (_pos_int, "a positive integer"),
    "eval_batch_size": (_opt(_pos_int), "a positive integer"),
    "num_workers": (_nonneg_int, "an integer >= 0"),
    "drop_last": (_is_bool, "true or false"),
    "labels": (_opt(lambda v: isinstance(v, list)), "a list of label names"),
    "label_key": (_is_str, "a manifest key"),
    "mono": (_is_bool, "true or false"),
    "bucketing": (_opt(_pos_int), "a number of duration buckets (audiozoo.data.BucketingSampler) or null"),
}
TRAINER_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_steps": (_opt(_pos_int), "a positive integer"),
    "epochs": (_opt(_pos_int), "a positive integer"),
    "precision": (lambda v: v in ("fp32", "bf16", "fp16"), "one of fp32, bf16, fp16"),
    "grad_accum": (_pos_int, "a positive integer"),
    "clip_grad_norm": (_opt(_pos_number), "a positive number or null"),
    "ema_decay": (_opt(lambda v: _number(v) and 0 < v < 1), "a number in (0, 1) or null"),
    "eval_with_ema": (_is_bool, "true or false"),
    "log_every": (_pos_int, "a positive integer"),
    "eval_every": (_opt(_pos_int), "a positive integer or null (every epoch)"),
    "save_every": (_opt(_pos_int), "a positive integer or null (every epoch)"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "device": (_is_str, "auto, cpu, cuda or cuda:N"),
    "progress": (_is_bool, "true or false"),
    "tensorboard": (_is_bool, "true or false"),
    "deterministic": (_is_bool, "true or false"),
    "resume": (_is_bool, "true or false"),
}
SCHEDULE_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: v in SCHEDULES, f"one of {list(SCHEDULES)}"),
    "warmup_steps": (_nonneg_int, "an integer >= 0"),
    "min_lr_ratio": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "gamma": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "interval": (lambda v: v in ("step", "epoch"), "step or epoch"),
}
EVAL_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "split": (lambda v: v in ("train", "valid", "test"), "train, valid or test"),
    "use_ema": (_is_bool, "true or false"),
}
TOP_KEYS = ("model", "models", "data", "task", "optim", "schedule", "trainer", "eval", "out_dir", "description")
TRAINER_DEFAULTS: dict[str, Any] = {"precision": "fp32", "grad_accum": 1, "log_every": 50, "seed": 0,
                                    "device": "auto", "progress": True, "resume": True}


def _unknown(key: str, valid: Sequence[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown recipe key {key!r}{hint}; valid keys here: {sorted(valid)}")


def _check_section(name: str, section: Any, spec: Mapping[str, tuple[Callable[[Any], bool], str]]) -> dict:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"recipe section {name!r} must be a mapping, got {type(section).__name__}")
    for k, v in section.items():
        if k not in spec:
            raise _unknown(f"{name}.{k}", list(spec))
        check, what = spec[k]
        if not check(v):
            raise ConfigError(f"recipe key '{name}.{k}' must be {what}, got {v!r}")
    return dict(section)


def _check_kwargs(name: str, section: dict, fn: Callable, skip: Sequence[str] = ()) -> None:
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    valid = [p for p in params if p not in ("self", "params", *skip)]
    for k in section:
        if k != "name" and k not in valid:
            raise _unknown(f"{name}.{k}", ["name", *valid])


def _check_model(name: str, section: Any) -> None:
    if not isinstance(section, dict) or not isinstance(section.get("name"), str):
        raise ConfigError(f"recipe key '{name}.name' is required: the registry name of the model "
                          "(see `audiozoo list`)")


def validate_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Check a recipe and fill defaults. Raises :class:`ConfigError` naming the first bad key."""
    from .tasks import TASKS

    if not isinstance(recipe, Mapping):
        raise ConfigError(f"a recipe must be a mapping, got {type(recipe).__name__}")
    r = copy.deepcopy(dict(recipe))
    for k in r:
        if k not in TOP_KEYS:
            raise _unknown(str(k), TOP_KEYS)
    if ("model" in r) == ("models" in r):
        raise ConfigError("a recipe needs exactly one of 'model' (one model) or 'models' (name -> model)")
    if "model" in r:
        _check_model("model", r["model"])
    else:
        if not isinstance(r["models"], dict) or not r["models"]:
            raise ConfigError("recipe key 'models' must map model names to {name: ..., overrides}")
        for k, v in r["models"].items():
            _check_model(f"models.{k}", v)
    r["data"] = _check_section("data", r.get("data"), DATA_KEYS)
    if "train" not in r["data"] and r["data"].get("build") is None:
        raise ConfigError("recipe key 'data.train' is required (a manifest path, or give data.build)")
    task = r.get("task") or {"name": "classify"}
    if not isinstance(task, dict) or task.get("name") not in TASKS:
        name = task.get("name") if isinstance(task, dict) else task
        raise ConfigError(f"recipe key 'task.name' must be one of {sorted(TASKS)}, got {name!r}")
    _check_kwargs("task", task, TASKS[task["name"]].__init__, skip=("optim", "schedule"))
    r["task"] = task
    optim = dict(r.get("optim") or {"name": "adamw", "lr": 1e-3})
    if optim.get("name", "adamw") not in OPTIMIZERS:
        raise ConfigError(f"recipe key 'optim.name' must be one of {sorted(OPTIMIZERS)}, got {optim.get('name')!r}")
    optim.setdefault("name", "adamw")
    cls = OPTIMIZERS[optim["name"]]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]
    for k, v in optim.items():
        if k not in ("name", "no_decay_1d", *valid):
            raise _unknown(f"optim.{k}", ["name", "no_decay_1d", *valid])
        if k == "lr" and not _pos_number(v):
            raise ConfigError(f"recipe key 'optim.lr' must be a positive number, got {v!r}")
    r["optim"] = optim
    r["schedule"] = {"name": "constant", **_check_section("schedule", r.get("schedule"), SCHEDULE_KEYS)}
    trainer = {**TRAINER_DEFAULTS, **_check_section("trainer", r.get("trainer"), TRAINER_KEYS)}
    if trainer.get("max_steps") is None and trainer.get("epochs") is None:
        raise ConfigError("recipe needs 'trainer.max_steps' or 'trainer.epochs'")
    r["trainer"] = trainer
    r["eval"] = {"split": "test", "use_ema": True, **_check_section("eval", r.get("eval"), EVAL_KEYS)}
    if "out_dir" in r and not isinstance(r["out_dir"], str):
        raise ConfigError(f"recipe key 'out_dir' must be a path, got {r['out_dir']!r}")
    r.setdefault("out_dir", f"runs/{(r.get('model') or {}).get('name', 'run')}")
    return r


def apply_overrides(recipe: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` entries (values parsed as YAML) in a copy of ``recipe``."""
    r = copy.deepcopy(recipe)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override key {key!r} is malformed")
        cur = r
        for i, part in enumerate(parts[:-1]):
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"cannot set {key!r}: '{'.'.join(parts[:i + 1])}' is {nxt!r}, not a mapping")
            cur = nxt
        cur[parts[-1]] = parse_value(text)
    return r


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a YAML recipe, apply ``overrides`` (``["trainer.max_steps=100", ...]``) and validate it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe file not found: {p}")
    try:
        recipe = yaml.load(p.read_text(), Loader=_RecipeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {e}") from e
    if not isinstance(recipe, dict):
        raise ConfigError(f"{p} must hold a mapping of recipe sections, got {type(recipe).__name__}")
    return validate_recipe(apply_overrides(recipe, overrides))


def _as_recipe(recipe: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    return load_recipe(recipe) if isinstance(recipe, (str, os.PathLike)) else validate_recipe(recipe)


# ----------------------------------------------------------------------------------------------------
# building blocks


def build_datasets(recipe: Mapping[str, Any], splits: Sequence[str] = ("train", "valid"),
                   labels: list | None = None) -> dict[str, Any]:
    """Datasets of ``splits`` via ``audiozoo.data`` (run ``data.build`` first when given).

    Returns ``{"train": ds, "valid": ds | None, ..., "labels": [...] | None, "collate_fn": fn}``; label
    indices of every split follow ``labels`` (else the training set's, else the recipe's).
    """
    try:
        from ..data import AudioDataset, collate_audio
    except ImportError as e:
        raise MissingDependencyError(f"recipes build data with audiozoo.data (AudioDataset, collate_audio): {e}") from e
    d = recipe["data"]
    seed = recipe["trainer"].get("seed", 0)
    base: Path | None = None
    if d.get("build"):
        base = _run_builder(d["build"])
    labels = labels if labels is not None else d.get("labels")
    out: dict[str, Any] = {"collate_fn": collate_audio}
    order = ["train"] + [s for s in splits if s != "train"] if "train" in splits else list(splits)
    for split in order:
        path = d.get(split)
        if path is None and base is not None and (base / f"{split}.jsonl").is_file():
            path = str(base / f"{split}.jsonl")
        if path is None:
            if split == "train":
                raise ConfigError("recipe has no 'data.train' manifest")
            out[split] = None  # optional for training; evaluate_from_recipe says when it is missing
            continue
        p = Path(path)
        if base is not None and not p.is_absolute() and not p.is_file():
            p = base / p
        train = split == "train"
        crop = d.get("crop_seconds") if train else d.get("eval_crop_seconds")
        ds = AudioDataset(str(p), sample_rate=d.get("sample_rate", 16000), mono=d.get("mono", True),
                          crop_seconds=crop, random_crop=train, label_key=d.get("label_key", "label"),
                          labels=labels, seed=seed)
        if labels is None:
            labels = list(getattr(ds, "labels", None) or []) or None
        out[split] = ds
    out["labels"] = labels
    return out


def _run_builder(build: Mapping[str, Any]) -> Path:
    try:
        from ..data.builders import build as build_corpus
    except ImportError as e:
        raise MissingDependencyError(f"data.build needs audiozoo.data.builders: {e}") from e
    from . import distributed as D

    opts = dict(build)
    name, out = opts.pop("name"), opts.pop("out")
    info = D.env_dist_info()
    if info.is_main:  # other ranks wait, then find the finished (resumable) build and skip the work
        build_corpus(name, out, **opts)
    D.barrier()
    if not info.is_main:
        build_corpus(name, out, **opts)
    return Path(out)


def build_models(recipe: Mapping[str, Any], labels: Sequence | None = None) -> dict[str, Any]:
    """The recipe's model(s) through :func:`audiozoo.resolve.resolve_model` (a registry name with config
    overrides, a weight set to fine-tune, a folder); a classifier (a task with ``uses_labels``) gets
    ``num_classes=len(labels)`` unless set."""
    from ..resolve import resolve_model
    from .tasks import get_task_class

    specs = {"model": recipe["model"]} if "model" in recipe else dict(recipe["models"])
    uses_labels = get_task_class(recipe["task"]["name"]).uses_labels
    models = {}
    for key, spec in specs.items():
        overrides = {k: v for k, v in spec.items() if k != "name"}
        if uses_labels and labels and "num_classes" not in overrides:
            overrides["num_classes"] = len(labels)
        models[key] = resolve_model(spec["name"], overrides=overrides)
    return models


def build_task(recipe: Mapping[str, Any]):
    """The task object of the recipe (its optimizer and schedule settings included)."""
    from .tasks import get_task_class

    kwargs = {k: v for k, v in recipe["task"].items() if k != "name"}
    return get_task_class(recipe["task"]["name"])(optim=recipe["optim"], schedule=recipe["schedule"], **kwargs)


def _loader(ds: Any, recipe: Mapping[str, Any], collate: Callable | None, train: bool):
    from torch.utils.data import DataLoader

    d = recipe["data"]
    bs = d.get("batch_size", 16) if train else (d.get("eval_batch_size") or d.get("batch_size", 16))
    nw = d.get("num_workers", 0)
    drop_last = train and d.get("drop_last", True) and len(ds) > bs
    if train and d.get("bucketing"):
        # Length bucketing (less padding); rank-aware, so the engine keeps it under DDP.
        from ..data import BucketingSampler

        sampler = BucketingSampler(ds, bs, num_buckets=d["bucketing"], shuffle=True, drop_last=drop_last,
                                   seed=recipe["trainer"].get("seed", 0))
        return DataLoader(ds, batch_sampler=sampler, num_workers=nw, collate_fn=collate, persistent_workers=nw > 0)
    return DataLoader(ds, batch_size=bs, shuffle=train, drop_last=drop_last,
                      num_workers=nw, collate_fn=collate, persistent_workers=nw > 0)


# ----------------------------------------------------------------------------------------------------
# entry points


def train_from_recipe(recipe: str | os.PathLike | Mapping[str, Any], *,
                      datasets: Mapping[str, Any] | None = None) -> Path:
    """Build data, model(s) and task from ``recipe``, train, and return the run folder (``out_dir``).

    ``datasets`` (``{"train", "valid", "labels", "collate_fn"}``) replaces the data section, e.g. for
    tests or custom data. Re-running the same recipe resumes from ``out_dir/last`` (``trainer.resume``).
    """
    import torch

    from . import distributed as D
    from .engine import Trainer, resolve_device
    from .rng import seed_everything

    r = _as_recipe(recipe)
    tr = dict(r["trainer"])
    info = D.env_dist_info()
    owns_pg = D.init_distributed(resolve_device(tr.get("device", "auto"), info.local_rank))
    try:
        seed_everything(tr["seed"])
        data = dict(datasets) if datasets is not None else build_datasets(r, ("train", "valid"))
        models = build_models(r, data.get("labels"))
        task = build_task(r)
        train_loader = _loader(data["train"], r, data.get("collate_fn"), train=True)
        valid_loader = None
        if data.get("valid") is not None:
            valid_loader = _loader(data["valid"], r, data.get("collate_fn"), train=False)
        resume = tr.pop("resume", True)
        metadata = {"recipe": r, "labels": data.get("labels")}
        trainer = Trainer(task, models, train_loader, valid_loader, out_dir=r["out_dir"], metadata=metadata, **tr)
        trainer.fit(resume=resume)
    finally:
        if owns_pg:
            torch.distributed.destroy_process_group()
    return Path(r["out_dir"])


def _checkpoint_labels(ckpt: Path) -> list | None:
    cfg = ckpt / "config.json"
    if cfg.is_file():
        try:
            return json.loads(cfg.read_text()).get("metadata", {}).get("labels")
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg} is not valid JSON: {e}") from e
    return None


def evaluate_from_recipe(recipe: str | os.PathLike | Mapping[str, Any], checkpoint_dir: str | os.PathLike | None, *,
                         split: str | None = None, use_ema: bool | None = None,
                         datasets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint folder (``best/``, ``last/`` or a hub folder) on a split of the recipe's data.

    ``checkpoint_dir=None`` evaluates the recipe's model as the registry builds it (e.g. a released weight
    set named ``model: {name: basic_pitch_nmp.icassp_2022}``).

    Returns the task's validation metrics plus ``split``, ``items``, ``checkpoint``, ``step`` and ``ema``
    (whether EMA weights were used: ``eval.use_ema`` and an ``ema.safetensors`` present).
    """
    import torch

    from .. import hub
    from .checkpoint import EMA_WEIGHTS, MAIN_WEIGHTS, STATE_JSON, load_weights
    from .engine import resolve_device, run_validation

    r = _as_recipe(recipe)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and not ckpt.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {ckpt}")
    split = split or r["eval"]["split"]
    use_ema = r["eval"]["use_ema"] if use_ema is None else use_ema
    labels = _checkpoint_labels(ckpt) if ckpt is not None else None
    data = dict(datasets) if datasets is not None else build_datasets(r, (split,), labels=labels)
    if data.get(split) is None:
        raise ConfigError(f"recipe has no 'data.{split}' split to evaluate on")
    labels = labels or data.get("labels")
    models = build_models(r, labels)
    files = {next(iter(models)): MAIN_WEIGHTS} if ckpt is not None else {}
    step = None
    if ckpt is not None and (ckpt / STATE_JSON).is_file():
        doc = json.loads((ckpt / STATE_JSON).read_text())
        files = doc["model_files"]
        step = doc["state"].get("progress", {}).get("step")
    for name, m in models.items():
        if ckpt is None:
            break
        if name not in files:
            raise CheckpointError(f"{ckpt} has no weights for model {name!r} (it has {sorted(files)})")
        hub.load_into(m, load_weights(ckpt / files[name]))
    ema_used = bool(use_ema and ckpt is not None and (ckpt / EMA_WEIGHTS).is_file())
    if ema_used:
        hub.load_into(next(iter(models.values())), load_weights(ckpt / EMA_WEIGHTS))
    device = resolve_device(r["trainer"].get("device", "auto"))
    for m in models.values():
        m.to(device)
    task = build_task(r)
    task.device = device
    loader = _loader(data[split], r, data.get("collate_fn"), train=False)
    torch.manual_seed(r["trainer"]["seed"])
    metrics = run_validation(task, models, loader, device, r["trainer"]["precision"])
    return {**metrics, "split": split, "items": len(data[split]),
            "checkpoint": str(ckpt) if ckpt is not None else f"(recipe model {r.get('model', {}).get('name')})",
            "step": step,
            "ema": ema_used}


def format_results(results: Mapping[str, Any]) -> str:
    """A two-column text table of ``results``."""
    rows = [(str(k), f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in results.items()]
    w = max((len(k) for k, _ in rows), default=6)
    line = "-" * (w + 2 + max((len(v) for _, v in rows), default=5))
    return "\n".join([f"{'metric':<{w}}  value", line, *(f"{k:<{w}}  {v}" for k, v in rows)])


# ----------------------------------------------------------------------------------------------------
# CLI


def _cli_train(args: argparse.Namespace) -> int:
    out = train_from_recipe(load_recipe(args.recipe, args.overrides))
    print(out)
    return 0


def _cli_eval(args: argparse.Namespace) -> int:
    results = evaluate_from_recipe(load_recipe(args.recipe, args.overrides), args.checkpoint, split=args.split,
                                   use_ema=False if args.no_ema else None)
    print(format_results(results))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``train RECIPE [key=value ...]`` and ``eval RECIPE --checkpoint DIR [--json OUT]`` to an argparse
    sub-parser collection; each sets ``func`` (``func(args) -> exit code``)."""
    p = subparsers.add_parser("train", help="train from a YAML recipe",
                              description="Train from a YAML recipe; re-running resumes from out_dir/last. "
                                          "Under torchrun every process runs this command (DDP).")
    p.add_argument("recipe", help="recipe YAML file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. trainer.max_steps=100")
    p.set_defaults(func=_cli_train)
    e = subparsers.add_parser("eval", help="evaluate a checkpoint with a recipe's data and task",
                              description="Evaluate a checkpoint folder and print a results table.")
    e.add_argument("recipe", help="recipe YAML file")
    e.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides")
    e.add_argument("--checkpoint", default=None,
                   help="checkpoint folder (out_dir/best, out_dir/last...); default: the recipe's model as built "
                        "(e.g. a released weight set such as basic_pitch_nmp.icassp_2022)")
    e.add_argument("--split", default=None, choices=("train", "valid", "test"), help="default: eval.split (test)")
    e.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA weights exist")
    e.add_argument("--json", dest="json_out", default=None, metavar="OUT", help="also write the results as JSON")
    e.set_defaults(func=_cli_eval)
