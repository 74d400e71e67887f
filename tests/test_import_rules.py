"""DESIGN.md import rules: dsp imports nothing of audiozoo; nn only dsp; a model file never another model."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "audiozoo"
COMMON = {"audiozoo.errors", "audiozoo.config"}


def _imports(path: Path) -> set[str]:
    mod_parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if mod_parts[-1] == "__init__":
        mod_parts = mod_parts[:-1]
        pkg = mod_parts
    else:
        pkg = mod_parts[:-1]
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
    return {m for m in out if m.startswith("audiozoo")}


def _violations(folder: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for f in sorted((SRC / folder).rglob("*.py")):
        for m in _imports(f):
            if m in COMMON or m.startswith(allowed):
                continue
            bad.append(f"{f.relative_to(SRC)} imports {m}")
    return bad


def test_dsp_imports_nothing_of_audiozoo():
    assert _violations("dsp", ("audiozoo.dsp",)) == []


def test_nn_imports_only_dsp():
    assert _violations("nn", ("audiozoo.nn", "audiozoo.dsp")) == []


def test_model_files_import_no_other_model():
    allowed = ("audiozoo.nn", "audiozoo.dsp", "audiozoo.text", "audiozoo.models.contracts", "audiozoo.registry",
               "audiozoo.hub")
    bad = []
    for f in sorted((SRC / "models").rglob("*.py")):
        if f.name in ("__init__.py", "contracts.py"):
            continue  # package __init__ files import their model files to register them
        for m in _imports(f):
            if m in COMMON or m.startswith(allowed):
                continue
            bad.append(f"{f.relative_to(SRC)} imports {m}")
    assert bad == []
