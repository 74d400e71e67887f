from __future__ import annotations

import json
from pathlib import Path

import pytest

from audiozoo.data.manifest import read_manifest, write_manifest
from audiozoo.errors import DataError


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_round_trip_relative_paths_and_extra_keys(tmp_path, clips):
    corpus = tmp_path  # clips live in tmp_path/audio: inside the manifest's folder
    (corpus / "notes").mkdir()
    (corpus / "notes" / "b.json").write_text("[]")
    items = [
        {**clips[0], "text": "hello there", "phonemes": "h @ l oU", "offset": 0.1, "extra": {"k": [1, 2]}},
        {**clips[1], "stems": {"vocals": clips[2]["audio_filepath"]}, "notes": "notes/b.json"},
        {**clips[3], "notes": [[0.0, 0.5, 60]]},
    ]
    man = write_manifest(corpus / "manifest.jsonl", items)
    raw = [json.loads(line) for line in man.read_text().splitlines()]
    # paths inside the corpus folder are stored relative, so the folder can be moved
    assert raw[0]["audio_filepath"] == "audio/a.wav"
    assert raw[1]["stems"] == {"vocals": "audio/c.wav"}
    assert raw[1]["notes"] == "notes/b.json"
    back = read_manifest(man)
    assert len(back) == 3
    for orig, got in zip(items, back):
        assert got["audio_filepath"] == orig["audio_filepath"]
        for k in ("duration", "label", "speaker", "text", "phonemes", "offset", "extra"):
            assert got.get(k) == orig.get(k)
    assert back[1]["stems"]["vocals"] == clips[2]["audio_filepath"]
    assert back[1]["notes"] == str(corpus / "notes" / "b.json")
    assert back[2]["notes"] == [[0.0, 0.5, 60]]  # inline notes stay inline
    assert back[1]["_where"] == f"{man}:2"
    # moving the folder keeps the manifest valid
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    corpus.rename(moved)
    assert read_manifest(moved / "manifest.jsonl", check_files=True)[0]["audio_filepath"] == str(
        moved / "audio" / "a.wav")


def test_write_drops_private_keys_and_keeps_outside_paths_absolute(tmp_path, clips):
    out = tmp_path / "sub" / "m.jsonl"
    write_manifest(out, [{**clips[0], "_where": "x:1"}])
    raw = json.loads(out.read_text())
    assert "_where" not in raw
    assert raw["audio_filepath"] == clips[0]["audio_filepath"]  # outside sub/: absolute


def test_blank_lines_are_skipped_and_lines_counted(tmp_path, clips):
    man = _write_lines(tmp_path / "m.jsonl", ["", json.dumps(clips[0]), "   ", json.dumps(clips[1])])
    items = read_manifest(man)
    assert [it["_where"] for it in items] == [f"{man}:2", f"{man}:4"]


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"audio_filepath": "a.wav", "duration": 1.0', "bad JSON"),
        ('{"duration": 1.0}', "audio_filepath"),
        ('{"audio_filepath": "a.wav"}', "duration"),
        ('{"audio_filepath": "a.wav", "duration": -1}', "duration"),
        ('{"audio_filepath": "a.wav", "duration": "long"}', "duration"),
        ('{"audio_filepath": "a.wav", "duration": 1, "offset": -2}', "offset"),
        ('{"audio_filepath": "a.wav", "duration": 1, "stems": ["x.wav"]}', "stems"),
        ('["a.wav", 1.0]', "JSON object"),
    ],
)
def test_errors_name_file_and_line(tmp_path, clips, bad_line, message):
    good = json.dumps(clips[0])
    man = _write_lines(tmp_path / "m.jsonl", [good, good, bad_line, good])
    with pytest.raises(DataError) as e:
        read_manifest(man)
    assert f"{man}:3" in str(e.value)
    assert message in str(e.value)


def test_missing_and_unreadable_files_when_checked(tmp_path, clips):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 10)
    for line_no, bad in ((2, {"audio_filepath": "nope.wav", "duration": 1.0}),
                         (2, {"audio_filepath": str(garbage), "duration": 1.0})):
        man = _write_lines(tmp_path / "m.jsonl", [json.dumps(clips[0]), json.dumps(bad)])
        assert len(read_manifest(man)) == 2  # not checked: paths are only resolved
        with pytest.raises(DataError, match=f"m.jsonl:{line_no}"):
            read_manifest(man, check_files=True)
    stem_missing = {**clips[0], "stems": {"a": "missing.wav"}}
    man = _write_lines(tmp_path / "m.jsonl", [json.dumps(stem_missing)])
    with pytest.raises(DataError, match="missing.wav"):
        read_manifest(man, check_files=True)


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_write_is_atomic_and_validates_first(tmp_path, clips):
    man = write_manifest(tmp_path / "m.jsonl", clips)
    before = man.read_text()
    with pytest.raises(DataError, match="item 1"):
        write_manifest(man, [clips[0], {"audio_filepath": "x.wav"}])
    assert man.read_text() == before  # the old manifest is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
