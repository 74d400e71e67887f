"""SEANet encoder/decoder (audiozoo.nn.seanet) and the EnCodec model against the ``encodec`` package (CC BY-NC code:
a test-only reference) with the same weights: causal and non-causal, weight norm and time-group norm, LSTM or
not, odd and very short lengths; RVQ codes through nn.quantize.ResidualVQ; frame counts and padding rules."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.nn.seanet import (
    SEANetDecoder,
    SEANetEncoder,
    StreamableConv1d,
    StreamableConvTranspose1d,
    extra_padding_for_conv1d,
    pad1d,
)
from audiozoo.nn.weight_norm import convert_legacy_weight_norm_keys


@pytest.fixture
def encodec(monkeypatch):
    """The ``encodec`` package with torchaudio stubbed (its utils import it; the wheel needs another torch)."""
    if "torchaudio" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchaudio", types.ModuleType("torchaudio"))
    return pytest.importorskip("encodec")


def _randomise(*modules: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in modules:
        for p in m.parameters():
            p.data.copy_(0.3 * torch.randn(p.shape, generator=g))


CONFIGS = [
    dict(causal=True, norm="weight_norm", lstm=2, true_skip=False),  # EnCodec 24 kHz
    dict(causal=False, norm="weight_norm", lstm=1, true_skip=True),  # WavTokenizer's encoder kind (non-causal)
    dict(causal=False, norm="time_group_norm", lstm=0, true_skip=False),  # EnCodec 48 kHz kind
]


@pytest.mark.parity
@pytest.mark.parametrize("cfg", CONFIGS, ids=["causal_wn", "noncausal_wn", "groupnorm"])
def test_seanet_matches_encodec(encodec, cfg):
    from encodec.modules import SEANetDecoder as RefDec
    from encodec.modules import SEANetEncoder as RefEnc

    kw = dict(channels=1, dimension=16, n_filters=4, ratios=[4, 3, 2], **cfg)
    ref_e, ref_d = RefEnc(**kw).eval(), RefDec(**kw).eval()
    _randomise(ref_e, ref_d)
    enc, dec = SEANetEncoder(**kw).eval(), SEANetDecoder(**kw).eval()
    enc.load_state_dict(convert_legacy_weight_norm_keys(ref_e.state_dict()))  # strict: the layouts agree
    dec.load_state_dict(convert_legacy_weight_norm_keys(ref_d.state_dict()))
    g = torch.Generator().manual_seed(1)
    for t in (5, 97, 1237):  # shorter than the reflect pads, odd, unaligned
        x = torch.randn(2, 1, t, generator=g)
        with torch.no_grad():
            z_ref, z = ref_e(x), enc(x)
            assert z.shape == z_ref.shape == (2, 16, enc.num_frames(t))
            torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-5)  # measured 0.0
            y_ref, y = ref_d(z_ref), dec(z_ref)
            assert y.shape == y_ref.shape == (2, 1, z.shape[-1] * 24)
            torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-5)  # measured 0.0


@pytest.mark.parity
def test_encodec_model_matches_the_package(encodec):
    """A small EnCodec (causal, weight norm, LSTM; random weights and codebooks) against the package's
    ``EncodecModel`` built from the same blocks, through the converter: identical codes at 1 and 2 kbps (2 and 4
    codebooks of 5 bits at 100 frames/s), identical decoded audio. (The canonical 24 kHz model has the same code
    path; its parameter count is checked on the meta device by tests/models/test_all_models.py.)"""
    from encodec.modules import SEANetDecoder as RefDec
    from encodec.modules import SEANetEncoder as RefEnc
    from encodec.quantization import ResidualVectorQuantizer

    from audiozoo.models.codec.encodec import checkpoint_filter_fn, encodec_24khz

    kw = dict(dimension=16, n_filters=4, ratios=[4, 3, 2], causal=True, lstm=2)
    ref = encodec.EncodecModel(RefEnc(**kw), RefDec(**kw), ResidualVectorQuantizer(dimension=16, n_q=4, bins=32),
                               target_bandwidths=[1.0, 2.0], sample_rate=2400, channels=1)
    _randomise(ref.encoder, ref.decoder)
    g = torch.Generator().manual_seed(0)
    for layer in ref.quantizer.vq.layers:
        layer._codebook.embed.copy_(torch.randn(layer._codebook.embed.shape, generator=g))
        layer._codebook.inited.fill_(1)
    ref.eval()
    ours = encodec_24khz(sample_rate=2400, dimension=16, n_filters=4, ratios=(4, 3, 2), num_quantizers=4,
                         codebook_size=32, target_bandwidths=(1.0, 2.0)).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours))
    x = 0.3 * torch.randn(2, 1, 1201, generator=g)
    for bw, n_q in ((1.0, 2), (2.0, 4)):
        ref.set_target_bandwidth(bw)
        with torch.no_grad():
            ((codes_ref, _),) = ref.encode(x)
            codes = ours.encode(x[:, 0], bandwidth=bw)
            assert codes.shape == (2, n_q, 51) and torch.equal(codes, codes_ref)
            y_ref = ref.decode([(codes_ref, None)])[:, 0]
            torch.testing.assert_close(ours.decode(codes), y_ref, rtol=0, atol=1e-5)  # measured 0.0
            torch.testing.assert_close(ours(x[:, 0], bandwidth=bw).audio, ref(x)[:, 0], rtol=0, atol=1e-5)
    assert ours.bitrate == 4 * 5 * 100


@pytest.mark.parity
def test_rvq_matches_encodec_quantizer(encodec):
    """nn.quantize.ResidualVQ = encodec's ResidualVectorQuantizer (codes, decode) with the same codebooks."""
    from encodec.quantization import ResidualVectorQuantizer

    from audiozoo.nn.quantize import ResidualVQ

    ref = ResidualVectorQuantizer(dimension=8, n_q=4, bins=32).eval()
    ours = ResidualVQ(8, 4, 32).eval()
    g = torch.Generator().manual_seed(0)
    for a, b in zip(ref.vq.layers, ours.layers):
        e = torch.randn(32, 8, generator=g)
        a._codebook.embed.copy_(e)
        a._codebook.inited.fill_(1)
        b.embed.copy_(e)
        b.initted.fill_(1)
    x = torch.randn(3, 8, 41, generator=g)
    codes_ref = ref.encode(x, sample_rate=75, bandwidth=None)  # (Q, B, T)
    codes = ours.encode(x)
    assert torch.equal(codes, codes_ref.transpose(0, 1))
    torch.testing.assert_close(ours.decode(codes), ref.decode(codes_ref), rtol=0, atol=1e-6)


def test_frame_counts_and_padding_rules():
    # ceil(T / stride) frames; the extra right padding makes the last window full
    assert extra_padding_for_conv1d(10, 4, 2, 2) == 0 and extra_padding_for_conv1d(11, 4, 2, 2) == 1
    conv = StreamableConv1d(1, 1, 4, stride=2, causal=True)
    for t in (1, 7, 8, 9):
        assert conv(torch.zeros(1, 1, t)).shape[-1] == -(-t // 2)
    tr = StreamableConvTranspose1d(1, 1, 4, stride=2, causal=True)
    assert tr(torch.zeros(1, 1, 5)).shape[-1] == 10
    # reflect padding of an input shorter than the pad (zeros appended first, as EnCodec)
    y = pad1d(torch.tensor([[1.0, 2.0]]), 3, 1, "reflect")
    assert y.shape[-1] == 6 and y[0, 3:5].tolist() == [1.0, 2.0]
    enc = SEANetEncoder(dimension=4, n_filters=2, ratios=(4, 2), lstm=0)
    assert enc.hop_length == 8 and enc(torch.zeros(1, 1, 17)).shape == (1, 4, 3)


def test_causal_encoder_ignores_the_future():
    torch.manual_seed(0)
    enc = SEANetEncoder(dimension=4, n_filters=2, ratios=(4, 2), lstm=1, causal=True, pad_mode="constant").eval()
    x = torch.randn(1, 1, 64)
    y = x.clone()
    y[..., 40:] = torch.randn(24)  # change the future from sample 40 on
    with torch.no_grad():
        a, b = enc(x), enc(y)
    assert torch.equal(a[..., :5], b[..., :5])  # frames 0-4 end at sample 39
    assert not torch.equal(a[..., 5:], b[..., 5:])


def test_seanet_errors():
    with pytest.raises(ConfigError, match="time_group_norm"):
        SEANetEncoder(norm="time_group_norm", causal=True)
    with pytest.raises(ConfigError, match="unknown conv norm"):
        SEANetEncoder(norm="batch_norm")
    with pytest.raises(AudioError, match="expects"):
        SEANetEncoder(dimension=4, n_filters=2, ratios=(2,))(torch.zeros(1, 2, 10))
    with pytest.raises(ConfigError, match="final_activation"):
        SEANetDecoder(dimension=4, n_filters=2, ratios=(2,), final_activation="Nope")
