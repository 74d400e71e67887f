from __future__ import annotations

import json

import pytest
import torch

from audiozoo.data import AudioDataset, BucketingSampler, collate_audio, write_manifest
from audiozoo.dsp.io import load_audio


def _find(sub: torch.Tensor, full: torch.Tensor) -> int:
    """Start of ``sub`` inside ``full`` (the noise in the test tones makes 64 samples unique)."""
    head = sub[:64]
    windows = full.unfold(0, head.numel(), 1)
    return int((windows - head).abs().sum(1).argmin())


def test_resample_length_and_passthrough(clips):
    ds = AudioDataset(clips, sample_rate=16000)
    item = ds[1]  # 1.0 s at 8 kHz
    assert item["audio"].shape == (16000,)
    assert item["length"] == 16000
    assert item["speaker"] == "s2" and item["name"] == "b" and item["audio_filepath"] == clips[1]["audio_filepath"]
    assert "_where" not in item
    # labels inferred sorted; "label" becomes the index
    assert ds.labels == ["bird", "cat", "dog"]
    assert [ds[i]["label"] for i in range(len(ds))] == [2, 1, 2, 0, 1]
    assert ds.durations == [0.5, 1.0, 1.5, 0.25, 2.0]


def test_random_crop_deterministic_per_seed_epoch_index(clips):
    ds = AudioDataset(clips, sample_rate=16000, crop_seconds=0.2, seed=3)
    full = ds.load(4)
    a = ds[4]["audio"]
    assert a.shape == (3200,)
    start = _find(a, full)
    # the crop is a true slice of the full signal (same samples, tolerance: float32 copy, exact)
    torch.testing.assert_close(a, full[start : start + 3200], rtol=0, atol=0)
    ds2 = AudioDataset(clips, sample_rate=16000, crop_seconds=0.2, seed=3)
    _ = ds2[0], ds2[2]  # a different access order must not change item 4's crop
    torch.testing.assert_close(ds2[4]["audio"], a, rtol=0, atol=0)
    starts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        starts.add(_find(ds[4]["audio"], full))
    assert len(starts) > 1  # epochs draw new crops
    seed3 = AudioDataset(clips, sample_rate=16000, crop_seconds=0.2, seed=3)
    seed4 = AudioDataset(clips, sample_rate=16000, crop_seconds=0.2, seed=4)
    starts3 = [_find(seed3[i]["audio"], seed3.load(i)) for i in (1, 2, 4)]
    starts4 = [_find(seed4[i]["audio"], seed4.load(i)) for i in (1, 2, 4)]
    assert starts3 != starts4  # the seed matters


def test_centre_crop_and_padding(clips):
    ds = AudioDataset(clips, sample_rate=16000, crop_seconds=0.5, random_crop=False)
    full = ds.load(2)  # 1.5 s = 24000 samples
    torch.testing.assert_close(ds[2]["audio"], full[8000:16000], rtol=0, atol=0)
    short = ds[3]  # 0.25 s: zero padded to 0.5 s, length stays the real one
    assert short["audio"].shape == (8000,) and short["length"] == 4000
    assert torch.all(short["audio"][4000:] == 0)
    padded = AudioDataset(clips, sample_rate=16000, pad_to=1.0)
    assert padded[0]["audio"].shape == (16000,) and padded[0]["length"] == 8000
    assert padded[4]["audio"].shape == (32000,)  # pad_to never crops


def test_offset_duration_segment(tmp_path, tone):
    path = tone(tmp_path / "long.wav", 2.0, 16000, seed=5)
    full, _ = load_audio(path)
    ds = AudioDataset([{"audio_filepath": str(path), "duration": 0.5, "offset": 1.0}], sample_rate=16000)
    torch.testing.assert_close(ds[0]["audio"], full[16000:24000], rtol=0, atol=0)


def test_multichannel_and_transform(tmp_path, tone):
    path = tone(tmp_path / "st.wav", 0.5, 16000, channels=2)
    ds = AudioDataset([{"audio_filepath": str(path), "duration": 0.5}], sample_rate=16000, mono=False,
                      transform=lambda x: 2 * x)
    raw, _ = load_audio(path, mono=False)
    assert ds[0]["audio"].shape == (2, 8000)
    torch.testing.assert_close(ds[0]["audio"], 2 * raw, rtol=0, atol=0)


def test_explicit_labels_sequence_labels_and_unknown_label(tmp_path, clips):
    ds = AudioDataset(clips, sample_rate=16000, label_key="speaker", labels=["s3", "s2", "s1"])
    assert ds[0]["label"] == 2 and ds[0]["speaker"] == "s1"
    seq = [{**clips[0], "label": ["yes", "no", "no"]}]
    item = AudioDataset(seq, sample_rate=16000)[0]
    assert item["label"].tolist() == [1, 0, 0]
    man = write_manifest(tmp_path / "m.jsonl", clips)
    with pytest.raises(Exception, match=r"m\.jsonl:2.*'cat'"):
        AudioDataset(man, sample_rate=16000, labels=["dog", "bird"])[1]


def test_bad_file_names_manifest_line(tmp_path, clips):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEnonsense" * 3)
    items = [clips[0], {"audio_filepath": str(tmp_path / "gone.wav"), "duration": 1.0},
             {"audio_filepath": str(bad), "duration": 1.0}]
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(it) + "\n" for it in items))
    ds = AudioDataset(man, sample_rate=16000)
    from audiozoo.errors import DataError

    with pytest.raises(DataError, match=r"m\.jsonl:2.*not found"):
        ds[1]
    with pytest.raises(DataError, match=r"m\.jsonl:3.*cannot load"):
        ds[2]


def test_argument_errors(clips):
    from audiozoo.errors import DataError

    with pytest.raises(DataError, match="sample_rate"):
        AudioDataset(clips, sample_rate=0)
    with pytest.raises(DataError, match="crop_seconds"):
        AudioDataset(clips, sample_rate=16000, crop_seconds=0)
    with pytest.raises(DataError, match="duration"):
        AudioDataset([{"audio_filepath": "x.wav"}], sample_rate=16000)


def test_dataloader_with_bucketing_sampler(clips):
    ds = AudioDataset(clips, sample_rate=16000)
    sampler = BucketingSampler(ds, batch_size=2, num_buckets=2, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_audio)
    seen = []
    for batch in loader:
        assert batch["audio"].shape[1] == int(batch["lengths"].max())
        seen += batch["name"]
    assert sorted(seen) == ["a", "b", "c", "d", "e"]
