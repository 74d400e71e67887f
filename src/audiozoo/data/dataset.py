"""A lazily loading map-style dataset over a manifest."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import AudioError, DataError
from .manifest import read_manifest, validate_item, where


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one item in one epoch.

    Seeded from ``(seed, epoch, index)`` alone, so a crop does not depend on the order items are read,
    on the number of DataLoader workers, or on which rank reads them.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


class AudioDataset(Dataset):
    """Items of a manifest as ``{"audio": (T,) or (C, T) float32, "length": int, "label": ..., ...}``.

    Args:
        manifest: a JSONL manifest path, or a list of item dicts (``audio_filepath`` + ``duration``).
        sample_rate: every item is resampled to this rate.
        mono: average channels to ``(T,)``; else ``(C, T)``.
        crop_seconds: output exactly this long: a longer clip is cropped (at a random start when
            ``random_crop``, deterministic per ``(seed, epoch, index)``; else centred), a shorter one is
            zero padded at the end.
        pad_to: zero pad shorter clips at the end to at least this many seconds (never crops).
        random_crop: random (training) or centred (evaluation) crops.
        label_key: the manifest key holding the label (``"label"``, ``"speaker"``...). It is returned as
            ``"label"``: an int index, or a ``(K,)`` long tensor when the manifest value is a list
            (e.g. the 8 words of a yes/no recording).
        labels: the label vocabulary (index = position); inferred as the sorted set of values when None.
        transform: applied to the audio tensor after crop/pad (e.g. augmentation); must keep its rank.
        seed: base seed of the random crops.

    ``length`` is the number of real (unpadded) samples, ``crop_start`` the first sample of the crop
    (0 without cropping; aligns time-aligned targets such as note lists). Other manifest keys pass through unchanged
    (private ``_`` keys excepted). A missing or unreadable file raises :class:`DataError` naming the
    manifest line.
    """

    def __init__(
        self,
        manifest: str | os.PathLike | Sequence[dict[str, Any]],
        sample_rate: int,
        mono: bool = True,
        crop_seconds: float | None = None,
        pad_to: float | None = None,
        random_crop: bool = True,
        label_key: str = "label",
        labels: Sequence[Any] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(manifest, (str, os.PathLike)):
            self.items = read_manifest(manifest)
            self.source = str(manifest)
        else:
            self.items = [
                validate_item(it, it.get("_where", f"<items>[{i}]") if isinstance(it, dict) else f"[{i}]")
                for i, it in enumerate(manifest)
            ]
            self.source = "<items>"
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise DataError(f"sample_rate must be a positive int, got {sample_rate!r}")
        for name, v in (("crop_seconds", crop_seconds), ("pad_to", pad_to)):
            if v is not None and not v > 0:
                raise DataError(f"{name} must be > 0 seconds or None, got {v!r}")
        self.sample_rate = sample_rate
        self.mono = mono
        self.crop = None if crop_seconds is None else max(1, round(crop_seconds * sample_rate))
        self.pad = None if pad_to is None else max(1, round(pad_to * sample_rate))
        self.random_crop = random_crop
        self.label_key = label_key
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.labels = list(labels) if labels is not None else self._infer_labels()
        self.label_to_index = {lab: i for i, lab in enumerate(self.labels)}
        if len(self.label_to_index) != len(self.labels):
            raise DataError(f"labels contain duplicates: {self.labels}")

    def _infer_labels(self) -> list[Any]:
        values = set()
        for it in self.items:
            v = it.get(self.label_key)
            if v is None:
                continue
            values.update(v if isinstance(v, list) else [v])
        try:
            return sorted(values)
        except TypeError:  # mixed types (e.g. 3 and "3"): sort by their text, still deterministic
            return sorted(values, key=lambda x: (type(x).__name__, str(x)))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def durations(self) -> list[float]:
        """Duration in seconds of every item (from the manifest), e.g. for :class:`BucketingSampler`."""
        return [float(it["duration"]) for it in self.items]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops are drawn (call it at the start of every epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> torch.Tensor:
        """The full (uncropped) audio of item ``index`` at ``sample_rate``: ``(T,)`` or ``(C, T)``."""
        from ..dsp.io import load_audio, resample

        item = self.items[index]
        path = item["audio_filepath"]
        offset = float(item.get("offset", 0.0))
        # A manifest's duration bounds the segment only when the item is a segment (has an offset);
        # for whole files it is metadata and the file is read to its end.
        duration = float(item["duration"]) if "offset" in item else None
        if not Path(path).is_file():
            raise DataError(f"{where(item, f'{self.source}[{index}]')}: audio file not found: {path}")
        try:
            wav, sr = load_audio(path, sample_rate=None, mono=self.mono, offset=offset, duration=duration)
            if sr != self.sample_rate:
                wav = resample(wav, sr, self.sample_rate)
        except (AudioError, OSError, RuntimeError, ValueError) as e:
            raise DataError(f"{where(item, f'{self.source}[{index}]')}: cannot load {path}: {e}") from e
        return wav.to(torch.float32)

    def _label(self, item: dict[str, Any]) -> int | torch.Tensor:
        value = item[self.label_key]
        values = value if isinstance(value, list) else [value]
        try:
            idx = [self.label_to_index[v] for v in values]
        except KeyError as e:
            raise DataError(
                f"{where(item)}: {self.label_key}={e.args[0]!r} is not among the {len(self.labels)} labels"
            ) from None
        return torch.tensor(idx, dtype=torch.long) if isinstance(value, list) else idx[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        index = index % len(self)
        item = self.items[index]
        wav = self.load(index)
        length = wav.shape[-1]
        start = 0
        if self.crop is not None:
            if length > self.crop:
                if self.random_crop:
                    start = int(item_rng(self.seed, self.epoch, index).integers(0, length - self.crop + 1))
                else:
                    start = (length - self.crop) // 2
                wav = wav[..., start : start + self.crop]
                length = self.crop
            target = self.crop
        else:
            target = length
        if self.pad is not None:
            target = max(target, self.pad)
        if wav.shape[-1] < target:
            wav = torch.nn.functional.pad(wav, (0, target - wav.shape[-1]))
        if self.transform is not None:
            wav = self.transform(wav)
        out = {k: v for k, v in item.items() if not k.startswith("_")}
        out["audio"] = wav
        out["length"] = int(length)
        out["crop_start"] = int(start)  # first sample of the crop (to align time-aligned targets)
        if item.get(self.label_key) is not None:
            out["label"] = self._label(item)
        return out
