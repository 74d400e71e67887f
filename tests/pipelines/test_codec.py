"""Codec pipeline and CLI: encode -> codes file (safetensors, with its record) -> decode; the wrong model is refused;
n_q / bandwidth; chunked coding of long inputs against offline coding (how far they differ)."""

from __future__ import annotations

import json
import math

import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.codec import CodecPipeline, load_codes

SR = 8000


def _speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    phase = 2 * math.pi * torch.cumsum(140 + 40 * torch.sin(2 * math.pi * 0.7 * t), 0) / SR
    x = sum(torch.sin(k * phase) / k for k in range(1, 10)) * (0.5 + 0.5 * torch.sin(2 * math.pi * 3 * t))
    return (0.3 * x / x.abs().max() + 0.01 * torch.randn(t.shape[0], generator=torch.Generator().manual_seed(seed)))


def _codec_folder(tmp_path, name: str = "encodec_24khz", seed: int = 0, **kw):
    """A tiny codec whose codebooks were initialised (k-means on one training batch), saved as a folder."""
    torch.manual_seed(seed)
    m = audiozoo.create_model(name, **{**audiozoo.model_info(name).tiny, **kw})
    m.train()
    with torch.no_grad():
        m(_speechlike(0.5, seed)[None])
    m.eval()
    folder = tmp_path / f"{name}_{seed}"
    save_pretrained(m, folder)
    return folder, m


def test_encode_save_load_decode_round_trip(tmp_path):
    folder, m = _codec_folder(tmp_path)
    pipe = pipeline("codec", model=str(folder))
    assert isinstance(pipe, CodecPipeline)
    wav = _speechlike(0.3)
    res = pipe({"array": wav, "sampling_rate": SR})
    n = math.ceil(wav.shape[0] / m.hop_length)
    assert res["codes"].shape == (3, n) and res["codes"].dtype == torch.int64
    assert res["bitrate"] == 3 * 4 * m.frame_rate and res["frame_rate"] == SR / 8
    path = pipe.save_codes(res, tmp_path / "x.codes.safetensors")
    codes, meta = load_codes(path)
    assert torch.equal(codes, res["codes"])
    assert meta["model_name"] == "encodec_24khz" and json.loads(meta["sample_rate"]) == SR
    assert json.loads(meta["num_codebooks"]) == 3 and json.loads(meta["codebook_size"]) == 16
    out, sr = CodecPipeline.decode_file(path)  # the recorded model decodes it
    assert sr == SR and out.shape == wav.shape
    with torch.no_grad():
        ref = m.decode(res["codes"][None])[0, : wav.shape[0]]
    torch.testing.assert_close(out, ref)


def test_wrong_model_and_bad_files_are_refused(tmp_path):
    folder_a, _ = _codec_folder(tmp_path, seed=0)
    folder_b, _ = _codec_folder(tmp_path, seed=1)  # same architecture, other codebooks
    folder_w, _ = _codec_folder(tmp_path, "wavtokenizer_frame75")
    pipe = CodecPipeline(str(folder_a))
    path = pipe.save_codes(pipe({"array": _speechlike(0.2), "sampling_rate": SR}), tmp_path / "a.safetensors")
    with pytest.raises(CheckpointError, match="codebook_fingerprint"):
        CodecPipeline.decode_file(path, model=str(folder_b))
    with pytest.raises(CheckpointError, match="model_name"):
        CodecPipeline.decode_file(path, model=str(folder_w))
    bogus = tmp_path / "bogus.safetensors"
    save_pretrained(audiozoo.create_model("encodec_24khz", **audiozoo.model_info("encodec_24khz").tiny),
                    tmp_path / "weights")
    with pytest.raises(AudioError, match="not an audiozoo codes file"):
        load_codes(tmp_path / "weights" / "model.safetensors")
    bogus.write_bytes(b"not safetensors")
    with pytest.raises(AudioError, match="not a safetensors"):
        load_codes(bogus)
    with pytest.raises(ConfigError, match="untrained"):
        CodecPipeline("encodec_24khz")  # random weights are refused
    with pytest.raises(ConfigError, match="bandwidth"):
        CodecPipeline(str(folder_w), bandwidth=1.0)  # WavTokenizer has one bitrate
    with pytest.raises(ConfigError, match="n_q"):
        CodecPipeline(str(folder_a), n_q=4)


def test_n_q_and_bandwidth_choose_codebooks(tmp_path):
    folder, m = _codec_folder(tmp_path, target_bandwidths=(4.0, 8.0, 12.0))  # 4 kbps per codebook at 1000 Hz
    wav = {"array": _speechlike(0.2), "sampling_rate": SR}
    assert CodecPipeline(str(folder), n_q=2)(wav)["codes"].shape[0] == 2
    res = CodecPipeline(str(folder), bandwidth=4.0)(wav)
    assert res["codes"].shape[0] == 1 and res["bitrate"] == 4000


def test_chunked_coding_against_offline(tmp_path):
    """Chunks of 0.25 s with 0.125 s of context on a 1.2 s input, tiny causal EnCodec (with LSTMs). Measured: 100 %
    of the codes equal offline ones, and decoding in chunks matches offline decoding at 165 dB SNR (float rounding:
    at these weights the LSTMs forget within the context). The same setting with the tiny WavTokenizer also gives
    identical codes but only 9 dB: its decoder's GroupNorms and self-attention span the whole sequence."""
    folder, _ = _codec_folder(tmp_path)
    wav = _speechlike(1.2)
    offline = CodecPipeline(str(folder))
    chunked = CodecPipeline(str(folder), chunk_seconds=0.25, context_seconds=0.125)
    c0, c1 = offline.encode(wav), chunked.encode(wav)
    assert c0.shape == c1.shape
    assert (c0 == c1).float().mean() > 0.9
    y0, y1 = offline.decode(c0), chunked.decode(c0)
    assert y0.shape == y1.shape == (c0.shape[-1] * 8,)
    snr = 10 * torch.log10(y0.pow(2).sum() / (y0 - y1).pow(2).sum().clamp(min=1e-20))
    assert snr > 20, float(snr)


def test_cli_encode_decode(tmp_path, capsys):
    folder, _ = _codec_folder(tmp_path)
    wav_in, codes, wav_out = tmp_path / "in.wav", tmp_path / "c.safetensors", tmp_path / "out.wav"
    sf.write(wav_in, _speechlike(0.25).numpy(), SR)
    assert main(["codec", "encode", str(wav_in), "-o", str(codes), "-m", str(folder), "--n-q", "2"]) == 0
    assert "2 x 250 codes" in capsys.readouterr().out
    assert main(["codec", "decode", str(codes), "-o", str(wav_out)]) == 0
    data, sr = sf.read(wav_out)
    assert sr == SR and data.shape == (2000,)
    assert main(["codec", "decode", str(wav_in), "-o", str(wav_out)]) == 2  # not a codes file: a clear error
