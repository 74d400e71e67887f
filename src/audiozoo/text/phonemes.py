"""Phonemes through espeak-ng: text -> IPA phoneme tokens with stress, word boundaries and punctuation.

The ``espeak-ng`` program is called directly (``-q --ipa --sep=_ -v LANG``), once per batch of texts, so
the phonemes are exactly espeak-ng's own ``--ipa`` output: its phoneme units (``--sep`` only splits them,
``oʊ``, ``tʃ``, ``ɑːɹ`` stay one unit) and its stress placement (the mark before the stressed vowel).

How a text becomes tokens:

1. Punctuation marks (:data:`~audiozoo.text.symbols.PUNCTUATION`) at the edges of whitespace-separated
   words are split off and kept as tokens (``"Hello, world!"`` -> ``..., ",", " ", ..., "!"``). Marks
   inside a word stay with it (``3.50``, ``don't``, ``week-end``) and espeak-ng reads them.
2. The words between two punctuation marks form one chunk, phonemised in one piece so espeak-ng sees the
   same clause as in the whole sentence. espeak-ng itself ends a clause at ``. , ! ? : ;``, so for text
   punctuated only with those the phonemes equal ``espeak-ng -q --ipa`` on the whole text. Splitting at
   quotes, brackets and dashes (which do not end an espeak-ng clause) can change the weak/strong form of a
   function word next to them (``to`` -> ``tʊ``/``tuː``); a period followed by a lower-case word is a
   clause end here but not for espeak-ng.
3. espeak-ng's output words become words separated by :data:`~audiozoo.text.symbols.WORD_SEP`; its
   ``_`` separators split the phonemes. Its language-switch flags (``(en)``...``(fr)``, written when a
   French text contains an English word) and its ``-`` linking marks (French liaison, clitics) are removed;
   stress marks become separate tokens before their vowel (``stress=True``) or are dropped. Units are
   NFC-normalised (espeak-ng writes e.g. Portuguese ``ẽ`` as ``e`` + combining tilde).

Batch protocol: the chunks of all texts go to one espeak-ng process on stdin, one chunk a line with a blank
line between chunks. espeak-ng reads stdin line by line (at most 1000 bytes a line; chunks are cut at
word boundaries to stay well under it) and writes one line per clause, an empty line for the blank line.
A chunk that produced an empty line of its own (nothing pronounceable in it) breaks the count; the batch is
then redone one process per chunk, so a result is never misaligned.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError, DataError, MissingDependencyError
from .symbols import PUNCTUATION, STRESS, WORD_SEP

ESPEAK_ENV = "AUDIOZOO_ESPEAK_NG"
"""Environment variable naming the espeak-ng executable (default: ``espeak-ng`` on the PATH)."""

_PUNCT = frozenset(PUNCTUATION)
_SEP = "_"
_MAX_LINE_BYTES = 600  # espeak-ng's stdin reader takes 1000 bytes a line; stay well below
_FLAG_RE = re.compile(r"\([^()\s]*\)")  # language-switch flags such as (en) or (fr)


def find_espeak(executable: str | None = None) -> str:
    """Path of the espeak-ng program: ``executable``, else ``$AUDIOZOO_ESPEAK_NG``, else ``espeak-ng`` on PATH.

    Raises :class:`MissingDependencyError` naming the system package when it is not installed.
    """
    name = executable or os.environ.get(ESPEAK_ENV) or "espeak-ng"
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(
            f"phonemes need the espeak-ng program ({name!r} not found): install the 'espeak-ng' system package "
            f"(apt-get install espeak-ng; brew install espeak-ng) or set ${ESPEAK_ENV} to its path"
        )
    return path


def espeak_available(executable: str | None = None) -> bool:
    """Whether the espeak-ng program can be found."""
    try:
        find_espeak(executable)
    except MissingDependencyError:
        return False
    return True


def espeak_version(executable: str | None = None) -> str:
    """espeak-ng's version string, e.g. ``"1.51"``."""
    out = subprocess.run([find_espeak(executable), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"eSpeak NG text-to-speech:\s*(\S+)", out.stdout)
    return m.group(1) if m else out.stdout.strip()


@dataclass(frozen=True)
class _Item:
    kind: str  # "punct" or "chunk"
    value: str  # the mark, or the chunk's text
    space_before: bool


def _clean_chunk_text(text: str) -> str:
    # Control and format characters (zero-width spaces...) carry nothing to pronounce and would make
    # espeak-ng write an empty line; "[[" would switch espeak-ng to phoneme-mnemonic input.
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    return text.replace("[[", "[ [").replace("]]", "] ]")


def _split_items(text: str) -> list[_Item]:
    """Punctuation marks at word edges and the chunks of words between them, in order."""
    items: list[_Item] = []
    words: list[str] = []
    words_space = False

    def flush() -> None:
        nonlocal words
        if words:
            items.append(_Item("chunk", " ".join(words), words_space))
            words = []

    for n, word in enumerate(_clean_chunk_text(text).split()):
        space = n > 0
        i, j = 0, len(word)
        while i < j and word[i] in _PUNCT:
            i += 1
        while j > i and word[j - 1] in _PUNCT:
            j -= 1
        for k, mark in enumerate(word[:i]):
            flush()
            items.append(_Item("punct", mark, space and k == 0))
        core = word[i:j]
        if core:
            if not words:
                words_space = space and i == 0
            words.append(core)
        for mark in word[j:]:
            flush()
            items.append(_Item("punct", mark, False))  # follows its word directly
    flush()
    return items


def _cut(chunk: str) -> list[str]:
    """Split a chunk at spaces into pieces of at most ``_MAX_LINE_BYTES`` UTF-8 bytes."""
    if len(chunk.encode()) <= _MAX_LINE_BYTES:
        return [chunk]
    pieces, cur = [], ""
    for w in chunk.split(" "):
        while len(w.encode()) > _MAX_LINE_BYTES:  # an absurdly long "word": cut it anywhere
            pieces.append(w[: _MAX_LINE_BYTES // 4])
            w = w[_MAX_LINE_BYTES // 4 :]
        cand = f"{cur} {w}" if cur else w
        if len(cand.encode()) > _MAX_LINE_BYTES:
            pieces.append(cur)
            cand = w
        cur = cand
    if cur:
        pieces.append(cur)
    return [p for p in pieces if p]


class EspeakPhonemizer:
    """Text -> phoneme tokens with espeak-ng.

    Args:
        language: an espeak-ng voice (``"en-us"``, ``"en-gb"``, ``"de"``, ``"fr-fr"``, ``"es"``, ...;
            ``espeak-ng --voices`` lists them).
        stress: keep ``ˈ``/``ˌ`` as separate tokens before the stressed vowel (True) or drop them.
        punctuation: keep punctuation marks as tokens.
        executable: path of espeak-ng (default :func:`find_espeak`).

    Calling it on a list of texts returns one token list per text, e.g. ``"Hello, world!"`` (en-us) ->
    ``['h', 'ə', 'l', 'ˈ', 'oʊ', ',', ' ', 'w', 'ˈ', 'ɜː', 'l', 'd', '!']``.
    """

    def __init__(
        self, language: str = "en-us", stress: bool = True, punctuation: bool = True, executable: str | None = None
    ) -> None:
        if not isinstance(language, str) or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", language):
            raise ConfigError(f"invalid espeak-ng language/voice name {language!r}")
        self.language = language
        self.stress = bool(stress)
        self.punctuation = bool(punctuation)
        self.executable = find_espeak(executable)

    # --- espeak-ng ----------------------------------------------------------------------------------------
    def _espeak(self, lines: list[str]) -> list[str]:
        cmd = [self.executable, "-q", "-b", "1", "--ipa", f"--sep={_SEP}", "-v", self.language]
        data = ("\n\n".join(lines) + "\n").encode("utf-8")
        try:
            proc = subprocess.run(cmd, input=data, capture_output=True, check=False, timeout=60 + len(data) / 2000)
        except subprocess.TimeoutExpired as e:
            raise DataError(f"espeak-ng did not finish phonemising {len(lines)} chunk(s)") from e
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
            if "voice does not exist" in msg:
                raise ConfigError(f"espeak-ng has no voice {self.language!r} (see espeak-ng --voices): {msg}")
            raise DataError(f"espeak-ng failed (exit {proc.returncode}): {msg}")
        out = proc.stdout.decode("utf-8", "replace").split("\n")
        if out and out[-1] == "":
            out.pop()
        return out

    def _chunk_outputs(self, chunks: list[str]) -> list[list[str]]:
        """espeak-ng's output lines of each chunk (one process for all, or one per chunk as a fallback)."""
        if not chunks:
            return []
        groups: list[list[str]] = [[]]
        for line in self._espeak(chunks):
            if line.strip():
                groups[-1].append(line)
            else:
                groups.append([])
        if len(groups) == len(chunks) and all(groups):
            return groups
        # A chunk wrote an empty line of its own: redo one chunk at a time so nothing is misaligned.
        return [[ln for ln in self._espeak([c]) if ln.strip()] for c in chunks]

    def _words(self, lines: list[str]) -> list[list[str]]:
        """Phoneme tokens of each espeak-ng output word of one chunk."""
        words = []
        for line in lines:
            for w in _FLAG_RE.sub(" ", line).split():
                toks: list[str] = []
                for unit in w.split(_SEP):
                    # NFC: espeak-ng writes some nasal vowels decomposed (e + U+0303); tables store NFC.
                    unit = unicodedata.normalize("NFC", unit.replace("-", ""))
                    core = unit
                    for s in STRESS:
                        core = core.replace(s, "")
                    if self.stress:
                        toks.extend(c for c in unit if c in STRESS)
                    if core:
                        toks.append(core)
                if toks:
                    words.append(toks)
        return words

    # --- public -------------------------------------------------------------------------------------------
    def phonemize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Token lists of ``texts`` (one espeak-ng process for the whole batch)."""
        if isinstance(texts, str):
            raise DataError("phonemize_batch takes a list of texts; use phonemize(text) for one")
        for t in texts:
            if not isinstance(t, str):
                raise DataError(f"texts must be strings, got {type(t).__name__}")
        per_text = [_split_items(t) for t in texts]
        chunks: list[str] = []
        pieces: list[list[int]] = []  # per chunk item, in order: its indices into `chunks`
        for items in per_text:
            for it in items:
                if it.kind == "chunk":
                    ps = _cut(it.value)
                    pieces.append(list(range(len(chunks), len(chunks) + len(ps))))
                    chunks.extend(ps)
        outputs = self._chunk_outputs(chunks)
        result = []
        k = 0
        for items in per_text:
            toks: list[str] = []
            for it in items:
                if it.space_before and toks and toks[-1] != WORD_SEP:
                    toks.append(WORD_SEP)
                if it.kind == "punct":
                    if self.punctuation:
                        toks.append(it.value)
                    continue
                words = [w for i in pieces[k] for w in self._words(outputs[i])]
                k += 1
                for n, w in enumerate(words):
                    if n and toks and toks[-1] != WORD_SEP:
                        toks.append(WORD_SEP)
                    toks.extend(w)
            while toks and toks[-1] == WORD_SEP:
                toks.pop()
            result.append(toks)
        return result

    def phonemize(self, text: str) -> list[str]:
        """Token list of one text."""
        return self.phonemize_batch([text])[0]

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        return self.phonemize_batch(texts)


def phonemize(
    texts: str | Sequence[str], language: str = "en-us", stress: bool = True, punctuation: bool = True
) -> list[str] | list[list[str]]:
    """Phoneme tokens of one text (-> ``list[str]``) or of a list of texts (-> ``list[list[str]]``, one
    espeak-ng process). See :class:`EspeakPhonemizer`."""
    ph = EspeakPhonemizer(language, stress=stress, punctuation=punctuation)
    return ph.phonemize(texts) if isinstance(texts, str) else ph.phonemize_batch(texts)


def tokens_to_ipa(tokens: Sequence[str]) -> str:
    """Join tokens back into an IPA string (``["h", "ˈ", "aɪ"]`` -> ``"hˈaɪ"``; word separators stay spaces)."""
    return "".join(tokens)
