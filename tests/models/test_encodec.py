"""EnCodec (models/codec/encodec.py): the bandwidth -> codebooks rule, the official checkpoint layout (built by the
``encodec`` package's classes) through the converter, prefix decoding, training-mode quantiser updates, errors.
Numerical parity of the whole model with the package: tests/nn/test_seanet.py."""

from __future__ import annotations

import sys
import types

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.codec.encodec import checkpoint_filter_fn

TINY = audiozoo.model_info("encodec_24khz").tiny


def test_bandwidths_choose_the_number_of_codebooks():
    with torch.device("meta"):
        m = audiozoo.create_model("encodec_24khz")
    # 10 bits x 75 frames/s = 0.75 kbps per codebook (EnCodec Section 3.2)
    assert [m.num_quantizers_for(b) for b in m.target_bandwidths] == [2, 4, 8, 16, 32]
    assert m.num_quantizers_for(None) == 32 and m.num_quantizers_for(6.0, n_q=3) == 3
    assert m.frame_rate == 75.0 and m.bitrate == 24000.0
    with pytest.raises(ConfigError, match="needs 40 codebooks"):
        m.num_quantizers_for(30.0)
    with pytest.raises(ConfigError, match="n_q"):
        m.num_quantizers_for(n_q=33)


@pytest.mark.parity
def test_official_layout_converts(monkeypatch):
    if "torchaudio" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchaudio", types.ModuleType("torchaudio"))
    encodec = pytest.importorskip("encodec")
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer

    kw = dict(dimension=8, n_filters=2, ratios=[4, 2], lstm=1, causal=True)
    ref = encodec.EncodecModel(SEANetEncoder(**kw), SEANetDecoder(**kw), ResidualVectorQuantizer(8, n_q=5, bins=16),
                               target_bandwidths=[1.0], sample_rate=8000, channels=1)
    state = ref.state_dict()
    assert "quantizer.vq.layers.4._codebook.embed_avg" in state and "encoder.model.0.conv.conv.weight_g" in state
    ours = audiozoo.create_model("encodec_24khz", **TINY)  # 3 codebooks: the last two official ones are dropped
    converted = checkpoint_filter_fn(state, ours)
    assert "quantizer.layers.0.initted" in converted and "quantizer.layers.3.embed" not in converted
    ours.load_state_dict(converted)  # strict
    torch.testing.assert_close(ours.quantizer.layers[2].embed, ref.quantizer.vq.layers[2]._codebook.embed)


def test_prefix_decoding_and_training_updates():
    torch.manual_seed(0)
    m = audiozoo.create_model("encodec_24khz", **TINY)
    x = 0.3 * torch.randn(3, 8 * 40 + 5)
    m.train()
    out = m(x)  # the first training batch initialises every codebook by k-means
    assert out.audio.shape == x.shape and out.codes.shape == (3, 3, 41)
    assert all(layer.initted.item() == 1 for layer in m.quantizer.layers)
    assert len(out.vq.inputs) == 3 and out.latents.shape == (3, 8, 41)
    m.eval()
    with torch.no_grad():
        codes = m.encode(x)
        full, coarse = m.decode(codes), m.decode(codes[:, :1])  # any prefix of the codebooks decodes
        z = m.encode_latents(x)
        err = [(m.quantizer.decode(codes[:, :n]) - z).pow(2).mean().item() for n in (1, 2, 3)]
    assert full.shape == coarse.shape == (3, 41 * 8)
    assert err[0] > err[1] > err[2]  # each residual codebook refines the latent
    assert torch.equal(m.encode(x, n_q=2), codes[:, :2])


def test_errors():
    m = audiozoo.create_model("encodec_24khz", **TINY).eval()
    with pytest.raises(AudioError, match="mono"):
        m.encode(torch.zeros(2, 2, 64))
    with pytest.raises(AudioError, match="empty"):
        m.encode(torch.zeros(1, 0))
    with pytest.raises(AudioError, match="integer codes"):
        m.decode(torch.zeros(1, 3, 4))
    with pytest.raises(ConfigError, match="codebook_size"):
        audiozoo.create_model("encodec_24khz", codebook_size=1)
