"""USS (ResUNet30 + FiLM): parity with the official ``uss`` 0.0.4 ResUNet30 through the converter, the registered
parameter counts against the package's, and input checks."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.models.separate.uss import USS, checkpoint_filter_fn


@pytest.fixture(scope="module")
def official():
    """The official ResUNet30 (condition 527), built once: torchlibrosa's DFT kernels take seconds to build."""
    resunet = pytest.importorskip("uss.models.resunet")
    torch.manual_seed(0)
    return resunet.ResUNet30(input_channels=1, output_channels=1, condition_size=527).eval()


def _tiny(**kw) -> USS:
    return audiozoo.create_model("uss_resunet30", **{**audiozoo.model_info("uss_resunet30").tiny, **kw})


def test_tiny_shapes_and_checks():
    torch.manual_seed(0)
    m = _tiny().eval()
    x = 0.1 * torch.randn(2, 1, 1001)
    cond = torch.rand(2, 6)
    with torch.no_grad():
        y = m(x, cond)
        assert y.shape == (2, 1, 1, 1001) and torch.isfinite(y).all()
        assert torch.allclose(m(x[:, 0], cond), y)  # (B, T) is accepted as mono
        assert not torch.allclose(m(x, torch.rand(2, 6)), y)  # the condition matters
    with pytest.raises(ConfigError, match="condition"):
        m(x, torch.rand(2, 5))
    with pytest.raises(AudioError, match="more than"):
        m(x[..., :100], cond)
    with pytest.raises(ConfigError, match="query_type"):
        _tiny(query_type="text")
    with pytest.raises(ConfigError, match="frequency pooling"):
        _tiny(n_fft=200)


@pytest.mark.parity
def test_parity_with_official_resunet30(official):
    """The same weights give the official ``ResUNet30``'s output (eval mode, non-trivial BN statistics); the
    official dummy decoder ``bn2`` / FiLM layers and torchlibrosa's kernels are dropped by the converter.
    Measured: max |diff| 6.3e-08 on outputs of max 0.12 (1 s, 32 kHz, batch 2)."""
    ref = official
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for k, v in sd.items():
        if k.endswith("running_mean") or (k.endswith("bias") and ".bn" in k):
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
        elif k.endswith("running_var") or (k.endswith("weight") and ".bn" in k):
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
    ref.load_state_dict(sd)
    ours = audiozoo.create_model("uss_resunet30").eval()
    converted = checkpoint_filter_fn({"state_dict": {f"ss_model.{k}": v for k, v in sd.items()}}, ours)
    ours.load_state_dict(converted, strict=True)
    x = 0.1 * torch.randn(1, 1, 6400 + 123, generator=g)  # 0.2 s; a length the hop does not divide
    cond = torch.rand(1, 527, generator=g)
    with torch.no_grad():
        want = ref({"mixture": x, "condition": cond})["waveform"]
        got = ours(x, cond)[:, 0]
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


@pytest.mark.parity
def test_param_count_against_the_package(official):
    """Registered counts = the package's ResUNet30 less its frozen STFT kernels and the unused decoder layers
    (the 2048-d variant differs only in the FiLM linears' input width)."""
    ref = official

    def unused(k: str) -> bool:
        return ((k.startswith("base.decoder_block") and ".bn2." in k and ".conv_block2." not in k)
                or (k.startswith("film.decoder_block") and "conv_block2" not in k and "->beta2" in k))

    kept = [(k, p) for k, p in ref.named_parameters() if p.requires_grad and not unused(k)]
    film_rows = sum(p.shape[0] for k, p in kept if k.startswith("film.") and k.endswith(".weight"))
    n527 = sum(p.numel() for _, p in kept)
    for name, want in (("uss_resunet30", n527), ("uss_resunet30_emb", n527 + (2048 - 527) * film_rows)):
        with torch.device("meta"):
            ours = audiozoo.create_model(name)
        assert sum(p.numel() for p in ours.parameters()) == want == audiozoo.model_info(name).params, name


def test_converter_refuses_other_checkpoints():
    with pytest.raises(CheckpointError, match="ResUNet30"):
        checkpoint_filter_fn({"encoder.weight": torch.zeros(1)}, _tiny())
