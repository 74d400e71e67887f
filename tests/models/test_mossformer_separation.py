"""MossFormer / MossFormer2 (``mossformer_wsj0``, ``mossformer2_ss``, ``mossformer_small``): parameter counts and
parity with the official ClearerVoice classes (clearvoice 0.1.2, loaded by file path; its v1-style
``MossformerBlock`` is ModelScope's ``MossFormerModule``) given the same random weights through the converter, the
ModelScope v1 key layout, the dilated FSMN memory against its definition, SI-SDR rising on fixed mixtures."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.models.separate import mossformer as mf
from audiozoo.nn.mossformer import DilatedDenseFSMN, MossFormer2Encoder
from audiozoo.train.tasks.separation import SeparationTask

#: max |difference| allowed against the official code, relative to the output scale
#: (measured: 1.2e-7 / 1.4e-7 on outputs of magnitude 0.2 / 0.3)
BOUND = 1e-5


def _official(sub: str = "mossformer2_ss"):
    """clearvoice 0.1.2's ``models/<sub>/mossformer2.py``, imported without ``clearvoice/__init__`` (which
    pulls the whole inference stack); ``torchinfo`` (imported for an unused ``summary``) is stubbed."""
    pytest.importorskip("einops")
    pytest.importorskip("rotary_embedding_torch")
    spec = importlib.util.find_spec("clearvoice")
    if spec is None or spec.origin is None:
        pytest.skip("pip install --no-deps clearvoice==0.1.2")
    saved = {k: sys.modules.get(k) for k in ("clearvoice", "torchinfo")}
    pkg = types.ModuleType("clearvoice")
    pkg.__path__ = [str(pathlib.Path(spec.origin).parent)]
    sys.modules["clearvoice"] = pkg
    if saved["torchinfo"] is None:
        stub = types.ModuleType("torchinfo")
        stub.summary = lambda *a, **k: None
        sys.modules["torchinfo"] = stub
    try:
        return importlib.import_module(f"clearvoice.models.{sub}.mossformer2")
    finally:
        for k, v in saved.items():  # leave sys.modules as found (the submodules stay cached under their names)
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _reference(m, v1: bool, **kw) -> torch.nn.Module:
    ref = m.MossFormer(**kw)
    if v1:  # ModelScope's v1: FLASH layers only (clearvoice's MossFormerM2 = MossformerBlock + LayerNorm)
        d = kw["out_channels"]
        ref.mask_net.mdl.intra_mdl = m.MossFormerM2(num_blocks=kw["num_blocks"], d_model=d)
    return ref


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (norm gains, PReLU slopes, scale-norm g) so every mapped key matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not name.endswith("rotary_pos_emb.freqs"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_canonical_counts_match_official():
    """Counts with 1 and 2 layers equal the official classes' (trainable: less the frozen rotary frequencies);
    the count is affine in the layer count, so 24 layers give the registered figure (test_all_models checks
    that figure against the canonical model on the meta device)."""
    m = _official()
    for name, v1 in (("mossformer_wsj0", True), ("mossformer2_ss", False)):
        counts = []
        for depth in (1, 2):
            with torch.device("meta"):
                ref = _reference(m, v1, in_channels=512, out_channels=512, num_blocks=depth, kernel_size=16,
                                 num_spks=2)
                ours = audiozoo.create_model(name, depth=depth)
            n_ref = sum(p.numel() for p in ref.parameters() if p.requires_grad)
            n = sum(p.numel() for p in ours.parameters())
            assert n == n_ref, (name, depth, n, n_ref)
            counts.append(n)
        assert counts[0] + 23 * (counts[1] - counts[0]) == audiozoo.model_info(name).params, name
    # against the papers: MossFormer (L) 42.1 M, MossFormer2 55.7 M (within 1 %)
    assert abs(audiozoo.model_info("mossformer_wsj0").params / 42.1e6 - 1) < 0.01
    assert abs(audiozoo.model_info("mossformer2_ss").params / 55.7e6 - 1) < 0.01


@pytest.mark.parity
@pytest.mark.parametrize("v1", [True, False], ids=["mossformer", "mossformer2"])
def test_parity_with_official(v1):
    m = _official()
    torch.manual_seed(0)
    # 3 speakers, 2 layers; 203 frames in chunks of 256 -> padding inside the single chunk. N = D: the official
    # decoder is built with D input channels (it could not run with N != D)
    ref = _reference(m, v1, in_channels=32, out_channels=32, num_blocks=2, kernel_size=16, num_spks=3).eval()
    _randomise(ref)
    ours = audiozoo.create_model(
        "mossformer_wsj0" if v1 else "mossformer2_ss", sources=("a", "b", "c"), n_filters=32, dim=32, depth=2)
    audiozoo.hub.load_into(ours, {"model": {"module." + k: v for k, v in ref.state_dict().items()}},
                           converter=mf.checkpoint_filter_fn)
    ours.eval()
    x = 0.3 * torch.randn(2, 1629)
    with torch.no_grad():
        a = torch.stack(ref(x), dim=1)  # list of S (B, T)
        b = ours(x)
    assert b.shape == (2, 3, 1, 1629) and a.shape == (2, 3, 1629)
    err = (a - b[:, :, 0]).abs().max().item()
    assert err < BOUND * max(1.0, a.abs().max().item()), err


@pytest.mark.parity
def test_hifisr_encoder_parity_with_official():
    """The one-output mask net with the plain FSMN memory (HiFi-SR's MossFormer2 encoder) = clearvoice's
    ``mossformer2_sr`` ``MossFormer_MaskNet`` given the same weights (its keys through the same mapping)."""
    m = _official("mossformer2_sr")
    torch.manual_seed(0)
    ref = m.MossFormer_MaskNet(in_channels=16, out_channels=32, out_channels_final=16, num_blocks=2).eval()
    _randomise(ref)
    ours = MossFormer2Encoder(16, channels=32, depth=2).eval()
    state = mf.checkpoint_filter_fn({"enc.conv1d.weight": torch.zeros(1),
                                     **{f"mask_net.{k}": v for k, v in ref.state_dict().items()}}, ours)
    ours.load_state_dict({k[len("mask_net."):]: v for k, v in state.items() if k.startswith("mask_net.")})
    x = torch.randn(2, 16, 203)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.shape == b.shape == (2, 16, 203)
    assert (a - b).abs().max().item() < BOUND * max(1.0, a.abs().max().item())


def test_modelscope_v1_layout_round_trip():
    """ModelScope's v1 MossFormer keeps encoder/decoder/masknet in three files with ``att_mdl``/``att_norm``
    names; written here independently of the converter."""
    info = audiozoo.model_info("mossformer_wsj0")
    m = audiozoo.create_model("mossformer_wsj0", **info.tiny)
    _randomise(m, 3)
    sd = m.state_dict()
    masknet = {}
    for k, v in sd.items():
        if not k.startswith("mask_net."):
            continue
        k = k[len("mask_net."):]
        k = re.sub(r"^layers\.", "mdl.att_mdl.mossformerM.layers.", k)
        k = {"intra_mdl_norm.weight": "mdl.att_mdl.norm.weight", "intra_mdl_norm.bias": "mdl.att_mdl.norm.bias",
             "intra_norm.weight": "mdl.att_norm.weight", "intra_norm.bias": "mdl.att_norm.bias",
             "pos_scale": "pos_enc.scale"}.get(k, k)
        k = re.sub(r"^(output|output_gate)\.", r"\1.0.", k)
        k = re.sub(r"\.(gamma|beta)$", r".qk_offset_scale.\1", k)
        k = re.sub(r"\.norm\.g$", ".mdl.0.g", k)
        k = re.sub(r"\.linear\.", ".mdl.1.", k)
        k = re.sub(r"\.dwconv\.", ".mdl.3.sequential.1.conv.", k)
        masknet[k] = v
    masknet["pos_enc.inv_freq"] = torch.zeros(8)  # a constant buffer in the official files: dropped
    files = {"encoder": {"conv1d.weight": sd["encoder.weight"]}, "decoder": {"weight": sd["decoder.weight"]},
             "masknet": masknet}
    other = audiozoo.create_model("mossformer_wsj0", pretrained=files, **info.tiny)
    x = 0.1 * torch.randn(1, 1, 300)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), other.eval()(x))
    with pytest.raises(CheckpointError, match="not a MossFormer"):
        mf.checkpoint_filter_fn({"foo": torch.zeros(1)}, m)


def test_dilated_fsmn_definition():
    """Layer i: grouped conv (groups of i + 1 consecutive channels of [out_{i-1}, ..., p]) with dilation 2^i,
    instance norm, PReLU; the memory is the last layer's output plus the input (not p)."""
    torch.manual_seed(0)
    f = DilatedDenseFSMN(4, 6, lorder=2, depth=2)
    x = torch.randn(2, 9, 4)
    p = f.project(torch.relu(f.linear(x))).transpose(1, 2)  # (B, C, N)

    def layer(i, inp):  # explicit sum over taps: "same" padding 2^i * (lorder - 1) each side
        w, dil = f.convs[i].weight, 2 ** i  # (C, i + 1, 3)
        pad = torch.nn.functional.pad(inp, (dil, dil))
        out = torch.zeros(2, 4, 9)
        for c in range(4):
            for j in range(i + 1):
                for t in range(3):
                    out[:, c] += w[c, j, t] * pad[:, c * (i + 1) + j, t * dil: t * dil + 9]
        mu, var = out.mean(-1, keepdim=True), out.var(-1, unbiased=False, keepdim=True)
        out = (out - mu) / torch.sqrt(var + 1e-5) * f.norms[i].weight[:, None] + f.norms[i].bias[:, None]
        return torch.where(out > 0, out, f.prelus[i].weight[:, None] * out)

    o1 = layer(0, p)
    o2 = layer(1, torch.cat((o1, p), dim=1))
    torch.testing.assert_close(f(x), x + o2.transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_shapes_and_errors():
    m = audiozoo.create_model("mossformer2_ss", **audiozoo.model_info("mossformer2_ss").tiny).eval()
    with torch.no_grad():
        y = m(0.1 * torch.randn(2, 1, 203))  # 203 = 49 whole frames of 8 (hop 4) + 3 samples
    assert y.shape == (2, 2, 1, 203) and torch.all(y[..., 200:] == 0) and torch.isfinite(y).all()
    with pytest.raises(AudioError, match="at least one filter"):
        m(torch.zeros(1, 1, 5))
    with pytest.raises(AudioError, match="mono"):
        m(torch.zeros(1, 2, 100))
    with pytest.raises(ConfigError, match="fsmn"):
        audiozoo.create_model("mossformer_wsj0", fsmn="lstm")
    with pytest.raises(ConfigError, match="rotary_dim"):
        audiozoo.create_model("mossformer_wsj0", rotary_dim=3)


@pytest.mark.slow
def test_si_sdr_rises_on_fixed_mixtures(speechlike):
    """Tiny MossFormer, PIT SI-SDR through the separation task: on a fixed batch of mixtures of two speech-like
    voices (the shared harmonic test signal read at 8 kHz, ~120 Hz, and the same signal 3.2x faster, ~380 Hz,
    four excerpts at different offsets and levels) the SI-SDR improvement over the mixture rises from below zero
    to a real separation in 30 Adam steps (measured: -12.2 dB -> +7.2 dB)."""
    x = torch.from_numpy(speechlike)
    low = x[::2]
    high = F.interpolate(x[None, None], scale_factor=1 / 3.2, mode="linear", align_corners=False)[0, 0]
    starts = (0, 1200, 2600, 4400)
    gains = torch.tensor([[1.0, 0.7], [0.6, 1.0], [1.0, 1.2], [0.8, 0.5]])
    targets = torch.stack([torch.stack((low[s:s + 2048], high[s:s + 2048])) for s in starts]) * gains[..., None]
    info = audiozoo.model_info("mossformer_small")
    model = audiozoo.create_model("mossformer_small", **{**info.tiny, "n_filters": 32, "dim": 32, "depth": 2,
                                                         "group_size": 64})
    task = SeparationTask(loss="si_sdr", pit=True)
    task.models = {"model": model}
    batch = {"targets": targets}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for step in range(31):
        if step % 30 == 0:  # before the first and after the last update
            model.eval()
            task.on_validation_start()
            task.validation_step(batch)
            history.append(task.validation_end()["si_sdri"])
            model.train()
        if step < 30:
            opt.zero_grad()
            task.training_step(batch)["loss"].backward()
            opt.step()
    before, after = history
    assert after > 3.0 and after > before + 6.0, (before, after)
