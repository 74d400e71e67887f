"""DESIGN.md import rules, for every layer (the graph of ``import`` statements, function-level imports included).

- ``dsp`` imports nothing of audiozoo (but ``errors``/``config``); ``nn`` only ``dsp``;
- a model file imports only ``nn``, ``dsp``, ``text``, ``models.contracts``, the registry, hub, config and errors —
  never another model file;
- ``data`` imports only ``dsp``; ``text`` nothing; ``eval`` only ``dsp`` and ``data`` (all: plus errors/config;
  see below for ``text`` and ``hub``, a leaf that reads pinned weight files);
- ``train`` never imports ``pipelines`` nor a model file (models reach tasks as objects; ``models.contracts`` is
  allowed); task modules never import each other (shared code: ``tasks/base.py``, ``tasks/_*.py``, ``losses/``);
- ``pipelines`` never import ``train``; ``export`` and the CLI import no model file (they load models through the
  registry and ``resolve_model``); ``hub`` does not import ``registry``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "audiozoo"
COMMON = {"audiozoo.errors", "audiozoo.config"}
WEIGHTS_IO = ("audiozoo.hub",)  # a leaf (see test_hub_is_a_leaf): allowed wherever weight files are read


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> set[str]:
    mod_parts = _module_name(path)
    pkg = mod_parts if path.name == "__init__.py" else mod_parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    out |= {f"{name}.{a.name}" for a in node.names}
                    continue
            else:
                name = node.module or ""
            out.add(name)
    return {m for m in out if m.split(".")[0] == "audiozoo"}


def _files(folder: str) -> list[Path]:
    p = SRC / folder
    return [p] if p.is_file() else sorted(p.rglob("*.py"))


def _is_model_file(module: str) -> bool:
    """``audiozoo.models`` itself or anything under it except ``audiozoo.models.contracts``."""
    return (module == "audiozoo.models" or module.startswith("audiozoo.models.")) and not (
        module == "audiozoo.models.contracts" or module.startswith("audiozoo.models.contracts."))


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(folder: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of audiozoo modules outside ``allowed`` (and errors/config) by the files of ``folder``."""
    bad = []
    for f in _files(folder):
        for m in sorted(_imports(f)):
            if m in COMMON or _within(m, allowed):
                continue
            bad.append(f"{f.relative_to(SRC)} imports {m}")
    return bad


def _forbidden(folder: str, rule) -> list[str]:
    return [f"{f.relative_to(SRC)} imports {m}" for f in _files(folder) for m in sorted(_imports(f)) if rule(m)]


def test_the_import_graph_is_read_correctly():
    # the checker itself: relative, absolute and function-level imports are all seen
    got = _imports(SRC / "train" / "tasks" / "distill.py")
    assert {"audiozoo.train.tasks.base", "audiozoo.train.losses.kl", "audiozoo.train.tasks._common"} <= got
    assert "audiozoo.resolve" in _imports(SRC / "train" / "tasks" / "_common.py")  # a function-level import
    assert _is_model_file("audiozoo.models.codec.rave") and not _is_model_file("audiozoo.models.contracts")


def test_dsp_imports_nothing_of_audiozoo():
    assert _violations("dsp", ("audiozoo.dsp",)) == []


def test_nn_imports_only_dsp():
    assert _violations("nn", ("audiozoo.nn", "audiozoo.dsp")) == []


def test_model_files_import_no_other_model():
    # train.losses: the pure loss functions an SSL model's contract method pretrain_loss calls (a leaf, below)
    allowed = ("audiozoo.nn", "audiozoo.dsp", "audiozoo.text", "audiozoo.models.contracts", "audiozoo.registry",
               "audiozoo.hub", "audiozoo.train.losses")
    bad = []
    for f in sorted((SRC / "models").rglob("*.py")):
        if f.name in ("__init__.py", "contracts.py"):
            continue  # package __init__ files import their model files to register them
        for m in _imports(f):
            if m in COMMON or _within(m, allowed):
                continue
            bad.append(f"{f.relative_to(SRC)} imports {m}")
    assert bad == []


def test_contracts_import_only_lower_layers():
    # family base classes hold logic several model files share (e.g. MaskedPatchSSLModel for SSAST and SSAMBA)
    assert _violations("models/contracts.py", ("audiozoo.nn", "audiozoo.dsp", "audiozoo.text",
                                                   "audiozoo.train.losses")) == []


# data, text and eval sit above dsp and may use two more base layers: text (corpus builders phonemise their
# transcripts; judges embed captions) and hub (pinned package weights are read and sha256-checked through it).
# Neither imports any model, task or pipeline (docs/architecture.md).
def test_data_text_eval_import_only_base_layers():
    bad = _violations("text", ("audiozoo.text", *WEIGHTS_IO))
    bad += _violations("data", ("audiozoo.data", "audiozoo.dsp", "audiozoo.text", *WEIGHTS_IO))
    bad += _violations("eval", ("audiozoo.eval", "audiozoo.dsp", "audiozoo.data", "audiozoo.text", *WEIGHTS_IO))
    assert bad == []


def test_train_imports_no_pipeline_and_no_model_file():
    assert _forbidden("train", lambda m: _within(m, ("audiozoo.pipelines",)) or _is_model_file(m)) == []


def test_task_modules_do_not_import_each_other():
    # shared code lives in tasks/base.py, the tasks/_*.py helper modules, or train/losses
    tasks = SRC / "train" / "tasks"
    names = {f.stem for f in tasks.glob("*.py") if f.stem != "__init__" and f.stem != "base"
             and not f.stem.startswith("_")}
    bad = []
    for f in sorted(tasks.glob("*.py")):
        if f.stem == "__init__":
            continue  # the package imports every task module to register it
        for m in sorted(_imports(f)):
            parts = m.split(".")
            if parts[:3] == ["audiozoo", "train", "tasks"] and len(parts) > 3 and parts[3] in names and \
                    parts[3] != f.stem:
                bad.append(f"tasks/{f.name} imports {m}")
    assert bad == []


def test_pipelines_never_import_train():
    assert _forbidden("pipelines", lambda m: _within(m, ("audiozoo.train",))) == []


def test_export_and_cli_import_no_model_file():
    assert _forbidden("export", _is_model_file) + _forbidden("cli.py", _is_model_file) == []


def test_hub_is_a_leaf():
    # hub does not import registry (nor anything but errors/config; the package version string is read at
    # save time): every layer may read weights through it
    assert _violations("hub.py", ("audiozoo.__version__",)) == []


def test_models_are_loaded_only_through_the_resolver():
    """Pipelines, the CLI, the demo, tasks and export build no model themselves: no create_model /
    from_pretrained / factory calls (resolve_model is the one loader)."""
    import ast as _ast

    bad = []
    files = [*(SRC / "pipelines").rglob("*.py"), *(SRC / "train").rglob("*.py"), *(SRC / "export").rglob("*.py"),
             SRC / "cli.py", SRC / "demo.py"]
    for f in files:
        for node in _ast.walk(_ast.parse(f.read_text())):
            if isinstance(node, _ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, _ast.Attribute) else getattr(fn, "id", "")
                if name in ("create_model", "from_pretrained", "factory"):
                    bad.append(f"{f.relative_to(SRC)}:{node.lineno} calls {name}")
    assert bad == []


def test_losses_are_a_leaf_of_pure_functions():
    """train/losses imports only dsp, nn, eval (metrics) and itself: model files may call it without pulling in
    the engine, the tasks or the resolver (audiozoo.train's own names are lazy)."""
    assert _violations("train/losses", ("audiozoo.train.losses", "audiozoo.dsp", "audiozoo.nn", "audiozoo.eval")) == []
