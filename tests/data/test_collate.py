from __future__ import annotations

import pytest
import torch

from audiozoo.data import collate_audio, pad_sequence
from audiozoo.errors import DataError


def test_collate_pads_and_reports_lengths():
    items = [
        {"audio": torch.ones(5), "length": 5, "label": 1, "text": "a"},
        {"audio": torch.full((3,), 2.0), "length": 3, "label": 0, "text": "b"},
        {"audio": torch.full((8,), 3.0), "length": 6, "label": 2},  # dataset-padded: 6 real samples
    ]
    b = collate_audio(items)
    assert b["audio"].shape == (3, 8)
    assert b["lengths"].dtype == torch.long and b["lengths"].tolist() == [5, 3, 6]
    assert b["label"].dtype == torch.long and b["label"].tolist() == [1, 0, 2]
    assert b["text"] == ["a", "b", None]
    assert torch.all(b["audio"][0, 5:] == 0) and torch.all(b["audio"][1, 3:] == 0)
    assert torch.all(b["audio"][1, :3] == 2.0)


def test_collate_multichannel_and_sequence_labels():
    items = [{"audio": torch.randn(2, 4), "label": torch.tensor([1, 0])},
             {"audio": torch.randn(2, 6), "label": torch.tensor([0, 0])}]
    b = collate_audio(items)
    assert b["audio"].shape == (2, 2, 6) and b["lengths"].tolist() == [4, 6]
    assert b["label"].tolist() == [[1, 0], [0, 0]]
    ragged = [{"audio": torch.randn(4), "label": torch.tensor([1])},
              {"audio": torch.randn(4), "label": torch.tensor([0, 1, 1])}]
    b = collate_audio(ragged)
    assert b["label"].tolist() == [[1, -100, -100], [0, 1, 1]] and b["label_lengths"].tolist() == [1, 3]


def test_pad_sequence_features():
    feats = [torch.randn(80, 7), torch.randn(80, 3)]
    padded, lengths = pad_sequence(feats, dim=-1, value=-1.0)
    assert padded.shape == (2, 80, 7) and lengths.tolist() == [7, 3]
    torch.testing.assert_close(padded[1, :, :3], feats[1], rtol=0, atol=0)
    assert torch.all(padded[1, :, 3:] == -1.0)
    frames_first, lengths = pad_sequence([torch.randn(7, 80), torch.randn(2, 80)], dim=0)
    assert frames_first.shape == (2, 7, 80) and lengths.tolist() == [7, 2]
    with pytest.raises(DataError, match="incompatible"):
        pad_sequence([torch.randn(80, 7), torch.randn(40, 7)])
    with pytest.raises(DataError):
        collate_audio([])
