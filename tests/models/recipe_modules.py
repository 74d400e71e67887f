"""Import a recipe script (``recipes/<family>/<name>.py``) as a module, for the tests of recipe logic."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_recipe(family: str, name: str) -> ModuleType:
    """``recipes/<family>/<name>.py`` as a fresh module ``_<name>``; its folder goes on ``sys.path`` because
    recipes import their neighbours (e.g. ``digits_loso_cnn`` imports ``digits_loso``)."""
    folder = REPO / "recipes" / family
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"_{name}", folder / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
