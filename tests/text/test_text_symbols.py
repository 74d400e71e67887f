"""SymbolTable: round trips, unknown-symbol policy, JSON save/load, built-in sets."""

from __future__ import annotations

import json
import unicodedata

import pytest

from audiozoo.errors import CheckpointError, ConfigError, DataError
from audiozoo.text import (
    PAD,
    PUNCTUATION,
    SPECIALS,
    STRESS,
    UNK,
    WORD_SEP,
    SymbolTable,
    character_symbols,
    phoneme_languages,
    phoneme_symbols,
)
from audiozoo.text.symbols import canonical_language, phoneme_inventory


def test_round_trip_and_specials():
    t = SymbolTable(["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", " "])
    ids = t.encode(["a", " ", "b", "a"], add_bos=True, add_eos=True)
    assert ids == [2, 4, 6, 5, 4, 3]
    assert t.decode(ids) == ["<bos>", "a", " ", "b", "a", "<eos>"]
    assert t.decode(ids, skip_specials=True) == ["a", " ", "b", "a"]
    assert (t.pad_id, t.unk_id, t.bos_id, t.eos_id, t.blank_id) == (0, 1, 2, 3, None)
    assert len(t) == 7 and "a" in t and "z" not in t and t.id_of("b") == 5


def test_unknown_symbols_error_by_default_or_map_to_unk():
    t = SymbolTable([PAD, UNK, "a"])
    with pytest.raises(DataError, match=r"\['x', 'y'\]"):
        t.encode(["a", "x", "y", "x"])
    assert SymbolTable([PAD, UNK, "a"], on_unknown="unk").encode(["a", "x"]) == [2, 1]
    with pytest.raises(ConfigError, match="needs '<unk>'"):
        SymbolTable([PAD, "a"], on_unknown="unk")
    with pytest.raises(DataError, match="out of range"):
        t.decode([3])
    with pytest.raises(ConfigError, match="no '<bos>'"):
        t.encode(["a"], add_bos=True)


@pytest.mark.parametrize("bad", [[], ["a", "a"], ["a", ""], ["a", 3]])
def test_invalid_tables(bad):
    with pytest.raises(ConfigError):
        SymbolTable(bad)


def test_json_round_trip(tmp_path):
    t = SymbolTable(phoneme_symbols("en-us"), on_unknown="unk")
    t.save(tmp_path / "symbols.json")
    u = SymbolTable.load(tmp_path / "symbols.json")
    assert u == t and u.symbols == t.symbols and u.on_unknown == "unk"
    seq = ["h", "ə", "l", "ˈ", "oʊ", WORD_SEP, "w", "ˈ", "ɜː", "l", "d", "!"]
    assert u.decode(t.encode(seq)) == seq
    # The JSON is plain UTF-8 (IPA readable), embeddable in a checkpoint's config.json.
    d = json.loads((tmp_path / "symbols.json").read_text(encoding="utf-8"))
    assert d["type"] == "symbol_table" and "ɜː" in d["symbols"]
    (tmp_path / "bad.json").write_text('{"type": "other"}')
    with pytest.raises(CheckpointError):
        SymbolTable.load(tmp_path / "bad.json")
    with pytest.raises(CheckpointError, match="not found"):
        SymbolTable.load(tmp_path / "missing.json")


def test_from_sequences_is_sorted_and_deterministic():
    seqs = [["b", "a"], ["c", "a", "<pad>"]]
    t = SymbolTable.from_sequences(seqs)
    assert t.symbols == [*SPECIALS, "a", "b", "c"]
    assert SymbolTable.from_sequences(reversed(seqs)) == t


@pytest.mark.parametrize("language", phoneme_languages())
def test_builtin_phoneme_tables(language):
    syms = phoneme_symbols(language)
    assert syms[: len(SPECIALS)] == list(SPECIALS) and syms.index(PAD) == 0
    assert len(set(syms)) == len(syms)
    inv = phoneme_inventory(language)
    assert len(inv) > 40
    assert all(unicodedata.is_normalized("NFC", s) for s in syms)
    assert not set(inv) & (set(PUNCTUATION) | set(STRESS) | {WORD_SEP})
    assert all(s in syms for s in STRESS)


def test_language_aliases_and_unknown_language():
    assert canonical_language("fr") == "fr-fr" and canonical_language("EN-US") == "en-us"
    with pytest.raises(ConfigError, match="available"):
        phoneme_symbols("tlh")
    with pytest.raises(ConfigError):
        character_symbols("tlh")


def test_character_tables():
    low = character_symbols("de")
    assert "ß" in low and "ä" in low and "A" not in low
    up = character_symbols("de", lowercase=False)
    assert "Ä" in up and "A" in up and len(set(up)) == len(up)
    assert SymbolTable.for_characters("en").encode(list("hi, 2!")) == SymbolTable(low).encode(list("hi, 2!"))
