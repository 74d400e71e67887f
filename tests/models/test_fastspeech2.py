"""FastSpeech 2: canonical sizes, the variance adaptor (targets vs predictions, bucket embeddings, controls),
length regulation with FastSpeech's alpha, masking of padded items, the blocks shared with transformers'
FastSpeech2Conformer (parity), the tts+vocoder composition."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.models.tts.fastspeech2 import LOG_FLOOR, FastSpeech2Output
from audiozoo.nn.fastspeech import FFTBlock, PostNet, VariancePredictor, bucketize_embed

TINY = dict(audiozoo.model_info("fastspeech2_base").tiny)


def _model(**kw):
    torch.manual_seed(0)
    m = audiozoo.create_model("fastspeech2_small", **{**TINY, **kw}).eval()
    m.pitch_stats.copy_(torch.tensor([math.log(120.0), 0.25]))
    m.energy_stats.copy_(torch.tensor([20.0, 10.0]))
    return m


def _inputs(b: int = 2, n: int = 7):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 40, (b, n), generator=g)
    lengths = torch.tensor([n] + [n - 2] * (b - 1))
    durations = torch.randint(1, 5, (b, n), generator=g)
    return tokens, lengths, durations


@pytest.mark.parametrize("name,params", [("fastspeech2_base", 28_845_635), ("fastspeech2_small", 2_773_971)])
def test_canonical_sizes(name: str, params: int) -> None:
    with torch.device("meta"):
        m = audiozoo.create_model(name)
    assert sum(p.numel() for p in m.parameters()) == params
    c = m.config
    if name == "fastspeech2_base":  # ming024 LJSpeech_paper / paper appendix
        assert (c.hidden, c.encoder_layers, c.decoder_layers, c.heads, c.ffn_dim, c.ffn_kernels) == \
            (256, 4, 4, 2, 1024, (9, 1))
        assert (c.variance_filter, c.variance_kernel, c.n_bins, c.n_mels, c.hop_length) == (256, 3, 256, 80, 256)


def _teacher_forced(m):
    """A teacher-forced pass of ``m`` on :func:`_inputs` with random frame-level pitch / energy targets:
    ``(tokens, lengths, durations, frames per item, pitch, energy, output)``."""
    tokens, lengths, durations = _inputs()
    frames = (durations * (torch.arange(7)[None] < lengths[:, None])).sum(1)
    big = int(frames.max())
    pitch, energy = torch.randn(2, big), torch.randn(2, big)
    with torch.no_grad():
        out = m(tokens, lengths, durations=durations, pitch=pitch, energy=energy, max_frames=big)
    return tokens, lengths, durations, frames, pitch, energy, out


def test_teacher_forced_lengths_and_masking() -> None:
    m = _model()
    tokens, lengths, durations, frames, pitch, energy, out = _teacher_forced(m)
    big = int(frames.max())
    assert isinstance(out, FastSpeech2Output)
    assert out.mel.shape == (2, TINY["n_mels"], big) and out.mel_lengths.tolist() == frames.tolist()
    assert (out.mel[1, :, int(frames[1]):] == LOG_FLOOR).all()  # padded frames are silence
    assert (out.durations[1, 5:] == 0).all()  # padded tokens get no frame
    # the valid part of an item does not depend on the padding around it
    with torch.no_grad():
        alone = m(tokens[1:, :5], lengths[1:], durations=durations[1:, :5], pitch=pitch[1:, : int(frames[1])],
                  energy=energy[1:, : int(frames[1])])
    torch.testing.assert_close(alone.mel[0], out.mel[1, :, : int(frames[1])], atol=1e-5, rtol=1e-5)


def test_inference_speed_and_controls() -> None:
    m = _model()
    tokens, lengths, _ = _inputs(1, 9)
    mel, n = m.synthesize(tokens, lengths)
    slow, n_slow = m.synthesize(tokens, lengths, alpha=2.0)
    # FastSpeech's alpha scales every duration (rounded after scaling)
    with torch.no_grad():
        log_d = m(tokens, lengths).log_durations
    d = (torch.exp(log_d) - 1).clamp(min=0)
    assert int(n_slow) == int(torch.round(d * 2.0).sum().clamp(min=1))
    assert mel.shape[-1] == int(n)
    # the pitch-shift control moves the pitch bucket used for every frame: the mel changes, its length does not
    up, n_up = m.synthesize(tokens, lengths, pitch_shift=12.0)
    assert int(n_up) == int(n) and not torch.allclose(up, mel)


def test_pitch_shift_is_semitones_in_normalised_units() -> None:
    m = _model()
    off, gain, e_off = m._controls(12.0, 2.0)
    assert off == pytest.approx(math.log(2.0) / 0.25)  # one octave = ln 2 in ln F0, over the std 0.25
    assert gain == 2.0 and e_off == pytest.approx(20.0 / 10.0)  # E * 2 = (z * 10 + 20) * 2 -> z * 2 + 2


def test_phoneme_level_variance() -> None:
    m = _model(pitch_level="phoneme", energy_level="phoneme")
    tokens, lengths, durations = _inputs()
    out = m(tokens, lengths, durations=durations, pitch=torch.randn(2, 7), energy=torch.randn(2, 7))
    assert out.pitch.shape == (2, 7) and out.energy.shape == (2, 7)
    with pytest.raises(ConfigError):
        m(tokens, lengths, durations=durations, pitch=torch.randn(2, 30), energy=torch.randn(2, 7))


def test_bad_inputs() -> None:
    m = _model()
    with pytest.raises(ConfigError):
        m(torch.tensor([[1, 99]]))  # id outside the vocabulary
    with pytest.raises(ConfigError):
        m(torch.zeros(3, dtype=torch.long))  # not (B, N)
    with pytest.raises(ConfigError):
        audiozoo.create_model("fastspeech2_small", pitch_level="word")
    with pytest.raises(ConfigError):
        audiozoo.create_model("fastspeech2_small", hidden=100, heads=3)


def test_bucket_embedding_is_straight_through() -> None:
    emb = torch.nn.Embedding(5, 3)
    bins = torch.linspace(-1.0, 1.0, 4)
    v = torch.tensor([[-2.0, -0.5, 0.1, 3.0]], requires_grad=True)
    out = bucketize_embed(v, bins, emb, straight_through=True)
    torch.testing.assert_close(out, emb(torch.bucketize(v.detach(), bins)))  # same values
    out.sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def _transformers_fs2():
    transformers = pytest.importorskip("transformers")
    from transformers.models.fastspeech2_conformer import modeling_fastspeech2_conformer as hf

    return transformers, hf


@pytest.mark.parity
def test_variance_predictor_equals_transformers() -> None:
    """FastSpeech2Conformer's variance predictor is FastSpeech 2's (conv-ReLU-LN-dropout x 2, linear)."""
    _, hf = _transformers_fs2()
    from transformers import FastSpeech2ConformerConfig

    cfg = FastSpeech2ConformerConfig(hidden_size=32, duration_predictor_channels=24, duration_predictor_kernel_size=3,
                                     duration_predictor_layers=2, duration_predictor_dropout_rate=0.0)
    ref = hf.FastSpeech2ConformerVariancePredictor(cfg, num_layers=2, num_chans=24, kernel_size=3,
                                                   dropout_rate=0.0).eval()
    ours = VariancePredictor(32, 24, 3, 0.0).eval()
    sd = ref.state_dict()
    ours.load_state_dict({
        "conv1.weight": sd["conv_layers.0.conv.weight"], "conv1.bias": sd["conv_layers.0.conv.bias"],
        "norm1.weight": sd["conv_layers.0.layer_norm.weight"], "norm1.bias": sd["conv_layers.0.layer_norm.bias"],
        "conv2.weight": sd["conv_layers.1.conv.weight"], "conv2.bias": sd["conv_layers.1.conv.bias"],
        "norm2.weight": sd["conv_layers.1.layer_norm.weight"], "norm2.bias": sd["conv_layers.1.layer_norm.bias"],
        "linear.weight": sd["linear.weight"], "linear.bias": sd["linear.bias"]})
    x = torch.randn(2, 11, 32)
    mask = torch.zeros(2, 11, dtype=torch.bool)
    mask[1, 8:] = True
    with torch.no_grad():
        want = ref(x, mask[..., None]).squeeze(-1)  # transformers' padding_masks: True at padding
        got = ours(x, mask)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_fft_block_post_ln_and_mask() -> None:
    blk = FFTBlock(16, 2, 32, (3, 1), dropout=0.0).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[1, 4:] = True
    y = blk(x, mask)
    assert (y[1, 4:] == 0).all()
    # post-LN: every valid position has zero mean / unit variance up to the LayerNorm's affine (identity at init)
    torch.testing.assert_close(y[0].mean(-1), torch.zeros(6), atol=1e-5, rtol=0)
    # padding does not leak into the valid positions
    torch.testing.assert_close(blk(x[1:, :4])[0], y[1, :4], atol=1e-5, rtol=1e-5)


def test_postnet_shape() -> None:
    pn = PostNet(20, 16, 5, 3).eval()
    assert pn(torch.randn(2, 20, 13)).shape == (2, 20, 13)
    with pytest.raises(ConfigError):
        PostNet(20, 16, 5, 1)


def test_composes_with_a_vocoder(tmp_path) -> None:
    from audiozoo.hub import save_pretrained
    from audiozoo.models.tts import TTSSystem
    from audiozoo.resolve import resolve_model

    acoustic = _model(n_mels=80, n_fft=1024, win_length=1024)
    voc = audiozoo.create_model("hifigan_v1", upsample_initial_channel=16, upsample_rates=(8, 8, 4),
                                upsample_kernel_sizes=(16, 16, 8), resblock_kernel_sizes=(3,),
                                resblock_dilation_sizes=((1,),))
    save_pretrained(acoustic, tmp_path / "am")
    save_pretrained(voc, tmp_path / "voc")
    system = resolve_model(f"{tmp_path / 'am'}+{tmp_path / 'voc'}", "tts")
    assert isinstance(system, TTSSystem) and system.sample_rate == 22050
    # the statistics buffers travel with the weights
    torch.testing.assert_close(system.acoustic.pitch_stats, acoustic.pitch_stats)
    tokens, lengths, _ = _inputs(1, 6)
    wav, wl = system.synthesize(tokens, lengths)
    _, frames = acoustic.synthesize(tokens, lengths)
    assert wav.shape == (1, int(frames) * 256) and int(wl) == int(frames) * 256
    gl = resolve_model(f"{tmp_path / 'am'}+griffinlim:2", "tts")  # Griffin-Lim on the acoustic model's mel
    assert isinstance(gl, TTSSystem) and gl.vocoder.hop_length == 256 and gl.vocoder.sample_rate == 22050
    with pytest.raises(ConfigError):
        TTSSystem(acoustic, audiozoo.create_model("hifigan_v1", sample_rate=16000))
