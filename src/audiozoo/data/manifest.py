"""JSONL manifests: one audio item per line (the NeMo / many-recipes convention).

Each line is a JSON object with at least ``audio_filepath`` and ``duration`` (seconds), and optionally
``offset`` (seconds into the file), ``label``, ``text``, ``phonemes``, ``speaker``, ``stems`` (name -> path),
``notes`` (path of a notes file or an inline list) and any extra keys, which are kept as they are.

Relative paths resolve against the folder of the manifest, so a corpus folder can be moved as a whole.
:func:`read_manifest` returns absolute paths and records where each item came from in the private key
``_where`` (``"path/to/manifest.jsonl:12"``) so that later errors (e.g. an unreadable file found while
training) can name the manifest line; :func:`write_manifest` drops private ``_`` keys.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import AudioError, DataError

WHERE = "_where"  # private key: "manifest:line" of an item, used in error messages
PATH_KEYS = ("audio_filepath",)  # keys holding one path; ``stems`` (dict) and ``notes`` (str) too


def where(item: dict[str, Any], default: str = "<items>") -> str:
    """``"manifest.jsonl:12"`` for an item read by :func:`read_manifest`, else ``default``."""
    return str(item.get(WHERE, default))


def _resolve(value: str, base: Path) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p))


def validate_item(item: Any, loc: str, base: Path | None = None) -> dict[str, Any]:
    """Check one manifest item and return a copy with paths resolved against ``base``.

    Raises :class:`DataError` naming ``loc`` (``file:line``) and the offending field.
    """
    if not isinstance(item, dict):
        raise DataError(f"{loc}: expected a JSON object, got {type(item).__name__}")
    out = dict(item)
    path = out.get("audio_filepath")
    if not isinstance(path, str) or not path:
        raise DataError(f"{loc}: missing or empty 'audio_filepath'")
    dur = out.get("duration")
    if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not math.isfinite(dur) or dur < 0:
        raise DataError(f"{loc}: missing or invalid 'duration' (seconds >= 0), got {dur!r}")
    off = out.get("offset", 0.0)
    if isinstance(off, bool) or not isinstance(off, (int, float)) or not math.isfinite(off) or off < 0:
        raise DataError(f"{loc}: invalid 'offset' (seconds >= 0), got {off!r}")
    stems = out.get("stems")
    if stems is not None and (
        not isinstance(stems, dict) or not all(isinstance(v, str) and v for v in stems.values())
    ):
        raise DataError(f"{loc}: 'stems' must map stem names to file paths, got {stems!r}")
    notes = out.get("notes")
    if notes is not None and not isinstance(notes, (str, list)):
        raise DataError(f"{loc}: 'notes' must be a file path or an inline list, got {type(notes).__name__}")
    if base is not None:
        out["audio_filepath"] = _resolve(path, base)
        if stems is not None:
            out["stems"] = {k: _resolve(v, base) for k, v in stems.items()}
        if isinstance(notes, str):
            out["notes"] = _resolve(notes, base)
    out[WHERE] = loc
    return out


def item_files(item: dict[str, Any]) -> list[str]:
    """Every file an item refers to: the audio, its stems and a notes file (absolute if read)."""
    files = [item["audio_filepath"]]
    files += list((item.get("stems") or {}).values())
    if isinstance(item.get("notes"), str):
        files.append(item["notes"])
    return files


def check_item_files(item: dict[str, Any]) -> None:
    """Raise :class:`DataError` naming the manifest line if a referenced file is missing or unreadable."""
    from ..dsp.io import audio_info

    loc = where(item)
    for f in item_files(item):
        if not os.path.isfile(f):
            raise DataError(f"{loc}: file not found: {f}")
    for f in [item["audio_filepath"], *(item.get("stems") or {}).values()]:
        try:
            audio_info(f)
        except (AudioError, OSError, RuntimeError) as e:
            raise DataError(f"{loc}: unreadable audio file {f}: {e}") from e


def read_manifest(path: str | os.PathLike, check_files: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL manifest into a list of item dicts (paths made absolute; blank lines skipped).

    With ``check_files`` every audio/stem file must exist and have a readable header.
    Errors are :class:`DataError` naming the file and line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    base = Path(os.path.abspath(path.parent))
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            loc = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{loc}: bad JSON ({e.msg} at column {e.colno})") from e
            item = validate_item(obj, loc, base)
            if check_files:
                check_item_files(item)
            items.append(item)
    return items


def _relative(value: str, base: Path) -> str:
    """``value`` relative to ``base`` when it lies inside it (keeps a corpus folder relocatable)."""
    p = Path(value)
    if not p.is_absolute():
        return Path(value).as_posix()
    try:
        return Path(os.path.abspath(p)).relative_to(base).as_posix()
    except ValueError:
        return str(p)


def _jsonable(o: Any) -> Any:
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "tolist"):  # numpy / torch scalars and arrays
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def dumps_item(item: dict[str, Any]) -> str:
    """One manifest line (no newline) with private ``_`` keys removed."""
    clean = {k: v for k, v in item.items() if not k.startswith("_")}
    return json.dumps(clean, ensure_ascii=False, default=_jsonable)


def default_file_mode(directory: bool = False) -> int:
    """Permissions a newly created file (0666) or folder (0777) would get, less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``,
    so a reader (or a resumed build) sees either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_manifest(path: str | os.PathLike, items: Iterable[dict[str, Any]], relative: bool = True) -> Path:
    """Write ``items`` as a JSONL manifest, atomically.

    Each item is validated (``audio_filepath`` and ``duration`` required). With ``relative`` (default),
    paths inside the manifest's folder are written relative to it; other paths are kept as given.
    """
    path = Path(path)
    base = Path(os.path.abspath(path.parent))
    lines = []
    for i, item in enumerate(items):
        loc = f"{path} item {i}"
        validate_item(item, loc)  # raises on a bad item before anything is written
        out = dict(item)
        if relative:
            out["audio_filepath"] = _relative(out["audio_filepath"], base)
            if out.get("stems") is not None:
                out["stems"] = {k: _relative(v, base) for k, v in out["stems"].items()}
            if isinstance(out.get("notes"), str):
                out["notes"] = _relative(out["notes"], base)
        try:
            lines.append(dumps_item(out))
        except TypeError as e:
            raise DataError(f"{loc}: cannot write as JSON: {e}") from e
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
