"""Phonemes grouped per word: the token -> word index map (``ph2word``) of word-level TTS models (PortaSpeech).

NATSpeech's front end (``data_gen/tts/txt_processors``) makes every word, every punctuation mark, every word
boundary ``|`` and the ``<BOS>`` / ``<EOS>`` marks a "word" of its own. The same grouping on a token sequence:

* a *boundary* token (word separator, punctuation, bos / eos) is a word by itself;
* an *attached* token (Piper's ``_`` pad, which follows every phoneme) belongs to the word of the token before it;
* any other token continues the current word, unless the previous non-attached token was a boundary.

Word indices start at 1 (0 is padding, as NATSpeech's ``ph2word``). For Piper ids (``^ _ h _ ə _ ␣ _ w _ . _ $``)
the words are ``[^ _] [h _ ə _] [␣ _] [w _] [. _] [$]``. :data:`PIPER_BOUNDARY_IDS` / :data:`PIPER_ATTACHED_IDS`
are the ids of Piper's ``phoneme_id_map`` (``^ $ ␣ ! ( ) , . : ; ?`` and ``_``, the same in every Piper voice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["PIPER_ATTACHED_IDS", "PIPER_BOUNDARY_IDS", "boundary_ids_from_map", "word_index"]

PIPER_BOUNDARY_SYMBOLS = ("^", "$", " ", "!", "(", ")", ",", ".", ":", ";", "?")
PIPER_BOUNDARY_IDS: tuple[int, ...] = (1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13)
PIPER_ATTACHED_IDS: tuple[int, ...] = (0,)


def boundary_ids_from_map(phoneme_id_map: Mapping[str, Sequence[int]],
                          symbols: Iterable[str] = PIPER_BOUNDARY_SYMBOLS) -> tuple[int, ...]:
    """The ids of the boundary ``symbols`` in a Piper-style ``phoneme_id_map`` (symbols absent from it skipped)."""
    return tuple(sorted({i for s in symbols for i in phoneme_id_map.get(s, ())}))


def word_index(ids: Sequence[int], boundary_ids: Iterable[int] = PIPER_BOUNDARY_IDS,
               attached_ids: Iterable[int] = PIPER_ATTACHED_IDS) -> list[int]:
    """Word index (from 1) of every token of ``ids``; see the module docstring. ``[]`` for an empty sequence."""
    bset, aset = set(boundary_ids), set(attached_ids)
    if bset & aset:
        raise ConfigError(f"ids {sorted(bset & aset)} are both boundary and attached")
    out: list[int] = []
    word, prev_boundary = 0, True
    for t in ids:
        t = int(t)
        if t in aset and word > 0:
            out.append(word)
            continue
        if t in bset or prev_boundary or word == 0:
            word += 1
        prev_boundary = t in bset
        out.append(word)
    return out
