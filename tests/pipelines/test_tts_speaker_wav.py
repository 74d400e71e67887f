"""`audiozoo tts --speaker-wav`: a reference clip's GE2E embedding (real resemblyzer weights) sets the voice of a
speaker-embedding acoustic model (SV2TTS); models without that input refuse the clip with a clear error."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import soundfile as sf
import torch

from audiozoo import create_model, model_info
from audiozoo.errors import ConfigError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines.tts import TTSPipeline
from audiozoo.text.phonemes import espeak_available

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def _need_ge2e() -> None:
    try:
        metadata.distribution("resemblyzer")
    except metadata.PackageNotFoundError:
        pytest.skip("GE2E weights: pip install --no-deps resemblyzer==0.1.4 (scripts/setup.sh)")


def _clip(path, f0: float, seed: int) -> str:
    """1.5 s of a harmonic 'voice' at 16 kHz (the speaker encoder's rate) with noise."""
    t = np.arange(24000) / 16000
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, (0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 16000)
    return str(path)


def _pipeline(name: str, folder, **kw) -> TTSPipeline:
    torch.manual_seed(0)
    tiny = {**model_info(name).tiny, "vocab_size": 256, "n_mels": 80, "n_fft": 1024, "win_length": 1024,
            "text": {"scheme": "piper"}, **kw}
    save_pretrained(create_model(name, **tiny).eval(), folder)
    return TTSPipeline(f"{folder}+griffinlim:2")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    _need_ge2e()
    return _pipeline("sv2tts_synthesizer", tmp_path_factory.mktemp("sv2tts"), speaker_embed_dim=256)


def test_reference_clip_sets_the_voice(pipe, tmp_path):
    low, high = _clip(tmp_path / "low.wav", 110.0, 0), _clip(tmp_path / "high.wav", 260.0, 1)
    e_low, e_high = pipe.speaker_embedding(low), pipe.speaker_embedding(high)
    assert e_low.shape == (1, pipe.system.acoustic.config.speaker_embed_dim)
    assert float(torch.nn.functional.cosine_similarity(e_low, e_high)) < 0.999
    outs = []
    for ref in (low, low, high):
        torch.manual_seed(0)  # the pre-net's dropout stays on at inference (the paper): same seed, same draw
        outs.append(pipe.synthesize("Hello there.", speaker_wav=ref)["audio"])
    assert torch.equal(outs[0], outs[1])
    n = min(outs[0].numel(), outs[2].numel())
    assert not torch.allclose(outs[0][:n], outs[2][:n])


def test_models_without_speaker_input_refuse_a_reference(tmp_path):
    _need_ge2e()
    p = _pipeline("fastspeech2_small", tmp_path / "am")
    with pytest.raises(ConfigError, match="no speaker-embedding input"):
        p.synthesize("Hello.", speaker_wav=_clip(tmp_path / "a.wav", 150.0, 0))
