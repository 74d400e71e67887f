"""Checks shared by the tests of the autoregressive mel models (Transformer TTS, Tacotron 2): a padded token/mel
batch, non-trivial BatchNorm statistics, teacher forcing that is causal and batch independent, harmonic
utterances for the tts task, and a few Adam steps of that task."""

from __future__ import annotations

import math

import torch

LOG_FLOOR = math.log(1e-5)


def randomise_batchnorm(model: torch.nn.Module, affine: bool = False) -> None:
    """Non-trivial running statistics (and, with ``affine``, scale and shift) in every BatchNorm1d."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                if affine:
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)


def padded_batch(vocab: int = 40, n_mels: int = 20, b: int = 2, n: int = 9, frames: int = 17, seed: int = 1):
    """``(tokens (b, n), lengths, mel (b, n_mels, frames), mel_lengths)``; items after the first are 3 tokens and
    5 frames shorter (token 0 in the padding)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab, (b, n), generator=g)
    lengths = torch.tensor([n] + [n - 3] * (b - 1))
    tokens[1:, n - 3:] = 0
    mel = torch.randn(b, n_mels, frames, generator=g) - 4.0
    mel_lengths = torch.tensor([frames] + [frames - 5] * (b - 1))
    return tokens, lengths, mel, mel_lengths


def check_causal_and_batch_independent(model: torch.nn.Module) -> None:
    """Teacher forcing: the padded second item equals the item alone; frames past its length are silence; a
    change of target frames >= 10 leaves the predictions of frames <= 10 alone and changes the later ones."""
    tokens, lengths, mel, mel_lengths = padded_batch(n_mels=model.n_mels)
    with torch.no_grad():
        out = model(tokens, lengths, mel=mel, mel_lengths=mel_lengths)
        alone = model(tokens[1:, :6], mel=mel[1:, :, :12])
        later = mel.clone()
        later[:, :, 10:] += 1.0
        out2 = model(tokens, lengths, mel=later, mel_lengths=mel_lengths)
    assert out.mel.shape == (2, model.n_mels, 17) and out.stop_logits.shape == (2, 17)
    torch.testing.assert_close(out.mel[1, :, :12], alone.mel[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.stop_logits[1, :12], alone.stop_logits[0], atol=1e-5, rtol=1e-5)
    assert (out.mel[1, :, 12:] == LOG_FLOOR).all()
    torch.testing.assert_close(out.mel_before[:, :, :11], out2.mel_before[:, :, :11])
    assert not torch.allclose(out.mel_before[:, :, 11:], out2.mel_before[:, :, 11:])


def harmonic_utterances(n: int = 2, vocab: int = 40, seed: int = 0) -> dict:
    """A collated batch of harmonic audio whose F0 and loudness change per token (``sum(d) * 256`` samples),
    with its ``phoneme_ids`` / ``durations`` / ``audio_filepath`` lists."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        toks = torch.randint(1, vocab, (6 + 2 * i,), generator=g).tolist()
        durs = torch.randint(2, 6, (6 + 2 * i,), generator=g).tolist()
        f0 = torch.cat([torch.full((d * 256,), 110.0 + 8.0 * t) for t, d in zip(toks, durs)])
        amp = torch.cat([torch.full((d * 256,), 0.2 + 0.05 * (t % 4)) for t, d in zip(toks, durs)])
        phase = 2 * math.pi * torch.cumsum(f0, 0) / 22050
        wav = sum(torch.sin(k * phase) / k for k in range(1, 6)) * amp
        items.append({"audio": wav.float(), "phoneme_ids": toks, "durations": durs, "audio_filepath": f"u{i}.wav"})
    n_max = max(it["audio"].shape[-1] for it in items)
    return {"audio": torch.stack([torch.nn.functional.pad(it["audio"], (0, n_max - it["audio"].shape[-1]))
                                  for it in items]),
            "lengths": torch.tensor([it["audio"].shape[-1] for it in items]),
            **{k: [it[k] for it in items] for k in ("phoneme_ids", "durations", "audio_filepath")}}


def train_tts_task(model: torch.nn.Module, batch: dict, steps: int, lr: float, **task_kw) -> list[dict[str, float]]:
    """``steps`` Adam steps of the tts task on one batch; the logged terms of every step."""
    from audiozoo.train.tasks.tts import TTSTask

    task = TTSTask(**task_kw)
    task.models = {"model": model.train()}
    task.on_fit_start()  # no pitch / energy statistics for an autoregressive model
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    hist = []
    for _ in range(steps):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append({k: float(v.detach()) for k, v in out.items()})
    return hist
