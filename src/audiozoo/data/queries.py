"""Query-conditioned separation data (USS, Kong et al. 2023, arXiv:2305.07447, Sections 3.1-3.2).

Weakly labelled clips say *what* sounds in them, not *when*. USS trains on anchor segments: a sound event
detector's framewise probability of the clip's label is smoothed over the segment length and the segment of
largest area is cut out (``uss/data/anchor_segment_detectors.py``, "max_area"); segments of different classes are
summed into a mixture, each partner rescaled to the target's energy (``anchor_segment_mixers.py``,
``match_energy``), and the separator learns to recover the target from the mixture and a query condition:

- :func:`framewise_scores`: any clip-level tagger used as a detector: its probabilities on sliding windows,
  ``(B, L, K)`` (the paper's detector is PANNs ``Cnn14_DecisionLevelMax``; a clip tagger on windows is this
  implementation's stand-in where no framewise model exists);
- :func:`anchor_scores`, :func:`mine_anchors`: the smoothed area under the label's probability and the start
  sample of the best segment of each clip;
- :func:`mix_segments`: each item plus ``mix_num - 1`` partners of other labels from the batch;
- :func:`tagger_condition`: the query condition of audio from a frozen tagger (``probabilities``: its class
  probabilities, the paper's at_soft; ``embedding``: its pooled embedding), and :func:`label_condition` (a
  one-hot vector, or the tagger's output restricted to the queried classes as the official
  ``separate_by_class_ids`` does).

Everything takes models as objects (it imports no model file); the train ``separation`` task and the
``separate`` pipeline share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, DataError

__all__ = ["anchor_scores", "framewise_scores", "label_condition", "mine_anchors", "mix_segments",
           "tagger_condition"]


def anchor_scores(prob: Tensor, segment_frames: int) -> Tensor:
    """Mean probability over a centred window of ``segment_frames`` (edges replicated): ``(..., L) -> (..., L)``
    (the area under the probability curve of the segment centred at each frame)."""
    if segment_frames < 1:
        raise ConfigError(f"segment_frames must be >= 1, got {segment_frames}")
    shape = prob.shape
    x = prob.reshape(-1, 1, shape[-1]).float()
    left, right = (segment_frames - 1) // 2, segment_frames // 2
    x = F.pad(x, (left, right), mode="replicate")
    return F.avg_pool1d(x, segment_frames, stride=1).reshape(shape)


def mine_anchors(framewise: Tensor, class_ids: Sequence[int] | Tensor, segment_samples: int, hop_samples: int,
                 clip_samples: int) -> Tensor:
    """Start samples ``(B,)`` of each clip's anchor segment: the ``segment_samples``-long window whose framewise
    probability of the clip's class has the largest area.

    Args:
        framewise: ``(B, L, K)`` probabilities, frame ``l`` centred at sample ``l * hop_samples``.
        class_ids: the weak label of each clip.
        segment_samples, hop_samples: segment length and frame hop in samples.
        clip_samples: clip length (segments are kept inside it).
    """
    if framewise.ndim != 3:
        raise DataError(f"framewise probabilities must be (B, L, K), got {tuple(framewise.shape)}")
    ids = torch.as_tensor(class_ids, dtype=torch.long, device=framewise.device).flatten()
    if ids.numel() != framewise.shape[0] or int(ids.min()) < 0 or int(ids.max()) >= framewise.shape[2]:
        raise DataError(f"class_ids {ids.tolist()} do not index the (B={framewise.shape[0]}, K="
                        f"{framewise.shape[2]}) framewise probabilities")
    prob = framewise[torch.arange(ids.numel(), device=ids.device), :, ids]  # (B, L)
    seg_frames = max(1, round(segment_samples / hop_samples))
    centre = anchor_scores(prob, seg_frames).argmax(-1)  # (B,)
    start = centre * hop_samples - segment_samples // 2
    return start.clamp(min=0, max=max(0, clip_samples - segment_samples))


@torch.no_grad()
def framewise_scores(score_fn: Callable[[Tensor], Tensor], wav: Tensor, window: int, hop: int) -> Tensor:
    """A clip tagger ``score_fn((N, window) -> (N, K) probabilities)`` on windows of ``wav (B, T)`` every ``hop``
    samples (the clip zero-padded by ``window // 2`` at both ends, so window ``l`` is centred at ``l * hop``):
    ``(B, L, K)``, ``L = T // hop + 1``."""
    if wav.ndim != 2 or window < 1 or hop < 1:
        raise DataError(f"framewise_scores needs wav (B, T), window and hop >= 1; got {tuple(wav.shape)}, "
                        f"{window}, {hop}")
    b, t = wav.shape
    x = F.pad(wav, (window // 2, window - window // 2))
    frames = x.unfold(-1, window, hop)[:, : t // hop + 1]  # (B, L, window)
    n = frames.shape[1]
    scores = score_fn(frames.reshape(b * n, window))
    return scores.reshape(b, n, -1)


def _energy_ratio(target: Tensor, other: Tensor) -> Tensor:
    """``sqrt(E(target) / E(other))`` clamped to [0.02, 50] (the official ``rescale_to_match_energy``)."""
    e1, e2 = target.pow(2).mean(-1, keepdim=True), other.pow(2).mean(-1, keepdim=True).clamp(min=1e-10)
    return (e1 / e2).sqrt().clamp(0.02, 50.0)


def mix_segments(segments: Tensor, labels: Sequence[int] | Tensor, mix_num: int = 2, match_energy: bool = True
                 ) -> tuple[Tensor, Tensor, list[list[int]]]:
    """Mixtures of each segment with ``mix_num - 1`` partners of *other* labels from the batch.

    Item ``n``'s partners are the next items ``n+1, n+2, ...`` (cyclically) whose labels differ from ``n``'s and
    from each other's (the official mixer takes the next items without this check and relies on its sampler);
    each partner is rescaled to the target's energy when ``match_energy``. Returns ``(mixtures (B, ..., T),
    targets (B, ..., T), partners)`` with ``partners[n]`` the batch indices mixed into item ``n`` (fewer than
    ``mix_num - 1`` when the batch has too few distinct labels).
    """
    if mix_num < 1:
        raise ConfigError(f"mix_num must be >= 1, got {mix_num}")
    lab = [int(v) for v in torch.as_tensor(labels).flatten().tolist()]
    b = segments.shape[0]
    if len(lab) != b:
        raise DataError(f"{len(lab)} labels for {b} segments")
    mixtures, partners = segments.clone(), []
    for n in range(b):
        used, mine = {lab[n]}, []
        for k in range(1, b):
            if len(used) == mix_num:
                break
            j = (n + k) % b
            if lab[j] in used:
                continue
            used.add(lab[j])
            mine.append(j)
            other = segments[j]
            mixtures[n] = mixtures[n] + (other * _energy_ratio(segments[n], other) if match_energy else other)
        partners.append(mine)
    return mixtures, segments, partners


# ---- query conditions ------------------------------------------------------------------------------
def _tagger_rate(tagger: Any) -> int:
    frontend = getattr(tagger, "frontend", None)
    rate = getattr(frontend, "sample_rate", None) or getattr(tagger, "sample_rate", None)
    if rate is None:
        raise ConfigError(f"the query tagger {type(tagger).__name__} has no frontend.sample_rate")
    return int(rate)


def tagger_condition(tagger: Any, wav: Tensor, sample_rate: int, kind: str = "probabilities",
                     multi_label: bool | None = None) -> Tensor:
    """The query condition ``(B, D)`` of ``wav (B, T)`` (at ``sample_rate``) from a frozen ``classify`` model.

    ``kind="probabilities"``: ``sigmoid`` (multi-label taggers such as PANNs, USS's at_soft) or ``softmax`` of its
    logits (``multi_label``: default ``tagger.pretrained_metadata["multi_label"]``, else single-label);
    ``"embedding"``: its ``forward_features`` (time-pooled when it keeps a time axis). Runs in float32 without
    gradients; ``wav`` is resampled to the tagger's front-end rate.
    """
    from ..dsp.io import resample

    if kind not in ("probabilities", "embedding"):
        raise ConfigError(f"a tagger gives 'probabilities' or 'embedding' conditions, got {kind!r}")
    if wav.ndim == 3:
        wav = wav.mean(1)
    if wav.ndim != 2:
        raise DataError(f"query audio must be (B, T) or (B, C, T), got {tuple(wav.shape)}")
    rate = _tagger_rate(tagger)
    with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
        x = wav.float()
        if rate != int(sample_rate):
            x = resample(x, int(sample_rate), rate)
        frontend = getattr(tagger, "frontend", None)
        feats = frontend(x) if frontend is not None else x
        feats = feats[0] if isinstance(feats, (tuple, list)) else feats
        if kind == "embedding":
            emb = tagger.forward_features(feats)
            return (emb.mean(1) if emb.ndim == 3 else emb).float()
        logits = tagger(feats)
        logits = (logits[0] if isinstance(logits, (tuple, list)) else logits).float()
        if multi_label is None:
            multi_label = bool((getattr(tagger, "pretrained_metadata", None) or {}).get("multi_label", False))
        return logits.sigmoid() if multi_label else logits.softmax(-1)


def label_condition(class_ids: Sequence[int] | Tensor, dim: int, scores: Tensor | None = None) -> Tensor:
    """A label query ``(B, dim)``: one-hot vectors of ``class_ids``, or, given a tagger's ``scores (B, dim)`` of
    the mixture, those scores kept only at the queried class (the official label-query inference, which also
    zeroes every other class of the at_soft vector)."""
    ids = torch.as_tensor(class_ids, dtype=torch.long).flatten()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= dim):
        raise DataError(f"class ids {ids.tolist()} out of range for a {dim}-d condition")
    onehot = F.one_hot(ids, dim).float()
    if scores is None:
        return onehot
    if scores.shape != onehot.shape:
        raise DataError(f"scores {tuple(scores.shape)} do not match the label query {tuple(onehot.shape)}")
    return scores.float() * onehot.to(scores.device)
