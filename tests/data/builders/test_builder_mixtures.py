"""The mixtures builder; also the builder framework's resumability (it needs no external tool)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiozoo.data import read_manifest
from audiozoo.data.builders import BUILDERS, build
from audiozoo.dsp.io import load_audio
from audiozoo.errors import ConfigError, DataError


def _build(out, src, **kw):
    opts = dict(speech=[str(src["speech"])], noise=[str(src["noise"])], count=3, seconds=1.5, snr=[0, 10],
                progress=False)
    opts.update(kw)
    return build("mixtures", out, **opts)


def _mtimes(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*.wav")}


def test_mixtures_content(tmp_path, mix_sources):
    man = _build(tmp_path / "mx", mix_sources)
    items = read_manifest(man, check_files=True)
    assert [it["kind"] for it in items] == ["speech+speech"] * 3 + ["speech+noise"] * 3
    assert [it["snr"] for it in items[3:]] == [0.0, 10.0, 0.0]  # SNRs cycled
    for it in items:
        mix, sr = load_audio(it["audio_filepath"])
        assert sr == 16000 and mix.shape == (24000,) and it["duration"] == 1.5
        s1, s2 = (load_audio(p)[0] for p in it["stems"].values())
        # float32 wavs: the mixture is exactly the sum of the stored sources
        np.testing.assert_array_equal(mix.numpy(), (s1 + s2).numpy())
        snr = 10 * np.log10(np.mean(s1.double().numpy() ** 2) / np.mean(s2.double().numpy() ** 2))
        # tolerance: float32 storage of the sources changes their powers by ~1e-7 relative
        assert snr == pytest.approx(it["snr"], abs=1e-3)
        assert float(mix.abs().max()) <= 0.99 + 1e-6
    for it in items[:3]:
        assert it["speakers"][0] != it["speakers"][1]  # distinct speakers
        assert 0.0 <= it["snr"] <= 5.0  # the default --sir range
    assert items[3]["text"].startswith(items[3]["speaker"])  # speech+noise keeps the transcript
    stats = json.loads((tmp_path / "mx" / "stats.json").read_text())
    assert stats["items"] == 6 and stats["per_kind"] == {"speech+noise": 3, "speech+speech": 3}
    assert "Sources" in (tmp_path / "mx" / "README.md").read_text()


def test_mixtures_deterministic(tmp_path, mix_sources):
    a, b = _build(tmp_path / "a", mix_sources), _build(tmp_path / "b", mix_sources)
    assert a.read_text() == b.read_text()
    for rel in _mtimes(tmp_path / "a"):
        # compare samples, not bytes: libsndfile stamps float wavs' PEAK chunk with the write time
        np.testing.assert_array_equal(load_audio(tmp_path / "a" / rel)[0], load_audio(tmp_path / "b" / rel)[0])
    c = _build(tmp_path / "c", mix_sources, seed=1)
    assert c.read_text() != a.read_text()


def test_resume_second_run_does_no_work_and_rebuilds_only_deleted(tmp_path, mix_sources):
    out = tmp_path / "mx"
    _build(out, mix_sources)
    before = _mtimes(out)
    _build(out, mix_sources)
    assert BUILDERS["mixtures"].last_context.built == 0
    assert _mtimes(out) == before
    (out / "mix" / "sn_00001" / "noise.wav").unlink()
    _build(out, mix_sources)
    assert BUILDERS["mixtures"].last_context.built == 1
    after = _mtimes(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"mix/sn_00001/noise.wav", "mix/sn_00001/speech.wav", "mix/sn_00001/mixture.wav"}
    assert (out / ".done").exists()


def test_resume_after_interruption(tmp_path, mix_sources, monkeypatch):
    out = tmp_path / "mx"
    builder = BUILDERS["mixtures"]
    real = type(builder).make_item
    calls = {"n": 0}

    def flaky(self, ctx, task):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the 4th item
        return real(self, ctx, task)

    monkeypatch.setattr(type(builder), "make_item", flaky)
    with pytest.raises(KeyboardInterrupt):
        _build(out, mix_sources)
    assert not (out / ".done").exists() and not (out / "manifest.jsonl").exists()
    monkeypatch.setattr(type(builder), "make_item", real)
    man = _build(out, mix_sources)
    assert builder.last_context.built == 3 and builder.last_context.reused == 3
    assert man.read_text() == _build(tmp_path / "fresh", mix_sources).read_text()


def test_other_options_into_same_folder_refused(tmp_path, mix_sources):
    _build(tmp_path / "mx", mix_sources)
    with pytest.raises(DataError, match="other settings"):
        _build(tmp_path / "mx", mix_sources, count=4)


def test_mixtures_errors(tmp_path, mix_sources):
    with pytest.raises(ConfigError, match="--speech"):
        build("mixtures", tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="--noise"):
        build("mixtures", tmp_path / "x", speech=[str(mix_sources["speech"])], kinds=["speech+noise"])
    with pytest.raises(ConfigError, match="no option"):
        build("mixtures", tmp_path / "x", speech=[str(mix_sources["speech"])], bogus=1)
    one_speaker = tmp_path / "one.jsonl"
    lines = [json.loads(x) for x in mix_sources["speech"].read_text().splitlines()][:2]
    from audiozoo.data import write_manifest

    write_manifest(one_speaker, [{**it, "audio_filepath": str(mix_sources["speech"].parent / it["audio_filepath"])}
                                 for it in lines])
    with pytest.raises(DataError, match="2 distinct speakers"):
        build("mixtures", tmp_path / "y", speech=[str(one_speaker)], progress=False)
