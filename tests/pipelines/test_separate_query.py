"""``separate`` with query-conditioned separators (USS): label and example-clip queries, the tagger composed by the
pipeline, and clear errors (a fixed-source model given a query, unknown labels, a missing query)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.data.queries import tagger_condition
from audiozoo.errors import ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline

SR = 8000
LABELS = ["drums", "speech", "noise"]


def _uss(**kw):
    info = audiozoo.model_info("uss_small")
    base = {**info.tiny, "condition_dim": 3, "query_model": None, "segment_seconds": 0.25}
    return audiozoo.create_model("uss_small", **{**base, **kw}).eval()


def _tagger():
    info = audiozoo.model_info("ast_tiny")
    t = audiozoo.create_model("ast_tiny", **{**info.tiny, "num_classes": 3}).eval()
    t.pretrained_metadata = {"labels": LABELS}
    return t


def _mix(n: int = 3000, seed: int = 0) -> dict:
    return {"array": (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32), "sampling_rate": SR}


def test_label_query_onehot_equals_the_model():
    m = _uss(query_type="onehot", labels=tuple(LABELS))
    sep = pipeline("separate", model=m, query="Speech", chunk_seconds=1.0)
    assert sep.sources == ["speech"]
    out = sep(_mix())
    with torch.no_grad():
        direct = m(out["mixture"][None], torch.tensor([[0.0, 1.0, 0.0]]))[0, 0]
    assert torch.allclose(out["sources"]["speech"], direct, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown query label"):
        pipeline("separate", model=m, query="violin")
    with pytest.raises(ConfigError, match="give one of"):
        pipeline("separate", model=m)
    with pytest.raises(ConfigError, match="one-hot"):
        pipeline("separate", model=m, query_audio=_mix(), query_model=_tagger())


def test_label_query_on_tagger_probabilities_masks_other_classes():
    """``probabilities`` models: each window's condition is the tagger's score of the queried class only."""
    m, tagger = _uss(), _tagger()
    sep = pipeline("separate", model=m, query="noise", query_model=tagger, chunk_seconds=1.0)
    out = sep(_mix())
    mix = out["mixture"]
    p = tagger_condition(tagger, mix, SR)
    cond = torch.zeros_like(p)
    cond[:, 2] = p[:, 2]
    with torch.no_grad():
        direct = m(mix[None], cond)[0, 0]
    assert torch.allclose(out["sources"]["noise"], direct, atol=1e-5)


def test_audio_query_and_cli(tmp_path, capsys):
    m, tagger = _uss(), _tagger()
    clip = tmp_path / "clip.wav"
    sf.write(clip, _mix(2000, seed=1)["array"], SR)
    sep = pipeline("separate", model=m, query_audio=str(clip), query_model=tagger)
    want = tagger_condition(tagger, torch.from_numpy(_mix(2000, seed=1)["array"])[None], SR)
    assert sep.sources == ["target"] and torch.allclose(sep.condition, want, atol=1e-6)
    emb = _uss(query_type="embedding", condition_dim=4)
    with pytest.raises(ConfigError, match="example"):
        pipeline("separate", model=emb, query="noise", query_model=tagger)
    # CLI: a saved checkpoint with its labels, and a fixed-source separator given a query
    folder = save_pretrained(_uss(query_type="onehot", labels=tuple(LABELS)), tmp_path / "uss")
    mix = tmp_path / "mix.wav"
    sf.write(mix, _mix()["array"], SR)
    assert main(["separate", str(mix), "-o", str(tmp_path / "o"), "-m", str(folder), "--query", "drums"]) == 0
    assert (tmp_path / "o" / "drums.wav").is_file() and "1 sources" in capsys.readouterr().out
    tasnet = save_pretrained(audiozoo.create_model("conv_tasnet_speech", **audiozoo.model_info(
        "conv_tasnet_speech").tiny), tmp_path / "tasnet")
    with pytest.raises(ConfigError, match="fixed sources"):
        pipeline("separate", model=str(tasnet), query="drums")
    assert main(["separate", str(mix), "-o", str(tmp_path / "o2"), "-m", str(tasnet), "--query", "drums"]) != 0
    assert "query-conditioned separator" in capsys.readouterr().err
