"""Vocos backbone + iSTFT head (audiozoo.nn.vocos) against ``vocos`` 0.1.0 (MIT) with the same weights, and
WavTokenizer's attention ``pos_net`` blocks against their defining formulas."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.nn.vocos import AttnBlock1d, ISTFTHead, ResnetBlock1d, SameISTFT, VocosBackbone


@pytest.fixture
def vocos(monkeypatch):
    """``vocos`` with torchaudio stubbed (``heads`` imports ``torchaudio.functional.functional._hz_to_mel``)."""
    if "torchaudio" not in sys.modules:
        ta, f1, f2 = (types.ModuleType(n) for n in ("torchaudio", "torchaudio.functional",
                                                     "torchaudio.functional.functional"))
        f2._hz_to_mel = f2._mel_to_hz = lambda *a, **k: None
        ta.functional, f1.functional = f1, f2
        for m in (ta, f1, f2):
            monkeypatch.setitem(sys.modules, m.__name__, m)
    return pytest.importorskip("vocos")


@pytest.mark.parity
@pytest.mark.parametrize("adanorm", [None, 4])
def test_backbone_and_head_match_vocos(vocos, adanorm):
    from vocos.heads import ISTFTHead as RefHead
    from vocos.models import VocosBackbone as RefBackbone

    ref_b, ref_h = RefBackbone(16, 32, 48, 3, adanorm_num_embeddings=adanorm).eval(), RefHead(32, 64, 16).eval()
    g = torch.Generator().manual_seed(0)
    for p in list(ref_b.parameters()) + list(ref_h.parameters()):
        p.data.copy_(0.2 * torch.randn(p.shape, generator=g))
    ours_b, ours_h = VocosBackbone(16, 32, 48, 3, adanorm_num_embeddings=adanorm).eval(), ISTFTHead(32, 64, 16).eval()
    ours_b.load_state_dict(ref_b.state_dict())
    ours_h.load_state_dict({k: v for k, v in ref_h.state_dict().items() if k != "istft.window"})
    x = torch.randn(2, 16, 37, generator=g)
    bid = torch.tensor([2]) if adanorm else None
    with torch.no_grad():
        h_ref = ref_b(x, bandwidth_id=bid)
        h = ours_b(x, bid)
        torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-5)  # measured 0.0
        w_ref, w = ref_h(h_ref), ours_h(h_ref)
    assert w.shape == w_ref.shape == (2, 37 * 16)
    # the overlap-add conv vs vocos' irfft + fold: measured 7.5e-8 on a peak of 0.17
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-6)


def test_center_istft_equals_torch_istft_and_same_drops_the_halves():
    g = torch.Generator().manual_seed(0)
    spec = torch.randn(2, 33, 20, dtype=torch.complex64, generator=g)
    spec[:, 0].imag = 0
    spec[:, -1].imag = 0
    win = torch.hann_window(64)
    ref = torch.istft(spec, 64, 16, 64, win, center=True)
    center = SameISTFT(64, 16, 64, "center")(spec.real, spec.imag)
    torch.testing.assert_close(center, ref, rtol=0, atol=1e-5)
    same = SameISTFT(64, 16, 64, "same")(spec.real, spec.imag)
    assert same.shape[-1] == 20 * 16
    # "same" keeps (win - hop) / 2 = 24 samples where centre padding trims n_fft / 2 = 32: shifted by 8
    torch.testing.assert_close(same[:, 8: 8 + 200], center[:, :200], rtol=0, atol=1e-5)


def test_resnet_and_attention_blocks_follow_their_formulas():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 11)
    res = ResnetBlock1d(8, dropout=0.0, groups=4).eval()
    h = res.conv1(torch.nn.functional.silu(res.norm1(x)))
    h = res.conv2(torch.nn.functional.silu(res.norm2(h)))
    torch.testing.assert_close(res(x), x + h)

    att = AttnBlock1d(8, groups=4).eval()
    n = att.norm(x)
    q, k, v = att.q(n), att.k(n), att.v(n)
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(8), dim=-1)  # (B, query, key)
    expected = x + att.proj_out(torch.einsum("bij,bcj->bci", w, v))
    torch.testing.assert_close(att(x), expected, rtol=1e-5, atol=1e-6)


def test_pos_net_layout_and_bandwidth_ids():
    b = VocosBackbone(8, 32, 16, 2, adanorm_num_embeddings=4, pos_net=True, pos_net_groups=8).eval()
    kinds = [type(m).__name__ for m in b.pos_net]
    assert kinds == ["ResnetBlock1d"] * 2 + ["AttnBlock1d"] + ["ResnetBlock1d"] * 2 + ["GroupNorm"]
    with torch.no_grad():
        b.norm.scale.weight[1].fill_(2.0)
        x = torch.randn(3, 8, 5)
        assert torch.equal(b(x), b(x, torch.tensor([0])))  # default id 0 (WavTokenizer decodes with it)
        assert not torch.allclose(b(x), b(x, torch.tensor([1])))
        per_item = b(x, torch.tensor([0, 1, 0]))  # one id per item
        torch.testing.assert_close(per_item[1], b(x[1:2], torch.tensor([1]))[0])
    assert b(x).shape == (3, 5, 32)


def test_vocos_errors():
    with pytest.raises(ConfigError, match="divisible"):
        VocosBackbone(8, 30, 16, 2, pos_net=True)
    with pytest.raises(AudioError, match="expects"):
        VocosBackbone(8, 32, 16, 2)(torch.zeros(1, 7, 5))
    with pytest.raises(ConfigError, match="padding"):
        SameISTFT(64, 16, 64, "valid")
