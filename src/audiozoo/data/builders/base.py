"""The corpus-builder framework: options, resumable item loop, manifests, stats and README.

A builder lists deterministic *tasks* (one per output item) and turns one task into one manifest
entry, writing its files atomically. :meth:`Builder.run` does the rest the same way for every corpus:

* ``build.json`` records the options; re-running into the same folder with other options is refused
  (mixing two configurations in one corpus would be silent corruption).
* every finished item is appended to ``.journal.jsonl`` *after* its files are in place, so an
  interrupted build resumes where it stopped: items whose journal entry exists and whose files all
  exist are reused, anything else (e.g. a deleted file) is rebuilt.
* at the end ``manifest.jsonl`` (+ ``train/valid/test.jsonl`` where the corpus has splits),
  ``stats.json``, ``README.md`` and the ``.done`` marker are written; a second run over a complete
  build only checks that the files are still there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError, MissingDependencyError
from ..manifest import atomic_write_text, default_file_mode, item_files, read_manifest, write_manifest

log = logging.getLogger("audiozoo.data")

MANIFEST = "manifest.jsonl"
DONE = ".done"
JOURNAL = ".journal.jsonl"
BUILD_INFO = "build.json"


@dataclasses.dataclass(frozen=True)
class Option:
    """One builder option: the keyword of :func:`build` and the ``--flag`` of ``audiozoo data build``."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    nargs: str | None = None  # "+" for lists
    choices: Sequence[Any] | None = None
    flag: bool = False  # a boolean switch (--valid)

    @property
    def cli(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Task:
    """One output item to make: a stable ``id`` (used for file names and the journal) and its data."""

    id: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    """What a builder's methods receive: the output folder, the resolved options and a scratch dict."""

    out: Path
    opts: dict[str, Any]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    built: int = 0
    reused: int = 0

    def path(self, rel: str) -> Path:
        return self.out / rel

    def write_audio(self, rel: str, wav: Any, sample_rate: int, subtype: str | None = "PCM_16") -> str:
        """Save audio to ``out/rel`` atomically (temporary file + rename); returns ``rel``."""
        from ...dsp.io import save_audio

        dst = self.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=dst.suffix, dir=dst.parent)
        os.close(fd)
        os.chmod(tmp, default_file_mode())
        try:
            save_audio(tmp, wav, sample_rate, subtype=subtype)
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return rel

    def write_json(self, rel: str, obj: Any) -> str:
        atomic_write_text(self.out / rel, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
        return rel


def shared_data_root(source: str | os.PathLike | None = None) -> Path:
    """Folder of the real recordings: ``source``, else ``$AUDIOZOO_SHARED_DATA``, else
    ``<repo>/../shared/data`` (also tried relative to the working directory)."""
    if source is not None:
        p = Path(source).expanduser()
        if not p.is_dir():
            raise DataError(f"--source {p} is not a folder")
        return p
    env = os.environ.get("AUDIOZOO_SHARED_DATA")
    if env:
        if not Path(env).is_dir():
            raise DataError(f"AUDIOZOO_SHARED_DATA={env} is not a folder")
        return Path(env)
    repo = Path(__file__).resolve().parents[4]
    candidates = [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    raise DataError(
        "the real recordings (shared/data) were not found: looked in "
        + ", ".join(str(c) for c in candidates)
        + "; pass --source DIR or set AUDIOZOO_SHARED_DATA"
    )


def require_tool(program: str, feature: str, package: str | None = None) -> str:
    """Path of an executable, or :class:`MissingDependencyError` saying how to install it."""
    path = shutil.which(program)
    if path is None:
        raise MissingDependencyError(
            f"{feature} needs the '{program}' program, which is not installed "
            f"(Debian/Ubuntu: apt-get install {package or program})"
        )
    return path


def apt_install(package: str, feature: str) -> None:
    """Install a Debian package when running as root with apt-get; else a clear error."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        raise MissingDependencyError(
            f"{feature} needs the Debian package '{package}' (apt-get install {package}); "
            "it is not installed and this process cannot install it (not root or no apt-get)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing %s with apt-get", package)
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise MissingDependencyError(
                f"{feature} needs the Debian package '{package}' and apt-get could not install it: "
                f"{r.stderr.strip()[-500:]}"
            )


def run_tool(cmd: Sequence[str], what: str, input: str | None = None, timeout: float = 300) -> str:
    """Run an external program; a failure raises :class:`DataError` with its stderr."""
    try:
        r = subprocess.run(list(cmd), input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise DataError(f"{what}: '{shlex.join(cmd)}' timed out after {timeout} s") from e
    if r.returncode != 0:
        raise DataError(f"{what}: '{shlex.join(cmd)}' failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def tool_version(cmd: Sequence[str]) -> str:
    """The line of a program's version output that holds a version number (for README provenance)."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
        lines = [ln.strip() for ln in (r.stdout or r.stderr).strip().splitlines() if ln.strip()]
        return next((ln for ln in lines if re.search(r"\d+\.\d+", ln)), lines[0] if lines else "unknown")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Journal:
    """Append-only record of finished items (``{"id", "entry"}`` or ``{"id", "skip"}`` per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return done
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by an interruption: that item is redone
                    continue
                if isinstance(rec, dict) and "id" in rec:
                    done[rec["id"]] = rec
        return done

    def append(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False)
        with open(self.path, "a+", encoding="utf-8") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:  # an interrupted previous write may have left no newline
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    f.write("\n")
            f.write(line + "\n")
            f.flush()


class Builder:
    """Base class of a corpus builder; subclasses set the class attributes and implement
    :meth:`tasks` and :meth:`make_item` (and optionally :meth:`prepare`, :meth:`split`, ...)."""

    name: str = ""
    description: str = ""
    license: str = ""
    version: int = 1  # bump when the output of the same options changes
    options: tuple[Option, ...] = ()
    stat_keys: tuple[str, ...] = ()  # manifest keys whose value counts go into stats.json
    last_context: Context | None = None  # the last run's context (``built``/``reused`` counts)

    # -- to implement ------------------------------------------------------------------------------
    def prepare(self, ctx: Context) -> None:
        """Check tools and sources (raise a clear error when missing); fill ``ctx.extra``."""

    def fingerprint(self, ctx: Context) -> dict[str, Any]:
        """Inputs besides the options that determine the output (e.g. hashes of source manifests)."""
        return {}

    def tasks(self, ctx: Context) -> Iterable[Task]:
        raise NotImplementedError

    def make_item(self, ctx: Context, task: Task) -> dict[str, Any] | None:
        """Write the item's files (atomically) and return its manifest entry (paths relative to the
        output folder or absolute), or None to skip the task (e.g. an empty source)."""
        raise NotImplementedError

    def should_stop(self, ctx: Context, items: list[dict[str, Any]]) -> bool:
        """Stop before the next task (e.g. a target number of hours reached)."""
        return False

    def progress(self, ctx: Context, tasks: Iterable[Task]) -> tuple[float | None, str]:
        """tqdm ``(total, unit)``; :meth:`progress_step` says how far one item advances the bar."""
        return (len(tasks) if isinstance(tasks, Sequence) else None), "item"

    def progress_step(self, ctx: Context, entry: dict[str, Any] | None) -> float:
        return 1

    def split(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]] | None:
        """Named subsets written as ``<name>.jsonl`` (None: no splits)."""
        return None

    def extra_stats(self, ctx: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {}

    def readme_body(self, ctx: Context, stats: dict[str, Any]) -> str:
        """Provenance and license text specific to the corpus (markdown)."""
        return ""

    # -- machinery ---------------------------------------------------------------------------------
    def resolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"builder '{self.name}' has no option(s) {unknown}; valid: {sorted(known)}"
            )
        opts = {}
        for name, o in known.items():
            v = options.get(name, o.default)
            if o.nargs and isinstance(v, tuple):
                v = list(v)
            if o.choices is not None and v is not None:
                for x in v if isinstance(v, list) else [v]:
                    if x not in o.choices:
                        raise ConfigError(f"{self.name}: {o.cli} must be one of {list(o.choices)}, got {x!r}")
            opts[name] = v
        return opts

    def run(self, out_dir: str | os.PathLike, progress: bool | None = None, **options: Any) -> Path:
        """Build (or finish, or verify) the corpus in ``out_dir``; returns the path of ``manifest.jsonl``.

        ``progress``: show a tqdm bar (None: only on a terminal).
        """
        from tqdm.auto import tqdm

        opts = self.resolve_options(options)
        out = Path(out_dir).expanduser()
        ctx = Context(out=out, opts=opts)
        self.prepare(ctx)
        info = {"builder": self.name, "version": self.version, "options": opts, **self.fingerprint(ctx)}
        info = json.loads(json.dumps(info, default=str))  # normalise (tuples, paths) for comparison
        out.mkdir(parents=True, exist_ok=True)
        info_path = out / BUILD_INFO
        if info_path.exists():
            old = json.loads(info_path.read_text(encoding="utf-8"))
            if old != info:
                diff = {k: (old.get(k), info.get(k)) for k in set(old) | set(info) if old.get(k) != info.get(k)}
                raise DataError(
                    f"{out} holds a '{old.get('builder')}' build with other settings {diff} (old, new); "
                    "use another --out folder or delete this one"
                )
        else:
            atomic_write_text(info_path, json.dumps(info, indent=1) + "\n")
        manifest = out / MANIFEST
        if (out / DONE).exists() and manifest.exists() and self._complete(manifest):
            ctx.reused = len(read_manifest(manifest))
            self.last_context = ctx
            log.info("%s: %s is complete (%d items)", self.name, out, ctx.reused)
            return manifest
        (out / DONE).unlink(missing_ok=True)

        journal = Journal(out / JOURNAL)
        finished = journal.load()
        tasks = self.tasks(ctx)
        total, unit = self.progress(ctx, tasks)
        items: list[dict[str, Any]] = []
        fmt = None
        if total is not None:  # whole numbers even when the bar counts seconds of audio
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]"
        with tqdm(total=total, unit=unit, desc=self.name, disable=(None if progress is None else not progress),
                  dynamic_ncols=True, bar_format=fmt) as bar:
            for task in tasks:
                if self.should_stop(ctx, items):
                    break
                rec = finished.get(task.id)
                if rec is not None and ("skip" in rec or self._files_exist(out, rec["entry"])):
                    ctx.reused += 1
                else:
                    entry = self.make_item(ctx, task)
                    rec = {"id": task.id, "entry": entry} if entry is not None else {"id": task.id, "skip": True}
                    journal.append(rec)
                    ctx.built += 1
                entry = rec.get("entry")
                if entry is not None:
                    items.append(entry)
                step = self.progress_step(ctx, entry)
                if total is not None:  # the last item may overshoot a target in seconds
                    step = max(0.0, min(step, total - bar.n))
                bar.update(step)
        if not items:
            raise DataError(f"{self.name}: no items were produced (check the source and options)")
        splits = self.split(ctx, items)
        for name, subset in (splits or {}).items():
            write_manifest(out / f"{name}.jsonl", subset)
        write_manifest(manifest, items)
        stats = self.stats(ctx, items, splits)
        atomic_write_text(out / "stats.json", json.dumps(stats, indent=1, ensure_ascii=False) + "\n")
        atomic_write_text(out / "README.md", self.readme(ctx, stats))
        atomic_write_text(out / DONE, json.dumps({"items": len(items)}) + "\n")
        self.last_context = ctx
        log.info("%s: %d items built, %d reused -> %s", self.name, ctx.built, ctx.reused, manifest)
        return manifest

    @staticmethod
    def _files_exist(out: Path, entry: dict[str, Any]) -> bool:
        return all((out / f).is_file() for f in item_files(entry))  # absolute f overrides out

    @staticmethod
    def _complete(manifest: Path) -> bool:
        try:
            return all(os.path.isfile(f) for it in read_manifest(manifest) for f in item_files(it))
        except DataError:
            return False

    def stats(
        self, ctx: Context, items: list[dict[str, Any]], splits: dict[str, list[dict[str, Any]]] | None
    ) -> dict[str, Any]:
        durs = [float(it["duration"]) for it in items]
        stats: dict[str, Any] = {
            "items": len(items),
            "hours": round(sum(durs) / 3600, 6),
            "seconds": {"total": round(sum(durs), 3), "min": round(min(durs), 4), "max": round(max(durs), 4),
                        "mean": round(sum(durs) / len(durs), 4)},
        }
        if splits:
            stats["splits"] = {
                k: {"items": len(v), "hours": round(sum(float(i["duration"]) for i in v) / 3600, 6)}
                for k, v in splits.items()
            }
        for key in self.stat_keys:
            c: Counter = Counter()
            for it in items:
                v = it.get(key)
                for x in v if isinstance(v, list) else [v]:
                    if x is not None:
                        c[str(x)] += 1
            stats[f"per_{key}"] = dict(sorted(c.items()))
        stats.update(self.extra_stats(ctx, items))
        return stats

    def cli_command(self, ctx: Context) -> str:
        parts = ["audiozoo", "data", "build", self.name, "--out", str(ctx.out)]
        for o in self.options:
            v = ctx.opts.get(o.name)
            if v is None or v == o.default:
                continue
            if o.flag:
                parts.append(o.cli) if v else None
            elif isinstance(v, list):
                parts += [o.cli, *map(str, v)]
            else:
                parts += [o.cli, str(v)]
        return shlex.join(parts)

    def readme(self, ctx: Context, stats: dict[str, Any]) -> str:
        opts = "\n".join(f"| `{o.cli}` | `{ctx.opts.get(o.name)}` | {o.help} |" for o in self.options)
        splits = ", ".join(f"`{k}.jsonl` ({v['items']})" for k, v in (stats.get("splits") or {}).items())
        return (
            f"# {self.name}\n\n{self.description}\n\n"
            f"Built by audiozoo's `{self.name}` corpus builder (version {self.version}). Rebuild with:\n\n"
            f"```\n{self.cli_command(ctx)}\n```\n\n"
            f"## Contents\n\n{stats['items']} items, {stats['hours']:.3f} hours. "
            f"`{MANIFEST}` lists all items (JSONL, paths relative to this folder)"
            + (f"; splits: {splits}" if splits else "")
            + ". `stats.json` has the counts.\n\n"
            f"## Options\n\n| option | value | meaning |\n|---|---|---|\n{opts}\n\n"
            f"{self.readme_body(ctx, stats).strip()}\n\n"
            f"## License\n\n{self.license}\n"
        )
