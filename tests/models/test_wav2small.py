"""Wav2Small (arXiv 2408.13920): parameter budget, MobileNetV3 comparison student, front-end, learning, ONNX."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.eval.regression import ccc_torch
from audiozoo.models.classify.wav2small import MobileNetV3Small


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_wav2small_is_72k():
    with torch.device("meta"):
        model = audiozoo.create_model("wav2small")
    n = _count(model)
    assert n == audiozoo.model_info("wav2small").params
    assert abs(n - 72_000) <= 0.02 * 72_000  # the paper's "72K parameters"
    c = model.config
    # conv stack: 1 -> C then (len(pools) - 1) x C -> C, 3x3 with bias, plus BatchNorm scale/shift
    ch, layers = c.channels, len(c.pools)
    convs = (9 + 1) * ch + (layers - 1) * (9 * ch + 1) * ch + 2 * layers * ch
    assert _count(model.body.body) == convs


def test_mobilenetv3_small_matches_torchvision_count():
    # torchvision.models.mobilenet_v3_small(): 2,542,856 parameters (3 input planes, 1000 classes),
    # as listed in torchvision's model table; our layer table must reproduce it exactly.
    with torch.device("meta"):
        assert _count(MobileNetV3Small(1000, in_chans=3)) == 2_542_856
        student = audiozoo.create_model("wav2small_mobilenetv3")
    # 1 input plane (-16*9*2 stem weights) and 3 outputs (-1021 x 1025 head weights)
    assert _count(student) == 2_542_856 - 16 * 9 * 2 - 1024 * 997 - 997


def test_frontend_standardises_each_utterance():
    model = audiozoo.create_model("wav2small")
    g = torch.Generator().manual_seed(0)
    wav = 0.05 * torch.randn(1, 8000, generator=g) + 0.01
    a, n = model.frontend(wav)
    b, _ = model.frontend(7.0 * wav - 0.3)  # gain and DC offset are removed by the standardisation
    assert a.shape == (1, 20, 8000 // 32 + 1) and int(n) == 251
    # float32 dB values near 0; rounding of the rescaled waveform moves them by ~1e-5 dB
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    # a padded batch item is standardised over its own samples only: its valid frames match the lone item
    batch, frames = model.frontend(torch.cat([wav, torch.zeros(1, 4000)], -1).repeat(2, 1),
                                   torch.tensor([8000, 12000]))
    assert frames.tolist() == [251, 376]
    torch.testing.assert_close(batch[0, :, :249], a[0, :, :249], atol=1e-3, rtol=0)  # last 2 frames see padding


def test_learns_to_regress_a_teacher():
    # (the MobileNetV3 student has no width option; at 1.5M parameters it is too slow for this check)
    torch.manual_seed(0)
    model = audiozoo.create_model("wav2small", **audiozoo.model_info("wav2small").tiny)
    # "teacher" outputs: three continuous functions of the input's band energies
    x = torch.randn(32, model.config.n_mels, 24)
    energy = x[:, :4].mean((1, 2)), x[:, 4:].mean((1, 2))
    target = torch.stack([energy[0], energy[1], energy[0] - energy[1]], dim=-1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = 1 - ccc_torch(model(x), target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # an untrained regressor has CCC ~0 (loss ~1); the student must agree with the teacher clearly
    assert losses[0] > 0.7 and losses[-1] < 0.3


@pytest.mark.parity
@pytest.mark.parametrize("name", ["wav2small", pytest.param("wav2small_mobilenetv3", marks=pytest.mark.slow)])
def test_onnx_export_dynamic_batch_and_time(name, tmp_path):
    from audiozoo.export import check_onnx, export_onnx

    model = audiozoo.create_model(name, **audiozoo.model_info(name).tiny).eval()
    x = torch.randn(2, model.config.n_mels, 40)
    path = export_onnx(model, tmp_path / f"{name}.onnx", (x,), ["features"], ["outputs"],
                       {"features": {0: "batch", 2: "time"}, "outputs": {0: "batch"}})
    # float32 op-by-op differences are ~1e-7; 1e-4 is the project's parity bar
    errs = [check_onnx(model, path, (t,), 1e-4) for t in (x, torch.randn(3, model.config.n_mels, 57))]
    assert max(errs) <= 1e-4
