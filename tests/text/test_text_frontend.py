"""TextFrontend: normalise -> phonemise/split -> ids + lengths, with a serialisable config."""

from __future__ import annotations

import json

import pytest
import torch

from audiozoo.errors import ConfigError, DataError
from audiozoo.text import PUNCTUATION, STRESS, WORD_SEP, EspeakPhonemizer, TextFrontend, espeak_available

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


@needs_espeak
def test_phoneme_frontend_end_to_end(tmp_path):
    fe = TextFrontend(language="en-us", add_eos=True)
    texts = ["Dr. Smith paid $3.50.", "Hi!", "Two, three."]
    ids, lengths = fe(texts)
    assert ids.dtype == torch.long and ids.shape == (3, int(lengths.max()))
    syms = fe.to_symbols(texts)
    # Normalised first ("Doctor ... three dollars ..."), then espeak-ng on the normalised text.
    assert syms == EspeakPhonemizer("en-us")([fe.normalize(t) for t in texts])
    for row, n, s in zip(ids, lengths, syms):
        assert n == len(s) + 1 and row[n - 1] == fe.table.eos_id and (row[n:] == fe.pad_id).all()
        assert fe.decode(row[:n]) == s
    assert fe.decode(ids[1, : lengths[1]], as_string=True) == "".join(syms[1])
    # The config (symbols included) survives JSON and gives the same ids.
    (tmp_path / "fe.json").write_text(json.dumps(fe.to_dict(), ensure_ascii=False), encoding="utf-8")
    again = TextFrontend.from_dict(json.loads((tmp_path / "fe.json").read_text(encoding="utf-8")))
    assert again.config == fe.config and torch.equal(again(texts)[0], ids)


@needs_espeak
def test_phoneme_frontend_options():
    bare = TextFrontend(stress=False, punctuation=False, normalizer="none").to_symbols(["Yes, it is."])[0]
    assert not set(bare) & (set(STRESS) | set(PUNCTUATION)) and bare.count(WORD_SEP) == 2
    de = TextFrontend(language="de")
    assert de.config.normalizer == "auto" and de.encode("Grüße, 3 Äpfel.")  # clean-up only, espeak reads "3"
    # A unit outside the table is an error naming it (tables differ per language).
    en_table_on_de = TextFrontend(language="de", symbols=TextFrontend(language="en-us").config.symbols)
    with pytest.raises(DataError, match="not in the symbol table"):
        en_table_on_de.encode("Grüße aus Straßburg")
    lenient = TextFrontend(language="de", symbols=en_table_on_de.config.symbols, on_unknown="unk")
    assert lenient.table.unk_id in lenient.encode("Grüße aus Straßburg")


def test_character_frontend():
    fe = TextFrontend(units="characters", add_bos=True, add_eos=True)
    ids, lengths = fe(["Hello,   World!", "1 cat"])
    assert fe.decode(ids[0, : lengths[0]], as_string=True) == "hello, world!"
    assert fe.decode(ids[1, : lengths[1]], as_string=True) == "one cat"
    assert ids[0, 0] == fe.table.bos_id and lengths.tolist() == [15, 9]
    nop = TextFrontend(units="characters", punctuation=False, normalizer="none", lowercase=False, language="de")
    assert nop.to_symbols(["Grüß dich, Welt!"]) == [list("Grüß dich Welt")]


def test_frontend_config_errors():
    with pytest.raises(ConfigError, match="units"):
        TextFrontend(units="words")
    with pytest.raises(ConfigError, match="no field"):
        TextFrontend(langauge="en-us")
    with pytest.raises(ConfigError, match="available"):
        TextFrontend(language="tlh")
    with pytest.raises(ConfigError, match="<pad>"):
        TextFrontend(units="characters", symbols=("a", "b"))
    with pytest.raises(DataError, match="list of texts"):
        TextFrontend(units="characters")("a single string")
