"""Generation metrics on a spectrogram classifier: FID and MKL as SpecVQGAN defines them.

SpecVQGAN (Iashin & Rahtu, BMVC 2021, arXiv:2110.08791, Sec. 4; official code
https://github.com/v-iashin/SpecVQGAN, ``evaluation/metrics/fid.py`` and ``kl.py``) scores generated
spectrograms with Melception, an Inception-v3 trained on VGGSound mel spectrograms:

- **FID**: the squared Fréchet distance between Gaussians fitted to Melception's pooled 2048-d features
  (``"2048"``) of the reference and generated sets (unpaired; :func:`audiozoo.eval.judges.frechet_distance`).
- **MKL** ("mean KL"): for *paired* clips (a generated clip and the reference it was conditioned on),
  ``KL(softmax(ref_i) || softmax(gen_i))`` over the classifier's classes, averaged over the pairs; the
  official adds ``1e-6`` to the generated probabilities inside the log.

The numbers depend entirely on the classifier. audiozoo's shipped ``melception_small`` weights were
trained on the project's own 8-class corpus, not on VGGSound: **its FID and MKL are not comparable to
published SpecVQGAN / text-to-audio numbers** (docs/models/melception.md); compare systems only under the
same classifier, and report its name (``melception_scores`` returns it).

The classifier is passed in as a loaded model (``audiozoo.eval`` does not load models; see
:data:`DEFAULT_MELCEPTION`)::

    from audiozoo.resolve import resolve_model
    from audiozoo.eval.generation import DEFAULT_MELCEPTION, melception_scores
    model = resolve_model(DEFAULT_MELCEPTION, "classify", trained=True)
    melception_scores(reference_wavs, generated_wavs, model=model, sample_rate=22050)
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from ..dsp.io import load_audio, resample
from ..errors import AudioError, ConfigError
from ._common import to_tensor
from .judges.frechet import frechet_distance

__all__ = ["DEFAULT_MELCEPTION", "classifier_outputs", "fid", "melception_scores", "mkl"]

#: the weight set FID / MKL use unless told otherwise (trained on project data: see the module docstring)
DEFAULT_MELCEPTION = "melception_small.project8"

MKL_EPS = 1e-6  # official kl.py: KL(p2 || p1) with log(p1 + 1e-6)


def mkl(logits_ref: Any, logits_gen: Any, *, eps: float = MKL_EPS) -> float:
    """Mean KL divergence between the class distributions of paired clips (SpecVQGAN's MKL).

    Args:
        logits_ref: ``(N, C)`` classifier logits of the reference clips (the "target" distribution).
        logits_gen: ``(N, C)`` logits of the generated clips, row ``i`` paired with reference ``i`` (repeat a
            reference row for several samples of it, as the official code does).
        eps: added to the generated probabilities inside the log (official 1e-6).
    Returns:
        ``mean_i sum_c p_ref[i, c] (log p_ref[i, c] - log(p_gen[i, c] + eps))`` (nats).
    """
    a, b = to_tensor(logits_ref, "logits_ref").double(), to_tensor(logits_gen, "logits_gen").double()
    if a.ndim != 2 or a.shape != b.shape:
        raise AudioError(f"mkl: expected paired (N, C) logits of the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.shape[0] < 1:
        raise AudioError("mkl: needs at least one pair")
    p, q = a.softmax(-1), b.softmax(-1)
    kl = torch.nn.functional.kl_div((q + eps).log(), p, reduction="sum") / a.shape[0]
    return float(kl)


def fid(emb_ref: Any, emb_gen: Any, *, embedding: str) -> float:
    """Squared Fréchet distance between two ``(N, D)`` embedding sets (the FID / FAD value), naming the
    embedding (see :func:`audiozoo.eval.judges.frechet_distance`, which computes it)."""
    return float(frechet_distance(emb_ref, emb_gen, embedding=embedding)["frechet_distance"])


def _as_waves(wavs: Any, sample_rate: int | None, target_sr: int, name: str) -> list[Tensor]:
    """Clips -> list of float32 ``(T_i,)`` tensors at ``target_sr``: a ``(N, T)`` tensor/array, or a sequence
    of 1-D tensors/arrays or audio file paths (decoded, made mono and resampled)."""
    if isinstance(wavs, (str, os.PathLike)):
        raise AudioError(f"{name}: expected a list of clips or paths, got one path {wavs!r}")
    if isinstance(wavs, Tensor) and wavs.ndim == 1:
        raise AudioError(f"{name}: expected (N, T) clips or a list of them, got one (T,) waveform")
    items = list(wavs) if not isinstance(wavs, Tensor) else list(wavs.unbind(0))
    if not items:
        raise AudioError(f"{name}: no clips")
    out = []
    for i, w in enumerate(items):
        if isinstance(w, (str, os.PathLike)):
            x, _ = load_audio(w, sample_rate=target_sr, mono=True)
        else:
            x = to_tensor(w, f"{name}[{i}]").float()
            if x.ndim != 1:
                raise AudioError(f"{name}[{i}]: expected a mono (T,) waveform, got shape {tuple(x.shape)}")
            if sample_rate is None:
                raise ConfigError(f"{name}: give sample_rate= for waveform inputs (the classifier runs at "
                                  f"{target_sr} Hz)")
            if int(sample_rate) != target_sr:
                x = resample(x, int(sample_rate), target_sr)
        out.append(x.float().reshape(-1))
    return out


@torch.no_grad()
def classifier_outputs(model: Any, wavs: Any, *, sample_rate: int | None = None,
                       batch_size: int = 16) -> tuple[Tensor, Tensor]:
    """Pooled embeddings ``(N, D)`` and logits ``(N, C)`` of a classifier (its ``frontend``,
    ``forward_features`` and ``forward_head``: Melception, VGGish-ish, PANNs...) over clips.

    ``wavs``: a ``(N, T)`` tensor, or a sequence of ``(T_i,)`` waveforms or file paths; waveforms at
    ``sample_rate`` are resampled to the model's rate. Clips of a batch are zero-padded and their lengths
    passed on, so each clip's result does not depend on its batch (up to the receptive field at its end).
    """
    for attr in ("frontend", "forward_features", "forward_head"):
        if not hasattr(model, attr):
            raise ConfigError(f"classifier_outputs needs a classifier with {attr!r} (e.g. a loaded Melception), "
                              f"got {type(model).__name__}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    target_sr = int(model.frontend.sample_rate)
    waves = _as_waves(wavs, sample_rate, target_sr, "wavs")
    was_training = model.training
    model.eval()
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    embs, logits = [], []
    try:
        for k in range(0, len(waves), batch_size):
            chunk = waves[k:k + batch_size]
            lengths = torch.tensor([w.shape[-1] for w in chunk], device=device)
            batch = torch.zeros(len(chunk), int(lengths.max()), device=device)
            for i, w in enumerate(chunk):
                batch[i, : w.shape[-1]] = w.to(device)
            feats, frames = model.frontend(batch, lengths)
            emb = model.forward_features(feats, frames)
            embs.append(emb.float().cpu())
            logits.append(model.forward_head(emb).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(embs), torch.cat(logits)


def melception_scores(reference_wavs: Any, generated_wavs: Any, model: Any, *, sample_rate: int | None = None,
                      batch_size: int = 16, paired: bool | None = None) -> dict[str, Any]:
    """FID and MKL of generated clips against reference clips under a Melception-like classifier.

    Args:
        reference_wavs, generated_wavs: ``(N, T)`` tensors or sequences of waveforms / file paths (see
            :func:`classifier_outputs`); FID needs at least 2 clips per set.
        model: the loaded classifier, e.g. ``resolve_model(DEFAULT_MELCEPTION, "classify", trained=True)``.
        sample_rate: rate of waveform inputs (resampled to the model's).
        paired: compute MKL (clip ``i`` of each set belongs together). Default: when the sets have the same
            size. ``False`` skips it; ``True`` with sets of different sizes raises.
    Returns:
        ``{"fid", "mkl" (None when unpaired), "n_reference", "n_generated", "classifier", "dim"}`` where
        ``classifier`` names the model (its registry name and weight set when known): scores are
        comparable only under the same classifier.
    """
    ref_emb, ref_logits = classifier_outputs(model, reference_wavs, sample_rate=sample_rate, batch_size=batch_size)
    gen_emb, gen_logits = classifier_outputs(model, generated_wavs, sample_rate=sample_rate, batch_size=batch_size)
    same = ref_emb.shape[0] == gen_emb.shape[0]
    if paired and not same:
        raise AudioError(f"melception_scores: paired=True needs sets of the same size, got {ref_emb.shape[0]} "
                         f"and {gen_emb.shape[0]}")
    meta = getattr(model, "pretrained_metadata", None) or {}
    name = str(meta.get("weight_set") or getattr(model, "model_name", None) or type(model).__name__)
    return {
        "fid": fid(ref_emb, gen_emb, embedding=f"{name}:pooled"),
        "mkl": mkl(ref_logits, gen_logits) if (same if paired is None else paired) else None,
        "n_reference": int(ref_emb.shape[0]),
        "n_generated": int(gen_emb.shape[0]),
        "classifier": name,
        "dim": int(ref_emb.shape[1]),
    }
