"""HiFiNet (DelightfulTTS): 16 kHz-band mel -> 48 kHz waveform; front-end band-limiting; learning; ONNX."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo.dsp.io import resample
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.vocoder.hifinet import HiFiNet, kaiser_lowpass

# The canonical rates (10, 5, 4, 3) and front-end (80 mels, hop 200 at 16 kHz), narrow and ResBlock2: fast.
SMALL = dict(upsample_initial_channel=32, resblock="2", resblock_kernel_sizes=(3, 5),
             resblock_dilation_sizes=((1, 2), (2, 6)))


def _noise16(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """White noise at 16 kHz: content everywhere in the mel band (no near-silent bins to inflate log errors)."""
    return 0.05 * torch.randn(int(16000 * seconds), generator=torch.Generator().manual_seed(seed))


def test_canonical_hop_is_three_times_the_16k_hop():
    with torch.device("meta"):
        model = audiozoo.create_model("hifinet")
    assert isinstance(model, HiFiNet)
    assert (model.sample_rate, model.mel_sample_rate, model.mel_hop_length) == (48000, 16000, 200)
    assert model.hop_length == 600 == 3 * model.mel_hop_length
    # weights + biases without the weight-norm gains g (the registered counting convention)
    n = sum(p.numel() for name, p in model.named_parameters() if not name.endswith("original0"))
    assert n == audiozoo.model_info("hifinet").params


@pytest.mark.parametrize("frames", [7, 23])
def test_output_length_is_three_times_the_16k_sample_count(frames):
    model = audiozoo.create_model("hifinet", **SMALL).eval()
    wav16 = _noise16()[: frames * 200]
    with torch.no_grad():
        mel16, n16 = model.frontend(wav16[None], sample_rate=16000)
        mel48, n48 = model.frontend(resample(wav16, 16000, 48000)[None])  # the same audio at 48 kHz
        out, out_len = model(mel16, n16)
    assert mel16.shape == mel48.shape == (1, 80, frames) and n16.tolist() == n48.tolist() == [frames]
    assert out.shape == (1, 3 * wav16.shape[-1]) and out_len.tolist() == [3 * wav16.shape[-1]]


def test_lengths_follow_the_decimation():
    model = audiozoo.create_model("hifinet", **SMALL).eval()
    wav = torch.zeros(2, 600 * 9)
    with torch.no_grad():
        mel, frames = model.frontend(wav, torch.tensor([600 * 9, 600 * 5 + 7]))
        _, out_len = model(mel, frames)
    assert frames.tolist() == [9, 5] and out_len.tolist() == [9 * 600, 5 * 600]


def test_kaiser_lowpass_meets_its_specification():
    h = kaiser_lowpass(48000, 7800.0, 8000.0, 90.0)
    assert h.numel() % 2 == 1 and torch.allclose(h, h.flip(0))  # odd, symmetric: linear phase, integer delay
    mag_db = 20 * torch.log10(torch.fft.rfft(h, 48000).abs().clamp(min=1e-300))  # 1 Hz bins
    # Kaiser's design formulas are approximate: allow 0.01 dB ripple / 1 dB margin on the 90 dB stop band
    # (measured: 3e-4 dB pass-band ripple, -90.0 dB worst stop-band bin).
    assert mag_db[:7800].abs().max() < 0.01
    assert mag_db[8000:].max() < -89.0


@pytest.mark.parametrize("tone_hz", [9000.0, 12000.0, 20000.0])
def test_frontend_sees_only_content_below_8khz(tone_hz):
    model = audiozoo.create_model("hifinet", **SMALL).eval()
    x = resample(_noise16(), 16000, 48000)[None]
    t = torch.arange(x.shape[-1], dtype=torch.float64) / 48000
    tone = (0.5 * torch.sin(2 * math.pi * tone_hz * t)).float()[None]  # 20 dB louder than the noise
    with torch.no_grad():
        ref, _ = model.frontend(x)
        got, _ = model.frontend(x + tone)
        naive_ref, _ = model.frontend(x[:, ::3], sample_rate=16000)  # decimation without the low-pass
        naive, _ = model.frontend((x + tone)[:, ::3], sample_rate=16000)
    # 3 frames at each end see the tone's abrupt start/end (zero padding): a broadband click that is part of the
    # signal, not aliasing. Inside, the 90 dB low-pass leaves ~1e-5 of ln-mel (measured 1.9e-5 at 9/12 kHz,
    # 4e-6 at 20 kHz); 1e-3 (0.1 % in magnitude) is the bound.
    assert (got - ref)[..., 3:-3].abs().max() < 1e-3
    # the same tone, decimated without the filter, aliases into the band (measured > 3 in ln-mel): the test can fail
    assert (naive - naive_ref)[..., 3:-3].abs().max() > 1.0


@pytest.mark.parity
def test_48k_frontend_matches_the_mel_of_soxr_16k_audio():
    """Decimating in the front-end = resampling with soxr then taking the 16 kHz mel (below the top bands)."""
    model = audiozoo.create_model("hifinet", **SMALL).eval()
    x16 = _noise16(seed=1)
    with torch.no_grad():
        direct, _ = model.frontend(x16[None], sample_rate=16000)
        via48, _ = model.frontend(resample(x16, 16000, 48000)[None])
    # The top 2 of 80 Slaney bands (above ~7.5 kHz) lie in the transition bands of soxr's HQ up-sampler and of
    # our 7.8-8 kHz low-pass: excluded. Elsewhere the two resamplers agree to ~4e-5 in ln-mel (measured 3.7e-5);
    # bound 1e-3. Edge frames excluded as above (zero padding of the filters).
    assert (direct - via48)[:, :-2, 3:-3].abs().max() < 1e-3


def test_config_and_input_errors():
    with pytest.raises(ConfigError, match="600"):
        audiozoo.create_model("hifinet", upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4))
    with pytest.raises(ConfigError, match="Nyquist|stop"):
        audiozoo.create_model("hifinet", **SMALL, lowpass_pass_hz=8000.0, lowpass_stop_hz=9000.0)
    model = audiozoo.create_model("hifinet", **SMALL)
    with pytest.raises(AudioError, match="22050"):
        model.frontend(torch.zeros(1, 22050), sample_rate=22050)
    with pytest.raises(AudioError, match="log-mel"):
        model(torch.zeros(1, 40, 10))


@pytest.mark.slow
def test_small_hifinet_learns_a_real_clip(shared_data):
    """40 Adam steps on 0.5 s of CMU ARCTIC speech (16 kHz, resampled to 48 kHz): mel L1 + MR-STFT loss falls."""
    from audiozoo.dsp import load_audio
    from audiozoo.train.losses import multi_resolution_stft_loss

    wav16, _ = load_audio(shared_data / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav",
                          sample_rate=16000, offset=1.0, duration=0.5)
    target = resample(wav16 / wav16.abs().max() * 0.5, 16000, 48000)[None]
    torch.manual_seed(0)
    model = audiozoo.create_model("hifinet", **SMALL)
    mel, _ = model.frontend(target)
    res = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.8, 0.99))

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        fake = model(mel)[0]
        sc, mag = multi_resolution_stft_loss(fake, target, res)
        return (model.frontend(fake)[0] - mel).abs().mean(), sc + mag

    with torch.no_grad():
        mel0, stft0 = (v.item() for v in losses())
    for _ in range(40):
        m, s = losses()
        opt.zero_grad()
        (45 * m + 22.5 * s).backward()
        opt.step()
    with torch.no_grad():
        mel1, stft1 = (v.item() for v in losses())
    # Measured (seed 0): mel L1 3.04 -> 1.04 (-66 %), MR-STFT (SC + log-mag) 4.91 -> 3.38 (-31 %). Bounds with
    # margin for platform/thread nondeterminism: -40 % and -15 % (a model that does not learn stays near its start).
    assert mel1 < 0.6 * mel0 and stft1 < 0.85 * stft0, (mel0, mel1, stft0, stft1)


@pytest.mark.parity
def test_onnx_export_tiny_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from audiozoo.export import check_onnx, export_onnx

    info = audiozoo.model_info("hifinet")
    model = audiozoo.create_model("hifinet", **info.tiny).eval()
    model.remove_weight_norm()  # inference form, as deployed
    n_mels = info.tiny["n_mels"]
    mel = torch.randn(2, n_mels, 17)
    path = export_onnx(model, tmp_path / "hifinet.onnx", (mel,), ["mel"], ["wav", "lengths"],
                       {"mel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}})
    # float32 op-by-op differences (measured 1.5e-8 and 1.7e-8); a second batch/length proves the dynamic axes.
    assert check_onnx(model, path, (mel,), atol=1e-4) < 1e-4
    assert check_onnx(model, path, (torch.randn(3, n_mels, 29),), atol=1e-4) < 1e-4
