"""Symbol sets and :class:`SymbolTable`: the mapping between text units (phonemes, characters) and ids.

Conventions shared by every table audiozoo builds:

* the special symbols come first, in the order ``<pad>`` (id 0, so ``padding_idx=0`` works), ``<unk>``,
  ``<bos>``, ``<eos>``, ``<blank>`` (the CTC blank);
* then the word separator ``" "`` (one token between words, as in the text), the punctuation marks, and,
  for phoneme tables, the stress marks ``ˈ`` / ``ˌ`` (separate tokens, placed before the stressed vowel
  as espeak-ng writes them);
* then the units of the language (NFC-normalised), sorted by code point so ids never depend on dictionary
  order.

**Unknown symbols.** ``encode`` raises :class:`~audiozoo.errors.DataError` naming every unknown symbol
(``on_unknown="error"``, the default): a phoneme outside the table means the table does not match the
language or the espeak-ng version, and mapping it silently to ``<unk>`` would train or run a model on
corrupted input. ``on_unknown="unk"`` maps unknowns to ``<unk>`` instead (useful for characters in
open-domain text); it needs ``<unk>`` in the table.

The phoneme inventories below are the units espeak-ng 1.51 writes with ``--ipa --sep=_`` for each voice.
They were derived (once, offline) from espeak-ng's own compiled phoneme tables: every phoneme of the
voice's table (vowels, liquids, stops, fricatives, nasals) was rendered in isolation and in consonant and
vowel frames through ``[[...]]`` phoneme input, and the result was united with the units observed when
phonemising a corpus (Python's documentation for English; language, territory, currency, month and day
names of each locale). Frame artefacts (aspiration glued to neighbours, digits) were dropped. ``??`` and
``i?`` are kept for German: espeak-ng 1.51 has no IPA for its ``UR``/``iR`` phonemes and writes these
(e.g. *Straßburg* -> ``ʃtɾˈasb??k``). A later espeak-ng can produce units outside these sets; the error
above then names them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError, DataError

PAD = "<pad>"
UNK = "<unk>"
BOS = "<bos>"
EOS = "<eos>"
BLANK = "<blank>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS, BLANK)

WORD_SEP = " "
"""The word-boundary token, in phoneme and character sequences alike."""

PUNCTUATION: tuple[str, ...] = tuple("!\"'(),-.:;?¡¿«»…—")
"""Punctuation marks kept as tokens (straight quotes; :func:`~audiozoo.text.normalize.clean_text` maps
curly quotes and dashes onto these)."""

STRESS: tuple[str, ...] = ("ˈ", "ˌ")
"""Primary and secondary stress marks, kept as separate tokens."""

_PHONEMES: dict[str, str] = {
    "en-us": "aɪ aɪə aɪɚ aɪʊ aɪʊɹ aʊ b c d dʑ dʒ d̪ e eɪ eː f h i iə iː j k l l̩ m m̩ n n̩ o oʊ oː oːɹ p q r s t tɕ "
    "tʃ t̪ u uː v w x z æ ç ð ŋ ŋ̩ ɐ ɑː ɑːɹ ɑ̃ ɔ ɔɪ ɔː ɔːɹ ɔ̃ ɕ ə əl əɹ ɚ ɛ ɛɹ ɜː ɟ ɡ ɣ ɪ ɪɹ ɫ ɬ ɭ ɲ ɳ ɹ ɾ ʀ ʁ ʂ ʃ ʊ "
    "ʊɹ ʋ ʌ ʌɹ ʍ ʎ ʐ ʑ ʒ ʔ ʝ β θ χ ᵻ",
    "en-gb": "a aɪ aɪə aʊ aʊə b c d dʑ dʒ d̪ e eə eɪ eː f h i iə iː j k l l̩ m m̩ n n̩ o oː p q r s t tɕ tʃ t̪ u uː v w "
    "x z ç ð ŋ ŋ̩ ɐ ɑː ɑ̃ ɒ ɔ ɔɪ ɔː ɔ̃ ɕ ə əl əɹ əʊ ɛ ɜː ɟ ɡ ɣ ɪ ɫ ɬ ɭ ɲ ɳ ɹ ɾ ʀ ʁ ʂ ʃ ʊ ʊə ʋ ʌ ʌɹ ʍ ʎ ʐ ʑ ʒ ʔ ʝ β θ "
    "χ",
    "de": "?? a aɪ aɪː aʊ b c d dʑ dʒ d̪ e eə eɪ eː f h i i? iː j k l l̩ m m̩ n n̩ o oʊ oː p pf q r r̩ s t ts tɕ tʃ t̪ "
    "u uː v w x y yː z ç ð øː ŋ ŋ̩ œ œ̃ ɐ ɑ ɑː ɑ̃ ɒ ɔ ɔø ɔ̃ ɕ ə ɛ ɛɪ ɛː ɜ ɟ ɡ ɣ ɨ ɪ ɪː ɫ ɬ ɭ ɲ ɳ ɹ ɾ ʀ ʁ ʂ ʃ ʊ ʋ ʌ ʎ "
    "ʐ ʑ ʒ ʔ ʝ β θ χ",
    "fr-fr": "a aɪ aʊ b c d dʑ dʒ d̪ e eə eɪ f h i iə iː j k l l̩ m m̩ n n̩ o oː p q r r̩ s t tɕ tʃ t̪ u uː v w x y z ç "
    "ð ø ŋ ŋ̩ œ œ̃ ɐ ɑː ɑ̃ ɒ ɔ ɔː ɔ̃ ɕ ə əl əʊ ɛ ɛ̃ ɜː ɟ ɡ ɣ ɪ ɫ ɬ ɭ ɲ ɳ ɹ ɾ ʀ ʁ ʂ ʃ ʊ ʋ ʌ ʎ ʐ ʑ ʒ ʔ ʝ β θ χ",
    "es": "a aɪ aʊ b c d dʑ dʒ d̪ e eɪ eʊ f h i iʊ j k l l̩ m m̩ n n̩ o oɪ p pː q r r̩ s t ts tɕ tʃ t̪ u uɪ v w x y z ç "
    "ð ø ŋ ŋ̩ ɔ ɕ ə ɛ ɛɪ ɟ ɡ ɣ ɪ ɫ ɬ ɭ ɲ ɳ ɾ ʀ ʁ ʂ ʃ ʊ ʋ ʎ ʐ ʑ ʒ ʔ ʝ β θ χ",
    "it": "a aɪ aʊ aː b bː c d dz dzː dʑ dʒ dʒː dʒ̃ dː d̪ e eɪ eʊ eː f h i iʊ iː j k kː k̃ l l̩ m m̩ n n̩ o oɪ oː p pː q "
    "r r̩ s ss t ts tsː tɕ tʃ tʃː tʃ̃ tː t̪ u uɪ uː v w x y z ç ð ø ŋ ŋ̩ ɔ ɕ ə ɛ ɛɪ ɛː ɟ ɡ ɡː ɡ̃ ɣ ɣ̃ ɪ ɪː ɫ ɬ ɭ ɲ ɳ ɹ "
    "ɾ ʀ ʁ ʂ ʃ ʃ̃ ʊ ʊː ʋ ʎ ʐ ʑ ʒ ʔ ʝ β θ χ",
    "pt": "a aɪ aʊ b c d dʑ dʒ d̪ e eɪ eʊ ẽ f h i iʊ iː ĩ j k l l̩ m m̩ n n̩ o oɪ õ õɪ̃ p q r rʲ s t ts tɕ tʃ t̪ u uɪ ũ v "
    "w z ç ð ø ŋ ŋ̩ ɐ ɐ̃ ɐ̃ʊ̃ ɑ ɒ ɔ ɔɪ ɔː ɕ ə ɛ ɛɪ ɛʊ ɟ ɡ ɣ ɨ ɪ ɫ ɬ ɭ ɲ ɳ ɹ ɾ ʀ ʁ ʂ ʃ ʊ ʋ ʎ ʐ ʑ ʒ ʔ ʝ β θ χ",
}

# Lower-case letters of each language's orthography (upper case is added when a table keeps case).
_LETTERS: dict[str, str] = {
    "en": "abcdefghijklmnopqrstuvwxyz",
    "de": "abcdefghijklmnopqrstuvwxyzäöüß",
    "fr": "abcdefghijklmnopqrstuvwxyzàâæçéèêëîïôœùûüÿ",
    "es": "abcdefghijklmnopqrstuvwxyzáéíñóúü",
    "it": "abcdefghijklmnopqrstuvwxyzàèéìíîòóùú",
    "pt": "abcdefghijklmnopqrstuvwxyzáâãàçéêíóôõú",
}

# espeak-ng voice names and the aliases espeak-ng itself accepts for them.
_ALIASES: dict[str, str] = {"en": "en-gb", "fr": "fr-fr", "pt-pt": "pt"}


def canonical_language(language: str) -> str:
    """The espeak-ng voice name audiozoo's tables are keyed by (``"fr"`` -> ``"fr-fr"``, ``"en"`` -> ``"en-gb"``
    as in espeak-ng); raises :class:`ConfigError` for a language without a phoneme table here."""
    lang = _ALIASES.get(language.lower(), language.lower())
    if lang not in _PHONEMES:
        raise ConfigError(
            f"no phoneme symbol set for language {language!r}; available: {sorted(_PHONEMES)} "
            "(for another espeak-ng voice build a table with SymbolTable.from_sequences(...))"
        )
    return lang


def phoneme_languages() -> list[str]:
    """Languages (espeak-ng voice names) with a built-in phoneme symbol set."""
    return sorted(_PHONEMES)


def phoneme_inventory(language: str) -> tuple[str, ...]:
    """The phonemes (espeak-ng IPA units, no stress) of ``language``, sorted by code point."""
    return tuple(sorted(_PHONEMES[canonical_language(language)].split()))


def phoneme_symbols(language: str) -> list[str]:
    """Full symbol list of a phoneme table: specials, word separator, punctuation, stress marks, phonemes."""
    return [*SPECIALS, WORD_SEP, *PUNCTUATION, *STRESS, *phoneme_inventory(language)]


def character_symbols(language: str = "en", lowercase: bool = True) -> list[str]:
    """Full symbol list of a character table: specials, space, punctuation, digits, letters of ``language``
    (its first two letters pick the alphabet: ``"en-us"`` -> English)."""
    key = language.lower()[:2]
    if key not in _LETTERS:
        raise ConfigError(f"no character set for language {language!r}; available: {sorted(_LETTERS)}")
    letters = _LETTERS[key]
    if not lowercase:
        # "ß".upper() is "SS"; keep single code points only.
        letters += "".join(c.upper() for c in letters if len(c.upper()) == 1 and c.upper() != c)
    return [*SPECIALS, WORD_SEP, *PUNCTUATION, *"0123456789", *letters]


class SymbolTable:
    """A bijection between symbols (strings) and ids ``0 .. len-1``.

    Args:
        symbols: the symbols in id order; must be unique. Specials are recognised by name
            (``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``, ``<blank>``) wherever they are.
        on_unknown: ``"error"`` (default: :class:`DataError` naming the unknown symbols) or ``"unk"``
            (map them to ``<unk>``, which must then be in the table).
    """

    def __init__(self, symbols: Sequence[str], on_unknown: str = "error") -> None:
        symbols = list(symbols)
        if not symbols:
            raise ConfigError("a SymbolTable needs at least one symbol")
        bad = [s for s in symbols if not isinstance(s, str) or s == ""]
        if bad:
            raise ConfigError(f"symbols must be non-empty strings; got {bad[:5]!r}")
        if len(set(symbols)) != len(symbols):
            dups = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ConfigError(f"duplicate symbols in SymbolTable: {dups!r}")
        if on_unknown not in ("error", "unk"):
            raise ConfigError(f"on_unknown must be 'error' or 'unk', got {on_unknown!r}")
        if on_unknown == "unk" and UNK not in symbols:
            raise ConfigError(f"on_unknown='unk' needs {UNK!r} in the symbols")
        self._symbols = symbols
        self._ids = {s: i for i, s in enumerate(symbols)}
        self.on_unknown = on_unknown

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_sequences(
        cls, sequences: Iterable[Sequence[str]], specials: Sequence[str] = SPECIALS, on_unknown: str = "error"
    ) -> SymbolTable:
        """A table of ``specials`` followed by every symbol seen in ``sequences``, sorted by code point."""
        seen = {s for seq in sequences for s in seq} - set(specials)
        return cls([*specials, *sorted(seen)], on_unknown=on_unknown)

    @classmethod
    def for_phonemes(cls, language: str, on_unknown: str = "error") -> SymbolTable:
        """The built-in phoneme table of an espeak-ng ``language`` (see :func:`phoneme_languages`)."""
        return cls(phoneme_symbols(language), on_unknown=on_unknown)

    @classmethod
    def for_characters(cls, language: str = "en", lowercase: bool = True, on_unknown: str = "error") -> SymbolTable:
        """The built-in character table of ``language``."""
        return cls(character_symbols(language, lowercase), on_unknown=on_unknown)

    # --- mapping ------------------------------------------------------------------------------------------
    def encode(self, symbols: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of ``symbols`` (optionally framed by ``<bos>``/``<eos>``); unknowns per ``on_unknown``."""
        ids = self._ids
        out = [ids.get(s, -1) for s in symbols]
        if -1 in out:
            unknown = sorted({s for s, i in zip(symbols, out) if i == -1})
            if self.on_unknown == "error":
                raise DataError(
                    f"symbol(s) {unknown!r} not in the symbol table ({len(self)} symbols); use a table for this "
                    "language/units, build one from data (SymbolTable.from_sequences), or on_unknown='unk'"
                )
            unk = ids[UNK]
            out = [unk if i == -1 else i for i in out]
        if add_bos:
            out.insert(0, self._special_id(BOS))
        if add_eos:
            out.append(self._special_id(EOS))
        return out

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Symbols of ``ids``; ``skip_specials`` drops ``<pad>``/``<bos>``/``<eos>``/``<blank>``/``<unk>``."""
        out = []
        n = len(self._symbols)
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise DataError(f"id {i} out of range for a symbol table of {n} symbols")
            s = self._symbols[i]
            if skip_specials and s in SPECIALS:
                continue
            out.append(s)
        return out

    def _special_id(self, name: str) -> int:
        if name not in self._ids:
            raise ConfigError(f"this symbol table has no {name!r} symbol")
        return self._ids[name]

    def id_of(self, symbol: str) -> int | None:
        """Id of ``symbol``, or None when it is not in the table."""
        return self._ids.get(symbol)

    @property
    def pad_id(self) -> int | None:
        return self._ids.get(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._ids.get(UNK)

    @property
    def bos_id(self) -> int | None:
        return self._ids.get(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._ids.get(EOS)

    @property
    def blank_id(self) -> int | None:
        return self._ids.get(BLANK)

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymbolTable):
            return NotImplemented
        return self._symbols == other._symbols and self.on_unknown == other.on_unknown

    def __hash__(self) -> int:
        return hash((tuple(self._symbols), self.on_unknown))

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols, on_unknown={self.on_unknown!r})"

    # --- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what a checkpoint's config carries)."""
        return {"type": "symbol_table", "symbols": list(self._symbols), "on_unknown": self.on_unknown}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SymbolTable:
        if not isinstance(d, dict) or d.get("type") != "symbol_table" or not isinstance(d.get("symbols"), list):
            raise CheckpointError("not a symbol table: expected {'type': 'symbol_table', 'symbols': [...]}")
        return cls(d["symbols"], on_unknown=d.get("on_unknown", "error"))

    def save(self, path: str | os.PathLike) -> None:
        """Write the table as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> SymbolTable:
        """Read a table written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"symbol table file not found: {p}")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"symbol table file {p} is not valid UTF-8 JSON: {e}") from e
        return cls.from_dict(d)
