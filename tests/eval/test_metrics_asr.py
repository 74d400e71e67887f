"""WER / CER hand cases and the text normaliser."""

from __future__ import annotations

import pytest

from audiozoo.errors import DataError
from audiozoo.eval import cer, normalize_text, wer


def test_normalize_text_rules():
    assert normalize_text("  The CAT, sat!  ") == "the cat sat"
    assert normalize_text("Don\u2019t 'quote' me") == "don't quote me"  # inner apostrophe kept, edges dropped
    assert normalize_text("well-known") == "well known"  # punctuation becomes a word break
    assert normalize_text("\ufb01ne \uff21") == "fine a"  # NFKC: ligature and full-width letters
    assert normalize_text("caf\u00e9 == cafe\u0301") == "café café"  # composed and decomposed accents agree
    assert normalize_text("42 Times") == "42 times"  # digits kept as written (no number spelling)


def test_wer_hand_cases():
    ref = "the cat sat on the mat"
    assert wer(ref, ref) == 0.0
    assert wer(ref, "the cat sat on mat") == pytest.approx(1 / 6)  # one deletion
    assert wer(ref, "the dog sat on the mat today") == pytest.approx(2 / 6)  # substitution + insertion
    assert wer("a b", "c d e f") == pytest.approx(4 / 2)  # 2 substitutions + 2 insertions: may exceed 1
    # normalisation makes case and punctuation free; without it they are errors
    assert wer("The cat, sat.", "the cat sat") == 0.0
    assert wer("The cat, sat.", "the cat sat", normalize=False) == pytest.approx(3 / 3)
    # corpus-level: 1 error over 2 + 4 reference words, not the mean of 1/2 and 0/4
    assert wer(["a b", "c d e f"], ["a", "c d e f"]) == pytest.approx(1 / 6)


def test_cer_hand_cases():
    assert cer("abcd", "abed") == pytest.approx(1 / 4)  # one substitution
    assert cer("ab cd", "abcd") == pytest.approx(1 / 5)  # the space is a character (deleted)
    assert cer("Hello!", "hello") == 0.0


def test_bad_transcripts():
    with pytest.raises(DataError, match="empty"):
        wer("...", "something")  # nothing left after normalisation
    with pytest.raises(DataError, match="2 reference transcripts but 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(DataError, match="strings"):
        cer(["a"], [None])
