"""HiFi-SR: canonical size, lengths, the converter's key coverage, and the MBD discriminator (its MossFormer2
blocks are tested in tests/nn/test_mossformer.py)."""

from __future__ import annotations

import re

import pytest
import torch

import audiozoo
from audiozoo.models.enhance import hifisr as H
from audiozoo.nn.activations import Snake1d
from audiozoo.nn.discriminators_mbd import DiscriminatorB, MultiBandDiscriminator


def _tiny() -> H.HiFiSR:
    return audiozoo.create_model("hifisr_48k", **audiozoo.model_info("hifisr_48k").tiny)


def test_canonical_count_split_matches_official() -> None:
    # Measured by instantiating the official clearvoice 0.1.2 Mossformer / Generator classes (meta device).
    with torch.device("meta"):
        m = audiozoo.create_model("hifisr_48k")
    assert sum(p.numel() for p in m.encoder.parameters()) == 54_497_026
    assert sum(p.numel() for p in m.generator.parameters()) == 55_150_402
    assert m.hop_length == 256 and m.sample_rate == 48000 and (m.min_input_rate, m.max_input_rate) == (4000, 32000)
    # every activation of the generator is a Snake (the official replaces all of HiFi-GAN's leaky ReLUs)
    n_snake = sum(isinstance(x, Snake1d) for x in m.generator.modules())
    assert n_snake == 4 + 4 * 3 * 6 + 1


def test_forward_lengths_and_errors() -> None:
    m = _tiny().eval()
    mel = torch.randn(2, m.n_mels, 21)
    with torch.no_grad():
        wav, lens = m(mel, torch.tensor([21, 10]))
    assert wav.shape == (2, 21 * m.hop_length) and lens.tolist() == [21 * m.hop_length, 10 * m.hop_length]
    assert wav[1, 10 * m.hop_length:].abs().max() == 0 and wav.abs().max() <= 1.0  # tanh output
    with pytest.raises(audiozoo.errors.AudioError):
        m(torch.randn(1, m.n_mels + 1, 8))
    with pytest.raises(audiozoo.errors.ConfigError):
        audiozoo.create_model("hifisr_48k", min_input_rate=50000)


def _to_official(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """This layout -> the official one (written independently of the converter, from the wheel's key list)."""
    enc, gen = {}, {}
    for k, v in state.items():
        if k.startswith("encoder."):
            k = k[len("encoder."):]
            k = re.sub(r"^layers\.", "mdl.intra_mdl.mossformerM.layers.", k)
            k = re.sub(r"^fsmn\.", "mdl.intra_mdl.mossformerM.fsmn.", k)
            k = re.sub(r"^intra_mdl_norm\.", "mdl.intra_mdl.norm.", k)
            k = re.sub(r"^intra_norm\.", "mdl.intra_norm.", k)
            k = {"pos_scale": "pos_enc.scale"}.get(k, k)
            k = re.sub(r"^output\.", "output.0.", k)
            k = re.sub(r"^output_gate\.", "output_gate.0.", k)
            k = re.sub(r"\.(gamma|beta)$", r".qk_offset_scale.\1", k)
            k = re.sub(r"\.(to_\w+)\.norm\.", r".\1.mdl.0.", k)  # FFConvM's Sequential indices
            k = re.sub(r"\.(to_\w+)\.linear\.", r".\1.mdl.1.", k)
            k = re.sub(r"\.(to_\w+)\.dwconv\.", r".\1.mdl.3.sequential.1.conv.", k)
            if k.endswith("fsmn.conv1.weight"):
                v = v.unsqueeze(-1)
            enc["mossformer." + k] = v
        else:
            k = k[len("generator."):]
            m = re.match(r"mrfs\.(\d+)\.resblocks\.(\d+)\.", k)
            if m:
                k = f"resblocks.{int(m.group(1)) * 2 + int(m.group(2))}." + k[m.end():]
            gen[k] = v
    return {"model_m": enc, "model_g": gen}


def test_converter_round_trip() -> None:
    m = _tiny()
    state = m.state_dict()
    back = H.checkpoint_filter_fn(_to_official(state), m)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_mbd_shapes_bands_and_gradients() -> None:
    d = DiscriminatorB(512, channels=4)
    n_bins = 257
    assert d.bands == [(0, 25), (25, 64), (64, 128), (128, 192), (192, 257)]  # int(frac * n_bins), official
    assert n_bins == 512 // 2 + 1
    mbd = MultiBandDiscriminator((256, 128), channels=4)
    y = torch.randn(2, 2048, requires_grad=True)
    logits, fmaps = mbd(y)
    assert len(logits) == 2 and all(t.shape[0] == 2 for t in logits)
    assert all(len(f) == 5 * 4 + 1 for f in fmaps)  # 4 maps per band (all but the first conv) + the output
    sum(t.mean() for t in logits).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    # the input is DC-removed and peak-normalised: the logits do not depend on the gain
    with torch.no_grad():
        a, _ = mbd(y.detach())
        b, _ = mbd(3.0 * y.detach() + 0.1)
    # float32 STFT + convs of two inputs equal up to rounding
    assert all(torch.allclose(p, q, atol=1e-4) for p, q in zip(a, b))
    with pytest.raises(audiozoo.errors.AudioError):
        mbd(torch.randn(2, 1, 2, 100))


def test_official_mbd_size() -> None:
    # HiFi-SR's MBD (fft 2048/1024/512, 32 channels): per sub-discriminator 5 bands x (2*32*27 + 3*32*32*27 +
    # 32*32*9 + 4*32 biases... ) -- counted independently here from the layer list of the official code.
    per_band = (2 * 32 * 3 * 9 + 32) + 3 * (32 * 32 * 3 * 9 + 32) + (32 * 32 * 3 * 3 + 32)
    post = 32 * 1 * 3 * 3 + 1
    wn_gains = 5 * (4 * 32 + 32) + 1  # weight norm g: one per output channel
    with torch.device("meta"):
        mbd = MultiBandDiscriminator()
    assert sum(p.numel() for p in mbd.parameters()) == 3 * (5 * per_band + post + wn_gains)

