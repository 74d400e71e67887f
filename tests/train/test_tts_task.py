"""TTSTask: targets on HiFi-GAN's frame grid, corpus statistics, the mel loss falls on a fixed utterance (tiny
FastSpeech 2), the engine runs it end to end, and the losses mask padding."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.train.engine import Trainer
from audiozoo.train.losses.tts import duration_loss, masked_mel_loss, masked_value_loss
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.tts import TTSTask, pad_lists, token_average
from tts_toys import ToyUtterances, collate, utterance

SR, HOP = 22050, 256
TINY = dict(audiozoo.model_info("fastspeech2_small").tiny)


def _utterance(tokens: list[int], durations: list[int], seed: int = 0) -> torch.Tensor:
    return utterance(tokens, durations, seed, HOP, SR)


def _Items(n: int = 4) -> ToyUtterances:
    return ToyUtterances(n, max_duration=6, hop=HOP, sample_rate=SR)


_collate = collate


def _task(model) -> TTSTask:
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0)
    task.models = {"model": model}
    return task


def test_registered_and_validated() -> None:
    assert get_task_class("tts") is TTSTask
    with pytest.raises(ConfigError):
        TTSTask(mel_loss="l3")
    with pytest.raises(ConfigError):
        TTSTask(pitch_method="crepe")
    with pytest.raises(ConfigError):
        TTSTask(lambda_pitch=-1)


def test_targets_follow_the_durations_and_the_pitch() -> None:
    model = audiozoo.create_model("fastspeech2_small", **TINY)
    task = _task(model)
    toks, durs = [10, 30], [20, 20]
    mel, lf0, en = task.item_targets(_utterance(toks, durs), sum(durs))
    assert mel.shape == (TINY["n_mels"], 40) and lf0.shape == en.shape == (40,)
    # HiFi-GAN's mel frames: T // hop, the vocoder's own front end
    assert torch.equal(mel, model.mel_extractor()(_utterance(toks, durs)[None])[0][0])
    # frames well inside each token carry its F0 (190 Hz, then 350 Hz)
    assert abs(math.exp(float(lf0[5:15].median())) - 190.0) < 5.0
    assert abs(math.exp(float(lf0[25:35].median())) - 350.0) < 8.0
    with pytest.raises(DataError):
        task.item_targets(_utterance(toks, durs), sum(durs) + 5)  # durations of some other audio


def test_statistics_and_batches() -> None:
    model = audiozoo.create_model("fastspeech2_small", **TINY)
    task = _task(model)
    ds = _Items()
    with pytest.raises(ConfigError):
        task.prepare_batch(_collate([ds[0], ds[1]]))  # statistics not set yet
    stats = task.fit_statistics(ds)
    assert 4.6 < stats["pitch_mean"] < 6.0 and stats["pitch_std"] > 0.05 and stats["energy_std"] > 0
    assert torch.allclose(model.pitch_stats.double(), torch.tensor([stats["pitch_mean"], stats["pitch_std"]]).double())
    b = task.prepare_batch(_collate([ds[0], ds[3]]))
    assert b["tokens"].shape == (2, 9) and b["lengths"].tolist() == [6, 9]
    assert b["mel"].shape[-1] == int(b["durations"].sum(1).max()) == b["pitch"].shape[1]
    # padded frames of the shorter item: silence in the mel, zero pitch
    f0 = int(b["mel_lengths"][0])
    assert (b["mel"][0, :, f0:] == math.log(1e-5)).all() and (b["pitch"][0, f0:] == 0).all()


def _fit_fixed_batch(steps: int = 60, **overrides) -> tuple[dict[str, float], dict[str, float]]:
    """A tiny FastSpeech 2 (``overrides`` on TINY) trained ``steps`` Adam steps on one fixed two-utterance batch:
    the loss terms of the first and of the last step."""
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech2_small", **{**TINY, **overrides})
    task = _task(model)
    ds = _Items(2)
    task.fit_statistics(ds)
    batch = _collate([ds[0], ds[1]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    terms = []
    for _ in range(steps):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        terms.append({k: float(v.detach()) for k, v in out.items()})
    return terms[0], terms[-1]


def test_mel_loss_falls_on_a_fixed_utterance() -> None:
    start, out = _fit_fixed_batch()
    first, last = start["mel_l1"], out["mel_l1"]
    # measured: mel L1 5.30 -> 0.75 (ln units) after 60 Adam steps; duration 2.96 -> 0.14, pitch 2.03 -> 0.22
    assert last < 0.3 * first, (first, last)
    assert float(out["duration"]) < 0.5 and float(out["pitch"]) < 1.0


def test_engine_end_to_end(tmp_path) -> None:
    model = audiozoo.create_model("fastspeech2_small", **TINY)
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0, optim={"name": "adam", "lr": 2e-3})
    loader = DataLoader(_Items(), batch_size=2, collate_fn=_collate)
    trainer = Trainer(task, {"model": model}, loader, loader, out_dir=tmp_path / "run", max_steps=4, eval_every=4,
                      save_every=4, progress=False, log_every=2)
    trainer.fit()
    assert float(model.pitch_stats[1]) > 0  # computed at the start of training, saved with the weights
    assert (tmp_path / "run" / "last").is_dir()


def test_losses_ignore_padding() -> None:
    pred, target = torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)
    pred[1, :, 3:] = 100.0  # padding of item 1 (length 3)
    assert float(masked_mel_loss(pred, target, torch.tensor([5, 3]))) == 0.0
    assert float(masked_value_loss(torch.tensor([[1.0, 9.0]]), torch.tensor([[0.0, 0.0]]),
                                   torch.tensor([[True, False]]))) == 1.0
    # duration target is ln(d + 1)
    d = torch.tensor([[3, 7]])
    assert float(duration_loss(torch.log(d.float() + 1), d, torch.tensor([2]))) < 1e-12
    with pytest.raises(DataError):
        masked_mel_loss(pred, target[:, :2], torch.tensor([5, 3]))


def test_helpers() -> None:
    t, n = pad_lists([[1, 2, 3], [4]])
    assert t.tolist() == [[1, 2, 3], [4, 0, 0]] and n.tolist() == [3, 1]
    with pytest.raises(DataError):
        pad_lists([[1], []])
    avg = token_average(torch.tensor([[1.0, 3.0, 5.0, 0.0]]), torch.tensor([[2, 1, 0]]))
    assert avg.tolist() == [[2.0, 5.0, 0.0]]


def test_cwt_targets_are_the_normalised_contours_transform() -> None:
    from audiozoo.dsp.cwt import pitch_cwt
    from audiozoo.train.tasks.tts import cwt_targets

    g = torch.Generator().manual_seed(0)
    pitch = torch.randn(2, 30, generator=g).cumsum(1) / 5
    pitch[1, 20:] = 0.0  # padding of a 20-frame item
    spec, moments = cwt_targets(pitch, torch.tensor([30, 20]))
    task = _task(audiozoo.create_model("fastspeech2_small", **{**TINY, "pitch_level": "cwt"}))
    ds = _Items(2)
    task.fit_statistics(ds)
    prepared = task.prepare_batch(_collate([ds[0], ds[1]]))  # the task's batches carry them
    assert prepared["pitch_spectrogram"].shape == (*prepared["pitch"].shape, 10)
    assert prepared["pitch_moments"].shape == (2, 2)
    assert spec.shape == (2, 30, 10) and moments.shape == (2, 2) and (spec[1, 20:] == 0).all()
    p = pitch[1, :20].double()
    torch.testing.assert_close(moments[1], torch.stack([p.mean(), p.std(unbiased=False)]).float())
    torch.testing.assert_close(spec[1, :20], pitch_cwt((p - p.mean()) / p.std(unbiased=False)).float())
    flat, m0 = cwt_targets(torch.full((1, 8), 0.3), torch.tensor([8]))  # nothing to decompose
    assert (flat == 0).all() and m0.tolist() == [[pytest.approx(0.3), 0.0]]


def test_cwt_pitch_losses_fall_on_a_fixed_utterance() -> None:
    first, last = _fit_fixed_batch(pitch_level="cwt")
    keys = ("mel_l1", "pitch", "pitch_mean", "pitch_std")
    # measured: mel L1 5.38 -> 0.67 (ln units), pitch spectrogram MSE 1.85 -> 0.42, utterance mean MSE
    # 0.0089 -> < 1e-4, std MSE 1.08 -> 4e-4 (60 Adam steps, one thread)
    assert last["mel_l1"] < 0.3 * first["mel_l1"], (first, last)
    for k in keys[1:]:
        assert last[k] < 0.3 * first[k] or last[k] < 1e-3, (k, first, last)
