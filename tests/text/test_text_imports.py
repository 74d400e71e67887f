"""The text front-end modules import nothing of audiozoo but errors and config (model files import them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TEXT = Path(__file__).resolve().parents[2] / "src" / "audiozoo" / "text"
FRONT_END = ["__init__.py", "symbols.py", "phonemes.py", "normalize.py", "tokenizers.py", "frontend.py"]
ALLOWED = {"audiozoo.errors", "audiozoo.config"}


@pytest.mark.parametrize("name", FRONT_END)
def test_front_end_imports_only_errors_and_config(name):
    bad = []
    for node in ast.walk(ast.parse((TEXT / name).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            mod = "audiozoo.text" if node.level == 1 else "audiozoo"
            mod = f"{mod}.{node.module}" if node.module else mod
            if not (mod.startswith("audiozoo.text.") or mod in ALLOWED):
                bad.append(mod)
            if node.level == 1 and node.module and node.module.split(".")[0] not in {p[:-3] for p in FRONT_END}:
                bad.append(mod)  # a sibling that is not part of the front end
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("audiozoo"):
            if node.module not in ALLOWED:
                bad.append(node.module)
        elif isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.startswith("audiozoo") and a.name not in ALLOWED]
    assert bad == []
