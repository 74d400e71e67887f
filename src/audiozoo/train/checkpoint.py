"""Training checkpoints without pickle: safetensors for tensors + JSON for everything else.

A training checkpoint is a folder::

    model.safetensors          main model weights (+ config.json when the model came from create_model,
                               so the folder is also a hub checkpoint: ``create_model(name, pretrained=dir)``)
    <name>.safetensors         every other model (e.g. the discriminator of a GAN)
    ema.safetensors            EMA weights of the main model, a full state dict (optional)
    trainer_state.safetensors  every tensor of the training state (optimizer moments, RNG states...)
    trainer_state.json         the rest (step, epoch, batch position, param groups, schedulers, scaler,
                               best metric...), tensors replaced by references; written last

Nested Python state (an optimizer ``state_dict``, RNG states) is flattened by :func:`encode_tree` into a
JSON tree plus a flat ``{key: tensor}`` dict, and :func:`decode_tree` inverts it exactly (floats are
written with ``repr`` precision, tensors bit for bit) — so resume is bitwise exact and loading a
checkpoint never executes code (unlike ``torch.save``/``torch.load`` which unpickle).

Folders are replaced atomically (:func:`atomic_dir`): written to a temporary sibling, fsynced, then
renamed, so a run killed at any instant leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
EMA_WEIGHTS = "ema.safetensors"
MAIN_WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------------
# tree codec


def encode_tree(obj: Any, prefix: str = "") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure into (JSON-able tree, ``{key: tensor}``).

    Handles dicts (any hashable JSON-scalar keys), lists, tuples, tensors, numpy arrays/scalars, and
    JSON scalars. Tensors are copied to CPU; the tree holds ``{"__tensor__": key}`` in their place.
    """
    tensors: dict[str, torch.Tensor] = {}

    def enc(o: Any, path: str) -> Any:
        if isinstance(o, torch.Tensor):
            tensors[path] = o.detach().to("cpu", copy=True).contiguous()
            return {"__tensor__": path}
        if isinstance(o, np.ndarray):
            return {"__ndarray__": o.tolist(), "dtype": str(o.dtype), "shape": list(o.shape)}
        if isinstance(o, np.generic):
            return o.item()
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        if isinstance(o, tuple):
            return {"__tuple__": [enc(v, f"{path}/{i}") for i, v in enumerate(o)]}
        if isinstance(o, list):
            return [enc(v, f"{path}/{i}") for i, v in enumerate(o)]
        if isinstance(o, Mapping):
            plain = all(isinstance(k, str) and not k.startswith("__") for k in o)
            if plain:
                return {k: enc(v, f"{path}/{k}") for k, v in o.items()}
            # Non-string keys (optimizer state is keyed by int param index) keep their type this way.
            return {"__dict__": [[enc(k, f"{path}/k{i}"), enc(v, f"{path}/{k}")] for i, (k, v) in enumerate(o.items())]}
        raise CheckpointError(f"cannot store a {type(o).__name__} at {path or '/'} in a checkpoint (no pickle)")

    return enc(obj, prefix), tensors


def decode_tree(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_tree`."""

    def dec(o: Any) -> Any:
        if isinstance(o, list):
            return [dec(v) for v in o]
        if isinstance(o, dict):
            if "__tensor__" in o:
                key = o["__tensor__"]
                if key not in tensors:
                    raise CheckpointError(f"checkpoint references tensor {key!r} that is not in {STATE_TENSORS}")
                return tensors[key]
            if "__ndarray__" in o:
                return np.asarray(o["__ndarray__"], dtype=o["dtype"]).reshape(o["shape"])
            if "__tuple__" in o:
                return tuple(dec(v) for v in o["__tuple__"])
            if "__dict__" in o:
                return {dec(k): dec(v) for k, v in o["__dict__"]}
            return {k: dec(v) for k, v in o.items()}
        return o

    return dec(tree)


# ----------------------------------------------------------------------------------------------------
# atomic folders


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``final`` atomically.

    Files are fsynced before the rename. A replaced folder is first renamed to ``.<name>.old`` (POSIX
    cannot rename over a non-empty folder), then deleted; :func:`resolve_checkpoint` recovers it if the
    process dies between the two renames.
    """
    final = Path(final)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkdtemp/mkstemp create owner-only files; give the checkpoint the usual umask permissions.
        os.chmod(tmp, 0o777 & ~umask)
        for f in tmp.rglob("*"):
            if f.is_file():
                os.chmod(f, 0o666 & ~umask)
                _fsync_path(f)
        _fsync_path(tmp)
        old = parent / f".{final.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_path(parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_checkpoint(path: str | os.PathLike) -> Path | None:
    """The complete checkpoint at ``path`` (recovering an interrupted replacement), or None."""
    path = Path(path)
    old = path.parent / f".{path.name}.old"
    if not path.exists() and (old / STATE_JSON).is_file():
        os.rename(old, path)
    return path if (path / STATE_JSON).is_file() else None


def clean_stale_tmp(out_dir: str | os.PathLike) -> None:
    """Remove temporary folders left by a process killed while writing a checkpoint."""
    for p in Path(out_dir).glob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------
# save / load


def _state_for_safetensors(module: nn.Module) -> dict[str, torch.Tensor]:
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}
    return state


def save_weights(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}, str(path),
              metadata=dict(metadata or {"format": "pt"}))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file (the hub's reader: never unpickles, clear errors)."""
    from ..hub import load_state_dict

    return load_state_dict(path)


def load_ema_weights(model: nn.Module, directory: str | os.PathLike) -> bool:
    """Load the EMA weights of a training checkpoint folder (``ema.safetensors``) into ``model`` if the folder
    has them (a hub folder or a run without EMA has not). Returns whether it did."""
    path = Path(directory) / EMA_WEIGHTS
    if not path.is_file():
        return False
    model.load_state_dict(load_weights(path))
    return True


def write_checkpoint(
    directory: str | os.PathLike,
    models: Mapping[str, nn.Module],
    state: Mapping[str, Any],
    *,
    ema_state: Mapping[str, torch.Tensor] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically write a training checkpoint folder (see the module docstring for the layout).

    Args:
        models: name -> unwrapped module; the first one is the main model (``model.safetensors``).
        state: nested training state (tensors allowed anywhere), stored via :func:`encode_tree`.
        ema_state: EMA weights of the main model (a full state dict).
        metadata: JSON-able facts recorded in ``config.json`` when the main model is a hub model.
    """
    from .. import hub

    names = list(models)
    with atomic_dir(directory) as tmp:
        main = models[names[0]]
        if getattr(main, "model_name", None) is not None and getattr(main, "config", None) is not None:
            hub.save_pretrained(main, tmp, metadata=metadata)  # model.safetensors + config.json
        else:
            save_weights(tmp / MAIN_WEIGHTS, _state_for_safetensors(main))
        files = {names[0]: MAIN_WEIGHTS}
        for name in names[1:]:
            files[name] = f"{name}.safetensors"
            save_weights(tmp / files[name], _state_for_safetensors(models[name]))
        if ema_state is not None:
            save_weights(tmp / EMA_WEIGHTS, ema_state)
        tree, tensors = encode_tree(dict(state))
        save_weights(tmp / STATE_TENSORS, tensors)
        doc = {"format_version": FORMAT_VERSION, "model_files": files, "state": tree}
        # Written last: a folder with trainer_state.json is complete.
        (tmp / STATE_JSON).write_text(json.dumps(doc, indent=1) + "\n")
    return Path(directory)


StateDict = dict[str, torch.Tensor]


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, StateDict], StateDict | None, dict[str, Any]]:
    """Read a folder written by :func:`write_checkpoint`.

    Returns:
        (model name -> state dict, EMA state dict or None, decoded training state)
    """
    d = resolve_checkpoint(directory)
    if d is None:
        raise CheckpointError(f"{directory} is not a complete training checkpoint ({STATE_JSON} is missing)")
    try:
        doc = json.loads((d / STATE_JSON).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{d / STATE_JSON} is not valid JSON: {e}") from e
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{d}: unsupported checkpoint format {doc.get('format_version')!r}")
    weights = {name: load_weights(d / f) for name, f in doc["model_files"].items()}
    ema = load_weights(d / EMA_WEIGHTS) if (d / EMA_WEIGHTS).is_file() else None
    state = decode_tree(doc["state"], load_weights(d / STATE_TENSORS))
    return weights, ema, state


def export_pretrained(checkpoint_dir: str | os.PathLike, out_dir: str | os.PathLike, use_ema: bool = True) -> Path:
    """Write a hub folder (``config.json`` + ``model.safetensors``) from a training checkpoint's main model.

    With ``use_ema`` (and EMA weights present) the averaged weights become ``model.safetensors`` — what
    one ships. The result loads with ``audiozoo.create_model(name, pretrained=out_dir)``.
    """
    src = resolve_checkpoint(checkpoint_dir)
    if src is None:
        raise CheckpointError(f"{checkpoint_dir} is not a complete training checkpoint")
    if not (src / "config.json").is_file():
        raise CheckpointError(f"{src} has no config.json: its model was not built by audiozoo.create_model")
    weights = src / EMA_WEIGHTS if use_ema and (src / EMA_WEIGHTS).is_file() else src / MAIN_WEIGHTS
    cfg = json.loads((src / "config.json").read_text())
    cfg.setdefault("metadata", {})["weights"] = "ema" if weights.name == EMA_WEIGHTS else "raw"
    with atomic_dir(out_dir) as tmp:
        save_weights(tmp / MAIN_WEIGHTS, load_weights(weights),
                     metadata={"format": "pt", "model_name": str(cfg.get("model_name", ""))})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return Path(out_dir)
