"""Text tokenizers behind one interface: characters, byte-level BPE (``tokenizers``), SentencePiece.

Every tokenizer has ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``, the special ids
``pad_id``/``unk_id``/``bos_id``/``eos_id`` (0, 1, 2, 3 for the tokenizers built here), ``encode_batch``
(padded ``LongTensor (B, N)`` + lengths ``(B,)``), ``to_dict``/``save`` (one UTF-8 JSON document, so a
checkpoint's config can carry it) and ``Tokenizer.from_dict``/``Tokenizer.from_file``, which pick the class
from the document's ``"type"``.

Round trips: :class:`CharTokenizer` and :class:`BPETokenizer` (byte-level: every Unicode string is
representable, no ``<unk>``) give back exactly the encoded text; :class:`CharTokenizer` lower-cases first
when ``lowercase`` and maps characters outside its table per ``on_unknown``; :class:`SentencePieceTokenizer`
gives back the text after SentencePiece's own normalisation (NFKC, runs of spaces -> one space, no
leading/trailing space).
"""

from __future__ import annotations

import base64
import io
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..errors import CheckpointError, ConfigError, DataError, require
from .symbols import BOS, EOS, PAD, SPECIALS, UNK, SymbolTable

_BPE_SPECIALS = (PAD, UNK, BOS, EOS)


class Tokenizer(ABC):
    """Common interface of audiozoo's text tokenizers."""

    type_name: ClassVar[str] = ""
    _classes: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.type_name:
            Tokenizer._classes[cls.type_name] = cls

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (special tokens are skipped)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids (``max id + 1``)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form with a ``"type"`` key."""

    @classmethod
    @abstractmethod
    def _from_dict(cls, d: dict[str, Any]) -> Tokenizer: ...

    pad_id: int | None = 0
    unk_id: int | None = 1
    bos_id: int | None = 2
    eos_id: int | None = 3

    def encode_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids ``(B, N)`` (``pad_id``) and lengths ``(B,)`` of ``texts``."""
        return pad_ids([self.encode(t) for t in texts], self.pad_id if self.pad_id is not None else 0)

    # --- serialisation ------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """The tokenizer described by ``d`` (its ``"type"`` picks the class)."""
        if not isinstance(d, dict) or d.get("type") not in Tokenizer._classes:
            got = d.get("type") if isinstance(d, dict) else type(d).__name__
            raise CheckpointError(f"unknown tokenizer type {got!r}; known: {sorted(Tokenizer._classes)}")
        klass = Tokenizer._classes[d["type"]]
        if cls is not Tokenizer and not issubclass(klass, cls):
            raise CheckpointError(f"expected a {cls.__name__}, the document holds a {klass.__name__}")
        return klass._from_dict(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Tokenizer:
        """Load a tokenizer saved by :meth:`save`; also reads a Hugging Face ``tokenizer.json`` (as
        :class:`BPETokenizer`) and a SentencePiece ``.model`` file."""
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"tokenizer file not found: {p}")
        raw = p.read_bytes()
        if p.suffix == ".model":
            return SentencePieceTokenizer(raw)
        try:
            d = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"tokenizer file {p} is not UTF-8 JSON (nor a SentencePiece .model): {e}") from e
        if isinstance(d, dict) and "type" not in d and "model" in d:  # a Hugging Face tokenizer.json
            d = {"type": BPETokenizer.type_name, "tokenizer": d}
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack id lists into a ``LongTensor (B, max_len)`` padded with ``pad_id`` plus lengths ``(B,)``."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lengths.max()) if len(seqs) else 0), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            out[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out, lengths


# --- characters ---------------------------------------------------------------------------------------------
class CharTokenizer(Tokenizer):
    """One id per character (``" "`` is the word separator), over a :class:`SymbolTable`.

    Args:
        table: the symbols; default the built-in character table of ``language``.
        lowercase: lower-case text before encoding.
        language: picks the default alphabet (``"en"``, ``"de"``, ``"fr"``, ``"es"``, ``"it"``, ``"pt"``).
        on_unknown: for the default table: ``"unk"`` (default here: open-domain text has stray
            characters) or ``"error"``.
    """

    type_name = "char"

    def __init__(
        self, table: SymbolTable | None = None, lowercase: bool = True, language: str = "en", on_unknown: str = "unk"
    ) -> None:
        self.table = table or SymbolTable.for_characters(language, lowercase, on_unknown=on_unknown)
        self.lowercase = lowercase
        self.pad_id, self.unk_id = self.table.pad_id, self.table.unk_id
        self.bos_id, self.eos_id = self.table.bos_id, self.table.eos_id

    @classmethod
    def train(cls, texts: Iterable[str], lowercase: bool = True, on_unknown: str = "unk") -> CharTokenizer:
        """A tokenizer whose table holds the specials and every character seen in ``texts``."""
        texts = [t.lower() if lowercase else t for t in texts]
        return cls(SymbolTable.from_sequences(texts, SPECIALS, on_unknown=on_unknown), lowercase=lowercase)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise DataError(f"text must be a string, got {type(text).__name__}")
        return self.table.encode(list(text.lower() if self.lowercase else text))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.table.decode(ids, skip_specials=True))

    @property
    def vocab_size(self) -> int:
        return len(self.table)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, "lowercase": self.lowercase, "table": self.table.to_dict()}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        return cls(SymbolTable.from_dict(d["table"]), lowercase=bool(d.get("lowercase", True)))


# --- byte-level BPE (Hugging Face tokenizers) -------------------------------------------------------------------
class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2 style) through the ``tokenizers`` package; ids 0-3 are ``<pad> <unk> <bos> <eos>``.

    Build one with :meth:`train`, or wrap a ``tokenizers.Tokenizer``.
    """

    type_name = "bpe"

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        ids = {s: tokenizer.token_to_id(s) for s in _BPE_SPECIALS}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (ids[s] for s in _BPE_SPECIALS)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> BPETokenizer:
        """Learn merges on ``texts`` until ``vocab_size`` ids (256 bytes + 4 specials + merges) or no pair
        occurs ``min_frequency`` times."""
        tk = require("tokenizers", "BPE tokenizers", "text")
        if vocab_size < len(_BPE_SPECIALS) + 256:
            raise ConfigError(f"a byte-level BPE needs vocab_size >= 260 (256 bytes + 4 specials), got {vocab_size}")
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(_BPE_SPECIALS),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        tok.train_from_iterator(iter(list(texts)), trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise DataError(f"text must be a string, got {type(text).__name__}")
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise DataError(f"token id(s) {bad[:5]} out of range for a vocabulary of {self.vocab_size}")
        return self.tok.decode(ids, skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, "tokenizer": json.loads(self.tok.to_str())}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> BPETokenizer:
        tk = require("tokenizers", "BPE tokenizers", "text")
        try:
            return cls(tk.Tokenizer.from_str(json.dumps(d["tokenizer"])))
        except Exception as e:  # the Rust parser raises its own exception type
            raise CheckpointError(f"invalid BPE tokenizer document: {e}") from e


# --- SentencePiece -------------------------------------------------------------------------------------------
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (unigram or BPE; ``sentencepiece`` 0.2.x), held as its serialised model proto."""

    type_name = "sentencepiece"

    def __init__(self, model_proto: bytes) -> None:
        spm = require("sentencepiece", "SentencePiece tokenizers", "text")
        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(self.model_proto)
        except Exception as e:  # RuntimeError or OSError depending on the version
            raise CheckpointError(f"invalid SentencePiece model: {e}") from e

        def special(i: int) -> int | None:
            return i if i >= 0 else None

        self.pad_id, self.unk_id = special(self.sp.pad_id()), special(self.sp.unk_id())
        self.bos_id, self.eos_id = special(self.sp.bos_id()), special(self.sp.eos_id())

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 1000, model_type: str = "unigram", character_coverage: float = 1.0
    ) -> SentencePieceTokenizer:
        """Train on ``texts`` (in memory, single-threaded, deterministic); ``vocab_size`` is an upper bound on
        a small corpus (``hard_vocab_limit=False``)."""
        spm = require("sentencepiece", "SentencePiece tokenizers", "text")
        if model_type not in ("unigram", "bpe", "char", "word"):
            raise ConfigError(f"model_type must be unigram, bpe, char or word; got {model_type!r}")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise DataError("cannot train a SentencePiece model on an empty corpus")
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=buf, vocab_size=vocab_size, model_type=model_type,
            character_coverage=character_coverage, hard_vocab_limit=False, num_threads=1, minloglevel=2,
            pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
        )
        return cls(buf.getvalue())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise DataError(f"text must be a string, got {type(text).__name__}")
        return list(self.sp.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise DataError(f"token id(s) {bad[:5]} out of range for a vocabulary of {self.vocab_size}")
        return self.sp.decode(ids)

    @property
    def vocab_size(self) -> int:
        return int(self.sp.get_piece_size())

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, "model_proto": base64.b64encode(self.model_proto).decode("ascii")}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> SentencePieceTokenizer:
        try:
            proto = base64.b64decode(d["model_proto"], validate=True)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"invalid SentencePiece document: {e}") from e
        return cls(proto)


def asr_char_tokenizer() -> CharTokenizer:
    """Lower-case English characters for ASR: ``<pad> <unk> <bos> <eos> <blank>``, space, apostrophe, ``a-z``
    (33 ids; text is normalised to these before training, as :func:`audiozoo.eval.asr.normalize_text`)."""
    symbols = ["<pad>", "<unk>", "<bos>", "<eos>", "<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"]
    return CharTokenizer(SymbolTable(symbols, on_unknown="unk"), lowercase=True)
