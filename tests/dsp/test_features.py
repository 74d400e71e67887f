"""The FeatureExtractor base: its shared prologue and errors, frame arithmetic, config round trips, checked
for every FeatureExtractor subclass audiozoo defines (iterating the name -> class table)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest
import torch

import audiozoo
import audiozoo.models
from audiozoo.dsp import FeatureExtractor, VocoderMel, feature_extractor_from_config, feature_extractors
from audiozoo.errors import AudioError, ConfigError

# every model module defines its extractors at import: import them all so the table is complete
for _mod in pkgutil.walk_packages(audiozoo.models.__path__, "audiozoo.models."):
    importlib.import_module(_mod.name)

EXTRACTORS = {n: c for n, c in sorted(feature_extractors().items()) if c.__module__.startswith("audiozoo.")}
# extractors whose L is fixed by their settings rather than by the input length (AST pads to max_length)
FIXED_LENGTH = {"ASTFrontend"}


def make(cls: type[FeatureExtractor]) -> FeatureExtractor:
    """Defaults (or the default model config): a new extractor must be constructible so, or get an entry here."""
    return (cls(cls.config_class()) if cls.config_class is not None else cls()).eval()


def wav_for(fe: FeatureExtractor, frames: int = 5, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(fe.min_samples, fe.num_samples(frames)) + 37
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([t] + [max(fe.min_samples, t - 29 * (i + 1)) for i in range(batch - 1)])
    return 0.1 * torch.randn(batch, t, generator=g), lengths


def test_every_model_front_end_is_a_feature_extractor():
    assert {"ASTFrontend", "PaSSTFrontend", "VocoderMel", "DecibelMelFrontend", "BasicPitchFrontend",
            "BandLimitedMel"} <= set(EXTRACTORS)
    for name in audiozoo.list_models():
        model = audiozoo.create_model(name, **audiozoo.model_info(name).tiny)
        fe = getattr(model, "frontend", None)
        if fe is None:  # no waveform front end (RAVE takes the waveform itself)
            continue
        assert isinstance(fe, FeatureExtractor), f"{name}: frontend is a {type(fe).__name__}"
        # parameter-free: nothing of it is a weight or lands in the model's state dict
        assert not list(fe.parameters()) and not fe.state_dict(), name


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_attributes_and_frame_arithmetic(name):
    fe = make(EXTRACTORS[name])
    for attr in ("sample_rate", "hop_length", "n_features", "min_samples"):
        v = getattr(fe, attr)
        assert isinstance(v, int) and not isinstance(v, bool) and v >= 1, (attr, v)
    for n in (1, 2, 3, 7, 50, 333):
        s = fe.num_samples(n)
        assert fe.num_frames(s) == n, (n, s)
        if s > 0:
            assert fe.num_frames(s - 1) < n, (n, s)
        # the tensor path (lengths of a batch) agrees with the int path
        assert torch.equal(torch.as_tensor(fe.num_frames(torch.tensor([s, s + 1]))),
                           torch.tensor([fe.num_frames(s), fe.num_frames(s + 1)]))


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_forward_shapes_and_frame_lengths(name):
    fe = make(EXTRACTORS[name])
    wav, lengths = wav_for(fe)
    with torch.no_grad():
        feats, frames = fe(wav, lengths, sample_rate=fe.sample_rate)
        one, one_frames = fe(wav[0])
    b, t = wav.shape
    assert feats.dtype == torch.float32 and frames.dtype == torch.long
    assert feats.ndim == 3 and feats.shape[:2] == (b, fe.n_features)
    n = feats.shape[-1]
    if name not in FIXED_LENGTH:
        assert n == fe.num_frames(t)
    assert frames.tolist() == [min(int(fe.num_frames(int(k))), n) for k in lengths]
    assert one.shape == (1, *feats.shape[1:]) and one_frames.tolist() == [frames[0].item()]
    assert torch.isfinite(feats).all()


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_errors_name_the_extractor(name):
    fe = make(EXTRACTORS[name])
    wav, _ = wav_for(fe, batch=1)
    with pytest.raises(AudioError, match=f"{name}.*shape"):
        fe(wav[:, None])
    with pytest.raises(AudioError, match=f"{name}.*resample first"):
        fe(wav, sample_rate=fe.sample_rate + 1)
    with pytest.raises(AudioError, match=f"{name}.*float"):
        fe((wav * 32767).to(torch.int16))
    with pytest.raises(AudioError, match=f"{name}.*lengths"):
        fe(wav, torch.tensor([1, 2]))
    with pytest.raises(AudioError, match=f"{name}.*lengths"):
        fe(wav, torch.tensor([wav.shape[-1] + 1]))
    if fe.min_samples > 1:
        with pytest.raises(AudioError, match=f"{name}: input of {fe.min_samples - 1} samples is too short"):
            fe(wav[..., : fe.min_samples - 1])
    fe(wav[..., : fe.min_samples])  # the shortest accepted input works


def _round_trip(fe: FeatureExtractor) -> None:
    cfg = fe.get_config()
    assert cfg["type"] == type(fe).__name__
    again = feature_extractor_from_config(json.loads(json.dumps(cfg))).eval()
    assert type(again) is type(fe) and again.get_config() == cfg
    assert FeatureExtractor.from_config(cfg).get_config() == cfg == type(fe).from_config(cfg).get_config()
    wav, lengths = wav_for(fe, seed=1)
    with torch.no_grad():
        a, b = fe(wav, lengths), again(wav, lengths)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_config_round_trip(name):
    _round_trip(make(EXTRACTORS[name]))


def test_config_round_trip_of_non_default_settings():
    _round_trip(VocoderMel(16000, 512, 160, 400, 40, 0.0, None, center=True, log="log10", amin=1e-10))
    _round_trip(EXTRACTORS["DecibelMelFrontend"](16000, 512, 160, 32, 0.0, 8000.0))
    tiny = EXTRACTORS["TinyTransformerFrontend"]
    _round_trip(tiny(tiny.config_class(feature="mfcc", n_mels=13)))
    clip = EXTRACTORS["SpecTTTraFrontend"]
    fe = clip(clip.config_class(clip_seconds=0.25))
    _round_trip(fe)
    # fixed clips: any length gives the clip's frames, and a clip's worth of samples is the window
    assert fe.num_frames(3) == fe.num_frames(10**6) == fe.num_frames(4000)
    assert fe.num_samples(1) == fe.num_samples(fe.num_frames(4000)) == 4000
    feats, frames = fe(0.1 * torch.randn(2, 100), torch.tensor([100, 50]))
    assert feats.shape[-1] == frames[0] == frames[1] == fe.num_frames(4000)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown feature extractor 'NoSuchExtractor'"):
        feature_extractor_from_config({"type": "NoSuchExtractor"})
    with pytest.raises(ConfigError, match="'type'"):
        feature_extractor_from_config({"n_mels": 80})
    with pytest.raises(ConfigError, match="not VocoderMel"):
        VocoderMel.from_config({"type": "DecibelMelFrontend"})
    with pytest.raises(ConfigError, match="invalid VocoderMel config"):
        VocoderMel.from_config({"type": "VocoderMel", "n_melz": 80})
    with pytest.raises(ConfigError, match="unknown key"):
        EXTRACTORS["ASTFrontend"].from_config({"type": "ASTFrontend", "depth": 3})  # not a front-end field


class _Frames(FeatureExtractor):
    """A minimal extractor for the prologue tests: non-overlapping frames of 4 samples, one feature (their sum),
    padded frames set to -1 by ``finish``."""

    def __init__(self, sample_rate: int = 16000, scale: float = 1.0):
        super().__init__()
        self.sample_rate, self.scale = sample_rate, scale
        self.hop_length, self.n_features, self.min_samples = 4, 1, 4

    def num_frames(self, n_samples):
        return n_samples // 4

    def compute(self, wav):
        return self.scale * wav[:, : wav.shape[-1] // 4 * 4].reshape(wav.shape[0], 1, -1, 4).sum(-1)

    def finish(self, feats, frames):
        pad = torch.arange(feats.shape[-1])[None, :] >= frames[:, None]
        return feats.masked_fill(pad[:, None], -1.0), frames


def test_shared_prologue():
    fe = _Frames()
    wav = torch.arange(18, dtype=torch.float64)
    feats, frames = fe(wav)  # (T,) -> a batch of one; default lengths = T; input dtype kept
    assert feats.dtype == torch.float64 and feats.shape == (1, 1, 4) and frames.tolist() == [4]
    assert feats[0, 0].tolist() == [6.0, 22.0, 38.0, 54.0]
    feats, frames = fe(wav.expand(2, 18).float(), torch.tensor([18, 9]))
    assert frames.tolist() == [4, 2] and feats[1, 0].tolist() == [6.0, 22.0, -1.0, -1.0]  # finish() saw frames
    with pytest.raises(AudioError, match=r"^_Frames expects 16000 Hz audio, got 44100 Hz; resample first$"):
        fe(wav, sample_rate=44100)
    with pytest.raises(AudioError, match=r"_Frames: input of 3 samples is too short; it needs at least 4"):
        fe(wav[:3])
    with pytest.raises(AudioError, match=r"_Frames expects a mono waveform \(B, T\) or \(T,\), got shape"):
        fe(torch.zeros(2, 1, 8))
    with pytest.raises(AudioError, match="_Frames expects a waveform tensor"):
        fe([0.0] * 8)
    assert fe.num_samples(0) == 0 and fe.num_samples(3) == 12
    assert fe.get_config() == {"type": "_Frames", "sample_rate": 16000, "scale": 1.0}
    assert feature_extractor_from_config({"type": "_Frames", "scale": 2.0})(wav)[0][0, 0, 0].item() == 12.0
    assert "scale=1.0" in repr(fe)


def test_duplicate_class_names_are_refused():
    with pytest.raises(ConfigError, match="two FeatureExtractor classes named 'VocoderMel'"):
        type("VocoderMel", (FeatureExtractor,), {"__module__": "somewhere.else"})
