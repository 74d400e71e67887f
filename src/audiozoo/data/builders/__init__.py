"""Corpus builders: one module per corpus, all behind :data:`BUILDERS` and :func:`build`.

>>> from audiozoo.data.builders import build
>>> manifest = build("fsdd", "cache/fsdd", valid=True)        # doctest: +SKIP

On the command line (wired into ``audiozoo`` by :func:`add_cli`)::

    audiozoo data list
    audiozoo data build speech-synth --out cache/tts --hours 0.5 --voices multi
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .asr_pseudo import AsrPseudoBuilder
from .base import Builder, Context, Option, Task, shared_data_root
from .fsdd import FSDDBuilder
from .mixtures import MixturesBuilder
from .music_render import MusicRenderBuilder
from .piper_speech import PiperSpeechBuilder
from .sonic_pi import SonicPiBuilder
from .speech_synth import SpeechSynthBuilder
from .yesno import YesNoBuilder

BUILDERS: dict[str, Builder] = {
    b.name: b
    for b in (
        FSDDBuilder(), YesNoBuilder(), SpeechSynthBuilder(), MusicRenderBuilder(), MixturesBuilder(),
        SonicPiBuilder(), PiperSpeechBuilder(), AsrPseudoBuilder(),
    )
}


def build(name: str, out_dir: str | os.PathLike, progress: bool | None = None, **options: Any) -> Path:
    """Build corpus ``name`` into ``out_dir`` (resuming an interrupted build); returns its manifest path.

    ``options`` are the builder's options (see ``audiozoo data build NAME --help``), e.g.
    ``build("speech-synth", "out", hours=0.1, voices="multi")``.
    """
    if name not in BUILDERS:
        raise ConfigError(f"unknown corpus builder '{name}'; available: {sorted(BUILDERS)}")
    return BUILDERS[name].run(out_dir, progress=progress, **options)


def _cmd_list(args: argparse.Namespace) -> int:
    for name, b in BUILDERS.items():
        print(f"{name:14s} {b.description}")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    b = BUILDERS[args.builder]
    opts = {o.name: getattr(args, o.name) for o in b.options}
    manifest = build(args.builder, args.out, progress=not args.quiet, **opts)
    print(manifest)
    return 0


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data list`` and ``data build NAME --out DIR [--option value ...]`` to an argparse
    sub-parser collection. Each leaf parser sets ``func`` (``func(args) -> exit code``)."""
    data = subparsers.add_parser("data", help="build corpora (manifests) and list the builders")
    sub = data.add_subparsers(dest="data_command", metavar="{list,build}")
    sub.required = True
    sub.add_parser("list", help="list the corpus builders").set_defaults(func=_cmd_list)
    bp = sub.add_parser("build", help="build a corpus into a folder: data build NAME --out DIR ...")
    names = bp.add_subparsers(dest="builder", metavar="NAME")
    names.required = True
    for name, b in BUILDERS.items():
        p = names.add_parser(name, help=b.description, description=b.description)
        p.add_argument("--out", required=True, type=Path, help="output folder (resumed if it exists)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        for o in b.options:
            if o.flag:
                p.add_argument(o.cli, dest=o.name, action="store_true", default=o.default, help=o.help)
            else:
                p.add_argument(o.cli, dest=o.name, type=o.type, default=o.default, nargs=o.nargs,
                               choices=o.choices,
                               help=o.help if "default" in o.help else f"{o.help} (default: {o.default})")
        p.set_defaults(func=_cmd_build)
    return data


__all__ = ["BUILDERS", "Builder", "Context", "Option", "Task", "add_cli", "build", "shared_data_root"]
