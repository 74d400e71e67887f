"""Word and character error rates (via ``jiwer``) with a simple, documented text normaliser."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from audiozoo.errors import DataError, require

__all__ = ["normalize_text", "wer", "cer"]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def normalize_text(text: str) -> str:
    """Normalise a transcript before scoring: the same rules for reference and hypothesis.

    1. Unicode NFKC (full-width forms, ligatures, composed accents become canonical) and lower case
       (``str.casefold``).
    2. Typographic apostrophes become ``'``; every other character that is not a letter, a digit, a
       combining mark or ``'`` (punctuation, symbols, control characters) becomes a space, so
       ``"well-known"`` scores as two words, as in Whisper's basic normaliser.
    3. Apostrophes are kept inside words (``don't``) and dropped at word edges (``'quoted'``).
    4. Whitespace runs collapse to one space; leading/trailing space is removed.

    Deliberately *not* done (language-specific): number spelling ("3" vs "three"), contraction or
    British/American spelling standardisation as in Whisper's English normaliser.
    """
    if not isinstance(text, str):
        raise DataError(f"normalize_text: expected a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    kept = [ch if (ch == "'" or unicodedata.category(ch)[0] in "LNM") else " " for ch in text]
    words = (w.strip("'") for w in "".join(kept).split())
    return " ".join(w for w in words if w)


def _prepare(
    reference: str | Sequence[str], hypothesis: str | Sequence[str], normalize: bool
) -> tuple[list[str], list[str]]:
    refs = [reference] if isinstance(reference, str) else list(reference)
    hyps = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    if len(refs) != len(hyps):
        raise DataError(f"{len(refs)} reference transcripts but {len(hyps)} hypotheses")
    if not refs:
        raise DataError("no transcripts to score")
    for name, items in (("reference", refs), ("hypothesis", hyps)):
        bad = [type(x).__name__ for x in items if not isinstance(x, str)]
        if bad:
            raise DataError(f"{name}: transcripts must be strings, got {bad[0]}")
    if normalize:
        refs, hyps = [normalize_text(r) for r in refs], [normalize_text(h) for h in hyps]
    else:  # still collapse whitespace, which jiwer's default transform also does
        refs, hyps = [re.sub(r"\s+", " ", r).strip() for r in refs], [re.sub(r"\s+", " ", h).strip() for h in hyps]
    # An empty reference has no words to be wrong about: the rate's denominator would be 0.
    empty = [i for i, r in enumerate(refs) if not r]
    if empty:
        raise DataError(f"reference transcript {empty[0]} is empty (after normalisation); WER/CER undefined")
    return refs, hyps


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str], *, normalize: bool = True) -> float:
    """Word error rate = (substitutions + deletions + insertions) / reference words, over the corpus.

    Lists are scored as a corpus (errors and reference words summed over utterances, jiwer's
    convention), not as a mean of per-utterance rates. May exceed 1 with many insertions.

    Args:
        reference, hypothesis: one transcript each, or equal-length lists.
        normalize: apply :func:`normalize_text` to both sides first.
    """
    jiwer = require("jiwer", "WER", extra="metrics")
    refs, hyps = _prepare(reference, hypothesis, normalize)
    return float(jiwer.wer(refs, hyps))


def cer(reference: str | Sequence[str], hypothesis: str | Sequence[str], *, normalize: bool = True) -> float:
    """Character error rate: the edit distance over characters (spaces between words count as
    characters, jiwer's convention) divided by the reference length, over the corpus.

    Args as :func:`wer`.
    """
    jiwer = require("jiwer", "CER", extra="metrics")
    refs, hyps = _prepare(reference, hypothesis, normalize)
    return float(jiwer.cer(refs, hyps))
