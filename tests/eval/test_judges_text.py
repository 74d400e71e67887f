"""The MiniLM text encoder (audiozoo.text.encoder) and the text/caption similarity judge."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import DataError, MissingDependencyError

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def encoder():
    from audiozoo.text.encoder import default_text_encoder

    try:
        return default_text_encoder()
    except MissingDependencyError as e:
        pytest.skip(str(e))


SENTS = ["A dog is barking loudly in the yard.", "A dog barks outside.", "The stock market fell sharply today.",
         "Rain falls on a tin roof."]


def test_encoder_is_frozen_and_normalised(encoder):
    emb = encoder.encode(SENTS)
    assert emb.shape == (4, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training  # stays in eval mode (no dropout) inside a model being trained
    states, lengths = encoder.encode_tokens(SENTS[:2])
    assert states.shape[0] == 2 and states.shape[2] == 384 and lengths.tolist()[0] > lengths.tolist()[1]
    # batching and padding do not change an embedding
    torch.testing.assert_close(encoder.encode(SENTS[1:2]), emb[1:2], atol=1e-5, rtol=0)
    with pytest.raises(DataError):
        encoder.encode("one string")


@pytest.mark.parity
def test_matches_transformers_automodel_mean_pooling(encoder):
    from transformers import AutoModel, AutoTokenizer

    from audiozoo.text.encoder import minilm_folder

    folder = str(minilm_folder())
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(SENTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        states = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((states * m).sum(1) / m.sum(1), dim=-1)
    torch.testing.assert_close(encoder.encode(SENTS), ref, atol=1e-6, rtol=0)


def test_text_and_caption_similarity(encoder):
    from audiozoo.eval.judges import caption_similarity, text_similarity

    sims = text_similarity(SENTS[:2] + SENTS[:1], SENTS[1:2] + SENTS[2:3] + SENTS[3:4])
    assert sims.shape == (3,)
    assert sims[0] > 0.6 and sims[1] < 0.2 and sims[2] < 0.2  # paraphrase vs unrelated pairs
    assert float(text_similarity("a cat", "a cat")) == pytest.approx(1.0, abs=1e-5)
    rep = caption_similarity([SENTS[0], SENTS[2]], [[SENTS[1], SENTS[3]], [SENTS[2]]])
    e = encoder.encode(SENTS)
    expected0 = (e[0] @ e[1] + e[0] @ e[3]) / 2  # FENSE's SBERT part: mean over the references
    assert float(rep["per_candidate"][0]) == pytest.approx(float(expected0), abs=1e-5)
    assert float(rep["per_candidate"][1]) == pytest.approx(1.0, abs=1e-5)
    assert rep["score"] == pytest.approx(float(rep["per_candidate"].mean()))
    assert "stand-in" in rep["judge"]
    with pytest.raises(DataError, match="one list of references per candidate"):
        caption_similarity(["a"], [["b"], ["c"]])
    with pytest.raises(DataError, match="pairs"):
        text_similarity(["a", "b"], ["c"])
