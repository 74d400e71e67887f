from __future__ import annotations

from collections import Counter

import pytest

from audiozoo.data import AudioDataset, read_manifest
from audiozoo.data.builders import build
from audiozoo.errors import DataError


def test_fsdd(shared_data, tmp_path):
    man = build("fsdd", tmp_path / "fsdd", source=str(shared_data), progress=False)
    items = read_manifest(man)
    assert len(items) == 2500
    assert Counter(it["label"] for it in items) == {d: 250 for d in range(10)}
    assert set(it["speaker"] for it in items) == {"george", "jackson", "lucas", "nicolas", "theo"}
    train, test = (read_manifest(tmp_path / "fsdd" / f"{k}.jsonl") for k in ("train", "test"))
    assert len(train) == 2250 and len(test) == 250 and all(it["take"] <= 4 for it in test)
    assert all(0.1 < it["duration"] < 2.5 for it in items)
    assert {it["text"] for it in items if it["label"] == 7} == {"seven"}
    ds = AudioDataset(tmp_path / "fsdd" / "test.jsonl", sample_rate=8000)
    assert ds.labels == list(range(10)) and ds[0]["audio"].shape[0] == ds[0]["length"]
    # --valid: takes 5-9 carved out of train; the fsdd folder itself works as --source
    man = build("fsdd", tmp_path / "fsdd_v", source=str(shared_data / "fsdd"), valid=True, progress=False)
    valid = read_manifest(tmp_path / "fsdd_v" / "valid.jsonl")
    assert len(valid) == 250 and {it["take"] for it in valid} == set(range(5, 10))
    assert len(read_manifest(tmp_path / "fsdd_v" / "train.jsonl")) == 2000


def test_yesno(shared_data, tmp_path):
    man = build("yesno", tmp_path / "yn", source=str(shared_data), progress=False)
    items = read_manifest(man)
    assert len(items) == 60
    for it in items:
        assert len(it["label"]) == 8 and it["text"] == " ".join(it["label"])
        bits = it["audio_filepath"].rsplit("/", 1)[1][:-4].split("_")
        assert it["label"] == ["yes" if b == "1" else "no" for b in bits]
    train, test = (read_manifest(tmp_path / "yn" / f"{k}.jsonl") for k in ("train", "test"))
    assert len(train) == len(test) == 30
    assert max(it["audio_filepath"] for it in train) < min(it["audio_filepath"] for it in test)  # Kaldi: halves
    item = AudioDataset(man, sample_rate=8000)[0]
    assert item["label"].shape == (8,)


def test_missing_source_is_clear(tmp_path):
    with pytest.raises(DataError, match="fsdd"):
        build("fsdd", tmp_path / "x", source=str(tmp_path), progress=False)
