"""RAVE v1 (models.codec.rave): canonical parameter count, compression, stages, latent PCA, converter, ONNX."""

from __future__ import annotations

import re

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.codec.rave import RAVE, checkpoint_filter_fn, mod_sigmoid

TINY = dict(n_band=4, capacity=4, latent_size=6, ratios=(2, 2), noise_ratios=(2, 2), sample_rate=16000)


def _tiny(**kw) -> RAVE:
    torch.manual_seed(0)
    return audiozoo.create_model("rave_v1", **{**TINY, **kw})


def test_v1_parameter_count_matches_official_modules() -> None:
    # Counted on the official acids-rave 2.3.1 VariationalEncoder / Generator built from v1.gin (weight norm's g
    # and v both parameters; no conv biases): encoder 4,834,176, decoder 12,778,193 (docs/models/rave.md).
    with torch.device("meta"):
        m = audiozoo.create_model("rave_v1")
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert count(m.encoder) == 4_834_176
    assert count(m.decoder) == 12_778_193
    assert count(m) == audiozoo.model_info("rave_v1").params == 17_612_369
    # v1.gin: no conv biases anywhere in the encoder / decoder; the only biases are BatchNorm's
    bn = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.BatchNorm1d)}
    biases = [n for n, _ in m.named_parameters() if n.endswith(".bias")]
    assert len(biases) == 4 and all(n.rsplit(".", 1)[0] in bn for n in biases)


def test_v1_compression_and_shapes() -> None:
    torch.manual_seed(0)
    m = audiozoo.create_model("rave_v1").eval()
    assert m.hop_length == 2048 and m.latent_size == 128 and m.num_codebooks == 0
    assert m.frame_rate == pytest.approx(44100 / 2048)
    x = 0.1 * torch.randn(1, 2 * 2048)
    with torch.no_grad():
        z = m.encode(x)
        assert z.shape == (1, 128, 2)
        assert m.decode(z).shape == (1, 4096)


def test_lengths_are_padded_and_cropped() -> None:
    m = _tiny().eval()
    hop = m.hop_length  # 4 bands x 2 x 2 = 16
    x = 0.1 * torch.randn(2, 5 * hop + 3)
    with torch.no_grad():
        assert m.encode(x).shape == (2, 6, 6)  # ceil((5 hop + 3) / hop)
        out = m(x)
    assert out.wav.shape == x.shape
    assert out.bands.shape == out.target_bands.shape == (2, 4, 6 * hop // 4)
    with pytest.raises(AudioError):
        m(torch.randn(2, 1, 2, 64))
    with pytest.raises(AudioError):
        m.decode(torch.randn(1, 5, 3))


def test_posterior_and_mod_sigmoid() -> None:
    # forward returns the posterior (mean, std > 0) for the task's KL (audiozoo.train.losses.rave_kl)
    m = _tiny().eval()
    with torch.no_grad():
        out = m(0.1 * torch.randn(2, 6 * m.hop_length))
    assert out.mean.shape == out.std.shape == out.z.shape and bool((out.std > 0).all())
    assert torch.equal(out.z, out.mean)  # eval mode: the posterior mean
    assert float(mod_sigmoid(torch.tensor(0.0))) == pytest.approx(2 * 0.5**2.3 + 1e-7)


def test_eval_is_deterministic_and_training_samples() -> None:
    m = _tiny()
    x = 0.1 * torch.randn(1, 64)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x).wav, m(x).wav)
        assert torch.equal(m(x).z, m.encode(x))
    m.train()
    with torch.no_grad():
        assert not torch.equal(m(x).z, m(x).z)


def test_stage_two_freezes_encoder_and_adds_noise() -> None:
    m = _tiny().eval()
    z = torch.randn(1, 6, 4)
    with torch.no_grad():
        clean = m.decode(z)
        m.set_warmed_up(True)
        assert m.stage == 2 and not any(p.requires_grad for p in m.encoder.parameters())
        noisy1, noisy2 = m.decode(z), m.decode(z)
    assert not torch.equal(noisy1, clean) and not torch.equal(noisy1, noisy2)  # fresh noise each call
    # the synthesiser starts near silence (mod_sigmoid(x - 5)): noise well below the harmonic part at init
    assert (noisy1 - clean).abs().max() < clean.abs().max()
    m.train()
    out = m(0.1 * torch.randn(1, 64))
    out.wav.pow(2).mean().backward()
    assert all(p.grad is None for p in m.encoder.parameters())
    assert all(p.grad is not None for p in m.decoder.noise.parameters())
    m.set_warmed_up(False)
    assert m.stage == 1 and all(p.requires_grad for p in m.encoder.parameters())


def test_latent_pca_fidelity_and_crop() -> None:
    m = _tiny()
    g = torch.Generator().manual_seed(0)
    # latents with most variance in 2 known directions: scales 10, 3, then 0.1 for the other 4 dims
    basis, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    coords = torch.randn(4, 6, 50, generator=g) * torch.tensor([10.0, 3.0, 0.1, 0.1, 0.1, 0.1])[None, :, None]
    z = torch.einsum("dc,bdl->bcl", basis, coords) + 2.0
    fid = m.fit_latent_pca([z[:2], z[2:]])
    assert torch.all(fid[1:] >= fid[:-1]) and fid[-1] == pytest.approx(1.0)
    assert m.fidelity_dims(0.9) == 1 and m.fidelity_dims(0.99) == 2 and m.fidelity_dims(1.0) <= 6
    # projection: rotation + centring, exactly invertible
    assert torch.allclose(m.unproject_latent(m.project_latent(z)), z, atol=1e-4)
    assert torch.allclose(m.crop_latent(z, 6), z, atol=1e-4)
    # keeping the 2 main directions loses only the small ones (expected residual rms ~0.1 x sqrt(4/6))
    err = (m.crop_latent(z, 2) - z).pow(2).mean().sqrt()
    assert 0.05 < float(err) < 0.15
    assert m.crop_latent(z, 2, fill="noise", generator=g).shape == z.shape
    with pytest.raises(ConfigError):
        m.crop_latent(z, 0)
    with pytest.raises(ConfigError):
        m.fidelity_dims(1.5)


def test_fidelity_needs_a_fit() -> None:
    with pytest.raises(ConfigError, match="fit_latent_pca"):
        _tiny().fidelity_dims(0.9)


def _to_official_keys(state: dict) -> dict:
    """This layout -> acids-rave's (the inverse of the converter's renames), legacy weight norm keys."""
    out = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                             "weight_v")
        k = re.sub(r"^encoder\.net\.", "encoder.encoder.net.", k)
        k = re.sub(r"^decoder\.net\.(\d+)\.1\.", r"decoder.net.\1.net.1.", k)
        k = re.sub(r"^decoder\.net\.(\d+)\.blocks\.(\d+)\.(\d+)\.(\d+)\.",
                   r"decoder.net.\1.net.branches.\2.net.\3.net.aligned.branches.0.\4.", k)
        k = k.replace("decoder.wave.", "decoder.synth.branches.0.").replace("decoder.loudness.",
                                                                            "decoder.synth.branches.1.")
        k = k.replace("decoder.noise.net.", "decoder.synth.branches.2.net.")
        k = {"warmed_up": "decoder.warmed_up"}.get(k, k)
        out[k] = v
    out["encoder.warmed_up"] = torch.tensor(0)
    out["pqmf.hk"] = torch.zeros(4, 8)
    out["discriminator.layers.0.net.0.weight"] = torch.zeros(1)
    return {"state_dict": out}


def test_official_checkpoint_layout_converts() -> None:
    src, dst = _tiny(use_noise=True).eval(), _tiny(use_noise=True).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.01 * torch.randn_like(p))
    official = _to_official_keys(src.state_dict())
    assert any("aligned.branches" in k for k in official["state_dict"])
    converted = checkpoint_filter_fn(official, dst)
    dst.load_state_dict(converted)
    x = 0.1 * torch.randn(1, 128)
    with torch.no_grad():
        assert torch.equal(src(x).wav, dst(x).wav)


def test_onnx_decode_export(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from audiozoo.export import check_onnx, export_onnx

    m = _tiny().eval()

    class Decode(torch.nn.Module):
        def __init__(self, model: RAVE) -> None:
            super().__init__()
            self.model = model

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.model.decode(z)

    dec = Decode(m).eval()
    z = torch.randn(1, 6, 5)
    path = export_onnx(dec, tmp_path / "rave_decode.onnx", (z,), ["z"], ["wav"], {"z": {0: "batch", 2: "frames"},
                                                                                 "wav": {0: "batch", 1: "samples"}})
    # float32 convs (the stage-1 decode has no FFT); measured max abs error 4.7e-8 on outputs up to 0.13
    assert check_onnx(dec, path, (torch.randn(2, 6, 7),), atol=1e-5) <= 1e-5
