from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from audiozoo.data import read_manifest
from audiozoo.data.builders import build
from audiozoo.data.builders.sonic_pi import DEFAULT_DIR, family
from audiozoo.dsp.io import audio_info

pytestmark = pytest.mark.skipif(not list(Path(DEFAULT_DIR).glob("*.flac")),
                                reason=f"sonic-pi-samples is not installed ({DEFAULT_DIR})")


def test_family_labels():
    assert family("bd_haus") == "bass drum" and family("sn_dub") == "snare"
    assert family("guit_e_fifths") == "guitar" and family("zzz_new") == "zzz"


@pytest.mark.slow
def test_sonic_pi_all_samples(tmp_path):
    n_files = len(list(Path(DEFAULT_DIR).glob("*.flac")))
    man = build("sonic-pi", tmp_path / "sp", sample_rate=16000, progress=False)
    items = read_manifest(man)
    assert len(items) == n_files
    info = audio_info(items[0]["audio_filepath"])
    assert info["sample_rate"] == 16000 and info["channels"] == 1
    train, test = read_manifest(tmp_path / "sp" / "train.jsonl"), read_manifest(tmp_path / "sp" / "test.jsonl")
    assert len(train) + len(test) == n_files
    per = Counter(it["label"] for it in items)
    per_test = Counter(it["label"] for it in test)
    for lab, n in per.items():  # stratified: each family's test share is round(0.2 n), largest remainder
        assert abs(per_test[lab] - 0.2 * n) < 1
    assert {"bass drum", "snare", "tabla", "ambient"} <= set(per)
    assert json.loads((tmp_path / "sp" / "stats.json").read_text())["per_label"] == dict(sorted(per.items()))


def test_sonic_pi_limit_subset(tmp_path):
    man = build("sonic-pi", tmp_path / "sp", limit=12, seed=3, progress=False)
    items = read_manifest(man, check_files=True)
    assert len(items) == 12
    again = build("sonic-pi", tmp_path / "sp2", limit=12, seed=3, progress=False)
    assert [it["name"] for it in read_manifest(again)] == [it["name"] for it in items]
