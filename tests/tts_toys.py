"""Toy TTS utterances shared by the tts-task and FastSpeech 2s tests (imported as ``from tts_toys import ...``:
pytest puts ``tests/``, the folder of the root conftest, on ``sys.path``)."""

from __future__ import annotations

import math

import torch


def utterance(tokens: list[int], durations: list[int], seed: int = 0, hop: int = 256,
              sample_rate: int = 22050) -> torch.Tensor:
    """Audio whose F0 and loudness change with every token: harmonics of ``110 + 8 * id`` Hz, ``sum(d) * hop``
    samples ``(T,)``."""
    g = torch.Generator().manual_seed(seed)
    f0 = torch.cat([torch.full((d * hop,), 110.0 + 8.0 * t) for t, d in zip(tokens, durations)])
    amp = torch.cat([torch.full((d * hop,), 0.2 + 0.05 * (t % 4)) for t, d in zip(tokens, durations)])
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    x = sum(torch.sin(k * phase) / k for k in range(1, 8)) * amp
    return (x + 0.003 * torch.randn(x.shape, generator=g)).float()


class ToyUtterances(torch.utils.data.Dataset):
    """``n`` manifest-like items (``audio``, ``phoneme_ids``, ``durations``, ``audio_filepath``) of 6, 7, ...
    tokens with durations in ``[2, max_duration)`` frames."""

    def __init__(self, n: int = 4, max_duration: int = 6, hop: int = 256, sample_rate: int = 22050):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            toks = torch.randint(1, 40, (6 + i,), generator=g).tolist()
            durs = torch.randint(2, max_duration, (6 + i,), generator=g).tolist()
            self.items.append({"audio": utterance(toks, durs, i, hop, sample_rate), "phoneme_ids": toks,
                               "durations": durs, "audio_filepath": f"utt{i}.wav"})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def collate(items: list[dict]) -> dict:
    """Zero-padded ``audio (B, T)``, sample ``lengths (B,)`` and the per-item lists."""
    n = max(it["audio"].shape[-1] for it in items)
    audio = torch.stack([torch.nn.functional.pad(it["audio"], (0, n - it["audio"].shape[-1])) for it in items])
    return {"audio": audio, "lengths": torch.tensor([it["audio"].shape[-1] for it in items]),
            **{k: [it[k] for it in items] for k in ("phoneme_ids", "durations", "audio_filepath")}}
