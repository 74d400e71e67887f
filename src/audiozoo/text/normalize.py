"""Text normalisation: clean-up for every language, numbers and abbreviations spelled out in English.

:func:`clean_text` (any language): Unicode NFC; curly quotes -> straight quotes, ``«``/``»`` kept; en and em
dashes -> ``—``; ``...`` -> ``…``; control and zero-width characters removed; brackets -> parentheses;
runs of whitespace -> one space; no space before ``, . ! ? : ; …`` or after an opening bracket/quote.

:func:`normalize_english` = :func:`clean_text` plus, in this order (each step is a regular expression, so
the result is deterministic and does not depend on the locale):

* abbreviations: titles and words that never end a sentence (Mr., Mrs., Ms., Dr., Prof., St. before a
  capitalised name -> Saint, Capt., Gen., Lt., Col., Sgt., Rev., Gov., Hon., Mt., vs., approx., No. before
  a number) lose their period; others (St. -> Street, Ave., Rd., Blvd., Jr., Sr., Co., Corp., Inc., Ltd.,
  etc., e.g., i.e., month names) keep it when they end the text or a sentence (followed by a capitalised
  word);
* currency ``$ £ € ¥`` with an optional scale word: ``$3.50`` -> "three dollars and fifty cents",
  ``$1`` -> "one dollar", ``€2.5 million`` -> "two point five million euros";
* percentages: ``25%`` -> "twenty-five percent";
* times: ``3:30`` -> "three thirty", ``3:00`` -> "three o'clock", ``3:05`` -> "three oh five";
* year ranges: ``1939-1945`` -> "nineteen thirty-nine to nineteen forty-five";
* ordinals: ``5th`` -> "fifth", ``21st`` -> "twenty-first";
* decimals: ``3.14`` -> "three point one four";
* years: a bare integer 1100-2099 (no thousands separator) is read as a year: ``1999`` -> "nineteen
  ninety-nine", ``1905`` -> "nineteen oh five", ``1900`` -> "nineteen hundred", ``2005`` -> "two thousand
  five", ``2024`` -> "twenty twenty-four" (so "1500 men" reads "fifteen hundred men");
* other integers (``1,234`` too) -> cardinals in American style, without "and" or commas:
  123 -> "one hundred twenty-three"; a leading minus sign -> "minus";
* ``&`` -> "and".

The number words are written here (no dependency); tests compare them with ``num2words`` where installed.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import ConfigError, DataError

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> str:
    words = []
    if n >= 100:
        words.append(f"{_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return " ".join(words)


def cardinal(n: int) -> str:
    """English cardinal of an integer, American style: ``1234`` -> "one thousand two hundred thirty-four"."""
    if not isinstance(n, int):
        raise DataError(f"cardinal() needs an int, got {type(n).__name__}")
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))  # read very long numbers digit by digit
    words = []
    for value, name in _SCALES:
        if n >= value:
            words.append(f"{_below_thousand(n // value)} {name}")
            n %= value
    if n or not words:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal(n: int) -> str:
    """English ordinal: ``21`` -> "twenty-first", ``100`` -> "one hundredth"."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    head2, hyph, unit = last.rpartition("-")
    if unit in _ORDINAL_IRREGULAR:
        unit = _ORDINAL_IRREGULAR[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return head + sep + head2 + hyph + unit


def year(n: int) -> str:
    """English reading of a year: 1999 -> "nineteen ninety-nine", 1905 -> "nineteen oh five", 2005 -> "two
    thousand five", 1900 -> "nineteen hundred", 2024 -> "twenty twenty-four"."""
    if n < 1000 or n > 9999:
        return cardinal(n)
    if 2000 <= n <= 2009:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    if lo < 10:
        return f"{cardinal(hi)} oh {cardinal(lo)}"
    return f"{cardinal(hi)} {cardinal(lo)}"


def _decimal(int_part: str, frac: str) -> str:
    return f"{cardinal(int(int_part))} point " + " ".join(_ONES[int(d)] for d in frac)


# --- clean-up -----------------------------------------------------------------------------------------------
_CHAR_MAP = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
        "–": "—", "‒": "—", "―": "—", "[": "(", "]": ")", "{": "(", "}": ")", "\u00a0": " ", "\u2009": " ",
        "\u202f": " ",
    }
)
_SPACE_BEFORE_RE = re.compile(r"\s+([,.!?:;…)])")
_SPACE_AFTER_RE = re.compile(r"([(])\s+")


def clean_text(text: str) -> str:
    """Language-independent clean-up (see the module docstring)."""
    if not isinstance(text, str):
        raise DataError(f"text must be a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text).translate(_CHAR_MAP)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")  # zero-width and bidi marks
    text = re.sub(r"\.{3,}", "…", text)
    text = re.sub(r"-{2,}", "—", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _SPACE_BEFORE_RE.sub(r"\1", text)
    return _SPACE_AFTER_RE.sub(r"\1", text)


# --- abbreviations -------------------------------------------------------------------------------------------
_TITLES = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Dr": "Doctor", "Prof": "Professor", "Capt": "Captain",
    "Gen": "General", "Lt": "Lieutenant", "Col": "Colonel", "Sgt": "Sergeant", "Rev": "Reverend",
    "Gov": "Governor", "Hon": "Honorable", "Mt": "Mount", "vs": "versus", "approx": "approximately",
}
_OTHERS = {
    "Ave": "Avenue", "Rd": "Road", "Blvd": "Boulevard", "Jr": "Junior", "Sr": "Senior", "Co": "Company",
    "Corp": "Corporation", "Inc": "Incorporated", "Ltd": "Limited", "etc": "et cetera", "Jan": "January",
    "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July", "Aug": "August",
    "Sep": "September", "Sept": "September", "Oct": "October",
    "Nov": "November", "Dec": "December",
}
_TITLE_RE = re.compile(r"\b(" + "|".join(sorted(_TITLES, key=len, reverse=True)) + r")\.(?=\s|$)")
_SAINT_RE = re.compile(r"\bSt\.(?=\s+[A-Z])")
_STREET_RE = re.compile(r"\bSt\.")
_OTHER_RE = re.compile(r"\b(" + "|".join(sorted(_OTHERS, key=len, reverse=True)) + r")\.")
_LATIN_RE = re.compile(r"\b(e\.g|i\.e)\.", re.IGNORECASE)
_NUMBER_ABBR_RE = re.compile(r"\bNo\.(?=\s*\d)")
_SENTENCE_END_RE = re.compile(r"\s*$|\s+[A-Z]")


def _keep_period(text: str, end: int) -> str:
    """A period after an expanded abbreviation stays when it also ends the sentence."""
    return "." if _SENTENCE_END_RE.match(text, end) else ""


def expand_abbreviations(text: str) -> str:
    """Spell out the English abbreviations listed in the module docstring."""
    text = _TITLE_RE.sub(lambda m: _TITLES[m.group(1)], text)
    text = _SAINT_RE.sub("Saint", text)
    text = _STREET_RE.sub(lambda m: "Street" + _keep_period(m.string, m.end()), text)
    text = _NUMBER_ABBR_RE.sub("number", text)
    text = _LATIN_RE.sub(
        lambda m: ("for example" if m.group(1).lower() == "e.g" else "that is") + _keep_period(m.string, m.end()),
        text,
    )
    return _OTHER_RE.sub(lambda m: _OTHERS[m.group(1)] + _keep_period(m.string, m.end()), text)


# --- numbers --------------------------------------------------------------------------------------------------
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", None, None)}
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_SIGN = r"((?<![\w.,])-)?"  # a minus sign only where no word or number precedes it ("1990-95" has none)
_CURRENCY_RE = re.compile(r"([$£€¥])\s?(" + _NUM + r")(?:\s?(thousand|million|billion|trillion)\b)?")
_PERCENT_RE = re.compile(_SIGN + r"(?<![\w.,])(" + _NUM + r")\s?%")
_TIME_RE = re.compile(r"\b([01]?\d|2[0-3]):([0-5]\d)\b(?!:)")
_YEAR_RANGE_RE = re.compile(r"\b(1[1-9]\d\d|20\d\d)\s?[-—]\s?(1[1-9]\d\d|20\d\d)\b")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(_SIGN + r"(?<![\w.,])(\d+(?:,\d{3})*)\.(\d+)\b")
_INT_RE = re.compile(_SIGN + r"(?<![\w.,])(\d+(?:,\d{3})+|\d+)\b")


def _number_words(s: str) -> str:
    """Words of a plain number string such as ``1,234`` or ``2.5``."""
    s = s.replace(",", "")
    if "." in s:
        i, f = s.split(".")
        return _decimal(i or "0", f)
    return cardinal(int(s))


def _currency(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m.group(1)]
    amount, scale = m.group(2).replace(",", ""), m.group(3)
    if scale:
        return f"{_number_words(amount)} {scale} {many}"
    whole, _, frac = amount.partition(".")
    units = int(whole)
    if frac and (len(frac) > 2 or sub_one is None):
        return f"{_decimal(whole, frac)} {many}"
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _time(m: re.Match) -> str:
    h, mnt = int(m.group(1)), int(m.group(2))
    if mnt == 0:
        return f"{cardinal(h)} o'clock"
    return f"{cardinal(h)} {'oh ' if mnt < 10 else ''}{cardinal(mnt)}"


def _integer(m: re.Match) -> str:
    sign, digits = m.group(1), m.group(2)
    n = int(digits.replace(",", ""))
    if not sign and "," not in digits and 1100 <= n <= 2099:
        return year(n)
    return cardinal(-n if sign else n)


def _minus(m: re.Match) -> str:
    return "minus " if m.group(1) else ""


def expand_numbers(text: str) -> str:
    """Spell out currency, percentages, times, ordinals, decimals, years and integers (English)."""
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RE.sub(lambda m: f"{_minus(m)}{_number_words(m.group(2))} percent", text)
    text = _TIME_RE.sub(_time, text)
    text = _YEAR_RANGE_RE.sub(lambda m: f"{year(int(m.group(1)))} to {year(int(m.group(2)))}", text)
    text = _ORDINAL_RE.sub(lambda m: ordinal(int(m.group(1))), text)
    text = _DECIMAL_RE.sub(lambda m: _minus(m) + _decimal(m.group(2).replace(",", ""), m.group(3)), text)
    return _INT_RE.sub(_integer, text)


def normalize_english(text: str) -> str:
    """Clean-up, abbreviations and numbers for English text (see the module docstring).

    ``"Dr. Smith paid $3.50 on May 5th, 1999 for 2 items (25%)."`` -> ``"Doctor Smith paid three dollars and
    fifty cents on May fifth, nineteen ninety-nine for two items (twenty-five percent)."``
    """
    text = clean_text(text)
    text = expand_abbreviations(text)
    text = expand_numbers(text)
    text = text.replace("&", " and ")
    return clean_text(text)


NORMALIZERS = ("auto", "en", "basic", "none")


def normalize(text: str, normalizer: str = "auto", language: str = "en-us") -> str:
    """Normalise ``text`` with ``normalizer``: ``"en"`` (:func:`normalize_english`), ``"basic"``
    (:func:`clean_text`), ``"none"`` (unchanged), or ``"auto"`` (``"en"`` for an English ``language``, else
    ``"basic"``)."""
    if normalizer == "auto":
        normalizer = "en" if language.lower().startswith("en") else "basic"
    if normalizer == "en":
        return normalize_english(text)
    if normalizer == "basic":
        return clean_text(text)
    if normalizer == "none":
        if not isinstance(text, str):
            raise DataError(f"text must be a string, got {type(text).__name__}")
        return text
    raise ConfigError(f"unknown normalizer {normalizer!r}; choose one of {NORMALIZERS}")
