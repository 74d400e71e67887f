"""PortaSpeech (issue #16): canonical configs vs the official code, word grouping, mixture alignment, fVAE with a
flow prior, post-glow with grouped sharing, padding invariance, sampling, the tts task's flow-VAE terms, parity."""

from __future__ import annotations

import math
import os
import sys
import types
from pathlib import Path

import pytest
import torch

import audiozoo
from audiozoo.models.tts.portaspeech import _SMALL, _TINY, PortaSpeech, PortaSpeechConfig, checkpoint_filter_fn
from audiozoo.text.words import word_index
from audiozoo.train.losses.vae_flow import flow_prior_kl, mel_ssim_loss, postflow_nll, word_duration_loss

# NATSpeech's PortaSpeechFlow built from its configs with a 256-symbol phone table (Piper's) and word_dict_size
# 10000 (+ <BOS>, <EOS>), parameters counted (torch 2.13, NATSpeech @2e7084e; the scripts of helper E, 2026-12-06)
OFFICIAL = {
    "ps_flow_nips2021": 26_012_801,  # the paper's normal model (official pretrained ps_normal_exp)
    "ps_flow_small_nips2021": 8_180_017,  # the paper's small model (ps_small_exp)
    "ps_flow": 37_723_457,  # egs_bases/tts/ps_flow.yaml (word-id encoder, pre-LN, conv fVAE, text post-net)
    "ps_flow_small": 11_357_745,  # egs_bases/tts/ps_flow_small.yaml
}
_EGS_BASES = dict(use_word_encoder=True, word_vocab_size=10_002, enc_pre_ln=True, text_encoder_postnet=True)

# Piper ids: ^ _ h _ ə _ ␣ _ w _ ɜ _ d _ . _ $  (3 = space, 10 = '.', 0 = the pad that follows each phoneme)
PIPER = [1, 0, 20, 0, 21, 0, 3, 0, 25, 0, 26, 0, 17, 0, 10, 0, 2]


@pytest.fixture(scope="module")
def meta_models() -> dict[str, PortaSpeech]:
    """The four official configs built once (on the CPU: 3.9 s against 8.4 s on the meta device, where every
    weight-norm parametrisation goes through the device mode)."""
    cfgs = {"ps_flow_nips2021": {}, "ps_flow_small_nips2021": _SMALL,
            "ps_flow": {**_EGS_BASES, "fvae_encoder_type": "conv", "fvae_decoder_type": "conv"},
            "ps_flow_small": {**_SMALL, **_EGS_BASES}}
    return {k: PortaSpeech(PortaSpeechConfig(**v)) for k, v in cfgs.items()}


def _n(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_canonical_counts_equal_the_official_code(meta_models):
    assert audiozoo.model_info("portaspeech").params == OFFICIAL["ps_flow_nips2021"]
    assert audiozoo.model_info("portaspeech_small").params == OFFICIAL["ps_flow_small_nips2021"]
    assert {k: _n(m) for k, m in meta_models.items()} == OFFICIAL


def test_grouped_sharing_and_inference_size(meta_models):
    """Post-glow: 12 blocks share 3 WaveNets (groups of 4): 10.67M weights instead of 18.34M without sharing (both
    counts equal the official Glow's). Without the training-only posterior encoder the models have 6.79M (small;
    the abstract's "6.7M") and 21.77M (normal; ~21.8M by the project reference, unverified) weights."""
    from audiozoo.nn.glow import Glow

    with torch.device("meta"):
        unshared = Glow(80, 192, 3, 1, 12, 3, cond_channels=80 + 192, share_wn_layers=0)
    assert _n(meta_models["ps_flow_nips2021"].post_flow) == 10_667_952 and _n(unshared) == 18_336_816
    small, normal = meta_models["ps_flow_small_nips2021"], meta_models["ps_flow_nips2021"]
    assert _n(small) - _n(small.fvae.encoder) == 6_787_473  # 1.3 % above 6.7M (the abstract rounds)
    assert _n(normal) - _n(normal.fvae.encoder) == 21_773_601


def test_word_index_groups_piper_ids_like_natspeech_words():
    # [^ _] [h _ ə _] [␣ _] [w _ ɜ _ d _] [. _] [$]
    assert word_index(PIPER) == [1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 6]
    assert word_index([]) == [] and word_index([20, 21, 3, 22]) == [1, 1, 2, 3]


def _tiny(**kw) -> PortaSpeech:
    torch.manual_seed(0)
    return PortaSpeech(PortaSpeechConfig(**{**_TINY, **kw}))


def _batch(model: PortaSpeech, seed: int = 0):
    args, kw = model.example_inputs(29, batch=3, seed=seed)
    return args[0], kw


def test_shapes_mixture_alignment_and_latent_rate():
    m = _tiny().eval()
    tokens, kw = _batch(m)
    with torch.no_grad():
        out = m(tokens, **kw)
    b, big_l = tokens.shape[0], kw["mel"].shape[-1]
    assert out.mel.shape == (b, 20, big_l) and torch.equal(out.mel_lengths, kw["durations"].sum(1))
    assert out.posterior[1].shape == (b, 4, math.ceil(big_l / 4))  # latent at 1/4 of the frame rate (stride 4)
    # hard word alignment: each frame attends only to the phonemes of its word; rows sum to one
    w0 = int(out.word_lengths[0])
    mel2word = torch.repeat_interleave(torch.arange(1, w0 + 1), out.word_durations[0, :w0])
    a = out.attention[0, : len(mel2word), : int(kw["lengths"][0])]
    outside = mel2word[:, None] != out.ph2word[0, : a.shape[1]][None]
    assert float(a[outside].abs().max()) < 1e-6
    torch.testing.assert_close(a.sum(-1), torch.ones(len(mel2word)))
    # word durations = the token durations summed per word; padded frames at the log floor
    assert int(out.word_durations[0].sum()) == int(kw["durations"][0].sum())
    f = int(out.mel_lengths[1])
    assert f < big_l and bool((out.mel[1, :, f:] == math.log(1e-5)).all())


def test_padding_invariance():
    """Each item alone gives what it gives in a padded batch: deterministic parts of training (durations, attention,
    posterior mean / log-std) and the noise-free inference path."""
    m = _tiny().eval()
    tokens, kw = _batch(m, seed=3)
    with torch.no_grad():
        full = m(tokens, **kw)
        inf = m(tokens, kw["lengths"], noise_scale=0.0, fvae_noise_scale=0.0)
        for i in range(tokens.shape[0]):
            n, f = int(kw["lengths"][i]), int(kw["mel_lengths"][i])
            one = m(tokens[i:i + 1, :n], durations=kw["durations"][i:i + 1, :n], mel=kw["mel"][i:i + 1, :, :f])
            w = int(one.word_lengths[0])
            torch.testing.assert_close(one.word_durations_pred[0], full.word_durations_pred[i, :w], atol=1e-5,
                                       rtol=1e-5)
            torch.testing.assert_close(one.attention[0], full.attention[i, :f, :n], atol=1e-5, rtol=1e-5)
            z = one.posterior[1].shape[-1]
            torch.testing.assert_close(one.posterior[1][0], full.posterior[1][i, :, :z], atol=1e-5, rtol=1e-5)
            solo = m(tokens[i:i + 1, :n], noise_scale=0.0, fvae_noise_scale=0.0)
            g = int(solo.mel_lengths[0])
            assert g == int(inf.mel_lengths[i])
            torch.testing.assert_close(solo.mel[0], inf.mel[i, :, :g], atol=1e-4, rtol=1e-4)


def test_sampling_noise_scales_and_seeds():
    m = _tiny()
    tokens = torch.tensor([PIPER])
    a, la = m.synthesize(tokens, seed=1)
    b, _ = m.synthesize(tokens, seed=1)
    c, _ = m.synthesize(tokens, seed=2)
    d, _ = m.synthesize(tokens, seed=2, noise_scale=0.0, fvae_noise_scale=0.0)
    e, _ = m.synthesize(tokens, seed=3, noise_scale=0.0, fvae_noise_scale=0.0)
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(d, e)
    s, ls = m.synthesize(tokens, alpha=2.0)
    assert int(ls[0]) > int(la[0])  # alpha scales the predicted word durations


def test_losses_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    m, logs, z_p = (torch.randn(2, 4, 6, generator=g) for _ in range(3))
    z = m + torch.randn(2, 4, 6, generator=g) * logs.exp()
    mask = torch.ones(2, 1, 6)
    q = torch.distributions.Normal(m, logs.exp()).log_prob(z)
    ref = (q - torch.distributions.Normal(0, 1).log_prob(z_p)).mean()
    torch.testing.assert_close(flow_prior_kl(z, m, logs, z_p, mask), ref)
    ld = torch.tensor([3.0, -1.0])
    torch.testing.assert_close(postflow_nll(z, ld, mask), -torch.distributions.Normal(0, 1).log_prob(z).mean()
                               - (ld / 6 / 4).mean())
    torch.testing.assert_close(word_duration_loss(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]]),
                                                   torch.tensor([2])), torch.tensor(math.log(2.0) / 2))
    mel = torch.randn(1, 20, 30, generator=g)
    assert float(mel_ssim_loss(mel, mel, torch.tensor([30]))) < 1e-6
    assert float(mel_ssim_loss(mel + torch.randn_like(mel), mel, torch.tensor([30]))) > 0.1


def _piper_batch():
    """Two utterances of Piper-style ids with durations and harmonic audio of those frames."""
    toks = [PIPER, [1, 0, 30, 0, 31, 0, 3, 0, 32, 0, 33, 0, 8, 0, 2]]
    g = torch.Generator().manual_seed(1)
    durs = [[int(x) for x in torch.randint(1, 5, (len(t),), generator=g)] for t in toks]
    wavs = []
    for t, d in zip(toks, durs):
        f0 = torch.cat([torch.full((n * 256,), 100.0 + 4.0 * k) for k, n in zip(t, d)])
        wavs.append(sum(torch.sin(h * 2 * math.pi * torch.cumsum(f0, 0) / 22050) / h for h in range(1, 5)) * 0.3)
    n_max = max(w.shape[-1] for w in wavs)
    return {"audio": torch.stack([torch.nn.functional.pad(w, (0, n_max - w.shape[-1])) for w in wavs]),
            "lengths": torch.tensor([w.shape[-1] for w in wavs]), "phoneme_ids": toks, "durations": durs,
            "audio_filepath": ["a.wav", "b.wav"]}


def test_tts_task_trains_portaspeech_and_every_parameter_learns():
    """The tts task's flow-VAE branch (one stage, every term from step 0): the mel L1 of the fVAE, the word-duration
    loss and the post-glow NLL fall on two fixed utterances; after one step every parameter has a gradient from the
    full loss (the zero-initialised coupling outputs and pre-net projections included)."""
    from audiozoo.train.tasks.tts import TTSTask

    torch.manual_seed(0)
    model = audiozoo.create_model("portaspeech", **{**_TINY, "vocab_size": 40, "enc_prenet": True,
                                                    "word_enc_prenet": True}).train()
    task = TTSTask(vae_flow={"kl_start": 0, "postflow_start": 0, "two_stage": False})
    task.models = {"model": model}
    task.on_fit_start()
    batch = _piper_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    hist = []
    for step in range(40):
        out = task.training_step(task.shared_forward(batch))
        opt.zero_grad()
        out["loss"].backward()
        if step == 1:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
            assert not missing, missing[:5]
        opt.step()
        hist.append({k: float(v.detach()) for k, v in out.items()})
    assert set(hist[0]) == {"loss", "mel_l1", "l1", "ssim", "wdur", "kl", "postflow"}
    first, last = hist[0], hist[-1]
    # measured (torch 2.13, 1 thread, ~6 s): mel L1 9.03 -> 1.78, word duration 0.63 -> 0.06, post-glow NLL 42.3 -> 1.87
    assert last["mel_l1"] < 0.5 * first["mel_l1"]
    assert last["wdur"] < 0.5 * first["wdur"] and last["postflow"] < first["postflow"] - 1.0
    assert all(math.isfinite(v) for h in hist for v in h.values())


def test_two_stage_schedule():
    """Stage 1 (before postflow_start): no post-glow term, KL held until kl_start; stage 2: the post-glow NLL
    alone, no gradient to the rest."""
    from audiozoo.train.tasks._vae_flow_terms import VAEFlowTerms

    m = _tiny().train()
    tokens, kw = _batch(m)
    terms = VAEFlowTerms(kl_start=5, postflow_start=10)
    out = m(tokens, **kw)
    t0 = terms.terms(out, kw, step=0)
    assert "postflow" not in t0
    kl_grad = torch.autograd.grad(t0["loss"], m.fvae.prior_flow.flows[0].post.weight, allow_unused=True)[0]
    assert kl_grad is None  # the KL is held before kl_start
    out = m(tokens, **kw)
    t2 = terms.terms(out, kw, step=10)
    t2["loss"].backward()
    assert all(p.grad is None for n, p in m.named_parameters() if not n.startswith("post_flow."))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.post_flow.parameters())


# ------------------------------------------------------------------------------------------------ parity
def _official(src: Path):
    """NATSpeech's PortaSpeechFlow from a checkout named by $AUDIOZOO_NATSPEECH_SRC, imported with torch, scipy
    and yaml only (its audio utilities, unused by the model, are stubbed)."""
    pytest.importorskip("scipy")
    yaml = pytest.importorskip("yaml")
    sys.path.insert(0, str(src))
    try:
        for name in ("utils.audio", "utils.audio.pitch"):
            mod = types.ModuleType(name)
            mod.__path__ = []
            sys.modules.setdefault(name, mod)
        pu = types.ModuleType("utils.audio.pitch.utils")
        pu.denorm_f0 = pu.f0_to_coarse = None
        sys.modules.setdefault("utils.audio.pitch.utils", pu)
        from modules.tts.portaspeech.portaspeech_flow import PortaSpeechFlow
    finally:
        sys.path.remove(str(src))

    def load(path: Path) -> dict:
        c = yaml.safe_load(path.read_text())
        bases = c.pop("base_config", [])
        out: dict = {}
        for b in [bases] if isinstance(bases, str) else bases:
            out.update(load(src / b if b.startswith("egs/") else (path.parent / b).resolve()))
        return {**out, **c}

    return PortaSpeechFlow, load(src / "egs/datasets/audio/lj/ps_flow_small_nips2021.yaml")


@pytest.mark.parity
def test_parity_with_natspeech():
    """Same weights (the official model's, perturbed away from the zero inits, through checkpoint_filter_fn), same
    inputs and noise: measured max relative differences <= 8e-7 for word durations, attention, fVAE mel, posterior
    mean / log-std, flow-prior latent, post-glow latent, KL (equal), and the inference mel (batch 1)."""
    src = os.environ.get("AUDIOZOO_NATSPEECH_SRC")
    if not src or not (Path(src) / "modules/tts/portaspeech/portaspeech_flow.py").is_file():
        pytest.skip("official source not found: set AUDIOZOO_NATSPEECH_SRC to a NATSpeech/NATSpeech checkout")
    flow_cls, hp = _official(Path(src))
    torch.manual_seed(0)
    vocab = 60
    off = flow_cls(vocab, 100, hp)
    with torch.no_grad():
        for p in off.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ours = audiozoo.create_model("portaspeech_small", vocab_size=vocab)
    ours.load_state_dict(checkpoint_filter_fn({"model." + k: v for k, v in off.state_dict().items()}, ours))
    off.eval()
    ours.eval()
    tokens = torch.tensor([[5, 9, 12, 3, 44, 7, 8, 21, 30, 2, 11, 17], [6, 14, 22, 35, 1, 19, 4, 0, 0, 0, 0, 0]])
    ph2word = torch.tensor([[1, 1, 2, 2, 2, 3, 4, 4, 5, 5, 5, 6], [1, 2, 2, 3, 3, 3, 4, 0, 0, 0, 0, 0]])
    dur = torch.tensor([[2, 3, 1, 0, 4, 2, 3, 1, 2, 2, 3, 1], [3, 1, 2, 4, 1, 2, 3, 0, 0, 0, 0, 0]])  # 24, 16 frames
    wl = ph2word.max(1).values
    wdur = torch.zeros(2, 7, dtype=torch.long).scatter_add(1, ph2word, dur)[:, 1:]
    mel2word = torch.zeros(2, 24, dtype=torch.long)
    for i in range(2):
        mel2word[i, : int(wdur[i].sum())] = torch.repeat_interleave(torch.arange(1, 7), wdur[i])
    mel = (torch.randn(2, 80, 24, generator=torch.Generator().manual_seed(2)) - 4) * (mel2word > 0)[:, None]
    with torch.no_grad():
        torch.manual_seed(11)
        r = off(tokens, None, ph2word=ph2word, word_len=wl.max(), mel2word=mel2word, tgt_mels=mel.transpose(1, 2),
                infer=False, forward_post_glow=True, two_stage=True, global_step=10 ** 6)
        torch.manual_seed(11)
        o = ours(tokens, torch.tensor([12, 7]), durations=dur, mel=mel, ph2word=ph2word)
    fm = mel2word > 0
    close = lambda a, b: torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # noqa: E731
    close(o.word_durations_pred, r["dur"])
    close(o.attention[fm], r["attn"][fm])
    close(o.mel_fvae.transpose(1, 2)[fm], r["mel_out"][fm])
    z, m_q, logs_q, z_p, zm = o.posterior
    keep = zm[:, 0].bool()
    for a, b in ((m_q, r["m_q"]), (logs_q, r["logs_q"]), (z_p, r["z_p"])):
        close(a.transpose(1, 2)[keep], b.transpose(1, 2)[keep])
    close(flow_prior_kl(z, m_q, logs_q, z_p, zm), r["kl"])
    z_pf, ld, pm = o.postflow
    close(z_pf.transpose(1, 2)[fm], r["z_pf"].transpose(1, 2)[fm])
    # NATSpeech divides logdet (B,) by lengths (B, 1): a (B, B) broadcast; postflow_nll divides per item
    official_style = (-torch.distributions.Normal(0, 1).log_prob(z_pf).mean()
                      - (ld / pm.sum((1, 2))[:, None] / 80).mean())
    close(official_style, r["postflow"])
    with torch.no_grad():  # inference (batch 1, given durations): prior sample -> flow -> decoder -> post-glow
        torch.manual_seed(5)
        r = off(tokens[:1], None, ph2word=ph2word[:1], word_len=wl[0], mel2word=mel2word[:1], infer=True,
                forward_post_glow=True, two_stage=True)
        torch.manual_seed(5)
        o = ours(tokens[:1], durations=dur[:1], ph2word=ph2word[:1])
    close(o.mel_fvae.transpose(1, 2), r["mel_out_fvae"])
    close(o.mel.transpose(1, 2), r["mel_out"])
