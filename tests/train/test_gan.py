"""GANTask: discriminator then generator steps, own optimizers/schedules; a toy generator learns."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader
from train_toys import ToyDiscriminator, ToyGenerator, ToySignals

from audiozoo.train import GANTask, Trainer, read_metrics
from audiozoo.train.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss


def test_toy_gan_learns_target(tmp_path):
    torch.manual_seed(0)
    gen, disc = ToyGenerator(), ToyDiscriminator()
    d_before = {k: v.clone() for k, v in disc.state_dict().items()}
    task = GANTask(lambda_recon=45.0, lambda_fm=2.0,
                   optim={"name": "adamw", "lr": 3e-3, "betas": [0.8, 0.99]},
                   d_optim={"name": "adamw", "lr": 1e-3, "betas": [0.8, 0.99]},
                   schedule={"name": "exponential", "gamma": 0.99, "interval": "epoch"})
    train = DataLoader(ToySignals(64), batch_size=16, shuffle=True)
    valid_set = ToySignals(32, seed=1)
    with torch.no_grad():
        start = float((gen(valid_set.x) - valid_set.y).abs().mean())
    trainer = Trainer(task, {"generator": gen, "discriminator": disc}, train, DataLoader(valid_set, batch_size=32),
                      epochs=25, eval_every=25, log_every=20, device="cpu", progress=False, out_dir=tmp_path, seed=0)
    trainer.fit()
    recs = read_metrics(tmp_path)
    final = [r["recon"] for r in recs if r["split"] == "valid"][-1]
    # 100 steps (25 epochs x 4 batches) must cut the validation L1 to the target by at least 75 %
    # (measured: 0.57 untrained -> 0.025); adversarial terms that fought the reconstruction would not.
    assert final < 0.25 * start, (start, final)
    train_recs = [r for r in recs if r["split"] == "train"]
    assert {"d_loss", "g_loss", "recon", "g_adv", "g_fm", "lr_0", "lr_1"} <= set(train_recs[-1])
    # Per-epoch exponential decay: the last logged step (100, in epoch 24) has lr 3e-3 * 0.99 ** 24.
    assert train_recs[-1]["step"] == 100
    assert train_recs[-1]["lr_1"] == pytest.approx(3e-3 * 0.99**24, rel=1e-12)  # same float ops, to rounding
    assert train_recs[-1]["lr_0"] == pytest.approx(1e-3 * 0.99**24, rel=1e-12)
    assert any(not torch.equal(disc.state_dict()[k], d_before[k]) for k in d_before)  # D trained too
    assert (tmp_path / "last" / "discriminator.safetensors").is_file()
    assert (tmp_path / "best" / "model.safetensors").is_file()  # generator = main model


def test_gan_losses_hand_values():
    real, fake = [torch.tensor([1.0, 0.5])], [torch.tensor([0.0, 0.5])]
    # lsgan D: mean((1 - [1, .5])^2) + mean([0, .5]^2) = 0.125 + 0.125
    assert discriminator_loss(real, fake).item() == 0.25
    # hinge D: mean(relu(1 - [1, .5])) + mean(relu(1 + [0, .5])) = 0.25 + 1.25
    assert discriminator_loss(real, fake, "hinge").item() == 1.5
    assert generator_adversarial_loss(fake).item() == 0.625  # mean((1 - [0, .5])^2)
    fm = feature_matching_loss([[torch.ones(3), torch.zeros(2)]], [[torch.zeros(3), torch.ones(2)]])
    assert fm.item() == 2.0
