"""Metrics of facenet_keras.evaluation against values computed by hand on tiny distance sets.

Each set is written out with its genuine (g) and impostor (i) distances; the expected numbers are
worked out in the comments, not by the code under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from facenet_keras.evaluation import metrics as ev


def pairs(genuine, impostor):
    d = np.array(list(genuine) + list(impostor), dtype=float)
    s = np.array([True] * len(genuine) + [False] * len(impostor))
    return d, s


# Perfectly separable: g 0.1 0.2 0.3 | i 0.7 0.8 0.9. Smallest gap 0.1 -> outer thresholds +-0.05.
SEPARABLE = pairs([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
# Overlapping: sorted 0.1g 0.3i 0.4g 0.5i 0.6g 0.9i.
OVERLAP = pairs([0.1, 0.4, 0.6], [0.3, 0.5, 0.9])
# Ties across classes: g 0.2 0.5 0.5 | i 0.5 0.8 0.8.
TIES = pairs([0.2, 0.5, 0.5], [0.5, 0.8, 0.8])


def test_import_does_not_pull_tensorflow_or_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, facenet_keras.evaluation; "
        "print(any(m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------ ROC
def test_roc_separable():
    far, tar, thr = ev.roc_curve(*SEPARABLE)
    np.testing.assert_allclose(thr, [0.05, 0.15, 0.25, 0.5, 0.75, 0.85, 0.95])
    np.testing.assert_allclose(far, [0, 0, 0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tar, [0, 1 / 3, 2 / 3, 1, 1, 1, 1])


def test_roc_overlap():
    roc = ev.roc_curve(*OVERLAP)
    np.testing.assert_allclose(roc.thresholds, [0.05, 0.2, 0.35, 0.45, 0.55, 0.75, 0.95])
    np.testing.assert_allclose(roc.tar, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(roc.far, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])


def test_roc_ties_never_split():
    far, tar, thr = ev.roc_curve(*TIES)
    # distinct 0.2 0.5 0.8 -> thresholds 0.05 0.35 0.65 0.95; 0.5 is never a threshold
    np.testing.assert_allclose(thr, [0.05, 0.35, 0.65, 0.95])
    np.testing.assert_allclose(tar, [0, 1 / 3, 1, 1])
    np.testing.assert_allclose(far, [0, 0, 1 / 3, 1])


# ------------------------------------------------------------------------------------ AUC
@pytest.mark.parametrize(
    "data, expected",
    [
        (SEPARABLE, 1.0),
        # Mann-Whitney: g0.1 beats 3 impostors, g0.4 beats 2, g0.6 beats 1 -> 6/9
        (OVERLAP, 6 / 9),
        # g0.2 beats 3; each g0.5 ties i0.5 (1/2) and beats two 0.8 -> 2 * 2.5 -> (3 + 5) / 9
        (TIES, 8 / 9),
    ],
)
def test_auc(data, expected):
    assert ev.auc(*data) == pytest.approx(expected)


def test_auc_failed_pairs_rank_infinitely_far():
    # g 0.1 0.5 | i 0.3 NaN: g0.1 beats both, g0.5 beats only the failed impostor -> 3/4
    assert ev.auc([0.1, 0.5, 0.3, np.nan], [1, 1, 0, 0]) == pytest.approx(3 / 4)
    # g 0.1 NaN | i 0.3 NaN: 2 + (0 + 1/2 for the tie of the two failures) -> 2.5/4
    assert ev.auc([0.1, np.nan, 0.3, np.nan], [1, 1, 0, 0]) == pytest.approx(2.5 / 4)


def test_accept_rule_is_less_or_equal():
    # as facenet_keras.recognition decides: a distance equal to the threshold is a match
    assert ev.accuracy_at([0.5, 0.9], [1, 0], 0.5) == 1.0
    r = ev.open_set_identification(["A", "A"], [0.5, 0.5], ["A", "Z"], ["A"], 0.5)
    assert r["dir"] == 1.0 and r["fpir"] == 1.0


def test_auc_reversed_scores_is_zero():
    d, s = SEPARABLE
    assert ev.auc(d, ~s) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------ EER
def test_eer_separable_is_zero_at_the_gap():
    rate, thr = ev.eer(*SEPARABLE, return_threshold=True)
    assert rate == pytest.approx(0.0)
    assert thr == pytest.approx(0.5)


def test_eer_exact_crossing():
    # FAR - FRR over the ROC: -1, -2/3, -1/3, 0, ... -> FAR = FRR = 1/3 at threshold 0.45
    rate, thr = ev.eer(*OVERLAP, return_threshold=True)
    assert rate == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.45)


def test_eer_interpolated():
    # g 0.1 0.2 | i 0.15 0.3 0.4: thresholds .075 .125 .175 .25 .35 .425,
    # FAR 0 0 1/3 1/3 2/3 1, FRR 1 .5 .5 0 0 0: crossing 1/3 of the way from .175 to .25
    rate, thr = ev.eer(*pairs([0.1, 0.2], [0.15, 0.3, 0.4]), return_threshold=True)
    assert rate == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.2)


def test_eer_with_ties():
    # FAR 0 0 1/3 1, FRR 1 2/3 0 0: crossing 2/3 of the way between points 1 and 2
    rate, thr = ev.eer(*TIES, return_threshold=True)
    assert rate == pytest.approx(2 / 9)
    assert thr == pytest.approx(0.55)


# ------------------------------------------------------------------------------------ TAR@FAR, calibrate
def test_tar_at_far_and_calibrate_overlap():
    d, s = OVERLAP
    assert ev.tar_at_far(d, s, 1e-2) == pytest.approx(1 / 3)
    assert ev.tar_at_far(d, s, 0.34) == pytest.approx(2 / 3)
    assert ev.tar_at_far(d, s, 1.0) == pytest.approx(1.0)
    assert ev.calibrate(d, s, 1e-3) == pytest.approx(0.2)  # just under the closest impostor (0.3)
    assert ev.calibrate(d, s, 1 / 3) == pytest.approx(0.45)  # one impostor of three allowed
    assert ev.calibrate(d, s, 0.5) == pytest.approx(0.45)
    assert ev.calibrate(d, s, 1.0) == pytest.approx(0.95)


def test_calibrate_separable_and_ties():
    assert ev.calibrate(*SEPARABLE, 0.0) == pytest.approx(0.5)
    assert ev.tar_at_far(*SEPARABLE, 1e-3) == pytest.approx(1.0)
    # ties: the tied 0.5 impostor can only be rejected together with both 0.5 genuine pairs
    assert ev.calibrate(*TIES, 0.0) == pytest.approx(0.35)
    assert ev.tar_at_far(*TIES, 0.0) == pytest.approx(1 / 3)


def test_calibrated_threshold_meets_target_on_random_data():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.4, 0.08, 400), rng.normal(0.85, 0.1, 2000)]).clip(0)
    s = np.arange(d.size) < 400
    for target in (1e-1, 1e-2, 1e-3):
        t = ev.calibrate(d, s, target)
        assert np.mean(d[~s] <= t) <= target
        # one step looser would break the target: the next impostor distance above t
        nxt = np.sort(d[~s][d[~s] >= t])[0]
        assert np.mean(d[~s] <= nxt) > target


# ------------------------------------------------------------------------------------ accuracy
def test_best_threshold():
    assert ev.best_threshold(*SEPARABLE) == pytest.approx(0.5)
    # OVERLAP: correct = tp + (3 - fp) = 3 4 3 4 3 4 3 -> the first (strictest) best, 0.2
    assert ev.best_threshold(*OVERLAP) == pytest.approx(0.2)
    assert ev.accuracy_at(*OVERLAP, 0.2) == pytest.approx(4 / 6)
    # TIES: 3 4 5 3 -> 0.65, accuracy 5/6
    assert ev.best_threshold(*TIES) == pytest.approx(0.65)
    assert ev.accuracy_at(*TIES, 0.65) == pytest.approx(5 / 6)


def test_failed_pairs_are_errors():
    d, s = pairs([0.1, np.nan], [0.9, np.nan])
    assert ev.accuracy_at(d, s, 0.5) == pytest.approx(0.5)
    assert ev.best_threshold(d, s) == pytest.approx(0.5)
    # ranking metrics: NaN is never accepted, so the failed genuine pair costs TAR
    far, tar, _ = ev.roc_curve(d, s)
    assert tar.max() == pytest.approx(0.5) and far.max() == pytest.approx(0.5)
    assert ev.auc(d, s) < 1.0


# folds: 0 = (g0.1, i0.5), 1 = (g0.6, i0.9), 2 = (g0.2, i0.8)
#  fold 0 held out: train g.6 g.2 i.9 i.8 -> t 0.7; g.1 right, i.5 accepted -> 1/2
#  fold 1 held out: train g.1 g.2 i.5 i.8 -> t 0.35; g.6 rejected, i.9 right -> 1/2
#  fold 2 held out: train g.1 g.6 i.5 i.9 -> correct 2 3 2 3 2 -> t 0.3; both right -> 1
KFOLD_D = np.array([0.1, 0.6, 0.2, 0.5, 0.9, 0.8])
KFOLD_S = np.array([1, 1, 1, 0, 0, 0], dtype=bool)


def _check_kfold(result):
    np.testing.assert_allclose(result["fold_accuracies"], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(result["fold_thresholds"], [0.7, 0.35, 0.3])
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["accuracy_std"] == pytest.approx(math.sqrt(1 / 18))
    assert result["threshold"] == pytest.approx(0.45)
    assert result["folds"] == 3 and result["pairs"] == 6 and result["failed"] == 0


def test_kfold_explicit_fold_ids():
    _check_kfold(ev.kfold_accuracy(KFOLD_D, KFOLD_S, fold_ids=["a", "b", "c", "a", "b", "c"]))


def test_kfold_default_folds_are_stratified_round_robin():
    # genuine pairs dealt 0 1 2, impostor pairs dealt 0 1 2: the same folds as above
    _check_kfold(ev.kfold_accuracy(KFOLD_D, KFOLD_S, folds=3))


def test_kfold_counts_failed_pairs():
    d = np.concatenate([KFOLD_D, [np.nan]])
    s = np.concatenate([KFOLD_S, [True]])
    r = ev.kfold_accuracy(d, s, fold_ids=[0, 1, 2, 0, 1, 2, 2])
    assert r["failed"] == 1 and r["pairs"] == 7
    np.testing.assert_allclose(r["fold_accuracies"], [0.5, 0.5, 2 / 3])


def test_verification_report_keys():
    r = ev.verification_report(*OVERLAP, folds=3)
    for key in (
        "accuracy",
        "accuracy_std",
        "threshold",
        "auc",
        "eer",
        "tar_at_far_1e-2",
        "tar_at_far_1e-3",
        "pairs",
        "failed",
    ):
        assert key in r
    assert r["auc"] == pytest.approx(6 / 9) and r["eer"] == pytest.approx(1 / 3)
    assert r["tar_at_far_1e-2"] == pytest.approx(1 / 3)
    assert r["genuine_pairs"] == 3 and r["impostor_pairs"] == 3


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "d, s, message",
    [
        ([0.1, 0.2], [1], "differ in length"),
        ([0.1, 0.2], [1, 2], "0/1"),
        ([-0.1, 0.2], [1, 0], ">= 0"),
        ([np.inf, 0.2], [1, 0], "finite"),
        ([], [], "no pairs"),
        ([[0.1, 0.2]], [[1, 0]], "1-D"),
    ],
)
def test_invalid_pairs(d, s, message):
    with pytest.raises(ValueError, match=message):
        ev.best_threshold(d, s)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="both genuine"):
        ev.roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="target_far"):
        ev.calibrate(*OVERLAP, 1.5)
    with pytest.raises(ValueError, match="folds"):
        ev.kfold_accuracy(*OVERLAP, folds=4)
    with pytest.raises(ValueError, match="single fold"):
        ev.kfold_accuracy(*OVERLAP, fold_ids=[0] * 6)


# ------------------------------------------------------------------------------------ open set
# Gallery: A at (0,0) and (0,0.2), B at (1,0), C at (0,1).
GALLERY = np.array([[0, 0], [0, 0.2], [1, 0], [0, 1]], dtype=float)
GALLERY_LABELS = np.array(["A", "A", "B", "C"])
# p1 A (0.1,0): A at 0.1            p2 B (0.6,0): B at 0.4 (A at 0.6)
# p3 C (0.3,0.3): A's 2nd template at sqrt(0.1) = 0.316 (C at 0.76): misidentified
# p4 D (2,0): B at 1.0 (not enrolled)       p5 E (0,1.3): C at 0.3 (not enrolled)
PROBES = np.array([[0.1, 0], [0.6, 0], [0.3, 0.3], [2, 0], [0, 1.3]])
PROBE_LABELS = np.array(["A", "B", "C", "D", "E"])


def test_nearest_identities():
    labels, d = ev.nearest_identities(GALLERY, GALLERY_LABELS, PROBES)
    assert list(labels) == ["A", "B", "A", "B", "C"]
    np.testing.assert_allclose(d, [0.1, 0.4, math.sqrt(0.1), 1.0, 0.3])


def test_open_set_identification():
    labels, d = ev.nearest_identities(GALLERY, GALLERY_LABELS, PROBES)
    r = ev.open_set_identification(labels, d, PROBE_LABELS, {"A", "B", "C"}, 0.5)
    assert r["mated_probes"] == 3 and r["non_mated_probes"] == 2
    assert r["dir"] == pytest.approx(2 / 3)
    assert r["rank1"] == pytest.approx(2 / 3)
    assert r["misidentification_rate"] == pytest.approx(1 / 3)
    assert r["false_reject_rate"] == pytest.approx(0.0)
    assert r["fpir"] == pytest.approx(0.5) and r["true_reject_rate"] == pytest.approx(0.5)
    strict = ev.open_set_identification(labels, d, PROBE_LABELS, {"A", "B", "C"}, 0.35)
    assert strict["dir"] == pytest.approx(1 / 3) and strict["false_reject_rate"] == pytest.approx(1 / 3)
    assert strict["fpir"] == pytest.approx(0.5)


def test_open_set_failed_probe_is_never_accepted():
    r = ev.open_set_identification(["A", "A"], [np.nan, np.nan], ["A", "Z"], ["A"], 0.6)
    assert r["dir"] == 0.0 and r["rank1"] == 0.0 and r["true_reject_rate"] == 1.0


def test_dir_at_fpir():
    labels, d = ev.nearest_identities(GALLERY, GALLERY_LABELS, PROBES)
    # no false alarm: just under the 0.3 of E -> midpoint of 0.1 and 0.3; only p1 identified
    rate, t = ev.dir_at_fpir(labels, d, PROBE_LABELS, ["A", "B", "C"], 0.0)
    assert t == pytest.approx(0.2) and rate == pytest.approx(1 / 3)
    # one of two unknowns allowed: up to the midpoint of 0.4 and 1.0
    rate, t = ev.dir_at_fpir(labels, d, PROBE_LABELS, ["A", "B", "C"], 0.5)
    assert t == pytest.approx(0.7) and rate == pytest.approx(2 / 3)


# 2 impostor probes x 4 identities at threshold 0.5: probe 0 has 1 close identity, probe 1 has 2.
IMPOSTORS = np.array([[0.3, 0.7, 0.8, 0.9], [0.2, 0.4, 0.8, 0.9]])


def test_false_accept_vs_gallery_size_exact():
    r = ev.false_accept_vs_gallery_size(IMPOSTORS, 0.5)
    # K=1: (1/4 + 2/4)/2; K=2: (1 - C(3,2)/C(4,2) + 1 - C(2,2)/C(4,2))/2 = (1/2 + 5/6)/2;
    # K=3: (1 - 1/4 + 1)/2; K=4: 1
    assert r["sizes"] == [1, 2, 3, 4]
    np.testing.assert_allclose(r["rate"], [3 / 8, 2 / 3, 7 / 8, 1.0])
    assert r["per_comparison_far"] == pytest.approx(3 / 8)
    np.testing.assert_allclose(r["independent"], [1 - (5 / 8) ** k for k in range(1, 5)])


def test_false_accept_vs_gallery_size_matches_enumeration():
    """Against brute-force enumeration of every K-subset, on distances drawn from a grid so that many
    equal the threshold exactly: the rule is d <= tau (a tie is a false accept)."""
    rng = np.random.default_rng(1)
    tau = 0.55
    d = rng.choice([0.3, 0.45, tau, tau, 0.7, 0.9], size=(6, 7))
    exclude = np.zeros_like(d, dtype=bool)
    exclude[np.arange(6), np.arange(6)] = True  # each probe's own identity
    assert ((d == tau) & ~exclude).sum() >= 5
    r = ev.false_accept_vs_gallery_size(d, tau, exclude=exclude)
    for k, rate in zip(r["sizes"], r["rate"]):
        per_probe = []
        for i in range(6):
            pool = [j for j in range(7) if not exclude[i, j]]
            hits = [any(d[i, j] <= tau for j in sub) for sub in itertools.combinations(pool, k)]
            per_probe.append(np.mean(hits))
        assert rate == pytest.approx(np.mean(per_probe))


def test_false_accept_at_exactly_the_threshold():
    """A stranger exactly at tau is accepted: the 1:K protocol counts d == tau as a false accept,
    as verify and recognize decide."""
    d = np.array([[0.6, 0.9], [0.8, 0.9]])
    r = ev.false_accept_vs_gallery_size(d, 0.6)
    assert r["per_comparison_far"] == pytest.approx(1 / 4)
    np.testing.assert_allclose(r["rate"], [1 / 4, 1 / 2])
    assert ev.false_accept_vs_gallery_size(d, np.nextafter(0.6, 0))["rate"] == [0.0, 0.0]


def test_false_accept_with_exclusions():
    ex = np.zeros((2, 4), dtype=bool)
    ex[1, 1] = True  # probe 1 left with 3 identities, one of them within 0.5
    r = ev.false_accept_vs_gallery_size(IMPOSTORS, 0.5, exclude=ex)
    assert r["sizes"] == [1, 2, 3]
    np.testing.assert_allclose(r["rate"][0], (1 / 4 + 1 / 3) / 2)
    np.testing.assert_allclose(r["rate"][2], (3 / 4 + 1) / 2)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        ev.false_accept_vs_gallery_size(IMPOSTORS, 0.5, sizes=[4], exclude=ex)


def test_per_comparison_far():
    assert ev.per_comparison_far(0.01, 1) == pytest.approx(0.01)
    p = ev.per_comparison_far(0.01, 100)
    assert 1 - (1 - p) ** 100 == pytest.approx(0.01)
    assert p == pytest.approx(0.01 / 100, rel=0.01)  # "about K times" for small rates
    with pytest.raises(ValueError, match="gallery_size"):
        ev.per_comparison_far(0.01, 0)


def test_threshold_for_gallery_size_is_stricter_for_larger_k():
    # K=1, target 1/2: t 0.75 gives (2/4 + 2/4)/2 = 1/2, t 0.85 gives 3/4
    assert ev.threshold_for_gallery_size(IMPOSTORS, 1, 0.5) == pytest.approx(0.75)
    # K=2, target 1/2: t 0.35 gives (1/2 + 1/2)/2, t 0.55 gives 2/3
    assert ev.threshold_for_gallery_size(IMPOSTORS, 2, 0.5) == pytest.approx(0.35)


# ------------------------------------------------------------------------------------ figures
def test_plots_return_figures_and_save(tmp_path):
    from matplotlib.figure import Figure

    from facenet_keras.evaluation import plots

    d, s = OVERLAP
    fig = plots.plot_verification(d, s, 0.45, title="overlap")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    hist = fig.axes[1]
    assert any(list(line.get_xdata()) == [0.45, 0.45] for line in hist.get_lines())  # the threshold
    out = plots.save_figure(fig, tmp_path / "sub" / "roc.png")
    assert open(out, "rb").read(4) == b"\x89PNG"

    curve = ev.false_accept_vs_gallery_size(IMPOSTORS, 0.5)
    fig = plots.plot_false_accept_vs_gallery_size({"tau 0.5": curve}, target=0.1)
    ax = fig.axes[0]
    measured = ax.get_lines()[0]
    np.testing.assert_allclose(measured.get_ydata(), curve["rate"])
    with pytest.raises(ValueError, match="no curves"):
        plots.plot_false_accept_vs_gallery_size([])
