"""The text front end a pipeline uses: normalise -> phonemise (or split into characters) -> ids + lengths.

A :class:`TextFrontend` is fully described by its :class:`TextFrontendConfig`; :meth:`TextFrontend.to_dict`
writes the resolved symbol list into the config, so a checkpoint keeps encoding text the same way even if
the built-in symbol sets change later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import build_config
from ..errors import ConfigError, DataError
from .normalize import NORMALIZERS, normalize
from .phonemes import EspeakPhonemizer
from .symbols import PUNCTUATION, STRESS, WORD_SEP, SymbolTable, character_symbols, phoneme_symbols
from .tokenizers import pad_ids


@dataclass
class TextFrontendConfig:
    """Settings of a :class:`TextFrontend` (saved with a model's config).

    Attributes:
        units: ``"phonemes"`` (espeak-ng IPA) or ``"characters"``.
        language: an espeak-ng voice (``"en-us"``, ``"en-gb"``, ``"de"``, ``"fr-fr"``, ``"es"``, ``"it"``, ``"pt"``
            have built-in symbol sets); for characters its first two letters pick the alphabet.
        normalizer: ``"auto"`` (English rules for ``en*``, clean-up only otherwise), ``"en"``, ``"basic"``,
            ``"none"`` (see :mod:`audiozoo.text.normalize`).
        stress: keep stress marks as tokens (phonemes).
        punctuation: keep punctuation marks as tokens.
        lowercase: lower-case text first (characters).
        add_bos / add_eos: frame every sequence with ``<bos>`` / ``<eos>``.
        on_unknown: ``"error"`` or ``"unk"`` for symbols outside the table (see :class:`SymbolTable`).
        symbols: the symbol list; empty = the built-in set for ``units``/``language`` (resolved on load).
    """

    units: str = "phonemes"
    language: str = "en-us"
    normalizer: str = "auto"
    stress: bool = True
    punctuation: bool = True
    lowercase: bool = True
    add_bos: bool = False
    add_eos: bool = False
    on_unknown: str = "error"
    symbols: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.units not in ("phonemes", "characters"):
            raise ConfigError(f"units must be 'phonemes' or 'characters', got {self.units!r}")
        if self.normalizer not in NORMALIZERS:
            raise ConfigError(f"normalizer must be one of {NORMALIZERS}, got {self.normalizer!r}")
        if self.on_unknown not in ("error", "unk"):
            raise ConfigError(f"on_unknown must be 'error' or 'unk', got {self.on_unknown!r}")


class TextFrontend:
    """Text -> token ids for TTS / text-conditioned models.

    ``frontend(["Hello there.", "Hi!"])`` returns ``(ids LongTensor (B, N), lengths LongTensor (B,))``,
    padded with ``<pad>`` (id 0); one espeak-ng process phonemises the whole batch.

    Args:
        config: a :class:`TextFrontendConfig` or a dict of its fields; keyword overrides are applied on top.
    """

    def __init__(self, config: TextFrontendConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(config, TextFrontendConfig):
            base = dataclasses.asdict(config)
        elif isinstance(config, dict) or config is None:
            base = dict(config or {})
        else:
            raise ConfigError(f"config must be a TextFrontendConfig or a dict, got {type(config).__name__}")
        cfg = build_config(TextFrontendConfig, base, **overrides)
        if not cfg.symbols:
            syms = (
                phoneme_symbols(cfg.language)
                if cfg.units == "phonemes"
                else character_symbols(cfg.language, lowercase=cfg.lowercase)
            )
            cfg = dataclasses.replace(cfg, symbols=tuple(syms))
        self.config = cfg
        self.table = SymbolTable(cfg.symbols, on_unknown=cfg.on_unknown)
        if self.table.pad_id is None:
            raise ConfigError("the symbol list of a TextFrontend needs '<pad>'")
        self._phonemizer: EspeakPhonemizer | None = None

    # --- steps --------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The normalised text."""
        return normalize(text, self.config.normalizer, self.config.language)

    def to_symbols(self, texts: Sequence[str]) -> list[list[str]]:
        """Normalised and phonemised (or split) symbols of each text, before ids."""
        if isinstance(texts, str):
            raise DataError("TextFrontend takes a list of texts; wrap a single text in a list")
        cfg = self.config
        norm = [self.normalize(t) for t in texts]
        if cfg.units == "phonemes":
            if self._phonemizer is None:
                self._phonemizer = EspeakPhonemizer(cfg.language, stress=cfg.stress, punctuation=cfg.punctuation)
            return self._phonemizer.phonemize_batch(norm)
        out = []
        punct = set(PUNCTUATION)
        for t in norm:
            t = t.lower() if cfg.lowercase else t
            chars = [WORD_SEP if c.isspace() else c for c in t if cfg.punctuation or c not in punct]
            out.append(_squeeze_separators(chars))
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of one text."""
        return self.encode_symbols(self.to_symbols([text]))[0]

    def encode_symbols(self, symbol_lists: Sequence[Sequence[str]]) -> list[list[int]]:
        """Ids of already phonemised/split symbol lists (e.g. from a manifest)."""
        cfg = self.config
        return [self.table.encode(s, add_bos=cfg.add_bos, add_eos=cfg.add_eos) for s in symbol_lists]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids ``(B, N)`` and lengths ``(B,)`` of ``texts``."""
        return pad_ids(self.encode_symbols(self.to_symbols(texts)), self.pad_id)

    def decode(self, ids: Sequence[int] | torch.Tensor, as_string: bool = False) -> list[str] | str:
        """Symbols of ``ids`` without specials (a string joined without separators when ``as_string``)."""
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise DataError(f"decode takes one sequence of ids (1-D), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        syms = self.table.decode(ids, skip_specials=True)
        return "".join(syms) if as_string else syms

    # --- properties / serialisation ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.table)

    @property
    def pad_id(self) -> int:
        return int(self.table.pad_id)  # checked in __init__

    @property
    def stress_ids(self) -> list[int]:
        """Ids of the stress marks present in the table."""
        return [i for i in (self.table.id_of(s) for s in STRESS) if i is not None]

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict, symbols included."""
        d = dataclasses.asdict(self.config)
        d["symbols"] = list(d["symbols"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextFrontend:
        return cls(d)

    def __repr__(self) -> str:
        c = self.config
        return f"TextFrontend(units={c.units!r}, language={c.language!r}, vocab_size={self.vocab_size})"


def _squeeze_separators(chars: list[str]) -> list[str]:
    out: list[str] = []
    for c in chars:
        if c == WORD_SEP and (not out or out[-1] == WORD_SEP):
            continue
        out.append(c)
    while out and out[-1] == WORD_SEP:
        out.pop()
    return out
