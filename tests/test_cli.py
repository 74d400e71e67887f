"""The `audiozoo` command line: list, info, error reporting."""

from __future__ import annotations

import json
import subprocess
import sys

from audiozoo.cli import main


def test_info_prints_paper_and_param_count(capsys):
    assert main(["info", "ast_base_p16"]) == 0
    out = capsys.readouterr().out
    assert "AST: Audio Spectrogram Transformer" in out and "86.59M" in out and "2104.01778" in out


def test_list_and_json(capsys):
    assert main(["list"]) == 0
    assert "ast_base_p16" in capsys.readouterr().out
    assert main(["list", "classify", "--json"]) == 0
    assert "ast_tiny" in json.loads(capsys.readouterr().out)


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["info", "nope_model"]) == 2
    assert "no model named 'nope_model'" in capsys.readouterr().err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "audiozoo.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("audiozoo ")
