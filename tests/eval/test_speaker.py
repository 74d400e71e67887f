"""Speaker similarity and EER (audiozoo.eval.speaker), checked against a brute-force threshold sweep and
scikit-learn's ROC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.eval.speaker import (
    eer,
    error_rates,
    nearest_neighbour_accuracy,
    similarity_matrix,
    speaker_similarity,
    speaker_verification,
    verification_trials,
    voice_ranking,
)


def _sweep(scores: np.ndarray, labels: np.ndarray) -> list[tuple[float, float]]:
    """(far, frr) at every threshold, by counting trial by trial (accept when score >= t)."""
    out = []
    for t in [np.inf, *sorted(set(scores.tolist()), reverse=True)]:
        fa = sum(1 for s, lab in zip(scores, labels) if s >= t and not lab)
        fr = sum(1 for s, lab in zip(scores, labels) if s < t and lab)
        out.append((fa / (labels == 0).sum(), fr / (labels == 1).sum()))
    return out


def _random_trials(seed: int, n_t: int = 40, n_n: int = 90, ties: bool = False):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(1.0, 1.0, n_t), rng.normal(0.0, 1.0, n_n)]
    if ties:
        s = np.round(s, 1)  # many equal scores across classes
    return s, np.r_[np.ones(n_t, int), np.zeros(n_n, int)]


@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True)])
def test_error_rates_equal_a_brute_force_sweep(seed, ties):
    s, lab = _random_trials(seed, ties=ties)
    _, far, frr = error_rates(s, lab)
    np.testing.assert_allclose(np.c_[far, frr], np.array(_sweep(s, lab)), atol=1e-12)


@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True), (4, False)])
def test_eer_lies_where_the_sweep_brackets_it_and_matches_sklearn(seed, ties):
    s, lab = _random_trials(seed, ties=ties)
    value, thr = eer(s, lab)
    pts = np.array(_sweep(s, lab))
    # the crossing lies between the best "both errors at most" and "both errors at least" operating points
    assert pts.min(axis=1).max() - 1e-12 <= value <= pts.max(axis=1).min() + 1e-12
    # the usual recipe: sklearn's ROC, then solve 1 - x = tpr(x) on its piecewise-linear interpolation
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(lab, s)
    want = brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-12)
    assert value == pytest.approx(want, abs=1e-9)
    # the threshold is a score, at one of the two operating points that bracket the crossing
    far_t, frr_t = np.mean(s[lab == 0] >= thr), np.mean(s[lab == 1] < thr)
    assert thr in set(s.tolist()) and min(far_t, frr_t) - 1e-12 <= value <= max(far_t, frr_t) + 1e-12


def test_eer_exact_cases():
    assert eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == (0.0, 0.8)  # separated: threshold at the lowest target
    assert eer([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0])[0] == 1.0  # inverted scores
    # one target below one non-target among 2 + 2: FAR = FRR = 0.5 at threshold 0.6
    assert eer([0.9, 0.3, 0.6, 0.1], [1, 1, 0, 0])[0] == pytest.approx(0.5)
    # invariant under a monotonic transform of the scores
    s, lab = _random_trials(5)
    assert eer(np.exp(3 * s), lab)[0] == pytest.approx(eer(s, lab)[0], abs=1e-12)


def test_eer_refuses_bad_trials():
    with pytest.raises(AudioError, match="both target and non-target"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(AudioError, match="same number"):
        eer([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(AudioError, match="0 .* or 1"):
        eer([0.1, 0.2], [2, 0])
    with pytest.raises(AudioError, match="NaN"):
        eer([np.nan, 0.2], [1, 0])


def test_speaker_similarity_and_matrix():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(speaker_similarity(a, b), torch.tensor([1.0, 0.0, -1.0]))
    m = similarity_matrix(a)
    assert m.shape == (3, 3)
    torch.testing.assert_close(m.diagonal(), torch.ones(3))
    assert m[0, 2] == pytest.approx(2**-0.5)
    # an embedding function is applied to both sides
    sim = speaker_similarity(np.ones((2, 4)), -np.ones((2, 4)), embed=lambda x: np.asarray(x)[:, :2])
    torch.testing.assert_close(sim, torch.full((2,), -1.0, dtype=torch.float64))
    with pytest.raises(AudioError, match="sizes differ"):
        speaker_similarity(torch.ones(3), torch.ones(4))


def test_verification_on_clustered_embeddings():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g)
    spk = [i // 5 for i in range(20)]
    emb = centres[spk] + 0.05 * torch.randn(20, 16, generator=g)
    scores, labels = verification_trials(emb, spk)
    assert scores.shape == (190,) and labels.sum() == 4 * 10
    r = speaker_verification(emb, spk)
    assert r["eer"] == 0.0 and r["nn_accuracy"] == 1.0 and r["target_mean"] > r["nontarget_mean"]
    # shuffled labels: verification is near chance
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(spk))
    assert speaker_verification(emb, shuffled)["eer"] > 0.2
    assert nearest_neighbour_accuracy(emb, shuffled) < 0.7
    with pytest.raises(ConfigError, match="two speakers"):
        speaker_verification(emb, [0] * 20)


def test_voice_ranking_ranks_the_target_and_names_the_best_other():
    g = torch.Generator().manual_seed(0)
    cents = {v: torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0) for v in "abcd"}
    # utterances near "b", slightly towards "c"
    utt = torch.stack([cents["b"] + 0.3 * cents["c"] + 0.05 * torch.randn(16, generator=g) for _ in range(5)])
    r = voice_ranking(utt, cents, "b")
    assert r["target_rank"] == 1 and r["best_other"][0] == "c" and r["n"] == 5
    assert r["utterances_closest_to_target"] == 5 and r["to_target"] > r["best_other"][1]
    want = float(torch.nn.functional.cosine_similarity(utt, cents["b"][None]).mean())
    assert r["to_target"] == pytest.approx(want, abs=1e-4) and r["voices"]["b"] == r["to_target"]
    r_c = voice_ranking(utt, cents, "c")  # the same utterances scored for "c": "b" beats it
    assert r_c["target_rank"] == 2 and r_c["best_other"][0] == "b" and r_c["utterances_closest_to_target"] == 0
    assert voice_ranking(utt[0], cents, "b")["n"] == 1  # one (D,) embedding
    with pytest.raises(ConfigError, match="target"):
        voice_ranking(utt, cents, "z")
