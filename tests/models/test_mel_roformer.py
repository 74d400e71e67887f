"""Mel-RoFormer: STFT round trip, parity with bs-roformer's MelBandRoformer, melody head decoding / scoring /
loss."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError, DataError
from audiozoo.models.separate.mel_roformer import checkpoint_filter_fn, decode_melody, melody_to_notes

TINY = dict(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, num_bands=8, dim=16, depth=1, heads=2,
            dim_head=8)


def test_unit_mask_gives_back_the_mixture(monkeypatch):
    """With every mask = 1 the STFT -> gather -> average -> iSTFT path is the identity (layout of channels/bins)."""
    model = audiozoo.create_model("mel_roformer_vocals", sources=("a", "b"), **TINY).eval()
    x = 0.3 * torch.randn(2, 2, 1999)
    n = model.encoder.num_bins * 2
    monkeypatch.setattr(model, "masks", lambda tok: (torch.ones(tok.shape[0], 2, n, tok.shape[1]),
                                                     torch.zeros(tok.shape[0], 2, n, tok.shape[1])))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 2, 2, 1999)
    assert torch.allclose(y[:, 0], x, atol=1e-5) and torch.allclose(y[:, 1], x, atol=1e-5)


def test_bad_inputs_raise_audio_errors():
    model = audiozoo.create_model("mel_roformer_vocals", **TINY)
    with pytest.raises(AudioError, match=r"\(B, 2, T\)"):
        model(torch.randn(1, 3, 4000))
    with pytest.raises(AudioError, match="n_fft"):
        model(torch.randn(1, 2, 100))
    assert model(torch.randn(1, 1000)).shape == (1, 1, 2, 1000)  # mono (B, T) is copied to both channels


# ----------------------------------------------------------------------------------------------- parity
def _reference(**kw):
    """bs-roformer's MelBandRoformer with its non-paper extras off (value residuals, hyper-connection streams,
    the linear-attention transformer) and dropout 0; output padded to the input length."""
    bsr = pytest.importorskip("bs_roformer")
    args = dict(dim=16, depth=2, stereo=True, num_stems=2, time_transformer_depth=1, freq_transformer_depth=2,
                linear_transformer_depth=0, num_bands=8, dim_head=8, heads=2, attn_dropout=0.0, ff_dropout=0.0,
                sample_rate=8000, stft_n_fft=256, stft_hop_length=64, stft_win_length=256,
                add_value_residual=False, num_residual_streams=1, match_input_audio_length=True,
                mask_estimator_depth=2)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bsr.MelBandRoformer(**args).eval()


def _ours(stereo: bool = True, stems: int = 2):
    cfg = {**TINY, "depth": 2, "time_depth": 1, "freq_depth": 2, "mask_depth": 2, "head_gates": True,
           "audio_channels": 2 if stereo else 1, "sources": tuple(f"s{i}" for i in range(stems))}
    return audiozoo.create_model("mel_roformer_vocals", **cfg).eval()


@pytest.mark.parity
@pytest.mark.parametrize("stereo,stems", [(True, 2), (False, 1)])
def test_matches_bs_roformer_mel_band_roformer(stereo, stems):
    torch.manual_seed(0)
    ref = _reference(stereo=stereo, num_stems=stems)
    with torch.no_grad():  # random weights everywhere (norm gains too), so a wrong key mapping shows
        for name, p in ref.named_parameters():
            if p.requires_grad:
                p.copy_(0.3 * torch.randn_like(p) + (1.0 if name.endswith("gamma") else 0.0))
    ours = _ours(stereo, stems)
    assert torch.equal(ref.freq_indices, ours.encoder.index)  # the same Mel bands, the same gather order
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours), strict=True)
    c = 2 if stereo else 1
    x = 0.3 * torch.randn(2, c, 3001)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = ref(x), ours(x)
    a = a if stems > 1 else a[:, None]
    assert a.shape == b.shape == (2, stems, c, 3001)
    err = (a - b).abs().max().item()
    assert err <= 1e-5 * a.abs().max().item() + 1e-7, err


@pytest.mark.parity
def test_converter_reads_the_legacy_layout_and_refuses_extras():
    torch.manual_seed(1)
    ref = _reference()
    ours = _ours()
    new = checkpoint_filter_fn(ref.state_dict(), ours)
    # 0.x layout (community checkpoints): no ``.branch``, transformers at layers.i.{0: time, 1: freq}
    legacy = {}
    for k, v in ref.state_dict().items():
        for a, b in ((".1.layers.", ".0.layers."), (".1.norm.", ".0.norm."), (".2.layers.", ".1.layers."),
                     (".2.norm.", ".1.norm.")):
            if k.startswith("layers.") and k[len("layers.") + 1:].startswith(a):
                k = k[:len("layers.") + 1] + b + k[len("layers.") + 1 + len(a):]
                break
        legacy["model." + k.replace(".branch.", ".")] = v
    old = checkpoint_filter_fn({"state_dict": legacy}, ours)
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)
    for extra, match in ((dict(add_value_residual=True), "add_value_residual"),
                         (dict(num_residual_streams=2), "num_residual_streams"),
                         (dict(linear_transformer_depth=1), "linear")):
        with pytest.raises(CheckpointError, match=match):
            checkpoint_filter_fn(_reference(**extra).state_dict(), ours)
    with pytest.raises(CheckpointError, match="not a bs-roformer"):
        checkpoint_filter_fn({"x": torch.zeros(1)}, ours)


# ----------------------------------------------------------------------------------------------- melody
SR, HOP = 8000, 64
NOTES = [(0.10, 0.40, 60), (0.45, 0.70, 64), (0.70, 0.95, 67), (1.05, 1.40, 65)]  # (on, off, midi)


def _reference_melody(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(n_frames) * HOP / SR
    f0, onset = np.zeros(n_frames), np.zeros(n_frames)
    for on, off, p in NOTES:
        on_i, off_i = int(np.ceil(on * SR / HOP)), int(np.ceil(off * SR / HOP))
        if on_i < n_frames:  # notes past the clip are left out
            f0[on_i:off_i] = 440.0 * 2 ** ((p - 69) / 12)
            onset[on_i] = 1.0
    return t, f0, onset


def _sing(f0_frames: np.ndarray, n: int) -> torch.Tensor:
    """A 'voice': 5 harmonics along the frame f0 (held per hop), over a low noise bed."""
    f0 = np.repeat(f0_frames, HOP)[:n]
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(h * phase) / h for h in range(1, 6)) * (f0 > 0)
    rng = np.random.default_rng(0)
    return torch.tensor(0.3 * voice + 0.01 * rng.standard_normal(n), dtype=torch.float32)


def test_decode_notes_midi_and_mir_eval_scores():
    from audiozoo.data.midi import notes_to_midi_bytes
    from audiozoo.eval.music import melody_metrics
    from audiozoo.train.losses.melody import melody_targets

    model = audiozoo.create_model("mel_roformer_melody", **TINY, pitch_min=55, pitch_bins=16)
    t, f0, onset = _reference_melody(200)
    target = melody_targets(torch.tensor(f0), 55, 16)
    logits = torch.full((1, 200, 17), -8.0)
    logits[0, torch.arange(200), target] = 8.0
    out = {"pitch": logits, "onset": torch.tensor(onset * 16 - 8, dtype=torch.float32)[None, :, None]}
    times, est_f0, est_onset = decode_melody(out, model.pitch_midi, HOP / SR)
    np.testing.assert_allclose(est_f0, f0, rtol=1e-4)
    scores = melody_metrics(t, f0, times, est_f0)
    assert scores["raw_pitch_accuracy"] > 0.99 and scores["overall_accuracy"] > 0.99
    wrong = melody_metrics(t, f0, times, est_f0 * 2 ** (1 / 12))  # a semitone off: no pitch right
    with pytest.raises(DataError):
        melody_metrics(t, f0, times[:-1], est_f0)
    assert wrong["raw_pitch_accuracy"] < 0.01 and wrong["raw_chroma_accuracy"] < 0.01
    notes = melody_to_notes(times, est_f0, est_onset)
    assert [n[2] for n in notes] == [p for _, _, p in NOTES]
    for (s, e, _, _, _), (on, off, _) in zip(notes, NOTES):
        assert abs(s - on) <= HOP / SR and abs(e - off) <= HOP / SR
    midi = notes_to_midi_bytes(notes)
    assert midi[:4] == b"MThd" and midi.count(b"MTrk") == 2


def test_melody_loss_falls_on_a_fixed_clip():
    from audiozoo.train.losses.melody import melody_loss, melody_targets

    torch.manual_seed(0)
    model = audiozoo.create_model("mel_roformer_melody", **TINY, pitch_min=55, pitch_bins=16, band_proj=4,
                                  melody_dim=32)
    n = int(1.5 * SR)
    frames = model.num_frames(n)
    _, f0, onset = _reference_melody(frames)
    audio = _sing(f0, n)[None]
    target = melody_targets(torch.tensor(f0), 55, 16)[None]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = melody_loss(model(audio), target, torch.tensor(onset)[None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses  # measured 3.54 -> 0.78
    from audiozoo.eval.music import melody_metrics

    with torch.no_grad():
        times, est_f0, _ = decode_melody(model(audio), model.pitch_midi, HOP / SR)
    t, _, _ = _reference_melody(frames)
    assert melody_metrics(t, f0, times, est_f0)["raw_pitch_accuracy"] > 0.7  # measured 0.91 (the training clip)


def test_melody_model_starts_from_a_separator():
    sep = audiozoo.create_model("mel_roformer_vocals", **TINY)
    mel = audiozoo.create_model("mel_roformer_melody", **TINY)
    mel.load_separator(sep)
    x = 0.1 * torch.randn(1, 2, 1500)
    with torch.no_grad():
        assert torch.equal(mel.encoder(x)[0], sep.encoder(x)[0])
    other = audiozoo.create_model("mel_roformer_vocals", **{**TINY, "dim": 8})
    with pytest.raises(CheckpointError):
        mel.load_separator(other)


def test_separator_learns_a_synthetic_voice():
    """Tiny Mel-RoFormer on one fixed mixture (a harmonic 'voice' along a melody + low chords and noise): within
    10 steps its vocal estimate beats the mixture itself by 3 dB SI-SDR (measured: mixture -1.0 dB, model
    -26.6 -> 18.2 dB)."""
    from audiozoo.train.losses.separation import neg_si_sdr

    torch.manual_seed(0)
    model = audiozoo.create_model("mel_roformer_vocals", **{**TINY, "audio_channels": 1})
    n = SR
    _, f0, _ = _reference_melody(n // HOP + 1)
    voice = _sing(f0, n)
    t = torch.arange(n) / SR
    accomp = 0.25 * (torch.sin(2 * torch.pi * 98 * t) + torch.sin(2 * torch.pi * 147 * t)) \
        + 0.05 * torch.randn(n, generator=torch.Generator().manual_seed(1))
    mix = (voice + accomp)[None, None]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sdr = []
    for _ in range(10):
        loss = neg_si_sdr(model(mix)[:, 0, 0], voice[None]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sdr.append(-loss.item())
    baseline = -neg_si_sdr(mix[0, 0], voice).item()
    assert sdr[-1] > baseline + 3.0 and sdr[-1] > sdr[0] + 10.0, (baseline, sdr)


def test_notes_split_on_onsets_pitch_changes_and_silence():
    times = np.arange(12) * 0.01
    a4, b4 = 440.0, 493.88
    f0 = np.array([0, a4, a4, a4, a4, a4, a4, b4, b4, b4, 0, a4])
    onset = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0.0])  # a re-attack of A4 at frame 4
    notes = melody_to_notes(times, f0, onset, min_frames=2)
    assert [(round(s, 2), round(e, 2), p) for s, e, p, _, _ in notes] == [(0.01, 0.04, 69), (0.04, 0.07, 69),
                                                                        (0.07, 0.10, 71)]  # last A4 too short
