"""Phonemes against espeak-ng's own ``--ipa`` output, plus punctuation, stress, batching and errors."""

from __future__ import annotations

import re
import subprocess
import unicodedata

import pytest

from audiozoo.errors import ConfigError, DataError, MissingDependencyError
from audiozoo.text import PUNCTUATION, STRESS, WORD_SEP, EspeakPhonemizer, SymbolTable, espeak_available
from audiozoo.text import phonemes as ph_mod
from audiozoo.text.phonemes import find_espeak, tokens_to_ipa

needs_espeak = pytest.mark.skipif(
    not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)

# Punctuated only with marks that end an espeak-ng clause (. , ! ? : ;), no abbreviations: the phonemes must
# then equal espeak-ng's output on the whole text (see audiozoo.text.phonemes).
SENTENCES = {
    "en-us": [
        "Hello, world! How are you today?",
        "The quick brown fox jumps over the lazy dog.",
        "I want to go out of the house; then I can't.",
        "She sells sea shells by the sea shore.",
        "Well: that is the question, isn't it?",
        "We paid 3.50 dollars for 12 eggs.",
        "A well-known scientist explained the theory.",
        "Thirty-three thousand people arrived on Tuesday.",
        "Where were you when the lights went out?",
        "Please call Stella, and ask her to bring these things with her from the store.",
        "Nobody knows; everybody guesses.",
        "Run! The bridge is collapsing!",
    ],
    "de": [
        "Guten Morgen, wie geht es dir?",
        "Ich heiße Jürgen und wohne in München.",
        "Die Katze schläft auf dem Sofa; der Hund bellt.",
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    ],
    "fr-fr": [
        "Bonjour, comment allez-vous?",
        "Je ne sais pas, l'homme et les amis.",
        "Le chat dort sur le canapé; le chien aboie.",
        "Portez ce vieux whisky au juge blond qui fume!",
    ],
}


def _espeak_reference(text: str, language: str) -> str:
    """espeak-ng -q --ipa on the whole text; its clause lines joined by spaces, without the language-switch
    flags and '-' linking marks that audiozoo documents as removed, NFC-normalised as audiozoo's units."""
    out = subprocess.run(
        [find_espeak(), "-q", "--ipa", "-v", language, text], capture_output=True, check=True
    ).stdout.decode("utf-8")
    out = re.sub(r"\([^()\s]*\)", " ", out).replace("-", "")
    return unicodedata.normalize("NFC", " ".join(out.split()))


def _as_ipa(tokens: list[str]) -> str:
    return " ".join(tokens_to_ipa([t for t in tokens if t not in PUNCTUATION]).split())


@needs_espeak
@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_equals_espeak_ipa_output(language):
    texts = SENTENCES[language]
    got = EspeakPhonemizer(language)(texts)  # one process for the batch
    for text, toks in zip(texts, got):
        assert _as_ipa(toks) == _espeak_reference(text, language), text
    # Every unit is in the built-in symbol set of the language (the set is complete for this text).
    table = SymbolTable.for_phonemes(language)
    for toks in got:
        table.encode(toks)


# Two sentences a built-in language, with its less common units (nasal vowels, geminates, umlauts...).
COVERAGE = {
    "en-us": ["Thousands of measured pleasures, though rough, joy."],
    "en-gb": ["Neither the tour nor the hour was poor; they're here."],
    "de": ["Die Straßburger Bäcker müssen öfter Brötchen backen; Pfeffer und Zucker."],
    "fr-fr": ["Un bon vin blanc, une brune; le feuilleton du jeudi."],
    "es": ["El niño pequeño llamó a la guerra; cigüeña y acción."],
    "it": ["Gli gnocchi sono buoni; la pizza e il caffè, oggi aggiungo."],
    "pt": ["Não, mãe, o pão e o coração; muito bem, irmãos."],
}


@needs_espeak
@pytest.mark.parametrize("language", sorted(COVERAGE))
def test_builtin_symbol_sets_cover_espeak_output(language):
    for toks in EspeakPhonemizer(language)(COVERAGE[language]):
        assert SymbolTable.for_phonemes(language).encode(toks)  # no unknown unit
        assert all(unicodedata.is_normalized("NFC", t) for t in toks)


@needs_espeak
def test_punctuation_word_boundaries_and_stress():
    toks = EspeakPhonemizer("en-us").phonemize("Hello, world!")
    assert [t for t in toks if t in PUNCTUATION or t == WORD_SEP] == [",", " ", "!"]
    assert toks[0] == "h" and toks[-1] == "!"
    assert "ˈ" in toks and all(len(t) >= 1 for t in toks)
    plain = EspeakPhonemizer("en-us", stress=False, punctuation=False).phonemize("Hello, world!")
    assert not set(plain) & set(STRESS) and not set(plain) & set(PUNCTUATION)
    assert plain == [t for t in toks if t not in STRESS and t not in PUNCTUATION]
    # Marks inside a word stay with it; marks around words become tokens with the text's spacing.
    toks = EspeakPhonemizer("en-us").phonemize('He said "yes" (twice) - ok...')
    marks = [t for t in toks if t in PUNCTUATION or t == WORD_SEP]
    assert marks == [" ", " ", '"', '"', " ", "(", ")", " ", "-", " ", ".", ".", "."]


@needs_espeak
def test_batch_equals_single_and_handles_empty_and_odd_inputs(monkeypatch):
    p = EspeakPhonemizer("en-us")
    texts = ["One, two.", "", "...", "Three\nfour\u200b five!", "Sing, ♪, now."]
    calls = []
    real = p._espeak
    monkeypatch.setattr(p, "_espeak", lambda lines: calls.append(len(lines)) or real(lines))
    batch = p.phonemize_batch(texts)
    # "♪" alone makes espeak-ng write an empty line: the batch is redone chunk by chunk, still aligned.
    assert calls[0] == 6 and len(calls) == 1 + 6
    assert batch[1] == [] and batch[2] == [".", ".", "."]
    assert batch == [p.phonemize(t) for t in texts]
    assert batch[3].count(WORD_SEP) == 2 and batch[3][-1] == "!"
    assert batch[4].count(",") == 2 and batch[4][-1] == "."
    calls.clear()
    p.phonemize_batch(["One, two.", "Three!"])
    assert calls == [3]  # one process, no fallback


@needs_espeak
def test_long_text_is_cut_below_espeak_line_limit():
    text = " ".join(["wonderful"] * 150)  # 1500 bytes: more than espeak-ng reads in one line
    toks = EspeakPhonemizer("en-us").phonemize(text)
    assert toks.count(WORD_SEP) == 149
    assert "[[" not in "".join(EspeakPhonemizer("en-us").phonemize("a [[h@l]] b"))


@needs_espeak
def test_unknown_voice_is_a_config_error():
    with pytest.raises(ConfigError, match="no voice 'xx-yy'"):
        EspeakPhonemizer("xx-yy").phonemize("hello")
    with pytest.raises(ConfigError):
        EspeakPhonemizer("en us; rm")
    with pytest.raises(DataError):
        EspeakPhonemizer("en-us").phonemize_batch("not a list")


def test_missing_espeak_names_the_package(monkeypatch):
    monkeypatch.setenv(ph_mod.ESPEAK_ENV, "/nonexistent/espeak-ng")
    assert not espeak_available()
    with pytest.raises(MissingDependencyError, match="apt-get install espeak-ng"):
        EspeakPhonemizer("en-us")
