"""audiozoo.data: JSONL manifests, a lazily loading dataset, collate, samplers and corpus builders.

Corpus builders live in :mod:`audiozoo.data.builders` (``build(name, out_dir, **options)``).
"""

from __future__ import annotations

from .collate import collate_audio, pad_sequence
from .dataset import AudioDataset
from .manifest import read_manifest, write_manifest
from .sampler import BucketingSampler, deterministic_split

__all__ = [
    "AudioDataset", "BucketingSampler", "collate_audio", "deterministic_split", "pad_sequence", "read_manifest",
    "write_manifest",
]
