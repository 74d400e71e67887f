"""SpecVQGAN's spectrogram codebook: the paper's grid and parameter count, the (B, Q, L) code interface, mel
round trip, the official-checkpoint converter, the learned codebook's gradients and the codec+vocoder composition
(models/codec/system.py through the resolver)."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.codec.specvqgan import checkpoint_filter_fn
from audiozoo.resolve import resolve_model
from audiozoo.train.losses.quantize import vq_losses

TINY = audiozoo.model_info("specvqgan_vggsound").tiny
SPEECH_TINY = audiozoo.model_info("specvqgan_speech").tiny


def _tiny(name: str = "specvqgan_vggsound", **kw):
    torch.manual_seed(0)
    return audiozoo.create_model(name, **{**audiozoo.model_info(name).tiny, **kw}).eval()


def test_paper_config_grid_and_counts() -> None:
    # the paper's layout at 1/16 width (the grid depends only on ch_mult / factors); its count is checked on meta by
    # tests/models/test_all_models.py (72,137,089 / 71,907,713, measured on the official modules)
    m = audiozoo.create_model("specvqgan_vggsound", ch=8, norm_groups=4, z_channels=8, embed_dim=8).eval()
    with torch.no_grad():
        out = m.forward_image(torch.zeros(1, 1, 80, 848))
    # configs/vggsound_codebook.yaml: 80 x 848 mels -> a 5 x 53 grid of 1024 codes (265 tokens)
    assert tuple(out.codes.shape) == (1, 5, 53) and tuple(out.reconstruction.shape) == (1, 1, 80, 848)
    assert m.num_codebooks == 5 and m.hop_length == 256 * 16 and m.codebook_size == 1024
    assert m.bitrate == pytest.approx(5 * 10 * 22050 / 4096)
    assert len(m.encoder.down[4].attn) == 2 and len(m.decoder.up[4].attn) == 3  # attention at resolution 53 only
    assert all(len(m.encoder.down[i].attn) == 0 for i in range(4))
    assert audiozoo.model_info("specvqgan_vggsound").params == 72_137_089
    assert audiozoo.model_info("specvqgan_vas").params == 71_907_713


def test_speech_config_rates() -> None:
    with torch.device("meta"):
        m = audiozoo.create_model("specvqgan_speech")
    # hifigan_v1.universal's mel (hop 256 at 22.05 kHz), 8x frequency / 4x time downsampling
    assert (m.num_codebooks, m.hop_length, m.codebook_size) == (10, 1024, 1024)
    assert m.bitrate == pytest.approx(10 * math.log2(1024) * 22050 / 1024)  # 2153.3 bit/s
    fe = m.frontend.get_config()
    assert (fe["center"], fe["log"], fe["f_min"], fe["f_max"], fe["hop_length"]) == (False, "ln", 0.0, 8000.0, 256)


def test_codes_interface_and_mel_round_trip() -> None:
    m = _tiny()
    wav = 0.1 * torch.randn(2, 23 * m.hop_length + 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        codes = m.encode(wav)
        assert codes.dtype == torch.long and tuple(codes.shape) == (2, m.num_codebooks, 23)
        out = m(wav)
        assert torch.equal(out.codes, codes)  # forward and encode agree
        mel = m.decode_mel(codes)  # the front end's units, L * time_factor frames
        assert tuple(mel.shape) == (2, m.n_mels, 23 * m.time_factor)
        # decode(codes) and forward reconstruct through differently batched convolutions: float32 noise only
        torch.testing.assert_close(mel, m.denormalize(out.reconstruction), rtol=1e-4, atol=1e-4)
        assert tuple(m.decode(codes).shape) == (2, 23 * m.hop_length)
        # the LM's sequence: SpecVQGAN's ColumnMajor permuter reads the grid time column by time column
        seq = codes.transpose(1, 2).reshape(2, -1)
        assert torch.equal(seq[:, : m.num_codebooks], codes[:, :, 0])
    with pytest.raises(AudioError):
        m.encode(torch.zeros(1, m.hop_length - 1))
    with pytest.raises(AudioError):
        m.decode_mel(codes[:, :1])


def test_normalisation_is_the_official_one() -> None:
    m = _tiny()
    logmel = torch.tensor([[[-5.0, -4.0, -1.5, 0.0, 1.0]]]).expand(1, m.n_mels, 5)
    # 2 * clip((20 log10(mel) - 20 + 100) / 100, 0, 1) - 1
    ref = 2 * ((20 * logmel - 20 + 100) / 100).clamp(0, 1) - 1
    torch.testing.assert_close(m.normalize(logmel)[:, 0], ref)
    spec = pytest.importorskip("audiozoo.dsp.specvqgan")  # SpecVQGAN's mel as the classifiers' front end computes it
    paper = audiozoo.create_model("specvqgan_vggsound", ch=8, norm_groups=4, z_channels=8, embed_dim=8)
    wav = 0.3 * torch.randn(2, 8192, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(paper.normalize(paper.frontend(wav)[0])[:, 0], 2 * spec.SpecVQGANMel()(wav)[0] - 1,
                               atol=1e-5, rtol=0)  # measured 1.8e-7
    s = _tiny("specvqgan_speech")
    x = torch.linspace(-11.5, 2.5, 8).expand(1, s.n_mels, 8)
    torch.testing.assert_close(s.denormalize(s.normalize(x)), x)  # unclipped: invertible


def test_learned_codebook_gets_gradients_from_the_vqgan_loss() -> None:
    m = _tiny(codebook_ema=False).train()
    out = m(0.1 * torch.randn(2, 16 * m.hop_length))
    q = vq_losses(out.vq, commitment_weight=1.0, codebook_weight=0.25)["vq"]
    ((out.reconstruction - out.input).abs().mean() + q).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing and isinstance(m.quantize.embed, torch.nn.Parameter)


def test_official_checkpoint_layout_converts() -> None:
    m = _tiny(codebook_ema=False)
    official = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith("quantize.")}
    official["quantize.embedding.weight"] = torch.randn_like(m.quantize.embed)
    official["loss.discriminator.main.0.weight"] = torch.zeros(1)  # dropped with the rest of the loss
    sd = checkpoint_filter_fn({"state_dict": official}, m)
    assert "loss.discriminator.main.0.weight" not in sd
    m2 = _tiny(codebook_ema=False)
    m2.load_state_dict(sd)
    assert torch.equal(m2.quantize.embed, official["quantize.embedding.weight"])


def test_bad_configs() -> None:
    with pytest.raises(ConfigError):
        audiozoo.create_model("specvqgan_vggsound", **{**TINY, "n_mels": 15})  # not divisible by 2 (one level)
    with pytest.raises(ConfigError):
        audiozoo.create_model("specvqgan_vggsound", **{**TINY, "factors": ((1, 1),)})
    with pytest.raises(ConfigError):
        audiozoo.create_model("specvqgan_vggsound", **{**TINY, "mel_log": "log2"})


def test_composition_with_griffinlim_and_refusals() -> None:
    sys_ = resolve_model("specvqgan_speech+griffinlim:2", "codec", overrides=SPEECH_TINY | {"n_mels": 80,
                         "n_fft": 1024, "mel_hop_length": 256, "win_length": 1024}).eval()
    # the tiny speech layout halves frequency only: 40 rows of hop-256 frames
    assert sys_.family == "codec" and sys_.num_codebooks == 40 and sys_.hop_length == 256
    wav = 0.1 * torch.randn(1, 5 * 256)
    with torch.no_grad():
        codes = sys_.encode(wav)
        assert tuple(codes.shape) == (1, 40, 5) and tuple(sys_.decode(codes).shape) == (1, 5 * 256)
    with pytest.raises(ConfigError, match="natural-log"):  # Griffin-Lim inverts ln mels; SpecVQGAN's is log10
        resolve_model("specvqgan_vggsound+griffinlim:2", "codec", overrides=TINY)
    with pytest.raises(ConfigError, match="not the vocoder's input"):  # nor is it HiFi-GAN's mel
        resolve_model("specvqgan_vggsound+hifigan_v1", "codec", overrides=TINY)
    with pytest.raises(ConfigError, match="codes waveforms"):
        resolve_model("encodec_24khz+griffinlim:2", "codec", overrides=audiozoo.model_info("encodec_24khz").tiny)


def test_codec_pipeline_writes_and_decodes_codes(tmp_path) -> None:
    from audiozoo.pipelines.codec import CodecPipeline

    m = _tiny("specvqgan_speech")
    pipe = CodecPipeline(m, trained=False)
    wav = 0.1 * torch.randn(10 * m.hop_length + 5)
    res = pipe({"array": wav.numpy(), "sampling_rate": m.sample_rate})
    assert tuple(res["codes"].shape) == (m.num_codebooks, 11)  # the pipeline pads to whole frames
    path = pipe.save_codes(res, tmp_path / "x.safetensors")
    assert pipe.decode_codes_file(path).shape[-1] == wav.shape[-1]


def _official_modules():
    """The official code's encoder/decoder and quantiser files, from a v-iashin/SpecVQGAN checkout named by
    $SPECVQGAN_SRC (not a package: no wheel exists); both files import only torch / numpy / math."""
    import importlib.util
    import os
    from pathlib import Path

    root = Path(os.environ.get("SPECVQGAN_SRC", "/nonexistent"))
    files = {"model": root / "specvqgan/modules/diffusionmodules/model.py",
             "quantize": root / "specvqgan/modules/vqvae/quantize.py",
             "disc": root / "specvqgan/modules/discriminator/model.py"}
    if not all(f.is_file() for f in files.values()):
        pytest.skip("official SpecVQGAN source not found: set SPECVQGAN_SRC to a v-iashin/SpecVQGAN checkout")
    mods = {}
    for name, f in files.items():
        spec = importlib.util.spec_from_file_location(f"specvqgan_official_{name}", f)
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    return mods


@pytest.mark.parity
def test_parity_with_the_official_modules() -> None:
    """Encoder -> 1x1 conv -> VectorQuantizer -> 1x1 conv -> Decoder of the official code (a reduced paper layout:
    ch 32, ch_mult (1, 1, 2, 2, 4), attention at the deepest level), its weights through the converter. Measured:
    codes identical, reconstruction within 1.1e-5, quantiser loss equal; PatchGAN 0.0."""
    mods = _official_modules()
    torch.manual_seed(0)
    dd = dict(double_z=False, z_channels=64, resolution=64, in_channels=1, out_ch=1, ch=32, ch_mult=[1, 1, 2, 2, 4],
              num_res_blocks=2, attn_resolutions=[4], dropout=0.0)
    off = torch.nn.Module()
    off.encoder, off.decoder = mods["model"].Encoder(**dd), mods["model"].Decoder(**dd)
    off.quantize = mods["quantize"].VectorQuantizer(128, 64, 0.25)
    off.quant_conv, off.post_quant_conv = torch.nn.Conv2d(64, 64, 1), torch.nn.Conv2d(64, 64, 1)
    off.eval()
    with torch.no_grad():
        off.quantize.embedding.weight.normal_()
    ours = audiozoo.create_model("specvqgan_vggsound", ch=32, z_channels=64, embed_dim=64, codebook_size=128).eval()
    ours.load_state_dict(checkpoint_filter_fn({"state_dict": off.state_dict()}, ours))
    x = torch.rand(2, 1, 80, 64) * 2 - 1
    with torch.no_grad():
        zq, qloss, (_, _, idx) = off.quantize(off.quant_conv(off.encoder(x)))
        rec = off.decoder(off.post_quant_conv(zq))
        out = ours.forward_image(x)
    assert torch.equal(idx.view(2, 5, 4), out.codes)
    torch.testing.assert_close(out.reconstruction, rec, atol=1e-4, rtol=1e-4)
    ours_q = vq_losses(out.vq, commitment_weight=1.0, codebook_weight=0.25)["vq"]
    torch.testing.assert_close(ours_q, qloss, atol=1e-6, rtol=1e-5)
    from audiozoo.nn.autoencoder2d import NLayerDiscriminator

    d_off = mods["disc"].NLayerDiscriminator(input_nc=1, n_layers=3, ndf=64).eval()
    d_ours = NLayerDiscriminator().eval()
    d_ours.load_state_dict(d_off.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(d_ours(x), d_off(x), atol=0, rtol=0)


def test_codes_file_records_a_composite_spec(tmp_path) -> None:
    """``FOLDER+griffinlim:2`` is written into the codes file and decodes without -m (the folder still exists)."""
    from audiozoo.hub import save_pretrained
    from audiozoo.pipelines.codec import CodecPipeline

    save_pretrained(_tiny("specvqgan_speech"), tmp_path / "codec")
    spec = f"{tmp_path / 'codec'}+griffinlim:2"
    pipe = CodecPipeline(spec)
    wav = 0.1 * torch.randn(8 * pipe.hop_length)
    path = pipe.save_codes(pipe({"array": wav.numpy(), "sampling_rate": pipe.sample_rate}), tmp_path / "c.safetensors")
    out, sr = CodecPipeline.decode_file(path)
    assert sr == pipe.sample_rate and out.shape[-1] == wav.shape[-1]
