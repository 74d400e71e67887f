"""English normalisation: numbers, currency, abbreviations, clean-up; number words against num2words."""

from __future__ import annotations

import random

import pytest

from audiozoo.errors import ConfigError, DataError
from audiozoo.text import clean_text, normalize, normalize_english
from audiozoo.text.normalize import cardinal, ordinal, year


def test_the_issue_sentence():
    assert normalize_english("Dr. Smith paid $3.50 on May 5th, 1999 for 2 items (25%).") == (
        "Doctor Smith paid three dollars and fifty cents on May fifth, nineteen ninety-nine for two items "
        "(twenty-five percent)."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It costs $1.", "It costs one dollar."),
        ("It costs $0.01 or £2.10.", "It costs one cent or two pounds and ten pence."),
        ("A $2.5 million deal, €3, ¥500.", "A two point five million dollars deal, three euros, five hundred yen."),
        ("Pi is 3.14, not -2.", "Pi is three point one four, not minus two."),
        ("1,234,567 people", "one million two hundred thirty-four thousand five hundred sixty-seven people"),
        ("In 2000, 2005, 2024, 1900.", "In two thousand, two thousand five, twenty twenty-four, nineteen hundred."),
        ("In 1905 and 1066.", "In nineteen oh five and one thousand sixty-six."),
        ("From 1939-1945.", "From nineteen thirty-nine to nineteen forty-five."),
        ("The 1st, 2nd, 3rd, 11th, 22nd.", "The first, second, third, eleventh, twenty-second."),
        ("The 101st and 40th.", "The one hundred first and fortieth."),
        ("At 3:05 or 10:00, 7:45.", "At three oh five or ten o'clock, seven forty-five."),
        ("Up 2.5% and -3%.", "Up two point five percent and minus three percent."),
        ("Mr. and Mrs. Jones met Prof. Lee.", "Mister and Missus Jones met Professor Lee."),
        ("St. Paul lives on Main St.", "Saint Paul lives on Main Street."),
        ("Smith Inc. vs. Jones Ltd. Then etc.", "Smith Incorporated versus Jones Limited. Then et cetera."),
        ("See e.g. No. 5, i.e. the last one.", "See for example number five, that is the last one."),
        ("Tom & Jerry", "Tom and Jerry"),
    ],
)
def test_english_cases(text, expected):
    assert normalize_english(text) == expected


def test_clean_text():
    messy = "  “Hello”\u00a0 ‘there’ , [you]\u200b -- fine...\n\tok "
    assert clean_text(messy) == '"Hello" \'there\', (you) — fine… ok'
    assert clean_text("a – b") == "a — b"
    with pytest.raises(DataError):
        clean_text(None)


def test_dispatch_and_determinism():
    text = "Dr. Who paid $5."
    assert normalize(text, "auto", "en-us") == normalize_english(text)
    assert normalize(text, "auto", "de") == clean_text(text)  # English rules only for English
    assert normalize(" x  y ", "none") == " x  y "
    with pytest.raises(ConfigError, match="unknown normalizer"):
        normalize(text, "klingon")
    assert all(normalize_english(text) == normalize_english(text) for _ in range(3))


def test_number_words():
    assert cardinal(0) == "zero" and cardinal(-12) == "minus twelve"
    assert cardinal(1_000_001) == "one million one" and cardinal(40) == "forty"
    assert ordinal(12) == "twelfth" and ordinal(40) == "fortieth" and ordinal(100) == "one hundredth"
    assert year(1999) == "nineteen ninety-nine" and year(2010) == "twenty ten" and year(2009) == "two thousand nine"


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["cardinal", "ordinal"])
def test_number_words_match_num2words(kind):
    num2words = pytest.importorskip("num2words").num2words
    rng = random.Random(0)
    numbers = list(range(0, 130)) + [rng.randrange(10**k) for k in range(2, 13) for _ in range(30)]
    ours = cardinal if kind == "cardinal" else ordinal
    for n in numbers:
        # num2words writes British "and" and commas between groups; audiozoo writes American style.
        ref = num2words(n, to=kind).replace(",", "").replace(" and ", " ")
        assert ours(n) == ref, n
