"""Conformer FastSpeech 2: canonical size, parity with transformers' ``FastSpeech2ConformerModel`` (same weights
through the converter: predicted-duration inference and teacher-forced training), batch independence, the
5-layer variance predictor, a tiny config that learns through the ``tts`` task, ONNX export."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import audiozoo
from audiozoo.errors import CheckpointError, ConfigError
from audiozoo.models.tts.fastspeech2_conformer import (
    LOG_FLOOR,
    FastSpeech2ConformerOutput,
    checkpoint_filter_fn,
    config_from_transformers,
)
from audiozoo.nn.fastspeech import VariancePredictor
from audiozoo.train.tasks.tts import TTSTask


def _hf():
    return pytest.importorskip("transformers.models.fastspeech2_conformer.modeling_fastspeech2_conformer")


TINY = dict(audiozoo.model_info("fastspeech2_conformer").tiny)
# measured on the full-size default config (random weights, 5 x ~100 ids, 1,900 frames): mel max |diff| 1.3e-5
# (values up to ~3.9), durations identical (benchmarks/fastspeech2_conformer_vs_transformers.py)
ATOL = 1e-4

# transformers config with every block of the default one (kernels 7 / 31, 5-layer pitch predictor k5, post-net)
# but narrower, so a forward takes milliseconds
_HF_SMALL = dict(hidden_size=64, encoder_num_attention_heads=2, decoder_num_attention_heads=2, encoder_layers=2,
                 decoder_layers=2, encoder_linear_units=96, decoder_linear_units=96, duration_predictor_channels=32,
                 pitch_predictor_channels=32, energy_predictor_channels=32, speech_decoder_postnet_units=32,
                 vocab_size=50, num_mel_bins=20)


def _pair(**hf_overrides):
    """(transformers model, ours) with the same random weights."""
    hf = _hf()
    torch.manual_seed(0)
    cfg = hf.FastSpeech2ConformerConfig(**{**_HF_SMALL, **hf_overrides})
    ref = hf.FastSpeech2ConformerModel(cfg).eval()
    with torch.no_grad():  # random BatchNorm statistics and ~3 frames per token, so every path matters
        ref.duration_predictor.linear.bias.fill_(1.4)
        for mod in ref.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.normal_(0.0, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
    ours = audiozoo.create_model("fastspeech2_conformer", **config_from_transformers(cfg.to_dict())).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours))
    return ref, ours


@pytest.mark.parity
def test_canonical_size_equals_transformers() -> None:
    hf = _hf()
    with torch.device("meta"):
        m = audiozoo.create_model("fastspeech2_conformer")
        ref = hf.FastSpeech2ConformerModel(hf.FastSpeech2ConformerConfig())
    n = sum(p.numel() for p in m.parameters())
    assert n == sum(p.numel() for p in ref.parameters()) == 70_262_259
    c = m.config
    assert (c.hidden, c.vocab_size, c.encoder_layers, c.decoder_layers, c.encoder_heads, c.encoder_ffn_dim) == \
        (384, 78, 4, 4, 2, 1536)
    assert (c.encoder_kernel, c.decoder_kernel, c.ffn_kernel, c.pre_norm, c.pitch_layers, c.pitch_kernel) == \
        (7, 31, 3, False, 5, 5)
    # the transformers default config maps onto exactly the registered defaults
    overrides = config_from_transformers(hf.FastSpeech2ConformerConfig().to_dict())
    assert {k: v for k, v in overrides.items() if getattr(c, k) != v} == {}


@pytest.mark.parity
def test_inference_parity_with_transformers() -> None:
    """Eval mode, predicted durations / pitch / energy: equal-length batch at token level; each item's mel against
    the reference run on that item alone (the reference's decoder is unmasked at inference, so a padded batch
    differs from single items there; ours does not: checked too)."""
    ref, ours = _pair()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 50, (3, 23), generator=g)
    with torch.no_grad():
        r = ref(ids, return_dict=True)
        o = ours(ids)
    assert isinstance(o, FastSpeech2ConformerOutput)
    assert torch.equal(o.durations, r.duration_outputs)
    assert int(o.durations.sum()) > 3 * 23 and len(set(o.mel_lengths.tolist())) > 1  # real lengths, padded frames
    torch.testing.assert_close(o.pitch, r.pitch_outputs[..., 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(o.energy, r.energy_outputs[..., 0], atol=ATOL, rtol=0)
    for i in range(3):
        with torch.no_grad():
            ri = ref(ids[i:i + 1], return_dict=True).spectrogram[0].T
        n = int(o.mel_lengths[i])
        assert ri.shape == (20, n)
        torch.testing.assert_close(o.mel[i, :, :n], ri, atol=ATOL, rtol=0)
        assert (o.mel[i, :, n:] == LOG_FLOOR).all()
    # the longest item has no padding in the reference's batch either
    k = int(o.mel_lengths.argmax())
    torch.testing.assert_close(o.mel[k], r.spectrogram[k].T, atol=ATOL, rtol=0)


@pytest.mark.parity
def test_teacher_forced_training_parity_with_transformers() -> None:
    """Training mode with every dropout 0 (BatchNorm on batch statistics in both): ground-truth durations, pitch and
    energy; same post-net mel, log-durations and predictions."""
    zero = {f"{side}_{k}": 0.0 for side in ("encoder", "decoder")
            for k in ("dropout_rate", "positional_dropout_rate", "attention_dropout_rate")}
    zero.update({k: 0.0 for k in ("duration_predictor_dropout_rate", "pitch_predictor_dropout",
                                  "energy_predictor_dropout", "speech_decoder_postnet_dropout")})
    ref, ours = _pair(**zero)
    ref.train()
    ours.train()
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 50, (2, 11), generator=g)
    durations = torch.randint(0, 5, (2, 11), generator=g)
    durations[1] = durations[0].flip(0)  # equal totals: no padded frames
    pitch, energy = torch.randn(2, 11, generator=g), torch.randn(2, 11, generator=g)
    frames = int(durations[0].sum())
    r = ref(ids, spectrogram_labels=torch.zeros(2, frames, 20), duration_labels=durations,
            pitch_labels=pitch[..., None], energy_labels=energy[..., None], return_dict=True)
    o = ours(ids, durations=durations, pitch=pitch, energy=energy)
    torch.testing.assert_close(o.mel, r.spectrogram.transpose(1, 2), atol=ATOL, rtol=0)
    torch.testing.assert_close(o.log_durations, r.duration_outputs, atol=ATOL, rtol=0)
    torch.testing.assert_close(o.pitch, r.pitch_outputs[..., 0], atol=ATOL, rtol=0)
    # and the same gradient path: pitch predictor detached from the encoder, energy predictor not
    o.pitch.sum().backward()
    assert ours.embed.weight.grad is None and ours.pitch_predictor.linear.weight.grad is not None


def test_batched_item_equals_item_alone() -> None:
    torch.manual_seed(0)
    m = audiozoo.create_model("fastspeech2_conformer", **TINY).eval()
    with torch.no_grad():
        m.duration_predictor.linear.bias.fill_(1.0)
    tokens = torch.randint(1, 40, (2, 13))
    lengths = torch.tensor([13, 8])
    with torch.no_grad():
        both = m(tokens, lengths)
        alone = m(tokens[1:, :8], lengths[1:])
    n = int(alone.mel_lengths[0])
    assert int(both.mel_lengths[1]) == n and (both.durations[1, 8:] == 0).all()
    torch.testing.assert_close(both.mel[1, :, :n], alone.mel[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both.pitch[1, :8], alone.pitch[0], atol=1e-5, rtol=1e-5)
    # speed control: durations rounded, then scaled and rounded again (ESPnet's length regulator)
    with torch.no_grad():
        slow = m(tokens, lengths, alpha=1.5)
    assert torch.equal(slow.durations, torch.round(both.durations.double() * 1.5).long())


@pytest.mark.parity
def test_five_layer_variance_predictor_equals_transformers() -> None:
    hf = _hf()
    torch.manual_seed(0)
    cfg = hf.FastSpeech2ConformerConfig(hidden_size=24)
    ref = hf.FastSpeech2ConformerVariancePredictor(cfg, num_layers=5, num_chans=16, kernel_size=5).eval()
    ours = VariancePredictor(24, 16, 5, layers=5).eval()
    sd = {}
    for i, layer in enumerate(ref.conv_layers):
        sd.update({f"conv{i + 1}.{k}": v for k, v in layer.conv.state_dict().items()})
        sd.update({f"norm{i + 1}.{k}": v for k, v in layer.layer_norm.state_dict().items()})
    sd.update({f"linear.{k}": v for k, v in ref.linear.state_dict().items()})
    ours.load_state_dict(sd)
    x = torch.randn(2, 9, 24)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x)[..., 0], atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError):
        VariancePredictor(24, 16, 3, layers=0)


@pytest.mark.parity
def test_converter_and_config_errors() -> None:
    hf = _hf()
    ref, ours = _pair()
    with pytest.raises(CheckpointError, match="not a transformers"):
        checkpoint_filter_fn({"x": torch.zeros(1)}, ours)
    sd = {f"model.{k}": v for k, v in ref.state_dict().items()}  # FastSpeech2ConformerWithHifiGan layout
    sd["vocoder.conv_pre.weight"] = torch.zeros(1)
    assert set(checkpoint_filter_fn(sd, ours)) == set(ours.state_dict())
    with pytest.raises(ConfigError, match="concat"):
        config_from_transformers(hf.FastSpeech2ConformerConfig(encoder_concat_after=True).to_dict())
    with pytest.raises(ConfigError, match="phoneme"):
        audiozoo.create_model("fastspeech2_conformer", pitch_level="frame", **TINY)
    with pytest.raises(ConfigError, match="token level"):
        ours(torch.ones(1, 5, dtype=torch.long), durations=torch.ones(1, 6, dtype=torch.long))


def _utterance(tokens: list[int], durations: list[int]) -> torch.Tensor:
    """Harmonics of 110 + 8 * id Hz, loudness by id, ``sum(d) * 256`` samples at 22.05 kHz."""
    f0 = torch.cat([torch.full((d * 256,), 110.0 + 8.0 * t) for t, d in zip(tokens, durations)])
    amp = torch.cat([torch.full((d * 256,), 0.2 + 0.05 * (t % 4)) for t, d in zip(tokens, durations)])
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 22050
    return (sum(torch.sin(k * phase) / k for k in range(1, 8)) * amp).float()


def test_tiny_config_learns_with_the_tts_task() -> None:
    """The one ``tts`` task trains it unchanged (token-level pitch / energy): mel L1 on two fixed utterances falls."""
    torch.manual_seed(0)
    model = audiozoo.create_model("fastspeech2_conformer", **TINY)
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0)
    task.models = {"model": model}
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(2):
        toks, durs = torch.randint(1, 40, (6 + i,), generator=g).tolist(), torch.randint(2, 6, (6 + i,), generator=g)
        items.append({"audio": _utterance(toks, durs.tolist()), "phoneme_ids": toks, "durations": durs.tolist(),
                      "audio_filepath": f"utt{i}.wav"})
    task.fit_statistics(items)
    n = max(it["audio"].shape[-1] for it in items)
    batch = {"audio": torch.stack([F.pad(it["audio"], (0, n - it["audio"].shape[-1])) for it in items]),
             "lengths": torch.tensor([it["audio"].shape[-1] for it in items]),
             **{k: [it[k] for it in items] for k in ("phoneme_ids", "durations", "audio_filepath")}}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = last = None
    for _ in range(60):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = float(out["mel_l1"]) if first is None else first
        last = float(out["mel_l1"])
    assert {"mel_before", "mel_postnet", "duration", "pitch", "energy"} <= set(out)
    assert last < 0.3 * first, (first, last)


@pytest.mark.slow
def test_onnx_export_with_data_dependent_frames(tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from audiozoo.export import check_onnx, export_checked, export_spec

    torch.manual_seed(0)
    m = audiozoo.create_model("fastspeech2_conformer", **TINY).eval()
    with torch.no_grad():
        m.duration_predictor.linear.bias.fill_(1.0)
    ex = export_spec(m, length=20)
    assert ex.method == "synthesize"
    tokens, lengths = torch.randint(1, 40, (3, 33)), torch.tensor([33, 12, 25])
    # measured max abs diff 6e-7 (check inputs) / 1.1e-6 (traced example)
    err = export_checked(m, tmp_path / "fs2c.onnx", ex, atol=1e-4, check_inputs=(tokens, lengths))
    with torch.no_grad():
        assert m.synthesize(*ex.example_inputs)[0].shape[-1] != m.synthesize(tokens, lengths)[0].shape[-1]
    assert err <= 1e-4
    assert check_onnx(m, tmp_path / "fs2c.onnx", ex.example_inputs, 1e-4, method="synthesize") <= 1e-4
