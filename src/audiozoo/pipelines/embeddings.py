"""``audio-embeddings`` pipeline (CLI ``audiozoo embed -m MODEL``): HEAR-style clip and timestamp embeddings.

Every encoder of the ``ssl``, ``classify`` and ``embed`` families, with the two functions of the HEAR API
(Turian et al. 2022, hearbenchmark.com, "Common API"):

- :meth:`AudioEmbeddingPipeline.get_scene_embeddings` ``(n_sounds, n_samples) -> (n_sounds, D)``: one vector
  per sound;
- :meth:`AudioEmbeddingPipeline.get_timestamp_embeddings` ``(n_sounds, n_samples) -> ((n_sounds, N, D),
  timestamps (n_sounds, N) in ms)``: one vector per time step, stamped with the centre of the audio it describes.

What a vector is, per family:

- ``ssl``: hidden state ``layer`` (default the last; ``0`` is the embedding output) of
  ``extract_features``, one per output position (time column); the scene embedding is their mean. Long inputs go
  through in consecutive windows of the model's position grid (``config.max_length`` frames; 10 s otherwise) and
  the positions are concatenated. Position ``j`` of a window holding ``n`` samples and giving ``m`` positions is
  stamped at ``start + (j + 0.5) n / m`` samples.
- ``classify``: the penultimate features, i.e. what the final classifier layer (the last ``nn.Linear`` with
  ``num_classes`` outputs called in ``forward``) receives: the pooled clip embedding of every registered
  classifier. Scene: consecutive windows of the model's input length (as ``audiozoo tag``; 10 s for models that
  take any length), averaged with weights by their audio. Timestamps ``0, hop, 2 hop, ...`` (``timestamp_hop``,
  HEAR's 50 ms by default): the vector of a window of the model's input length (``frame_seconds`` for models
  that take any length) centred there, the signal zero-padded by half a window at both ends.
- ``embed`` (GE2E): the model's own utterance embedding (``embed``) for the scene, its ``forward`` on
  sliding windows for timestamps.

A model must carry trained weights (weight set or checkpoint folder); ``random_init=True`` builds a bare
architecture name with random weights (seed 0) and every result then says so in ``"warning"``: random embeddings
are a baseline, never a result.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, batched, window_starts

FAMILIES = ("ssl", "classify", "embed")
MIN_SECONDS = 0.025  # one 25 ms analysis window: the shortest input embedded
DEFAULT_WINDOW_SECONDS = 10.0  # models that take any length: window of the scene embedding
RANDOM_INIT_WARNING = ("random initialisation (no trained weights): these embeddings are a baseline, never a "
                       "result")


def _is_bare_name(spec: Any) -> bool:
    return isinstance(spec, str) and not os.path.exists(spec) and "." not in spec and "/" not in spec


def load_encoder(spec: Any, random_init: bool = False, seed: int = 0) -> nn.Module:
    """Resolve ``spec`` to a trained ``ssl`` / ``classify`` / ``embed`` model; ``random_init`` builds a bare
    registry name with random weights drawn from ``seed`` (a baseline)."""
    if not random_init:
        try:
            return resolve_model(spec, FAMILIES, trained=True)
        except ConfigError as e:
            if _is_bare_name(spec) and "untrained" in str(e):
                raise ConfigError(f"{e}; random weights for a baseline only with random_init=True "
                                  "(CLI: --random-init)") from e
            raise
    if not _is_bare_name(spec):
        raise ConfigError(f"random initialisation applies to a bare architecture name (e.g. 'ssast_tiny_patch'); "
                          f"{spec!r} names trained weights, drop the random-init option")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return resolve_model(spec, FAMILIES, trained=False)


class _HeadInput:
    """Captures what the final classifier layer receives: a pre-hook on every ``nn.Linear`` with ``num_classes``
    outputs keeps the input of the one called last in ``forward`` (the head), mean-pooled to ``(B, D)``."""

    def __init__(self, model: nn.Module):
        n = int(model.num_classes)
        self.layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == n]
        if not self.layers:
            raise ConfigError(f"{type(model).__name__}: no linear classifier layer with {n} outputs to read the "
                              "penultimate features from")
        self.value: Tensor | None = None

    def _hook(self, _module: nn.Module, args: tuple) -> None:
        self.value = args[0]

    def __call__(self, model: nn.Module, feats: Tensor, lengths: Tensor) -> Tensor:
        handles = [m.register_forward_pre_hook(self._hook) for m in self.layers]
        try:
            self.value = None
            model(feats, lengths)
        finally:
            for h in handles:
                h.remove()
        x = self.value
        if x is None:  # pragma: no cover - every registered classifier calls its head
            raise ConfigError(f"{type(model).__name__}: the classifier layer was not called in forward")
        return x.reshape(x.shape[0], -1, x.shape[-1]).mean(1) if x.ndim > 2 else x


class AudioEmbeddingPipeline(Pipeline):
    """Audio -> ``{"input", "model", "family", "layer", "embedding" (D,) float32, "embed_dim", "duration_s"}``;
    with ``frames=True`` also ``"frames"`` ``(N, D)`` and ``"timestamps_ms"`` ``(N,)`` (numpy arrays).

    Args:
        model: weight set, checkpoint folder or module of the ``ssl`` / ``classify`` / ``embed`` family.
        layer: ``ssl`` only: index into ``extract_features``' hidden states (``0`` = embedding output, ``-1`` =
            last, the default); out of range is a :class:`ConfigError` naming the range.
        random_init: allow a bare architecture name with random weights (a warning in every result).
        timestamp_hop: seconds between timestamp embeddings of classifiers and embedders (windowed).
        frame_seconds: window of those timestamp embeddings for models that take any length.
    """

    task = "audio-embeddings"
    family = "ssl"  # also classify and embed (FAMILIES)
    call_options = {"forward": ("frames",)}

    def __init__(self, model: Any, layer: int | None = None, random_init: bool = False,
                 timestamp_hop: float = 0.05, frame_seconds: float = 1.0, **kw: Any):
        super().__init__(**kw)
        self.model_spec = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
        self.model = load_encoder(model, random_init=random_init).to(self.device).eval()
        self.warning = RANDOM_INIT_WARNING if random_init else None
        if self.warning:
            warnings.warn(f"{self.model_spec}: {self.warning}", UserWarning, stacklevel=2)
        self.model_family = getattr(self.model, "family", "")
        fe = self.model.frontend
        self.sample_rate = int(fe.sample_rate)
        self.min_samples = max(int(getattr(fe, "min_samples", 1)), math.ceil(MIN_SECONDS * self.sample_rate))
        if timestamp_hop <= 0 or frame_seconds <= 0:
            raise ConfigError(f"timestamp_hop and frame_seconds must be > 0, got {timestamp_hop}, {frame_seconds}")
        self.hop_ts = max(1, round(timestamp_hop * self.sample_rate))
        self.layer = self._check_layer(layer)
        # fixed-length models (AST: max_frames) always take windows of exactly their input length
        max_frames = getattr(self.model.config, "max_length", None) if self.model_family == "ssl" else \
            getattr(self.model, "max_frames", None)
        self.fixed = bool(max_frames) and self.model_family == "classify"
        self.window = int(fe.num_samples(int(max_frames))) if max_frames else \
            round(DEFAULT_WINDOW_SECONDS * self.sample_rate)
        self.window = max(self.window, self.min_samples)
        self.frame_window = self.window if self.fixed else \
            max(self.min_samples, round(frame_seconds * self.sample_rate))
        self._head = _HeadInput(self.model) if self.model_family == "classify" else None
        self.embed_dim = self._embed_dim()

    # ---- HEAR attributes ---------------------------------------------------------------------------
    @property
    def scene_embedding_size(self) -> int:
        return self.embed_dim

    @property
    def timestamp_embedding_size(self) -> int:
        return self.embed_dim

    def _check_layer(self, layer: int | None) -> int | None:
        if self.model_family != "ssl":
            if layer is not None:
                raise ConfigError(f"{self.model_spec} is a {self.model_family} model: its embedding is the "
                                  "penultimate (pooled) feature vector; --layer picks a hidden state of ssl models")
            return None
        n = int(self.model.num_layers) + 1
        layer = -1 if layer is None else int(layer)
        if not -n <= layer < n:
            raise ConfigError(f"layer {layer} is out of range: {self.model_spec} has {n} hidden states (0 = the "
                              f"embedding output, 1..{n - 1} = its layers; -1 = the last)")
        return layer % n

    @torch.no_grad()
    def _embed_dim(self) -> int:
        if self.model_family == "ssl":
            return int(self.model.embed_dim)
        if self.model_family == "embed":
            return int(self.model.embed_dim)
        probe = torch.zeros(1, self.frame_window, device=self.device)
        return int(self._window_vectors(probe, torch.tensor([probe.shape[-1]]))[0].shape[-1])

    # ---- per-window forward ------------------------------------------------------------------------
    def _window_vectors(self, w: Tensor, lengths: Tensor) -> Tensor:
        """``(B, T)`` windows with valid ``lengths`` -> one vector ``(B, D)`` each (classify / embed)."""
        feats, flen = self.model.frontend(w.to(self.device), lengths.to(self.device))
        if self.model_family == "classify":
            return self._head(self.model, feats, flen).float().cpu()
        return self.model(feats, flen).float().cpu()

    def _batch(self, wav: Tensor, starts: list[int], lengths: list[int], width: int | None) -> Tensor:
        w = torch.zeros(len(starts), width or max(max(lengths), self.min_samples), dtype=wav.dtype)
        for row, (s, n) in enumerate(zip(starts, lengths)):
            w[row, :n] = wav[s:s + n]
        return w

    def _windows(self, t: int, window: int, hop: int) -> tuple[list[int], list[int]]:
        starts = window_starts(t, window, hop)
        return starts, [min(window, t - s) for s in starts]

    def _ssl_frames(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """``(T,)`` -> hidden state ``layer`` at every position ``(N, D)`` and its times in samples ``(N,)``."""
        starts, lengths = self._windows(wav.shape[-1], self.window, self.window)
        width = self.window if len(starts) > 1 else None  # a short tail window is padded to a full one
        out, times = [], []
        for idx in batched(list(range(len(starts))), self.batch_size):
            w = self._batch(wav, [starts[i] for i in idx], [lengths[i] for i in idx], width)
            n = torch.tensor([lengths[i] for i in idx])
            feats, flen = self.model.frontend(w.to(self.device), n.to(self.device))
            h = self.model.extract_features(feats, flen, layers=[self.layer])[0].float().cpu()
            m = self.model.output_lengths(flen).cpu().clamp(1, h.shape[1])
            for row, i in enumerate(idx):
                k = int(m[row])
                out.append(h[row, :k])
                times.append(starts[i] + (torch.arange(k, dtype=torch.float64) + 0.5) * lengths[i] / k)
        return torch.cat(out), torch.cat(times)

    def _windowed_vectors(self, wav: Tensor, window: int) -> tuple[Tensor, Tensor]:
        """Classify / embed scene: consecutive windows -> vectors ``(N, D)`` and their valid lengths ``(N,)``."""
        starts, lengths = self._windows(wav.shape[-1], window, window)
        vecs = []
        for idx in batched(list(range(len(starts))), self.batch_size):
            n = [lengths[i] for i in idx]
            w = self._batch(wav, [starts[i] for i in idx], n, window if self.fixed else None)
            vecs.append(self._window_vectors(w, torch.tensor(n)))
        return torch.cat(vecs), torch.tensor(lengths, dtype=torch.float64)

    def _centred_frames(self, wav: Tensor, window: int, hop: int) -> tuple[Tensor, Tensor]:
        """Classify / embed timestamps: a window centred on every ``hop``-th sample (0, hop, 2 hop, ... < T; the
        signal zero-padded by half a window at both ends) -> vectors ``(N, D)`` and the centres ``(N,)``."""
        half = window // 2
        padded = torch.nn.functional.pad(wav, (half, window - half))
        centres = list(range(0, wav.shape[-1], hop))
        vecs = []
        for idx in batched(centres, self.batch_size):
            w = torch.stack([padded[c:c + window] for c in idx])
            vecs.append(self._window_vectors(w, torch.full((len(idx),), window)))
        return torch.cat(vecs), torch.tensor(centres, dtype=torch.float64)

    # ---- public API --------------------------------------------------------------------------------
    def _check(self, wav: Tensor, source: str) -> None:
        if wav.ndim != 1:
            raise AudioError(f"{source}: expected a mono waveform (T,), got shape {tuple(wav.shape)}")
        n = int(wav.shape[-1])
        if n < self.min_samples:
            raise AudioError(f"{source}: {n} samples ({1000 * n / self.sample_rate:.1f} ms) is too short to embed; "
                             f"need at least {self.min_samples} samples "
                             f"({1000 * self.min_samples / self.sample_rate:.1f} ms at {self.sample_rate} Hz)")

    @torch.no_grad()
    def scene(self, wav: Tensor, source: str = "<audio>") -> Tensor:
        """Mono ``(T,)`` at :attr:`sample_rate` -> clip embedding ``(D,)``."""
        self._check(wav, source)
        if self.model_family == "ssl":
            return self._ssl_frames(wav)[0].mean(0)
        if self.model_family == "embed" and hasattr(self.model, "embed"):
            return self.model.embed(wav.float().to(self.device)[None])[0].float().cpu()
        vecs, lengths = self._windowed_vectors(wav, self.window)
        return (vecs.double() * (lengths / lengths.sum())[:, None]).sum(0).float()

    @torch.no_grad()
    def timestamps(self, wav: Tensor, source: str = "<audio>") -> tuple[Tensor, Tensor]:
        """Mono ``(T,)`` -> ``(frames (N, D), timestamps (N,) in ms)``."""
        self._check(wav, source)
        if self.model_family == "ssl":
            frames, t = self._ssl_frames(wav)
        else:
            frames, t = self._centred_frames(wav, self.frame_window, self.hop_ts)
        return frames, (t * 1000.0 / self.sample_rate).float()

    def _as_batch(self, audio: Tensor) -> Tensor:
        audio = torch.as_tensor(audio)
        if audio.ndim != 2 or not audio.is_floating_point():
            raise AudioError(f"HEAR audio must be float (n_sounds, n_samples) at {self.sample_rate} Hz, got "
                             f"{audio.dtype} of shape {tuple(audio.shape)}")
        return audio

    def get_scene_embeddings(self, audio: Tensor) -> Tensor:
        """HEAR: ``(n_sounds, n_samples)`` at :attr:`sample_rate` -> ``(n_sounds, D)``."""
        audio = self._as_batch(audio)
        return torch.stack([self.scene(a, f"sound #{i}") for i, a in enumerate(audio)])

    def get_timestamp_embeddings(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """HEAR: ``(n_sounds, n_samples)`` -> ``((n_sounds, N, D), timestamps (n_sounds, N) in ms)``."""
        audio = self._as_batch(audio)
        pairs = [self.timestamps(a, f"sound #{i}") for i, a in enumerate(audio)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def _forward(self, a: AudioInput, frames: bool = False) -> dict[str, Any]:
        emb = self.scene(a.wav, a.source)
        out: dict[str, Any] = {"input": a.source, "model": self.model_spec, "family": self.model_family,
                               "layer": self.layer, "embed_dim": int(emb.numel()),
                               "duration_s": round(a.wav.shape[-1] / self.sample_rate, 4),
                               "sample_rate": self.sample_rate}
        if self.warning:
            out["warning"] = self.warning
        out["embedding"] = emb.numpy().astype(np.float32)
        if frames:
            f, t = self.timestamps(a.wav, a.source)
            out["frames"] = f.numpy().astype(np.float32)
            out["timestamps_ms"] = t.numpy().astype(np.float32)
        return out


def write_embeddings(path: str | os.PathLike, res: dict[str, Any], frames: bool = False) -> list[str]:
    """Write the results of :class:`AudioEmbeddingPipeline` (``res["items"]``) to ``path``; returns the files.

    - ``.json``: ``res`` with arrays as lists;
    - ``.npy``: the clip embeddings ``(n_files, D)``; with ``frames`` (one file only) the frames ``(N, D)``, and
      their timestamps in ms ``(N,)`` beside them in ``<stem>.timestamps_ms.npy``;
    - ``.npz``: ``embeddings (n_files, D)``, ``inputs``, and per file ``frames_<i>`` / ``timestamps_ms_<i>``.
    """
    import json
    from pathlib import Path

    p = Path(path)
    items = res["items"]
    suffix = p.suffix.lower()
    if suffix not in (".json", ".npy", ".npz"):
        raise ConfigError(f"{p}: write embeddings to a .json, .npy or .npz file")
    if suffix == ".npy" and frames and len(items) > 1:
        raise ConfigError(f"{p}: frame embeddings of {len(items)} files have different lengths; write them to "
                          ".npz or .json (one array per file)")
    p.parent.mkdir(parents=True, exist_ok=True)
    clips = np.stack([r["embedding"] for r in items]).astype(np.float32)
    if suffix == ".json":
        p.write_text(json.dumps(res, indent=1, default=lambda a: np.round(a.astype(np.float64), 7).tolist()) + "\n")
        return [str(p)]
    if suffix == ".npz":
        arrays = {"embeddings": clips, "inputs": np.array([str(r["input"]) for r in items])}
        if frames:
            for i, r in enumerate(items):
                arrays[f"frames_{i}"], arrays[f"timestamps_ms_{i}"] = r["frames"], r["timestamps_ms"]
        np.savez(p, **arrays)
        return [str(p)]
    if not frames:
        np.save(p, clips)
        return [str(p)]
    ts = p.with_name(p.stem + ".timestamps_ms.npy")
    np.save(p, items[0]["frames"])
    np.save(ts, items[0]["timestamps_ms"])
    return [str(p), str(ts)]
