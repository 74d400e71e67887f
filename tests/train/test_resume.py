"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("train_toy_script.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(SCRIPT), str(out), "--augment", *extra], check=True, env=ENV, timeout=120)


def _progress(ckpt: Path) -> dict:
    return json.loads((ckpt / "trainer_state.json").read_text())["state"]["progress"]


def _train_records(out: Path) -> list[dict]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in recs]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_exact(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    _run(ref)  # uninterrupted: 14 steps (2 micro-batches each), last/ every 4 steps, eval every 3

    # 5 optimizer steps per epoch: the checkpoint at step 8 lies inside epoch 1 (micro-batch 6 of 10).
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed), "--augment", "--pause-after", "9"], env=ENV)
    marker = killed / "paused.marker"
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, "training process ended before pausing"
        assert time.time() < deadline, "training process did not reach the pause"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    progress = _progress(killed / "last")
    assert progress["step"] == 8 and progress["epoch"] == 1 and progress["batch_in_epoch"] == 6

    _run(killed, "--resume")
    assert _progress(killed / "last") == _progress(ref / "last")
    for name in ("model.safetensors", "ema.safetensors", "trainer_state.safetensors"):
        a, b = load_file(str(ref / "last" / name)), load_file(str(killed / "last" / name))
        assert a.keys() == b.keys()
        for k in a:  # bitwise: torch.equal on identical dtypes, no tolerance
            assert a[k].dtype == b[k].dtype and a[k].equal(b[k]), f"{name}:{k} differs after resume"
    # best/ is chosen from validation at the same steps with the same weights.
    assert _progress(killed / "best") == _progress(ref / "best")
    # The metric log of the resumed run drops the records after the checkpoint and re-logs them identically.
    assert _train_records(killed) == _train_records(ref)
