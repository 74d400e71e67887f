"""The ``distill`` task: a student learns a frozen teacher's outputs through the engine (CCC, MSE, soft labels),
precise BatchNorm, and the teacher staying out of the run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.train.engine import Trainer, run_validation
from audiozoo.train.tasks import get_task_class
from audiozoo.train.tasks.distill import DistillationTask, precise_batchnorm

SR = 16000
TINY = audiozoo.model_info("wav2small").tiny  # 6 channels, 8 mels, 3 outputs


class Chirps(Dataset):
    """Noisy tones of random pitch and level, 0.1-0.25 s zero-padded to 0.25 s, with ``lengths``."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(4000) / SR
        f = 200 + 3000 * torch.rand(n, 1, generator=g)
        amp = 0.05 + 0.5 * torch.rand(n, 1, generator=g)
        self.audio = amp * torch.sin(2 * math.pi * f * t) + 0.02 * torch.randn(n, 4000, generator=g)
        self.lengths = torch.randint(1600, 4001, (n,), generator=g)
        self.audio[torch.arange(4000)[None] >= self.lengths[:, None]] = 0.0
        self.labels = (f[:, 0] > 1700).long()

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.audio[i], "lengths": self.lengths[i], "label": self.labels[i]}


def _loader(n: int, seed: int, shuffle: bool) -> DataLoader:
    return DataLoader(Chirps(n, seed), batch_size=16, shuffle=shuffle, drop_last=shuffle)


def _models() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(1)
    teacher = audiozoo.create_model("wav2small", **TINY).eval()
    torch.manual_seed(2)
    student = audiozoo.create_model("wav2small", **TINY)
    return teacher, student


def test_registered_and_validated() -> None:
    assert get_task_class("distill") is DistillationTask and DistillationTask.uses_labels
    with pytest.raises(ConfigError, match="loss"):
        DistillationTask(teacher="x", loss="l2")
    with pytest.raises(ConfigError, match="temperature"):
        DistillationTask(teacher="x", loss="kl", temperature=0)
    task = DistillationTask(teacher="x")
    with pytest.raises(DataError, match="num_classes"):
        task.distill_loss(torch.zeros(4, 3), torch.zeros(4, 2))


def test_student_learns_the_teacher_and_teacher_is_not_trained(tmp_path) -> None:
    teacher, student = _models()
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    task = DistillationTask(teacher=teacher, loss="ccc", recalibrate_bn=True, trim_padding=True,
                            optim={"name": "adam", "lr": 3e-3})
    valid = _loader(48, seed=1, shuffle=False)
    task.device = torch.device("cpu")
    before = run_validation(task, {"model": student}, valid, torch.device("cpu"), "fp32")
    trainer = Trainer(task, {"student": student}, _loader(64, seed=0, shuffle=True), valid, epochs=4,
                      out_dir=tmp_path / "run", progress=False, device="cpu", seed=0)
    trainer.fit()
    after = trainer.last_metrics
    # measured (seed 0): validation CCC with the teacher -0.09 untrained -> 0.56 after 16 steps (~2 s)
    assert after["ccc"] > before["ccc"] + 0.4 and after["ccc"] > 0.4, (before, after)
    assert all(torch.equal(v, t_state[k]) for k, v in teacher.state_dict().items())  # frozen teacher
    files = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())["model_files"]
    assert set(files) == {"student"}  # the teacher is not part of the run's checkpoints
    assert {"agreement", "accuracy", "mse"} <= set(after)


def test_soft_label_loss_falls_and_label_term() -> None:
    teacher, student = _models()
    task = DistillationTask(teacher=teacher, loss="kl", temperature=2.0)
    assert task.monitor == "agreement"
    task.models = {"model": student}
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    batch = next(iter(_loader(32, seed=3, shuffle=False)))
    losses = []
    for _ in range(30):
        out = task.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["distill"]))
    # measured: 0.163 -> 0.011 in 30 steps
    assert losses[-1] < 0.2 * losses[0], losses[::6]
    task.label_weight = 0.5  # Hinton's combination: + 0.5 x cross-entropy on the labels
    out = task.training_step(batch)
    assert float(out["loss"].detach()) == pytest.approx(float(out["distill"]) + 0.5 * float(out["ce"]), rel=1e-5)


def test_precise_batchnorm_is_the_exact_average() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.01))
    batches = [torch.randn(8, 3) for _ in range(3)]
    assert precise_batchnorm(net, batches, net) == 1
    with torch.no_grad():
        h = net[0](torch.cat(batches))
    torch.testing.assert_close(net[1].running_mean, h.mean(0))
    assert net[1].momentum == 0.01  # restored
