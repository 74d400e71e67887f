"""WavTokenizer (models/codec/wavtokenizer.py): the official checkpoint layout through the converter, built from the
reference classes it is made of (encodec's SEANetEncoder and ResidualVectorQuantizer, vocos' VocosBackbone and
ISTFTHead) -- same codes and audio --; token rates and bitrates of the two variants; the single codebook's k-means
init, EMA and dead-code replacement in training; errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.codec.wavtokenizer import checkpoint_filter_fn


@pytest.fixture
def refs(monkeypatch):
    if "torchaudio" not in sys.modules:
        ta, f1, f2 = (types.ModuleType(n) for n in ("torchaudio", "torchaudio.functional",
                                                     "torchaudio.functional.functional"))
        f2._hz_to_mel = f2._mel_to_hz = lambda *a, **k: None
        ta.functional, f1.functional = f1, f2
        for m in (ta, f1, f2):
            monkeypatch.setitem(sys.modules, m.__name__, m)
    pytest.importorskip("encodec")
    pytest.importorskip("vocos")


def _official_state(seed: int = 0):
    """A Lightning-style state dict in the official layout, built by the reference classes (tiny sizes, random)."""
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    kw = dict(causal=False, norm="weight_norm", pad_mode="reflect", lstm=1, dimension=8, channels=1, n_filters=2,
              ratios=[4, 2], true_skip=False, compress=2)
    parts = {"feature_extractor.encodec.encoder.": SEANetEncoder(**kw),
             "feature_extractor.encodec.decoder.": SEANetDecoder(**kw),  # built but never used, as the official
             "feature_extractor.encodec.quantizer.": ResidualVectorQuantizer(dimension=8, n_q=1, bins=32),
             "backbone.": VocosBackbone(8, 8, 12, 2, adanorm_num_embeddings=4),
             "head.": ISTFTHead(8, 32, 8)}
    g = torch.Generator().manual_seed(seed)
    for m in parts.values():
        for p in m.parameters():
            p.data.copy_(0.3 * torch.randn(p.shape, generator=g))
    cb = parts["feature_extractor.encodec.quantizer."].vq.layers[0]._codebook
    cb.embed.copy_(torch.randn(cb.embed.shape, generator=g))
    cb.inited.fill_(1)
    state = {p + k: v for p, m in parts.items() for k, v in m.state_dict().items()}
    state["multiperioddisc.discriminators.0.convs.0.weight_g"] = torch.zeros(1)  # discriminator: dropped
    return {"state_dict": state, "epoch": 3}, parts


@pytest.mark.parity
def test_official_layout_converts_and_matches_the_reference_chain(refs):
    ckpt, parts = _official_state()
    model = audiozoo.create_model("wavtokenizer_frame75", sample_rate=8000, ratios=(4, 2), dimension=8, n_filters=2,
                                  lstm=1, codebook_size=32, backbone_dim=8, intermediate_dim=12, num_layers=2,
                                  pos_net=False).eval()
    state = checkpoint_filter_fn(ckpt, model)
    assert not any("decoder" in k or "disc" in k or "window" in k for k in state)
    model.load_state_dict(state)  # strict
    x = 0.3 * torch.randn(2, 1, 203, generator=torch.Generator().manual_seed(1))
    enc, q = parts["feature_extractor.encodec.encoder."].eval(), parts["feature_extractor.encodec.quantizer."].eval()
    bb, head = parts["backbone."].eval(), parts["head."].eval()
    with torch.no_grad():
        codes_ref = q.encode(enc(x), sample_rate=1000)  # (Q, B, L)
        codes = model.encode(x[:, 0])
        assert codes.shape == (2, 1, 26) and torch.equal(codes, codes_ref.transpose(0, 1))
        wav_ref = head(bb(q.decode(codes_ref), bandwidth_id=torch.tensor([0])))  # the official decode path
        wav = model.decode(codes)
    assert wav.shape == wav_ref.shape == (2, 26 * 8)
    torch.testing.assert_close(wav, wav_ref, rtol=0, atol=1e-5)


def test_pos_net_keys_are_the_official_names():
    model = audiozoo.create_model("wavtokenizer_frame75", **audiozoo.model_info("wavtokenizer_frame75").tiny)
    keys = set(model.state_dict())
    for k in ("backbone.pos_net.0.norm1.weight", "backbone.pos_net.1.conv2.bias", "backbone.pos_net.2.q.weight",
              "backbone.pos_net.2.proj_out.bias", "backbone.pos_net.4.norm2.weight", "backbone.pos_net.5.weight",
              "backbone.norm.scale.weight", "backbone.convnext.0.gamma", "head.out.weight",
              "encoder.model.0.conv.conv.parametrizations.weight.original0", "quantizer.layers.0.embed"):
        assert k in keys, k


def test_token_rates_bitrates_and_shapes():
    variants = (("wavtokenizer_frame75", 320, 1280, 75.0), ("wavtokenizer_frame40", 600, 2400, 40.0))
    for name, hop, n_fft, rate in variants:
        with torch.device("meta"):
            m = audiozoo.create_model(name)
        assert (m.hop_length, m.head.n_fft, m.frame_rate, m.num_codebooks, m.codebook_size) == (hop, n_fft, rate, 1,
                                                                                                 4096)
        assert m.bitrate == 12 * rate  # 900 and 480 bit/s
    info = audiozoo.model_info("wavtokenizer_frame75")
    assert info.as_dict()["input"]["bitrate"] == 900.0


def test_single_codebook_trains_by_kmeans_ema_and_dead_codes():
    torch.manual_seed(0)
    m = audiozoo.create_model("wavtokenizer_frame75", **audiozoo.model_info("wavtokenizer_frame75").tiny)
    vq = m.quantizer.layers[0]
    assert vq.initted.item() == 0
    m.train()
    x = 0.3 * torch.randn(4, 800)
    out = m(x)
    assert vq.initted.item() == 1 and out.audio.shape == x.shape and out.codes.shape == (4, 1, 100)
    used = out.codes.unique().numel()
    assert used > 16  # k-means on the first batch spreads the 32 codes over the latents
    before = vq.embed.clone()
    m(x + 0.05 * torch.randn_like(x))
    assert not torch.equal(before, vq.embed)  # EMA update
    vq.cluster_size[:5] = 0.0  # force five dead codes
    m(x)
    assert bool((vq.cluster_size[:5] >= vq.dead_code_threshold).all())  # replaced by batch vectors
    out.audio.pow(2).mean().backward()  # straight-through: the encoder gets a gradient
    assert m.encoder.model[0].conv.conv.parametrizations.weight.original1.grad is not None


def test_errors():
    m = audiozoo.create_model("wavtokenizer_frame40", **audiozoo.model_info("wavtokenizer_frame40").tiny).eval()
    with pytest.raises(AudioError, match="mono"):
        m.encode(torch.zeros(1, 2, 80))
    with pytest.raises(AudioError, match="integer codes"):
        m.decode(torch.zeros(1, 1, 4))
    with pytest.raises(ConfigError, match="bandwidth_id"):
        m.decode(torch.zeros(1, 1, 4, dtype=torch.long), bandwidth_id=7)
    with pytest.raises(ConfigError, match="n_fft"):
        audiozoo.create_model("wavtokenizer_frame75", n_fft=100)
