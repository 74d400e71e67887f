"""VocoderTask: the reconstruction loss falls on a fixed clip (tiny APNet), the GAN path runs in the engine,
and the MR-STFT loss agrees with the evaluation metric of the same name."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.eval.speech import multi_resolution_stft_distance
from audiozoo.nn.discriminators import MultiPeriodDiscriminator
from audiozoo.train.engine import Trainer
from audiozoo.train.losses import multi_resolution_stft_loss
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.vocoder import VocoderTask


def _clip(n: int = 4096, sr: int = 16000) -> torch.Tensor:
    """A fixed voiced-speech-like clip: 12 harmonics of a gliding 150 Hz F0 plus a little noise."""
    t = torch.arange(n) / sr
    phase = 2 * math.pi * torch.cumsum(150 + 30 * t, 0) / sr
    x = sum(torch.sin(k * phase) / k for k in range(1, 13))
    x = x + 0.02 * torch.randn(n, generator=torch.Generator().manual_seed(1))
    return (0.4 * x / x.abs().max()).float()


TINY_APNET = dict(asp_channels=16, psp_channels=16, asp_kernel_sizes=(3,), asp_dilations=((1, 3),),
                  psp_kernel_sizes=(3,), psp_dilations=((1, 3),), n_fft=256, hop_length=64, win_length=256,
                  n_mels=32)


def test_registered_and_validated() -> None:
    assert get_task_class("vocoder") is VocoderTask
    with pytest.raises(ConfigError):
        VocoderTask(losses=["l2"])
    with pytest.raises(ConfigError):
        VocoderTask(stft_resolutions=[(256, 64, 512)])  # window longer than the FFT


@pytest.mark.parametrize("losses", [["apnet"], ["mel", "mrstft"]])
def test_loss_falls_on_a_fixed_clip(losses: list[str]) -> None:
    torch.manual_seed(0)
    gen = audiozoo.create_model("apnet", **TINY_APNET)
    task = VocoderTask(losses=losses, stft_resolutions=[(256, 64, 256), (512, 128, 512), (128, 32, 128)])
    task.models = {"generator": gen}
    opt = torch.optim.Adam(gen.parameters(), lr=3e-3)
    batch = {"audio": _clip().unsqueeze(0).repeat(2, 1), "lengths": torch.tensor([4096, 4096])}
    first = last = None
    for _ in range(40):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = float(out["mel_l1"]) if first is None else first
        last = float(out["mel_l1"])
    # mel L1 (the task's monitored metric) starts at 2.52; after 40 Adam steps we measured 0.54 (apnet
    # losses, 21 %) and 0.38 (mel + MR-STFT, 15 %); 40 % leaves room for platform noise, and a generator
    # that does not learn stays near 100 %
    assert last < 0.4 * first, (first, last)


def test_shapes_and_errors() -> None:
    gen = audiozoo.create_model("apnet", **TINY_APNET)
    task = VocoderTask(losses=["apnet"])
    task.models = {"model": gen}  # a recipe's single `model:` is the generator
    out = task.shared_forward({"audio": torch.randn(2, 1000) * 0.1})
    assert out["real"].shape == out["fake"].shape == (2, 960)  # trimmed to a multiple of hop 64
    assert out["mel"].shape == (2, 32, 16)
    with pytest.raises(DataError):
        task.shared_forward({"audio": torch.randn(2, 100)})  # shorter than 2 hops


def test_gan_path_in_the_engine(tmp_path) -> None:
    """Generator + MPD: two optimizer stages per step; the adversarial terms are logged."""
    torch.manual_seed(0)
    gen = audiozoo.create_model("apnet", **TINY_APNET)
    mpd = MultiPeriodDiscriminator(periods=(2, 3), channels=(4, 8, 8, 8, 8))
    task = VocoderTask(losses=["mel"], optim={"name": "adamw", "lr": 1e-3})
    data = [{"audio": _clip(2048)} for _ in range(4)]
    loader = DataLoader(data, batch_size=2, collate_fn=lambda b: {"audio": torch.stack([x["audio"] for x in b])})
    trainer = Trainer(task, {"generator": gen, "mpd": mpd}, loader, max_steps=2, log_every=1, device="cpu",
                      progress=False, out_dir=tmp_path, seed=0)
    before = [p.detach().clone() for p in mpd.parameters()]
    trainer.fit()
    assert len(trainer.optimizers) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, mpd.parameters()))  # D stepped
    import json

    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("g_adv" in r and "g_fm" in r for r in recs if r.get("split") == "train")


def test_mrstft_loss_matches_eval_metric() -> None:
    x = _clip()
    y = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    sc, mag = multi_resolution_stft_loss(y.unsqueeze(0), x.unsqueeze(0))
    ref = multi_resolution_stft_distance(y.double(), x.double())
    # same definition (PWG), float32 vs float64: measured ~1e-6 relative; 1e-4 allows for the precision
    assert abs(float(sc) - float(ref["spectral_convergence"])) < 1e-4 * float(ref["spectral_convergence"])
    assert abs(float(mag) - float(ref["log_magnitude"])) < 1e-4 * float(ref["log_magnitude"])


def test_gain_augmentation() -> None:
    task = VocoderTask(losses=["mel"], gain_db=[-6.0, 30.0])
    wav = 0.05 * torch.ones(64, 100)
    out = task.augment_gain(wav)
    db = 20 * torch.log10(out[:, 0] / 0.05)
    # gains within [-6 dB, the 0.99-peak cap = +25.9 dB]; 64 draws spread over the range
    assert float(db.min()) >= -6.0 - 1e-4 and float(out.abs().max()) <= 0.99 + 1e-6
    assert float(db.max() - db.min()) > 10.0
    with pytest.raises(ConfigError):
        VocoderTask(gain_db=[10.0, 0.0])


def test_amplitude_spectral_convergence_term() -> None:
    """lambda_amp_sc adds ||A_hat - A|| / ||A|| of the predicted amplitude (APNet losses only)."""
    torch.manual_seed(0)
    gen = audiozoo.create_model("apnet", **TINY_APNET, amplitude_prior="pinv")
    batch = {"audio": _clip().unsqueeze(0), "lengths": torch.tensor([4096])}
    plain, with_sc = VocoderTask(losses=["apnet"]), VocoderTask(losses=["apnet"], lambda_amp_sc=10.0)
    for t in (plain, with_sc):
        t.models = {"generator": gen}
    b = plain.shared_forward(batch)
    a, s = plain.reconstruction_terms(b), with_sc.reconstruction_terms(b)
    assert "amp_sc" not in a and 0 < s["amp_sc"].item() < 2
    assert torch.allclose(s["recon"], a["recon"] + 10.0 * s["amp_sc"], rtol=1e-5)
    with pytest.raises(ConfigError, match="lambda_amp_sc"):
        VocoderTask(losses=["mel"], lambda_amp_sc=1.0)


def test_recipe_discriminators_are_built_trained_and_checkpointed(tmp_path) -> None:
    """``discriminators: {name: {kind, ...}}`` builds them in setup beside a single recipe model."""
    from audiozoo.train.checkpoint import load_weights

    torch.manual_seed(0)
    gen = audiozoo.create_model("apnet", **TINY_APNET)
    task = VocoderTask(losses=["mel"], optim={"name": "adamw", "lr": 1e-3},
                       discriminators={"mpd": {"kind": "mpd", "periods": [2, 3], "channels": [4, 8, 8, 8, 8]},
                                       "msd": {"kind": "msd", "width": 0.0625}})
    data = [{"audio": _clip(2048)} for _ in range(4)]
    loader = DataLoader(data, batch_size=2, collate_fn=lambda b: {"audio": torch.stack([x["audio"] for x in b])})
    trainer = Trainer(task, {"model": gen}, loader, max_steps=2, log_every=1, device="cpu", progress=False,
                      out_dir=tmp_path, seed=0, save_every=2)
    trainer.fit()
    assert set(trainer.models) == {"model", "mpd", "msd"} and len(trainer.optimizers) == 2
    assert task.generator is gen
    saved = sorted(p.name for p in (tmp_path / "last").glob("*.safetensors"))
    assert any("mpd" in n for n in saved) and any("msd" in n for n in saved), saved
    assert load_weights(next((tmp_path / "last").glob("*mpd*.safetensors")))
    with pytest.raises(ConfigError, match="kind must be one of"):
        VocoderTask(discriminators={"d": {"kind": "hinge"}})
