"""FlowVocoderTask: the CFM loss of a tiny PeriodWave falls on a fixed clip, validation metrics are
deterministic, crops are trimmed / normalised, and the task runs in the engine."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import DataLoader

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.train.engine import Trainer
from audiozoo.train.losses.flow_matching import flow_matching_loss
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.flow_vocoder import FlowVocoderTask

SMALL_STFT = [(256, 64, 256), (512, 128, 512), (128, 32, 128)]


def _clip(n: int = 4096, sr: int = 16000) -> torch.Tensor:
    """A fixed voiced-speech-like clip: 12 harmonics of a gliding 150 Hz F0 plus a little noise."""
    t = torch.arange(n) / sr
    phase = 2 * math.pi * torch.cumsum(150 + 30 * t, 0) / sr
    x = sum(torch.sin(k * phase) / k for k in range(1, 13))
    x = x + 0.02 * torch.randn(n, generator=torch.Generator().manual_seed(1))
    return (0.4 * x / x.abs().max()).float()


def _tiny_model():
    return audiozoo.create_model("periodwave_base", **audiozoo.model_info("periodwave_base").tiny)


def _task(model, **kw) -> FlowVocoderTask:
    task = FlowVocoderTask(stft_resolutions=SMALL_STFT, val_steps=2, val_solver="euler", **kw)
    task.models = {"generator": model}
    return task


def test_registered_and_validated() -> None:
    assert get_task_class("flow_vocoder") is FlowVocoderTask
    with pytest.raises(ConfigError):
        FlowVocoderTask(val_steps=0)
    with pytest.raises(ConfigError):
        FlowVocoderTask(val_solver="rk4")
    with pytest.raises(ConfigError):
        FlowVocoderTask(stft_resolutions=[(256, 64, 512)])
    with pytest.raises(ConfigError):
        FlowVocoderTask(gain_db=[6.0, 0.0])


@pytest.mark.slow
def test_cfm_loss_falls_on_a_fixed_clip() -> None:
    torch.manual_seed(0)
    # energy_max from the data, as a recipe does: the clip's frame energy sqrt(sum exp(log-mel)) at a 0.95
    # peak is 0.78-1.05 with the tiny front-end, so the prior std is ~1 instead of pinned at std_min
    model = audiozoo.create_model("periodwave_base", **{**audiozoo.model_info("periodwave_base").tiny,
                                                        "energy_max": 1.0})
    task = _task(model, peak_normalize=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = {"audio": _clip(2048).unsqueeze(0).repeat(2, 1)}
    wav, lengths = task.target(batch)

    def fixed_loss() -> float:  # same t and prior noise every time: a deterministic measure of the fit
        with torch.no_grad():
            return float(flow_matching_loss(model, wav, lengths, generator=torch.Generator().manual_seed(123)))

    mel = model.frontend(wav)[0]

    def mel_distance() -> float:  # 4 midpoint steps from a fixed prior sample, then the mel L1 to the target
        with torch.no_grad():
            out = model.sample(mel, steps=4, solver="midpoint", generator=torch.Generator().manual_seed(7))[0]
            return float((model.frontend(out)[0] - mel).abs().mean())

    before, mel_before = fixed_loss(), mel_distance()
    for _ in range(30):
        out = task.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    after, mel_after = fixed_loss(), mel_distance()
    # measured: 0.487 -> 0.355 (73 %) after 30 Adam steps (the loss has a large stochastic part: the prior
    # sample is only partly predictable from x_t early in training); a model that does not learn stays at
    # 100 % (or worsens), so < 85 % is a real improvement with some margin for platform noise
    assert after < 0.85 * before, (before, after)
    # and the sampled audio moves toward the clip: mel L1 of a 4-step sample measured 1.874 -> 1.671 (89 %);
    # an untrained or diverging estimator gives >= 100 %
    assert mel_after < 0.95 * mel_before, (mel_before, mel_after)


def test_target_trims_and_normalises() -> None:
    model = _tiny_model()
    task = _task(model, peak_normalize=True)
    wav, lengths = task.target({"audio": 0.01 * torch.ones(2, 1, 1000), "lengths": torch.tensor([1000, 700])})
    assert wav.shape == (2, 960) and lengths.tolist() == [960, 700]  # 15 hops of 64
    torch.testing.assert_close(wav.abs().amax(-1), torch.full((2,), 0.95))
    quiet, _ = task.target({"audio": 1e-6 * torch.ones(1, 640)})
    assert quiet.abs().max() <= 1e-4 + 1e-9  # gain capped at +40 dB: silence is not blown up to full scale
    with pytest.raises(DataError):
        task.target({"audio": torch.randn(2, 10)})
    with pytest.raises(DataError):
        task.target({"wav": torch.randn(2, 1000)})


def test_validation_terms_are_deterministic() -> None:
    model = _tiny_model().eval()
    task = _task(model)
    batch = {"audio": _clip(2048).unsqueeze(0).repeat(2, 1)}
    with torch.no_grad():
        a, b = task.validation_terms(batch), task.validation_terms(batch)
    assert set(a) == {"cfm", "mel_l1", "stft_sc", "stft_mag", "mrstft"}
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.isfinite(a[k]), k


def test_task_in_the_engine(tmp_path) -> None:
    torch.manual_seed(0)
    model = _tiny_model()
    task = FlowVocoderTask(stft_resolutions=SMALL_STFT, val_steps=1, val_solver="euler", gain_db=[-6.0, 6.0],
                           optim={"name": "adamw", "lr": 1e-3})
    data = [{"audio": _clip(1024)} for _ in range(4)]
    loader = DataLoader(data, batch_size=2, collate_fn=lambda b: {"audio": torch.stack([x["audio"] for x in b])})
    trainer = Trainer(task, {"model": model}, loader, loader, max_steps=2, log_every=1, eval_every=2,
                      device="cpu", progress=False, out_dir=tmp_path, seed=0)
    trainer.fit()
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("cfm" in r for r in recs if r.get("split") == "train")
    valid = [r for r in recs if r.get("split") in ("valid", "val")]
    assert valid and all(k in valid[-1] for k in ("mel_l1", "mrstft", "cfm"))
