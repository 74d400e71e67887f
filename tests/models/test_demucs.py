"""Demucs v2 (``demucs_v2``): parameter count, resampler, length handling, converter, parity with the ``demucs``
package's ``demucs.demucs.Demucs`` (4.1.0) given the same weights."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError
from audiozoo.models.separate import demucs as dm

#: max |difference| allowed against the demucs package (measured: ~2e-7 on outputs of magnitude ~0.1)
BOUND = 1e-5
SOURCES = list(dm.MUSDB_SOURCES)


def _ref(**kw):
    pkg = pytest.importorskip("demucs.demucs", reason="pip install demucs==4.1.0 (parity extra)")
    # the v2 network inside the package's class: no DConv branch, no GroupNorm (norm_starts >= depth), ReLU,
    # a 2-layer BiLSTM; context=c there is a "same"-padded kernel of 2c + 1
    base = dict(dconv_mode=0, gelu=False, norm_starts=99, normalize=False, lstm_layers=2, context=1)
    return pkg.Demucs(SOURCES, **{**base, **kw}).eval()


def _ours(ref, **kw):
    m = audiozoo.create_model("demucs_v2", channels=ref.channels, depth=ref.depth, pad_context=True,
                              lstm_layers=ref.lstm.lstm.num_layers if ref.lstm is not None else 0,
                              normalize=ref.normalize, resample=ref.resample, **kw)
    audiozoo.hub.load_into(m, ref.state_dict(), converter=dm.checkpoint_filter_fn)
    return m.eval()


def test_canonical_param_counts_match_the_package():
    pkg = pytest.importorskip("demucs.demucs")
    for name, ch in (("demucs_v2", 64), ("demucs_v2_48", 48)):
        with torch.device("meta"):
            ref = pkg.Demucs(SOURCES, channels=ch, dconv_mode=0, gelu=False, norm_starts=99, normalize=False,
                             lstm_layers=2, context=1)
            ours = audiozoo.create_model(name)
        n_ref = sum(p.numel() for p in ref.parameters())
        assert sum(p.numel() for p in ours.parameters()) == n_ref == audiozoo.model_info(name).params


@pytest.mark.parity
@pytest.mark.parametrize("length", [1000, 4411])
def test_parity_with_demucs_package(length):
    torch.manual_seed(0)
    ref = _ref(channels=8, depth=4)
    ours = _ours(ref)
    x = 0.2 * torch.randn(2, 2, length)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.shape == b.shape == (2, 4, 2, length)
    err = (a - b).abs().max().item()
    assert err < BOUND * max(1.0, a.abs().max().item()), err


@pytest.mark.parity
def test_parity_with_normalize_and_no_resample():
    torch.manual_seed(1)
    ref = _ref(channels=6, depth=3, normalize=True, resample=False, lstm_layers=1)
    ours = _ours(ref)
    x = 0.3 * torch.randn(1, 2, 777) + 0.05
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert (a - b).abs().max().item() < BOUND * max(1.0, a.abs().max().item())


@pytest.mark.parity
def test_valid_context_conv_matches_padded_one_inside():
    """The v2 decoder's context conv is 'valid' (no padding): with no LSTM (whose reach is global) the network is
    the package's 'same'-padded one up to edge effects, so the two agree away from the ends. This checks the
    v2 length bookkeeping (valid_length with context, centre trims) against the package's."""
    torch.manual_seed(2)
    ref = _ref(channels=4, depth=3, lstm_layers=0)
    ours = audiozoo.create_model("demucs_v2", channels=4, depth=3, lstm_layers=0, pad_context=False)
    audiozoo.hub.load_into(ours, ref.state_dict(), converter=dm.checkpoint_filter_fn)
    # the strided convolutions are not shift-invariant: pick a length whose centred paddings (ours and the
    # package's) differ by a multiple of the total stride (4^3 at the x2 rate = 32 input samples)
    n = next(t for t in range(20000, 20400)
             if ((ours.valid_length(t) - t) // 2 - (ref.valid_length(t) - t) // 2) % 32 == 0)
    x = 0.2 * torch.randn(1, 2, n)
    with torch.no_grad():
        a, b = ref(x), ours.eval()(x)
    mid = slice(5000, 15000)
    assert (a[..., mid] - b[..., mid]).abs().max().item() < 1e-5
    assert (a - b).abs().max().item() > 1e-4  # the edges do differ (the test can tell the two apart)


def test_resampler_matches_julius():
    julius = pytest.importorskip("julius")
    x = torch.randn(3, 1001)
    for old, new in ((1, 2), (2, 1)):
        k, w = dm.sinc_resample_kernel(old, new)
        ours = dm._resample(x, k, w, old, new)
        ref = julius.resample_frac(x, old, new)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max().item() < 1e-6


def test_any_length_and_contract():
    m = audiozoo.create_model("demucs_v2", **audiozoo.model_info("demucs_v2").tiny).eval()
    for t in (1, 37, 1000):
        with torch.no_grad():
            y = m(0.1 * torch.randn(1, 2, t))
        assert y.shape == (1, 4, 2, t) and torch.isfinite(y).all()
    with pytest.raises(AudioError, match=r"\(B, 2, T\)"):
        m(torch.zeros(1, 1, 100))


def test_converter_reads_the_v2_layout():
    """The official v2 files use ``encoder.i.{0,2}`` / ``decoder.i.{0,2}``; renaming our keys that way and
    converting back gives our state exactly."""
    m = audiozoo.create_model("demucs_v2", channels=4, depth=2, lstm_layers=1)
    names = {"conv": "0", "rewrite": "2", "conv_tr": "2"}
    v2 = {}
    for k, v in m.state_dict().items():
        p = k.split(".")
        if p[0] in ("encoder", "decoder"):
            j = "0" if (p[0], p[2]) == ("decoder", "rewrite") else names[p[2]]
            k = ".".join([p[0], p[1], j, p[3]])
        v2[k] = v.clone()
    other = audiozoo.create_model("demucs_v2", channels=4, depth=2, lstm_layers=1, pretrained=v2)
    for k, v in m.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    with pytest.raises(CheckpointError, match="DiffQ"):
        dm.checkpoint_filter_fn({"__quantized": True, "x": torch.zeros(1)}, m)


class _Stub:  # a training package pickles the model class: not loadable without running code
    pass


def test_load_checkpoint_refuses_pickled_classes(tmp_path):
    p = tmp_path / "pkg.th"
    torch.save({"klass": _Stub, "state": {"w": torch.zeros(1)}}, p)
    with pytest.raises(CheckpointError, match="weights_only"):
        dm.load_demucs_checkpoint(p)
    q = tmp_path / "plain.th"
    torch.save({"encoder.0.0.weight": torch.zeros(1)}, q)
    assert set(dm.load_demucs_checkpoint(q)) == {"encoder.0.0.weight"}


def test_rescale_init_sets_the_weight_scale():
    m = audiozoo.create_model("demucs_v2", channels=8, depth=3, lstm_layers=1)
    w = m.encoder[1].conv.weight
    # after rescaling, std(w) = sqrt(std0 * 0.1): for PyTorch's default init this is far from std0
    m0 = audiozoo.create_model("demucs_v2", channels=8, depth=3, lstm_layers=1, rescale=0.0)
    s, s0 = w.std().item(), m0.encoder[1].conv.weight.std().item()
    assert abs(s - (s0 * 0.1) ** 0.5) < 0.3 * s
