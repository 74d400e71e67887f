"""audiozoo.text: the text front end of TTS, ASR, captioning and text-to-audio systems.

* :mod:`~audiozoo.text.symbols`: symbol sets (espeak-ng IPA phonemes per language, characters,
  punctuation, ``<pad> <unk> <bos> <eos> <blank>``) and :class:`SymbolTable`;
* :mod:`~audiozoo.text.phonemes`: phonemes through the espeak-ng program (stress, word boundaries,
  punctuation, one process per batch);
* :mod:`~audiozoo.text.normalize`: clean-up, English numbers and abbreviations;
* :mod:`~audiozoo.text.tokenizers`: character, byte-level BPE and SentencePiece tokenizers behind one
  :class:`Tokenizer` interface;
* :mod:`~audiozoo.text.frontend`: :class:`TextFrontend` (normalise -> phonemise -> ids, lengths).

These front-end modules import nothing of audiozoo but ``audiozoo.errors`` and ``audiozoo.config``, so a
model file may use them (tests/text/test_text_imports.py).
"""

from .frontend import TextFrontend, TextFrontendConfig
from .normalize import clean_text, normalize, normalize_english
from .phonemes import EspeakPhonemizer, espeak_available, phonemize
from .symbols import (
    BLANK,
    BOS,
    EOS,
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
from .tokenizers import BPETokenizer, CharTokenizer, SentencePieceTokenizer, Tokenizer, asr_char_tokenizer, pad_ids

__all__ = [
    "BLANK", "BOS", "EOS", "PAD", "PUNCTUATION", "SPECIALS", "STRESS", "UNK", "WORD_SEP",
    "BPETokenizer", "CharTokenizer", "EspeakPhonemizer", "SentencePieceTokenizer", "SymbolTable", "TextFrontend",
    "TextFrontendConfig", "Tokenizer", "asr_char_tokenizer", "character_symbols", "clean_text", "espeak_available",
    "normalize",
    "normalize_english", "pad_ids", "phoneme_languages", "phoneme_symbols", "phonemize",
]


def __getattr__(name: str):
    # The frozen MiniLM sentence encoder (audiozoo.text.encoder, issue #12) reads pinned weights through
    # audiozoo.hub, so it is imported on first use and stays out of the front end's import graph.
    if name == "TextEncoder":
        import importlib

        return importlib.import_module(".encoder", __name__).TextEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
