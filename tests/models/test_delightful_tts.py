"""DelightfulTTS (``delightful_tts``): parameter count and outputs against coqui-tts 0.28.0's ``AcousticModel``
(the same random weights through :func:`checkpoint_filter_fn`), and a tiny config that learns one utterance.

coqui's files are imported from the installed wheel (``pip install --no-deps coqui-tts==0.28.0``, scripts/setup.sh)
under stub parent packages, so ``TTS/__init__.py`` (which demands torchaudio) and ``TTS/tts/layers/__init__.py``
(losses, heavy imports) never run; its config module (coqpit) and ``monotonic_alignment_search`` are stubbed. Two
things of the reference are replaced in the test: MAS's ``maximum_path`` returns the path of the given durations
(coqui learns its alignment; this model takes durations), and the utterance encoder feeds its style-token layer
the GRU state as ``(B, H)`` — coqui 0.28.0 passes ``(1, B, H)``, so its softmax runs over the batch axis (see
``test_coqui_style_tokens_ignore_the_mel``).
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.models.tts.delightful_tts import checkpoint_filter_fn
from audiozoo.nn.delightful import average_nonzero

_STUBS = ("TTS", "TTS.tts", "TTS.tts.layers", "TTS.tts.layers.delightful_tts", "TTS.tts.layers.generic",
          "TTS.tts.utils", "TTS.tts.configs")
_FAKE = ("TTS.tts.configs.delightful_tts_config", "monotonic_alignment_search")
_MODS = ("acoustic_model", "conformer", "conv_layers", "encoders", "energy_adaptor", "networks",
         "phoneme_prosody_predictor", "pitch_adaptor", "variance_predictor")
_OTHER = ("TTS.tts.layers.generic.aligner", "TTS.tts.utils.helpers")


@pytest.fixture(scope="module")
def coqui() -> types.ModuleType:
    try:
        dist = metadata.distribution("coqui-tts")
    except metadata.PackageNotFoundError:
        pytest.skip("coqui-tts is not installed: pip install --no-deps coqui-tts==0.28.0 (scripts/setup.sh)")
    if dist.version != "0.28.0":
        pytest.skip(f"coqui-tts {dist.version} is installed, this test pins 0.28.0")
    pytest.importorskip("scipy")
    root = Path(str(dist.locate_file("TTS")))
    names = _STUBS + _FAKE + tuple(f"TTS.tts.layers.delightful_tts.{m}" for m in _MODS) + _OTHER
    saved = {k: sys.modules.get(k) for k in names}
    try:
        for name in _STUBS:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
            sys.modules[name] = pkg
        cfg = types.ModuleType(_FAKE[0])
        cfg.DelightfulTtsArgs = object
        sys.modules[_FAKE[0]] = cfg
        mas = types.ModuleType(_FAKE[1])
        mas.maximum_path = None
        sys.modules[_FAKE[1]] = mas
        return importlib.import_module("TTS.tts.layers.delightful_tts.acoustic_model")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _args(**kw) -> types.SimpleNamespace:
    """coqui's ``DelightfulTtsArgs`` defaults (0.28.0) with overrides."""
    base = dict(num_chars=100, n_hidden_conformer_encoder=512, n_layers_conformer_encoder=6,
                n_heads_conformer_encoder=8, dropout_conformer_encoder=0.1, kernel_size_conv_mod_conformer_encoder=7,
                lrelu_slope=0.3, n_hidden_conformer_decoder=512, n_layers_conformer_decoder=6,
                n_heads_conformer_decoder=8, dropout_conformer_decoder=0.1, kernel_size_conv_mod_conformer_decoder=11,
                bottleneck_size_p_reference_encoder=4, bottleneck_size_u_reference_encoder=512,
                ref_enc_filters_reference_encoder=[32, 32, 64, 64, 128, 128], ref_enc_size_reference_encoder=3,
                ref_enc_strides_reference_encoder=[1, 2, 1, 2, 1], ref_enc_gru_size_reference_encoder=32,
                token_num_reference_encoder=32, predictor_kernel_size_reference_encoder=5,
                n_hidden_variance_adaptor=512, kernel_size_variance_adaptor=5, dropout_variance_adaptor=0.5,
                emb_kernel_size_variance_adaptor=3, use_speaker_embedding=False, use_d_vector_file=False,
                speaker_embedding_channels=384, length_scale=1.0, out_channels=100, num_mels=100)
    base.update(kw)
    return types.SimpleNamespace(**base)


def _coqui_model(coqui, n_speakers: int = 0, **kw):
    tok = types.SimpleNamespace(characters=types.SimpleNamespace(pad_id=0))
    args = _args(use_speaker_embedding=n_speakers > 0, **kw)
    spk = types.SimpleNamespace(num_speakers=n_speakers) if n_speakers else None
    return coqui.AcousticModel(args, tokenizer=tok, speaker_manager=spk)


def test_param_count_matches_coqui(coqui):
    """coqui's default AcousticModel less its aligner, its unused speaker conv-GLUs and CoordConv weights."""
    with torch.device("meta"):
        ref = _coqui_model(coqui)
        ours = audiozoo.create_model("delightful_tts")
    total = sum(p.numel() for p in ref.parameters())
    unused = sum(p.numel() for n, p in ref.named_parameters()
                 if n.startswith("aligner.") or ".conditioning." in n or n.endswith("encoder.convs.0.weight")
                 or n.endswith("encoder.convs.0.bias"))
    n = sum(p.numel() for p in ours.parameters())
    assert total == 118_290_107 and n == total - unused == audiozoo.model_info("delightful_tts").params


_SMALL_REF = dict(num_chars=20, n_hidden_conformer_encoder=32, n_layers_conformer_encoder=2,
                  n_heads_conformer_encoder=4,
                  kernel_size_conv_mod_conformer_encoder=5, n_hidden_conformer_decoder=32, n_layers_conformer_decoder=2,
                  n_heads_conformer_decoder=2, kernel_size_conv_mod_conformer_decoder=7,
                  bottleneck_size_u_reference_encoder=16, ref_enc_filters_reference_encoder=[8, 8, 16, 16, 16, 16],
                  ref_enc_gru_size_reference_encoder=8, token_num_reference_encoder=6, n_hidden_variance_adaptor=32,
                  speaker_embedding_channels=12, out_channels=12, num_mels=12)
_SMALL_OURS = dict(vocab_size=20, hidden=32, encoder_layers=2, encoder_heads=4, encoder_kernel=5, decoder_layers=2,
                   decoder_heads=2, decoder_kernel=7, utterance_bottleneck=16, ref_filters=(8, 8, 16, 16, 16, 16),
                   ref_gru=8, style_tokens=6, variance_channels=32, speaker_dim=12, n_mels=12)


def _pair(coqui, n_speakers: int, monkeypatch, duration_bias: float = 0.0):
    torch.manual_seed(0)
    ref = _coqui_model(coqui, n_speakers, **_SMALL_REF).eval()
    with torch.no_grad():  # non-trivial norms / biases
        for name, p in ref.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ln" in name:
                p.add_(0.1 * torch.randn_like(p))
        ref.duration_predictor.linear_layer.bias.add_(duration_bias)  # several frames per token
    ref.energy_scaler.running_mean.fill_(3.0)
    ref.energy_scaler.running_var.fill_(4.0)
    ours = audiozoo.create_model("delightful_tts", n_speakers=n_speakers, **_SMALL_OURS).eval()
    ours.load_state_dict(checkpoint_filter_fn({f"acoustic_model.{k}": v for k, v in ref.state_dict().items()}, ours))

    def utterance_forward(self, mels, mel_lens):  # GST over the tokens: the GRU state as (B, H)
        _, memory, _ = self.encoder(mels, mel_lens)
        return self.dropout(self.encoder_bottleneck(self.stl(self.encoder_prj(memory[0]))))

    monkeypatch.setattr(coqui.UtteranceLevelProsodyEncoder, "forward", utterance_forward)
    return ref, ours


def _path(d: torch.Tensor, frames: int) -> torch.Tensor:
    ends = d.cumsum(1)
    t = torch.arange(frames)
    return ((t[None, None] >= (ends - d)[..., None]) & (t[None, None] < ends[..., None])).float()


@pytest.mark.parametrize("n_speakers", [0, 3])
def test_same_weights_same_outputs_as_coqui_training_path(coqui, monkeypatch, n_speakers):
    """Teacher-forced forward (reference mel, durations, frame-level pitch / energy) on a padded batch."""
    ref, ours = _pair(coqui, n_speakers, monkeypatch)
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 6])
    tokens = torch.randint(1, 20, (2, 9), generator=g) * (torch.arange(9)[None] < lengths[:, None])
    d = torch.randint(1, 5, (2, 9), generator=g) * (torch.arange(9)[None] < lengths[:, None])
    mel_len = d.sum(1)
    big_l = int(mel_len.max())
    mel = torch.randn(2, 12, big_l, generator=g) - 4.0
    valid = torch.arange(big_l)[None] < mel_len[:, None]
    pitch = torch.randn(2, big_l, generator=g) * (torch.rand(2, big_l, generator=g) > 0.3) * valid
    energy = torch.randn(2, big_l, generator=g) * valid
    monkeypatch.setattr(coqui, "maximum_path", lambda value, mask: _path(d, value.shape[-1]))
    speaker = torch.tensor([2, 0]) if n_speakers else None
    with torch.no_grad():
        r = ref(tokens, lengths, mel, mel_len, pitch[:, None], energy[:, None], None, speaker_idx=speaker)
        p_avg, e_avg = average_nonzero(pitch, d), average_nonzero(energy, d)
        o = ours(tokens, lengths, durations=d, pitch=p_avg, energy=e_avg, mel=mel, mel_lengths=mel_len,
                 speaker=speaker)
    assert torch.equal(r["aligner_durations"], d.int())
    assert torch.allclose(r["pitch_target"][:, 0], p_avg, atol=1e-6)
    assert torch.allclose(r["energy_target"][:, 0], e_avg, atol=1e-6)
    tok = torch.arange(9)[None] < lengths[:, None]
    checks = {"mel": (r["model_outputs"].transpose(1, 2), o.mel, valid[:, None]),
              "pitch": (r["pitch_pred"][:, 0], o.pitch, tok), "energy": (r["energy_pred"][:, 0], o.energy, tok),
              "log_dur": (r["dr_log_pred"], o.log_durations, tok),
              "u_ref": (r["u_prosody_ref"], o.u_prosody_ref, None),
              "u_pred": (r["u_prosody_pred"], o.u_prosody_pred, None),
              "p_ref": (r["p_prosody_ref"], o.p_prosody_ref, tok[..., None]),
              "p_pred": (r["p_prosody_pred"], o.p_prosody_pred, tok[..., None])}
    for name, (a, b, m) in checks.items():
        assert a.shape == b.shape, name
        diff = (a - b).abs() if m is None else ((a - b).abs() * m)
        assert diff.max() <= 1e-4 * max(1.0, a.abs().max()), f"{name}: max diff {diff.max():.2e}"
    assert torch.equal(o.mel_lengths, mel_len)


def test_same_weights_same_inference_as_coqui(coqui, monkeypatch):
    """coqui's inference (one utterance; prosody, durations, pitch and energy predicted)."""
    ref, ours = _pair(coqui, 0, monkeypatch, duration_bias=1.5)
    tokens = torch.randint(1, 20, (1, 11), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        r = ref.inference(tokens, None)
        out = ours(tokens)
    assert torch.equal(r["durations"][0].long(), out.durations[0]) and int(out.durations.max()) > 2
    assert torch.allclose(r["pitch"], out.pitch[:, None], atol=1e-4)
    ref_mel = r["model_outputs"].transpose(1, 2)
    assert ref_mel.shape == out.mel.shape
    assert (ref_mel - out.mel).abs().max() <= 1e-4 * max(1.0, ref_mel.abs().max())


def test_coqui_style_tokens_ignore_the_mel(coqui):
    """Documents the reference's quirk worked around above: unpatched, coqui's utterance vector of one utterance
    does not depend on its mel (softmax over a batch of one); ours does."""
    torch.manual_seed(0)
    ref = _coqui_model(coqui, 0, **_SMALL_REF).utterance_prosody_encoder.eval()
    ours = audiozoo.create_model("delightful_tts", **_SMALL_OURS).utterance_encoder.eval()
    a, b = torch.randn(1, 12, 20), torch.randn(1, 12, 20) * 3
    n = torch.tensor([20])
    with torch.no_grad():
        assert torch.allclose(ref(a, n), ref(b, n), atol=1e-6)
        assert not torch.allclose(ours(a, n), ours(b, n), atol=1e-3)


def test_tiny_learns_one_utterance():
    """Tiny config with prosody encoders: the teacher-forced mel L1 falls on a fixed utterance."""
    torch.manual_seed(0)
    m = audiozoo.create_model("delightful_tts", **{**audiozoo.model_info("delightful_tts").tiny, "prosody": True,
                                                   "utterance_bottleneck": 16, "ref_filters": (8, 8, 16),
                                                   "ref_strides": (2, 2), "ref_gru": 8, "style_tokens": 4})
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 40, (1, 12), generator=g)
    d = torch.randint(1, 4, (1, 12), generator=g)
    frames = int(d.sum())
    t = torch.linspace(0, 1, frames)
    target = (torch.sin(6.28 * t[None] * torch.arange(1, 21)[:, None] / 5) - 4.0)[None]
    pitch, energy = torch.randn(1, 12, generator=g), torch.randn(1, 12, generator=g)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = m(tokens, durations=d, pitch=pitch, energy=energy, mel=target)
        loss = (out.mel - target).abs().mean()
        prosody = (out.u_prosody_pred - out.u_prosody_ref.detach()).abs().mean() \
            + (out.p_prosody_pred - out.p_prosody_ref.detach()).abs().mean()
        opt.zero_grad()
        (loss + prosody).backward()
        opt.step()
        losses.append(loss.item())
    # measured: L1 3.77 -> 0.61 (ln units) after 25 Adam steps
    assert losses[-1] < 0.3 * losses[0], losses[::8]
    mel, n = m.synthesize(tokens, ref_mel=target)
    assert mel.shape[:2] == (1, 20) and int(n[0]) == mel.shape[-1] and torch.isfinite(mel).all()


def test_bad_inputs_raise():
    m = audiozoo.create_model("delightful_tts", **audiozoo.model_info("delightful_tts").tiny)
    tokens = torch.randint(1, 40, (1, 5))
    with pytest.raises(ConfigError):
        m(tokens, durations=torch.ones(1, 5, dtype=torch.long), pitch=torch.zeros(1, 9))  # frame-level pitch
    with pytest.raises(ConfigError):
        m(tokens, mel=torch.zeros(1, 7, 10))  # wrong number of mel bins
    with pytest.raises(ConfigError):
        m(torch.full((1, 5), 40))


def _task_batch():
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(2):
        toks = torch.randint(1, 40, (6 + i,), generator=g)
        durs = torch.randint(2, 6, (6 + i,), generator=g)
        f0 = torch.repeat_interleave(110.0 + 8.0 * toks, durs * 256)
        phase = 2 * torch.pi * torch.cumsum(f0, 0) / 22050
        wav = sum(torch.sin(k * phase) / k for k in range(1, 6)) * 0.3 + 0.003 * torch.randn(f0.shape, generator=g)
        items.append({"audio": wav.float(), "phoneme_ids": toks.tolist(), "durations": durs.tolist(),
                      "audio_filepath": f"utt{i}.wav"})
    n = max(it["audio"].shape[-1] for it in items)
    batch = {"audio": torch.stack([torch.nn.functional.pad(it["audio"], (0, n - it["audio"].shape[-1]))
                                   for it in items]),
             "lengths": torch.tensor([it["audio"].shape[-1] for it in items]),
             **{k: [it[k] for it in items] for k in ("phoneme_ids", "durations", "audio_filepath")}}
    return items, batch


_PROSODY_TINY = {"prosody": True, "utterance_bottleneck": 16, "ref_filters": (8, 8, 16), "ref_strides": (2, 2),
                 "ref_gru": 8, "style_tokens": 4, "hidden": 32}


@pytest.mark.parametrize("lambda_prosody", [0.0, 0.5])
def test_the_tts_task_trains_it(lambda_prosody):
    """The shared ``tts`` task (FastSpeech 2's) drives it: phoneme-level pitch / energy targets; without
    ``lambda_prosody`` no reference mel (prosody predicted), with it the target mel is the prosody reference and the
    predictors learn the encoders' vectors (coqui's L1 terms); the teacher-forced mel L1 falls on two utterances."""
    from audiozoo.train.tasks.tts import TTSTask

    torch.manual_seed(0)
    tiny = audiozoo.model_info("delightful_tts").tiny
    model = audiozoo.create_model("delightful_tts", **({**tiny, **_PROSODY_TINY} if lambda_prosody else tiny))
    items, batch = _task_batch()
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0, lambda_prosody=lambda_prosody)
    task.models = {"model": model}
    task.fit_statistics(items)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    first = last = None
    for _ in range(30):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = out if first is None else first
        last = out
    # measured: mel_l1 5.90 -> 0.85 (ln units) after 30 Adam steps without prosody; 5.67 -> 0.69 with it
    assert float(last["mel_l1"]) < 0.4 * float(first["mel_l1"]), (first, last)
    if lambda_prosody:  # measured: p_prosody 0.93 -> 0.24, u_prosody 1.40 -> 0.26
        assert float(last["p_prosody"]) < 0.8 * float(first["p_prosody"])
        assert float(last["u_prosody"]) < 0.5 * float(first["u_prosody"])
    else:
        assert "p_prosody" not in last


def test_the_tts_task_refuses_prosody_terms_without_prosody():
    from audiozoo.train.tasks.tts import TTSTask

    model = audiozoo.create_model("delightful_tts", **audiozoo.model_info("delightful_tts").tiny)  # prosody=False
    items, batch = _task_batch()
    task = TTSTask(pitch_method="yin", f0_min=80.0, f0_max=500.0, lambda_prosody=0.5)
    task.models = {"model": model}
    task.fit_statistics(items)
    with pytest.raises(ConfigError, match="lambda_prosody"):
        task.shared_forward(batch)


def test_small_speaks_through_hifinet():
    """The paper's system: a 16 kHz mel (hop 200) vocoded by HiFiNet to 48 kHz, 600 samples per frame."""
    from audiozoo.models.tts.system import TTSSystem

    tiny = {**audiozoo.model_info("delightful_tts").tiny, "sample_rate": 16000, "hop_length": 200, "win_length": 256}
    acoustic = audiozoo.create_model("delightful_tts_small", **tiny)
    vocoder = audiozoo.create_model("hifinet", **audiozoo.model_info("hifinet").tiny)
    system = TTSSystem(acoustic, vocoder)
    tokens, lengths = torch.randint(1, 40, (2, 7)), torch.tensor([7, 4])
    wav, n = system.synthesize(tokens, lengths)
    _, frames = acoustic.synthesize(tokens, lengths)
    assert system.sample_rate == 48000 and wav.ndim == 2 and torch.isfinite(wav).all()
    assert torch.equal(n, frames * 600) and int(n.max()) == wav.shape[-1]
    with pytest.raises(ConfigError):
        TTSSystem(audiozoo.create_model("delightful_tts", **audiozoo.model_info("delightful_tts").tiny), vocoder)
