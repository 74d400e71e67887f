"""Self-supervised pretext losses (SSAST, TERA, MERT, the BEATs tokenizer).

The SSL family contract puts ``pretrain_loss`` on the model (DESIGN.md), so SSL model files call these pure
functions; ``train/losses`` imports only ``dsp``, ``nn``, ``eval`` and ``errors`` (enforced by
``tests/test_import_rules.py``), so this keeps the layering.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError

__all__ = ["codebook_nce_loss", "cosine_distance_loss", "masked_patch_info_nce", "masked_reconstruction_loss"]


def masked_patch_info_nce(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """SSAST's masked patch classification (official ``mpc``): InfoNCE over one item's masked patches.

    Args:
        pred: ``(B, M, P)`` predictions of the ``M`` masked patches; target: ``(B, M, P)`` their true patches.
    Returns:
        ``(loss, accuracy)``: for each masked patch, ``target @ pred^T`` scores every prediction of the same
        item, log-softmax over predictions, the diagonal is the positive (negatives: the item's other masked
        patches); accuracy is the share of targets whose argmax is their own prediction.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ConfigError(f"masked_patch_info_nce needs pred and target of one shape (B, M, P), got "
                          f"{tuple(pred.shape)} and {tuple(target.shape)}")
    b, m, _ = pred.shape
    logits = torch.einsum("bmp,bnp->bmn", target.float(), pred.float())
    ref = torch.arange(m, device=logits.device)
    loss = F.cross_entropy(logits.reshape(b * m, m), ref.repeat(b))
    acc = (logits.argmax(dim=1) == ref).float().mean().detach()
    return loss, acc


def masked_reconstruction_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, kind: str = "l1") -> Tensor:
    """L1 (TERA) or MSE (SSAST's ``mpg``) between ``pred`` and ``target`` over the positions in ``mask``
    (boolean, broadcast to the leading dims; ``None``: everywhere). An empty mask gives a zero loss that keeps
    the graph."""
    if kind not in ("l1", "mse"):
        raise ConfigError(f"reconstruction loss must be 'l1' or 'mse', got {kind!r}")
    if mask is not None:
        if not bool(mask.any()):
            return pred.sum() * 0.0
        pred, target = pred[mask], target[mask]
    return F.l1_loss(pred.float(), target.float()) if kind == "l1" else F.mse_loss(pred.float(), target.float())


def codebook_nce_loss(proj: Tensor, label_embs: Tensor, targets: Tensor,
                      temperature: float = 0.1) -> tuple[Tensor, Tensor]:
    """HuBERT / MERT masked prediction for one codebook (fairseq ``HubertModel.compute_nce`` + cross-entropy).

    Args:
        proj: ``(M, d)`` projected encoder outputs of the ``M`` scored frames; label_embs: ``(K, d)`` one learned
            embedding per code; targets: ``(M,)`` code indices in ``[0, K)``; temperature: ``logit_temp``.
    Returns:
        ``(loss, accuracy)``: cross-entropy over the ``K`` codes of ``cos(proj, label_embs) / temperature`` (the
        official logits put the positive first and mask the duplicate among the negatives, which is the same
        softmax), averaged over frames; accuracy is the share of frames whose top code is the target.
    """
    if (proj.ndim != 2 or label_embs.ndim != 2 or proj.shape[1] != label_embs.shape[1]
            or targets.shape != proj.shape[:1]):
        raise ConfigError(f"codebook_nce_loss needs proj (M, d), label_embs (K, d), targets (M,); got "
                          f"{tuple(proj.shape)}, {tuple(label_embs.shape)}, {tuple(targets.shape)}")
    if proj.shape[0] == 0:
        return proj.sum() * 0.0 + label_embs.sum() * 0.0, proj.new_zeros(())
    logits = F.normalize(proj.float(), dim=-1) @ F.normalize(label_embs.float(), dim=-1).T / float(temperature)
    loss = F.cross_entropy(logits, targets.long())
    acc = (logits.argmax(-1) == targets).float().mean().detach()
    return loss, acc


def cosine_distance_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``1 - cos(pred, target)`` along the last axis, averaged over the positions in ``mask`` (bool, ``pred``'s leading
    shape; ``None``: all): the feature-distillation loss of BEiT v2's VQ-KD (``calculate_rec_loss``, ``cosine``) and of
    BEATs' self-distilled tokenizer. ``target`` is not differentiated. An empty mask gives a zero loss that keeps the
    graph."""
    if pred.shape != target.shape:
        raise ConfigError(f"cosine_distance_loss needs pred and target of one shape, got {tuple(pred.shape)} and "
                          f"{tuple(target.shape)}")
    dist = 1.0 - F.cosine_similarity(pred.float(), target.detach().float(), dim=-1, eps=1e-8)
    if mask is None:
        return dist.mean()
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return dist[mask.to(dist.device).bool()].mean()
