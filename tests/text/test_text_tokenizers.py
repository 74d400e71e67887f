"""Character, BPE and SentencePiece tokenizers: train, round trip, save/load."""

from __future__ import annotations

import json

import pytest
import torch

from audiozoo.errors import CheckpointError, ConfigError, DataError
from audiozoo.text import BPETokenizer, CharTokenizer, SentencePieceTokenizer, Tokenizer

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine",
    "she sells sea shells by the sea shore",
    "how much wood would a woodchuck chuck if a woodchuck could chuck wood",
    "peter piper picked a peck of pickled peppers",
    "the rain in spain stays mainly in the plain",
] * 5


def test_char_round_trip_and_unknowns():
    tok = CharTokenizer()
    text = "hello, world! it's 42."
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) == len(text)
    assert tok.decode(tok.encode("Hello")) == "hello"  # lower-cased
    assert tok.encode("h\u00e9") == [tok.encode("h")[0], tok.unk_id]  # é is not English: <unk>
    strict = CharTokenizer(on_unknown="error")
    with pytest.raises(DataError, match="'é'"):
        strict.encode("hé")
    cased = CharTokenizer(lowercase=False)
    assert cased.decode(cased.encode("Hello")) == "Hello"
    trained = CharTokenizer.train(["abc ab", "ca"])
    assert trained.vocab_size == 5 + 4 and trained.decode(trained.encode("cab a")) == "cab a"


def test_bpe_train_round_trip_and_save(tmp_path):
    tok = BPETokenizer.train(CORPUS, vocab_size=320, min_frequency=2)
    assert 260 < tok.vocab_size <= 320
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    for text in ["the quick brown fox", "  Unseen WORDS, ça va? 😀\n", ""]:
        ids = tok.encode(text)
        assert tok.decode(ids) == text  # byte-level: exact for any string
    # Merges were learnt: a frequent word takes fewer ids than its bytes.
    assert len(tok.encode("woodchuck")) < len("woodchuck")
    tok.save(tmp_path / "bpe.json")
    again = Tokenizer.from_file(tmp_path / "bpe.json")
    assert isinstance(again, BPETokenizer) and again.encode(CORPUS[3]) == tok.encode(CORPUS[3])
    # A Hugging Face tokenizer.json reads directly.
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok.to_dict()["tokenizer"]), encoding="utf-8")
    assert Tokenizer.from_file(tmp_path / "tokenizer.json").encode("pickled") == tok.encode("pickled")
    with pytest.raises(ConfigError, match="260"):
        BPETokenizer.train(CORPUS, vocab_size=100)
    with pytest.raises(DataError):
        tok.decode([tok.vocab_size])


def test_sentencepiece_train_round_trip_and_save(tmp_path):
    tok = SentencePieceTokenizer.train(CORPUS, vocab_size=60, model_type="unigram")
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert 4 < tok.vocab_size <= 60
    text = "the lazy dog saves nine peppers"
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode("  the   plain ")) == "the plain"  # SentencePiece's whitespace normalisation
    tok.save(tmp_path / "sp.json")
    again = Tokenizer.from_file(tmp_path / "sp.json")
    assert isinstance(again, SentencePieceTokenizer) and again.encode(text) == tok.encode(text)
    (tmp_path / "sp.model").write_bytes(tok.model_proto)
    assert Tokenizer.from_file(tmp_path / "sp.model").encode(text) == tok.encode(text)
    bpe = SentencePieceTokenizer.train(CORPUS, vocab_size=60, model_type="bpe")
    assert bpe.decode(bpe.encode(text)) == text


def test_encode_batch_and_bad_files(tmp_path):
    tok = CharTokenizer()
    ids, lengths = tok.encode_batch(["ab", "abcd", ""])
    assert ids.shape == (3, 4) and ids.dtype == torch.long and lengths.tolist() == [2, 4, 0]
    assert (ids[0, 2:] == tok.pad_id).all() and ids[2].eq(tok.pad_id).all()
    assert tok.decode(ids[1, : lengths[1]].tolist()) == "abcd"
    tok.save(tmp_path / "char.json")
    assert Tokenizer.from_file(tmp_path / "char.json").encode("abc") == tok.encode("abc")
    with pytest.raises(CheckpointError, match="unknown tokenizer type"):
        Tokenizer.from_dict({"type": "wordpiece"})
    with pytest.raises(CheckpointError, match="expected a BPETokenizer"):
        BPETokenizer.from_dict(tok.to_dict())
    (tmp_path / "junk.json").write_bytes(b"\xff\x00")
    with pytest.raises(CheckpointError):
        Tokenizer.from_file(tmp_path / "junk.json")
    with pytest.raises(CheckpointError, match="invalid SentencePiece"):
        SentencePieceTokenizer(b"not a model")
