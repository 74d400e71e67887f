"""FastSpeech 2s: sizes, slice alignment between frames and samples, output lengths, the waveform loss falls on a
fixed utterance, and the tts task trains it with Parallel WaveGAN's discriminator through the engine."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.nn.discriminators_pwg import ParallelWaveGANDiscriminator
from audiozoo.nn.noncausal_wavenet import NonCausalWaveNet
from audiozoo.nn.segments import random_segment_starts, slice_segments
from audiozoo.train.engine import Trainer
from audiozoo.train.tasks.tts import TTSTask
from tts_toys import ToyUtterances, collate, utterance

SR = 22050
TINY = dict(audiozoo.model_info("fastspeech2s").tiny, mel_decoder=True)  # the training model keeps its mel decoder
HOP = TINY["hop_length"]
SMALL_STFT = ((256, 32, 128), (128, 16, 64), (512, 64, 256))  # MR-STFT resolutions for 512-sample slices


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_canonical_sizes() -> None:
    with torch.device("meta"):
        m = audiozoo.create_model("fastspeech2s")
        inference = audiozoo.create_model("fastspeech2s", mel_decoder=False)
    assert _count(m) == 30_062_815 == audiozoo.model_info("fastspeech2s").params
    assert _count(m.waveform_decoder) == 5_430_913 and _count(m.waveform_decoder.upsample) == 256 * 64 * 256 + 64
    assert _count(inference) == 18_494_607 and inference.decoder is None and inference.mel_linear is None
    wn = m.waveform_decoder.wavenet
    assert len(wn.blocks) == 30 and wn.dilations[:11] == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1)
    assert wn.receptive_field == 1 + 2 * 3 * 1023
    assert m.config.pitch_level == "cwt" and m.postnet is None  # the paper's pitch, no post-net
    # Parallel WaveGAN's discriminator: 10 convs, dilations 1, 1..8, 99,265 weights + 577 weight-norm gains
    d = ParallelWaveGANDiscriminator()
    assert len(d.convs) + 1 == 10 and d.dilations == (1, 1, 2, 3, 4, 5, 6, 7, 8)
    assert _count(d) == 99_842 and _count(ParallelWaveGANDiscriminator(use_weight_norm=False)) == 99_265
    logits, fmaps = d(torch.randn(2, 300))
    assert logits.shape == (2, 300) and len(fmaps) == 10


def test_segments_align_frames_and_samples() -> None:
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([20, 7, 12])
    for _ in range(20):
        s = random_segment_starts(lengths, 8, generator=g)
        assert ((s >= 0) & (s <= (lengths - 8).clamp_min(0))).all()
    starts = torch.tensor([5, 0, 4])
    frames = torch.arange(20.0)[None, :, None].expand(3, 20, 2)  # frame i holds i
    samples = (torch.arange(20 * HOP) // HOP).float()[None].expand(3, -1)  # sample n belongs to frame n // hop
    f = slice_segments(frames, starts, 8, dim=1)
    w = slice_segments(samples, starts * HOP, 8 * HOP, dim=1)
    assert f.shape == (3, 8, 2) and w.shape == (3, 8 * HOP)
    assert torch.equal(f[..., 0].repeat_interleave(HOP, dim=1), w)  # the samples of exactly those frames
    past = slice_segments(frames, torch.tensor([15, 0, 0]), 8, dim=1)
    assert past[0, :5, 0].tolist() == [15, 16, 17, 18, 19] and (past[0, 5:] == 0).all()  # zero past the end
    with pytest.raises(ConfigError):
        slice_segments(frames, starts[:2], 8, dim=1)


def test_output_lengths_and_frame_locality() -> None:
    torch.manual_seed(0)
    m = audiozoo.create_model("fastspeech2s", **TINY).eval()
    tokens, lengths = torch.randint(1, 40, (2, 9)), torch.tensor([9, 6])
    durations = torch.randint(1, 4, (2, 9))
    durations[1, 6:] = 0
    big_l = int(durations.sum(1).max())
    with torch.no_grad():
        out = m(tokens, lengths, durations=durations, max_frames=big_l)
        seg = m(tokens, lengths, durations=durations, max_frames=big_l, segment_frames=4,
                segment_starts=torch.tensor([2, 0]))
        wav, wav_len = m.synthesize(tokens, lengths)
    assert out.wav.shape == (2, big_l * HOP) and out.wav_lengths.tolist() == (durations.sum(1) * HOP).tolist()
    assert (out.wav[1, int(out.wav_lengths[1]):] == 0).all() and out.mel.shape == (2, TINY["n_mels"], big_l)
    assert seg.wav.shape == (2, 4 * HOP) and seg.segment_starts.tolist() == [2, 0]
    assert wav.shape[0] == 2 and wav_len.tolist() == [wav.shape[1], int(wav_len[1])] and wav_len[1] <= wav.shape[1]
    # the transposed conv writes frame i on samples [i * hop, (i + 1) * hop): HiFi-GAN's frame grid
    up = m.waveform_decoder.upsample
    x = torch.zeros(1, m.config.hidden, 6)
    x[0, :, 3] = 1.0
    with torch.no_grad():
        y = (up(x) - up(torch.zeros_like(x))).abs().sum(1)[0]
    assert y.shape == (6 * HOP,) and y[3 * HOP:4 * HOP].min() > 0 and y[:3 * HOP].max() == y[4 * HOP:].max() == 0
    with pytest.raises(ConfigError):
        audiozoo.create_model("fastspeech2s", **{**TINY, "upsample_kernel": HOP + 1})
    with pytest.raises(ConfigError):  # no mel decoder to run
        audiozoo.create_model("fastspeech2s", **{**TINY, "mel_decoder": False})(tokens, lengths, decode_mel=True)


def test_noncausal_wavenet_is_non_causal() -> None:
    torch.manual_seed(0)
    net = NonCausalWaveNet(8, 16, 8, 1, layers=4, stacks=2, aux_channels=8).eval()
    x = torch.randn(1, 8, 64)
    with torch.no_grad():
        base = net(x, x)
        x2 = x.clone()
        x2[..., 40] += 1.0
        moved = (net(x2, x2) - base).abs()[0, 0]
    rf = net.receptive_field  # 1 + 2 * (1 + 2 + 1 + 2) = 13: samples 34..46 move, on both sides of 40
    assert rf == 13 and moved[34:40].max() > 0 and moved[41:47].max() > 0
    assert moved[:34].max() == 0 and moved[47:].max() == 0


# ------------------------------------------------------------------------------------------------ training
def _utterance(tokens: list[int], durations: list[int], seed: int = 0) -> torch.Tensor:
    return utterance(tokens, durations, seed, HOP, SR)


def _Items(n: int = 2) -> ToyUtterances:
    return ToyUtterances(n, max_duration=5, hop=HOP, sample_rate=SR)


_collate = collate


def _task(**waveform) -> TTSTask:
    return TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0,
                   waveform={"segment_frames": 8, "stft_resolutions": SMALL_STFT, **waveform})


def test_task_slices_match_the_audio_and_every_parameter_learns() -> None:
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech2s", **TINY).train()
    task = _task(discriminators={})
    task.models = {"model": model}
    ds = _Items()
    task.fit_statistics(ds)
    batch = _collate([ds[0], ds[1]])
    t = task.shared_forward(batch)
    starts = t["out"].segment_starts
    for i in range(2):
        s = int(starts[i]) * HOP
        want = ds[i]["audio"][s:s + 8 * HOP]
        assert torch.equal(t["wav_real"][i, :want.numel()], want)
    out = task.training_step(t)
    assert {"wave_sc", "wave_mag", "mel_l1", "duration", "pitch", "energy"} <= set(out)
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, missing[:5]  # mel decoder (full sequence) and waveform decoder (slice) both learn
    with pytest.raises(ConfigError):  # a mel model has no waveform to train
        bad = _task()
        bad.models = {"model": audiozoo.create_model("fastspeech2_small", **audiozoo.model_info("fastspeech2_small")
                                                     .tiny)}
        bad.shared_forward(batch)


def _fit_fixed_batch(lambda_stft: float, steps: int = 40) -> list[float]:
    """MR-STFT loss (sc + log-mag) of each of ``steps`` Adam steps of a tiny model on one fixed batch whose slices
    cover the whole utterances (the same target every step)."""
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech2s", **TINY).train()
    task = _task(discriminators={}, segment_frames=64, lambda_stft=lambda_stft)
    task.models = {"model": model}
    ds = _Items()
    task.fit_statistics(ds)
    batch = _collate([ds[0], ds[1]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    hist = []
    for _ in range(steps):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append(float(out["wave_sc"] + out["wave_mag"]))
    return hist


def test_waveform_loss_falls_on_a_fixed_utterance() -> None:
    hist, control = _fit_fixed_batch(1.0), _fit_fixed_batch(0.0)
    # measured (one thread): MR-STFT (spectral convergence + log-magnitude L1) 1.553 -> 0.812 after 40 Adam steps,
    # falling steadily; the control, trained on the mel / variance losses alone, stays at 1.553 -> 1.539
    assert hist[-1] < 0.7 * hist[0] and sum(hist[-5:]) < sum(hist[-10:-5]), (hist[0], hist[-1])
    assert control[-1] > 0.95 * control[0] and hist[-1] < 0.7 * control[-1], (control[0], control[-1])


def test_engine_runs_the_discriminator_stage(tmp_path) -> None:
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech2s", **TINY)
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0, optim={"name": "adam", "lr": 1e-3},
                   waveform={"segment_frames": 8, "stft_resolutions": SMALL_STFT,
                             "discriminators": {"pwg": {"kind": "pwg", "layers": 4, "channels": 8}}})
    loader = DataLoader(_Items(), batch_size=2, collate_fn=_collate)
    trainer = Trainer(task, {"model": model}, loader, loader, out_dir=tmp_path / "run", max_steps=2, eval_every=2,
                      save_every=2, progress=False, log_every=1)
    d0 = None

    def snapshot() -> None:
        nonlocal d0
        d0 = [p.detach().clone() for p in trainer.models["pwg"].parameters()]

    orig = task.on_fit_start
    task.on_fit_start = lambda: (orig(), snapshot())[0]  # type: ignore[method-assign]
    trainer.fit()
    assert list(trainer.models) == ["model", "pwg"] and len(trainer.optimizers) == 2
    assert any(not torch.equal(a, b) for a, b in zip(d0, trainer.models["pwg"].parameters()))  # D stepped
    assert (tmp_path / "run" / "last").is_dir()
    assert "mel_l1" in trainer.last_metrics and "wave_sc" in trainer.last_metrics
