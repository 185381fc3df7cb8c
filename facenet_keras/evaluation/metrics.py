"""Verification and identification metrics: pure numpy, arrays in, numbers out.

Conventions used throughout:

* A *distance* is the Euclidean distance between two embeddings (dlib scale: the same person is
  roughly ``d < 0.6``). Smaller means more alike.
* A decision *accepts* a pair ("same person") when ``distance <= threshold``, as
  :mod:`facenet_keras.recognition` decides. Every threshold this module returns lies strictly
  between two distinct observed distances (the midpoint of a gap), or strictly outside all of them,
  so on the data it was computed from ``<`` and ``<=`` agree and tied distances are never split.
* ``same`` is a boolean array: True for a genuine (same-person) pair, False for an impostor pair.
* A distance of NaN marks a *failed* pair (no face found in one photo). Accuracy counts a failed
  pair as an error whatever its label. Ranking metrics (ROC, AUC, EER, TAR@FAR, calibration) treat
  it as rejected at every threshold (``d = +inf``): what a deployed system does when it finds no
  face. Failed pairs are never dropped silently: they stay in every denominator.
* FAR (false accept rate) = accepted impostor pairs / impostor pairs;
  TAR (true accept rate)  = accepted genuine pairs / genuine pairs; FRR = 1 - TAR.

Open-set identification (1:K) follows the usual NIST vocabulary: a *mated* probe is a photo of an
enrolled person, a *non-mated* probe is a photo of someone not enrolled. At a threshold ``tau``:

* DIR (detection and identification rate): mated probes whose nearest enrolled identity is the
  right one AND within ``tau`` (d <= tau);
* FPIR (false positive identification rate, "false alarm"): non-mated probes whose nearest
  enrolled identity is within ``tau`` (someone unknown accepted as somebody);
* true reject rate = 1 - FPIR: correct "not recognised" answers.

Why 1:K needs a stricter threshold: a non-mated probe is compared with all K identities and is
falsely accepted if ANY of them is within ``tau``; with a per-comparison FAR ``p`` that is
about ``1 - (1 - p)**K``, i.e. roughly ``K * p`` while small. :func:`false_accept_vs_gallery_size`
measures that growth exactly on real distances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from facenet_keras.identity.search import pairwise_distances

__all__ = [
    "RocCurve",
    "roc_curve",
    "auc",
    "eer",
    "tar_at_far",
    "calibrate",
    "best_threshold",
    "accuracy_at",
    "kfold_accuracy",
    "verification_report",
    "pairwise_distances",
    "identity_distances",
    "nearest_identities",
    "open_set_identification",
    "dir_at_fpir",
    "false_accept_vs_gallery_size",
    "threshold_for_gallery_size",
    "per_comparison_far",
    "bcubed",
    "pairwise_f",
]


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------
def _as_pairs(distances, same) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pairs set: 1-D float distances (NaN allowed = failed) and 1-D boolean labels."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 1:
        raise ValueError(f"distances must be a 1-D array, got shape {d.shape}")
    s = np.asarray(same)
    if s.ndim != 1:
        raise ValueError(f"same must be a 1-D array, got shape {s.shape}")
    if s.shape != d.shape:
        raise ValueError(f"distances and same differ in length: {d.shape[0]} != {s.shape[0]}")
    if d.size == 0:
        raise ValueError("no pairs given")
    if s.dtype != bool:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("same must hold booleans or 0/1 values")
        s = s.astype(bool)
    if np.isinf(d).any() or (d[~np.isnan(d)] < 0).any():
        raise ValueError("distances must be finite and >= 0 (NaN marks a failed pair)")
    return d, s


def _require_both_classes(s: np.ndarray, what: str) -> None:
    if not s.any() or s.all():
        raise ValueError(f"{what} needs both genuine (same=1) and impostor (same=0) pairs")


def _check_rate(rate: float, name: str) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {rate}")
    return rate


# --------------------------------------------------------------------------------------------
# candidate thresholds
# --------------------------------------------------------------------------------------------
def _candidate_thresholds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds that separate the sorted distinct finite ``values`` v_1 < ... < v_m.

    Returns ``(thresholds, distinct)`` with m + 1 thresholds: one below v_1 (accept nothing), the
    midpoints (v_i + v_{i+1}) / 2, and one above v_m (accept every finite distance). The outer two
    sit half the smallest gap (or half a unit of scale when m = 1) outside the data, so every
    threshold is strictly between or outside the observed distances.
    """
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size == 0:
        return np.array([0.0]), distinct
    if distinct.size > 1:
        half_gap = 0.5 * float(np.min(np.diff(distinct)))
    else:
        half_gap = 0.5 * max(abs(float(distinct[0])), 1e-6)
    mids = 0.5 * (distinct[:-1] + distinct[1:])
    thresholds = np.concatenate([[distinct[0] - half_gap], mids, [distinct[-1] + half_gap]])
    return thresholds, distinct


def _accept_counts(d: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor pairs accepted (``d <= t``) at each threshold; NaN is never accepted."""
    finite = ~np.isnan(d)
    pos = np.sort(d[finite & s])
    neg = np.sort(d[finite & ~s])
    tp = np.searchsorted(pos, thresholds, side="right")
    fp = np.searchsorted(neg, thresholds, side="right")
    return tp, fp


# --------------------------------------------------------------------------------------------
# ROC and its summaries
# --------------------------------------------------------------------------------------------
class RocCurve(tuple):
    """``(far, tar, thresholds)``, three 1-D arrays of equal length, FAR and TAR non-decreasing.

    Point i is what the rule ``distance <= thresholds[i]`` gives. The first point accepts nothing
    (0, 0); the last accepts every pair that has a distance (FAR = TAR = 1 unless pairs failed).
    """

    __slots__ = ()

    def __new__(cls, far, tar, thresholds):
        return super().__new__(cls, (far, tar, thresholds))

    far = property(lambda self: self[0])
    tar = property(lambda self: self[1])
    thresholds = property(lambda self: self[2])


def roc_curve(distances, same) -> RocCurve:
    """ROC of a pairs set: ``(far, tar, thresholds)`` at every threshold that changes a decision.

    distances: (n,) Euclidean distances (NaN = failed pair, never accepted); same: (n,) bool.
    """
    d, s = _as_pairs(distances, same)
    _require_both_classes(s, "an ROC curve")
    thresholds, _ = _candidate_thresholds(d)
    tp, fp = _accept_counts(d, s, thresholds)
    return RocCurve(fp / np.count_nonzero(~s), tp / np.count_nonzero(s), thresholds)


def auc(distances, same) -> float:
    """Area under the ROC curve: P(an impostor pair is farther than a genuine pair).

    Ties between a genuine and an impostor distance count one half (the ROC's diagonal step), so
    this equals the Mann-Whitney statistic. Failed pairs rank as infinitely far (tied with each
    other): the curve is closed from its last point to (1, 1), which gives exactly that credit.
    Range [0, 1]; 1 = perfectly separable.
    """
    far, tar, _ = roc_curve(distances, same)
    far = np.concatenate([far, [1.0]])
    tar = np.concatenate([tar, [1.0]])
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) * 0.5))


def eer(distances, same, *, return_threshold: bool = False):
    """Equal error rate: where FAR = FRR on the ROC curve, linearly interpolated between points.

    Returns the rate in [0, 1] (0 for a perfectly separable set), or ``(rate, threshold)`` with
    ``return_threshold=True``, the threshold interpolated the same way.
    """
    far, tar, thresholds = roc_curve(distances, same)
    frr = 1.0 - tar
    diff = far - frr  # non-decreasing: -1 (or more) at the first point, >= 0 at the last
    i = int(np.argmax(diff >= 0)) if (diff >= 0).any() else len(diff) - 1
    if diff[i] <= 0 or i == 0:  # exact crossing at a point (or no crossing at all)
        rate, threshold = 0.5 * (far[i] + frr[i]), thresholds[i]
    else:
        t = -diff[i - 1] / (diff[i] - diff[i - 1])
        rate = far[i - 1] + t * (far[i] - far[i - 1])
        threshold = thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1])
    rate = float(rate)
    return (rate, float(threshold)) if return_threshold else rate


def tar_at_far(distances, same, far: float) -> float:
    """The best true accept rate over thresholds whose false accept rate is at most ``far``.

    With n impostor pairs, FARs below 1/n can only be met by accepting no impostor at all, so the
    figure then measures "FAR = 0"; report the number of impostor pairs beside it.
    """
    far = _check_rate(far, "far")
    fars, tars, _ = roc_curve(distances, same)
    ok = fars <= far + 1e-12
    return float(tars[ok].max())


def calibrate(distances, same, target_far: float) -> float:
    """The threshold for a target false accept rate: the largest one with FAR <= ``target_far``.

    Among thresholds that keep FAR within the target it returns the one accepting the most genuine
    pairs. It lies midway between the last accepted and the first rejected distance. With n
    impostor pairs a target below 1/n yields the threshold just under the closest impostor pair.
    Only the impostor pairs matter, but genuine pairs are validated too so a set can be reused.
    """
    target_far = _check_rate(target_far, "target_far")
    fars, _, thresholds = roc_curve(distances, same)
    ok = np.flatnonzero(fars <= target_far + 1e-12)
    return float(thresholds[ok[-1]])


def accuracy_at(distances, same, threshold: float) -> float:
    """Fraction of pairs decided correctly by ``distance <= threshold``; failed pairs are errors."""
    d, s = _as_pairs(distances, same)
    finite = ~np.isnan(d)
    correct = finite & ((d <= threshold) == s)
    return float(np.count_nonzero(correct) / d.size)


def best_threshold(distances, same) -> float:
    """The threshold that maximises accuracy on this set.

    Candidates are the midpoints between neighbouring distinct distances (plus one below and one
    above them all), so tied distances always fall on the same side. When several thresholds reach
    the same best accuracy the smallest (strictest) wins: deterministic, and the safer error.
    Failed pairs are errors at every threshold and so do not move the choice.
    """
    d, s = _as_pairs(distances, same)
    thresholds, _ = _candidate_thresholds(d)
    tp, fp = _accept_counts(d, s, thresholds)
    n_neg_finite = np.count_nonzero(~s & ~np.isnan(d))
    correct = tp + (n_neg_finite - fp)
    return float(thresholds[int(np.argmax(correct))])


def _stratified_folds(s: np.ndarray, folds: int) -> np.ndarray:
    """Fold index per pair: genuine and impostor pairs dealt round-robin in file order."""
    fold_ids = np.empty(s.shape[0], dtype=np.int64)
    for label in (True, False):
        idx = np.flatnonzero(s == label)
        fold_ids[idx] = np.arange(idx.size) % folds
    return fold_ids


def kfold_accuracy(distances, same, folds: int = 10, fold_ids=None) -> dict:
    """The standard pairs protocol: k-fold cross-validated verification accuracy.

    For each fold the threshold is chosen on the other k-1 folds (:func:`best_threshold`) and the
    accuracy measured on the held-out fold. Without ``fold_ids`` the pairs are dealt into ``folds``
    stratified folds (genuine and impostor pairs round-robin in their given order, no randomness);
    with ``fold_ids`` ((n,) labels of any hashable kind, e.g. a CSV's ``fold`` column) those define
    the folds and ``folds`` is ignored.

    Returns a dict: ``accuracy`` (mean over folds), ``accuracy_std`` (population std over folds, as
    LFW results are usually quoted), ``threshold`` (mean of the fold thresholds), ``fold_accuracies``,
    ``fold_thresholds``, ``folds`` (number of folds), ``pairs`` and ``failed`` (NaN distances, which
    count as errors).
    """
    d, s = _as_pairs(distances, same)
    if fold_ids is None:
        folds = int(folds)
        if folds < 2:
            raise ValueError(f"folds must be >= 2, got {folds}")
        if folds > min(np.count_nonzero(s), np.count_nonzero(~s)):
            raise ValueError(f"{folds} folds need at least {folds} genuine and {folds} impostor pairs")
        ids = _stratified_folds(s, folds)
    else:
        raw = np.asarray(fold_ids)
        if raw.shape != d.shape:
            raise ValueError(f"fold_ids must have one entry per pair ({d.shape[0]}), got shape {raw.shape}")
        _, ids = np.unique(raw, return_inverse=True)
        ids = ids.reshape(-1)
        if ids.max() < 1:
            raise ValueError("fold_ids define a single fold; cross-validation needs at least two")
    n_folds = int(ids.max()) + 1
    accuracies, thresholds = [], []
    for k in range(n_folds):
        test = ids == k
        train = ~test
        t = best_threshold(d[train], s[train])
        thresholds.append(t)
        accuracies.append(accuracy_at(d[test], s[test], t))
    acc = np.asarray(accuracies)
    return {
        "accuracy": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "threshold": float(np.mean(thresholds)),
        "fold_accuracies": [float(a) for a in acc],
        "fold_thresholds": [float(t) for t in thresholds],
        "folds": n_folds,
        "pairs": int(d.size),
        "failed": int(np.count_nonzero(np.isnan(d))),
    }


def verification_report(distances, same, folds: int = 10, fold_ids=None, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """Everything the ``evaluate`` command reports, as one JSON-ready dict.

    Keys: ``accuracy``, ``accuracy_std``, ``threshold`` (mean k-fold threshold), ``auc``, ``eer``,
    ``eer_threshold``, ``tar_at_far_<far>`` for each far (e.g. ``tar_at_far_1e-2``), ``pairs``,
    ``genuine_pairs``, ``impostor_pairs``, ``failed``, ``folds``, ``fold_accuracies``,
    ``fold_thresholds``.
    """
    d, s = _as_pairs(distances, same)
    report = kfold_accuracy(d, s, folds=folds, fold_ids=fold_ids)
    rate, thr = eer(d, s, return_threshold=True)
    report.update(
        auc=auc(d, s),
        eer=rate,
        eer_threshold=thr,
        genuine_pairs=int(np.count_nonzero(s)),
        impostor_pairs=int(np.count_nonzero(~s)),
    )
    for far in fars:
        report[f"tar_at_far_{_far_key(far)}"] = tar_at_far(d, s, far)
    return report


def _far_key(far: float) -> str:
    """1e-2 -> '1e-2', 0.001 -> '1e-3', 0.05 -> '0.05' (the JSON key suffix)."""
    exponent = math.log10(far) if far > 0 else None
    if exponent is not None and abs(exponent - round(exponent)) < 1e-9:
        return f"1e{int(round(exponent))}"
    return f"{far:g}"


# --------------------------------------------------------------------------------------------
# open-set identification (1:K)
# --------------------------------------------------------------------------------------------
def identity_distances(gallery, gallery_labels, probes) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each probe to each enrolled identity (its closest template).

    gallery: (K, D) embeddings; gallery_labels: (K,) identity per row (several rows may share one);
    probes: (n, D). Returns ``(distances (n, N) float64, identities (N,))``, identities sorted.
    """
    gallery = np.asarray(gallery)
    labels = np.asarray(gallery_labels)
    if gallery.ndim != 2 or labels.shape != (gallery.shape[0],):
        raise ValueError(f"gallery must be (K, D) with one label per row, got {gallery.shape} and {labels.shape}")
    if gallery.shape[0] == 0:
        raise ValueError("the gallery is empty")
    dist = pairwise_distances(probes, gallery)
    identities, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(-1)
    per_identity = np.full((dist.shape[0], identities.size), np.inf)
    for j in range(identities.size):
        per_identity[:, j] = dist[:, inverse == j].min(axis=1)
    return per_identity, identities


def nearest_identities(gallery, gallery_labels, probes) -> tuple[np.ndarray, np.ndarray]:
    """Rank-1 search: for each probe, the closest enrolled identity and its distance.

    gallery: (K, D) embeddings; gallery_labels: (K,) identity per row (several rows may share one);
    probes: (n, D). Returns ``(labels (n,), distances (n,))``.
    """
    per_identity, identities = identity_distances(gallery, gallery_labels, probes)
    j = np.argmin(per_identity, axis=1)
    return identities[j], per_identity[np.arange(j.size), j]


def _as_open_set(nearest_labels, nearest_distances, probe_labels, enrolled):
    labels = np.asarray(nearest_labels)
    d = np.asarray(nearest_distances, dtype=np.float64)
    truth = np.asarray(probe_labels)
    if not (labels.ndim == d.ndim == truth.ndim == 1 and labels.shape == d.shape == truth.shape):
        raise ValueError("nearest_labels, nearest_distances and probe_labels must be 1-D of equal length")
    mated = np.isin(truth, np.asarray(list(enrolled)))
    # a failed probe (NaN distance) is never accepted: a miss when mated, a correct reject otherwise
    return labels, np.where(np.isnan(d), np.inf, d), truth, mated


def open_set_identification(nearest_labels, nearest_distances, probe_labels, enrolled, threshold: float) -> dict:
    """Open-set (1:K) identification figures at one threshold.

    nearest_labels / nearest_distances: (n,) rank-1 results (:func:`nearest_identities`; NaN
    distance = no face found, never accepted); probe_labels: (n,) true identity of each probe;
    enrolled: the identities in the gallery (a probe whose identity is not enrolled is non-mated).

    Returns ``dir`` (mated probes identified correctly and within the threshold), ``rank1`` (mated
    probes whose nearest identity is right, ignoring the threshold: closed-set accuracy),
    ``false_reject_rate`` (mated probes answered "not recognised"), ``misidentification_rate`` (mated
    probes accepted as someone else), ``fpir`` (non-mated probes accepted as someone),
    ``true_reject_rate`` (= 1 - fpir, correct "not recognised"), and the probe counts. Rates whose
    denominator is zero are NaN.
    """
    labels, d, truth, mated = _as_open_set(nearest_labels, nearest_distances, probe_labels, enrolled)
    accepted = d <= threshold
    right = labels == truth
    n_m, n_n = int(mated.sum()), int((~mated).sum())

    def rate(mask, n):
        return float(np.count_nonzero(mask) / n) if n else float("nan")

    fpir = rate(accepted & ~mated, n_n)
    return {
        "threshold": float(threshold),
        "mated_probes": n_m,
        "non_mated_probes": n_n,
        "dir": rate(accepted & right & mated, n_m),
        "rank1": rate(right & mated & np.isfinite(d), n_m),
        "false_reject_rate": rate(~accepted & mated, n_m),
        "misidentification_rate": rate(accepted & ~right & mated, n_m),
        "fpir": fpir,
        "true_reject_rate": 1.0 - fpir if n_n else float("nan"),
    }


def dir_at_fpir(nearest_labels, nearest_distances, probe_labels, enrolled, target_fpir: float) -> tuple[float, float]:
    """DIR at a false-alarm rate: ``(dir, threshold)`` at the largest threshold with FPIR <= target.

    Candidates are the midpoints between neighbouring distinct rank-1 distances of all probes, so
    the threshold sits just under the first non-mated distance it must reject. As with
    :func:`calibrate`, a target below 1/(non-mated probes) means "no false alarm at all".
    """
    target_fpir = _check_rate(target_fpir, "target_fpir")
    labels, d, truth, mated = _as_open_set(nearest_labels, nearest_distances, probe_labels, enrolled)
    if not mated.any() or mated.all():
        raise ValueError("DIR at FPIR needs both mated and non-mated probes")
    thresholds, _ = _candidate_thresholds(np.where(np.isinf(d), np.nan, d))
    nonmated = np.sort(d[~mated])
    fp = np.searchsorted(nonmated, thresholds, side="right") / nonmated.size
    ok = np.flatnonzero(fp <= target_fpir + 1e-12)
    t = float(thresholds[ok[-1]])
    return open_set_identification(labels, d, truth, enrolled, t)["dir"], t


def _impostor_matrix(distances, exclude) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] == 0 or d.shape[0] == 0:
        raise ValueError(f"distances must be (n_probes, n_identities) and non-empty, got shape {d.shape}")
    if exclude is None:
        ex = np.zeros(d.shape, dtype=bool)
    else:
        ex = np.asarray(exclude, dtype=bool)
        if ex.shape != d.shape:
            raise ValueError(f"exclude must have the shape of distances {d.shape}, got {ex.shape}")
    ex = ex | np.isnan(d)
    return d, ex


def false_accept_vs_gallery_size(distances, threshold: float, sizes=None, exclude=None) -> dict:
    """How the 1:K false accept rate of unenrolled people grows with the gallery size K.

    distances: (n_probes, N) distance from each impostor probe to each of N enrolled identities
    (closest template per identity); exclude: optional (n_probes, N) bool marking entries that are
    not impostor comparisons (the probe's own identity, when a mated probe is reused as an
    impostor against everyone else); NaN entries are excluded too. For a probe with N_i candidate
    identities of which m_i are within ``threshold``, the chance that a gallery of K identities
    drawn at random from them holds at least one false match is exactly
    ``1 - C(N_i - m_i, K) / C(N_i, K)``; ``rate`` is its mean over probes (no sampling noise).

    Returns a dict with ``sizes`` (K = 1 .. min N_i by default), ``rate`` (the measured curve),
    ``per_comparison_far`` p (the 1:1 FAR at this threshold, equal to ``rate`` at K = 1) and
    ``independent`` (``1 - (1 - p)**K``, what independent comparisons would give).
    """
    d, ex = _impostor_matrix(distances, exclude)
    n_i = (~ex).sum(axis=1)
    if (n_i == 0).any():
        raise ValueError("every probe needs at least one impostor comparison")
    m_i = ((d <= threshold) & ~ex).sum(axis=1)
    k_max = int(n_i.min())
    if sizes is None:
        sizes = np.arange(1, k_max + 1)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if sizes.size == 0 or sizes.min() < 1 or sizes.max() > k_max:
        raise ValueError(f"gallery sizes must lie in [1, {k_max}] (the fewest impostor identities per probe)")
    # P(no false match among K) = prod_{j<K} (N - m - j) / (N - j), cumulative over j
    j = np.arange(k_max)[None, :]
    factors = np.clip((n_i[:, None] - m_i[:, None] - j), 0, None) / (n_i[:, None] - j)
    none = np.cumprod(factors, axis=1)  # column K-1 -> gallery size K
    rate = 1.0 - none[:, sizes - 1].mean(axis=0)
    p = float(np.mean(m_i / n_i))
    return {
        "threshold": float(threshold),
        "sizes": [int(k) for k in sizes],
        "rate": [float(r) for r in rate],
        "per_comparison_far": p,
        "independent": [float(1.0 - (1.0 - p) ** k) for k in sizes],
        "probes": int(d.shape[0]),
    }


def threshold_for_gallery_size(distances, gallery_size: int, target_rate: float, exclude=None) -> float:
    """The largest threshold whose 1:K false accept rate (as measured above) is <= ``target_rate``.

    Same inputs as :func:`false_accept_vs_gallery_size`. The rate is non-decreasing in the
    threshold, so this bisects the midpoints between distinct impostor distances. It shows how much
    stricter a 1:K threshold must be than a 1:1 one for the same error.
    """
    target_rate = _check_rate(target_rate, "target_rate")
    d, ex = _impostor_matrix(distances, exclude)
    thresholds, _ = _candidate_thresholds(np.where(ex, np.nan, d))

    def rate(t: float) -> float:
        return false_accept_vs_gallery_size(d, t, sizes=[gallery_size], exclude=ex)["rate"][0]

    # bisection for the last threshold within the target (thresholds[0] accepts nothing: rate 0)
    lo, hi = 0, thresholds.size - 1
    if rate(thresholds[hi]) <= target_rate + 1e-12:
        return float(thresholds[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(thresholds[mid]) <= target_rate + 1e-12:
            lo = mid
        else:
            hi = mid
    return float(thresholds[lo])


def per_comparison_far(target_rate: float, gallery_size: int) -> float:
    """The 1:1 false accept rate p at which a stranger meets a gallery of K identities with
    probability ``target_rate`` of a false accept, if comparisons were independent:
    ``1 - (1 - p)**K = target`` -> ``p = 1 - (1 - target)**(1/K)`` (about target / K).

    :func:`false_accept_vs_gallery_size` measures how close real galleries come to this model; use
    it to calibrate a 1:K threshold from 1:1 pairs (``calibrate(d, same, per_comparison_far(...))``).
    """
    target_rate = _check_rate(target_rate, "target_rate")
    k = int(gallery_size)
    if k < 1:
        raise ValueError(f"gallery_size must be >= 1, got {gallery_size}")
    return float(-np.expm1(np.log1p(-target_rate) / k)) if target_rate < 1 else 1.0


# --------------------------------------------------------------------------------------------
# clustering quality
# --------------------------------------------------------------------------------------------
def _cluster_codes(clusters, unclustered) -> tuple[np.ndarray, np.ndarray]:
    """Predicted cluster ids -> (int codes (N,), unclustered mask (N,)); every unclustered item
    (id ``unclustered`` or None) gets a code of its own: leaving a face out of every group claims
    nothing about it, so it scores as a singleton."""
    codes: list[int] = []
    alone: list[bool] = []
    seen: dict = {}
    for v in clusters:
        if v is None or v == unclustered:
            alone.append(True)
            codes.append(-1)
        else:
            alone.append(False)
            codes.append(seen.setdefault(v, len(seen)))
    codes_a = np.array(codes, dtype=np.int64)
    alone_a = np.array(alone, dtype=bool)
    codes_a[alone_a] = len(seen) + np.arange(int(alone_a.sum()))
    return codes_a, alone_a


def _contingency(labels, clusters, unclustered) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty cells of the cluster x label table: counts n_ij, the size of each cell's
    cluster and of its label; plus the cluster codes."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    ci, _ = _cluster_codes(clusters, unclustered)
    if len(ci) != len(y):
        raise ValueError(f"labels and clusters differ in length: {len(y)} != {len(ci)}")
    if len(y) == 0:
        raise ValueError("no items to score")
    _, yi = np.unique(y, return_inverse=True)
    yi = yi.reshape(-1)
    width = int(yi.max()) + 1
    cells, n = np.unique(ci * width + yi, return_counts=True)
    csize = np.bincount(ci)[cells // width]
    lsize = np.bincount(yi)[cells % width]
    return n.astype(np.float64), csize.astype(np.float64), lsize.astype(np.float64), ci


def _f(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def bcubed(labels, clusters, *, unclustered=-1) -> dict:
    """BCubed precision, recall and F of a clustering (Bagga and Baldwin 1998; Amigo et al. 2009).

    Per item: precision = share of its cluster that has its label, recall = share of its label that
    is in its cluster; both averaged over items, F their harmonic mean. ``labels`` (N,) the truth,
    ``clusters`` (N,) the predicted cluster ids, ``unclustered`` (default -1, also None) marking
    items left out of every cluster (each then counts as a singleton). Returns
    ``{"precision", "recall", "f", "clusters", "unclustered"}``: clusters counts groups of two or
    more, unclustered the items alone (left out, or alone in their cluster).
    """
    n, csize, lsize, ci = _contingency(labels, clusters, unclustered)
    total = float(n.sum())
    p = float(np.sum(n * n / csize) / total)
    r = float(np.sum(n * n / lsize) / total)
    sizes = np.bincount(ci)
    return {
        "precision": p,
        "recall": r,
        "f": _f(p, r),
        "clusters": int(np.count_nonzero(sizes >= 2)),
        "unclustered": int(np.count_nonzero(sizes == 1)),
    }


def pairwise_f(labels, clusters, *, unclustered=-1) -> dict:
    """Pairwise precision, recall and F: over all pairs of items, precision = share of the pairs put
    in one cluster that share a label, recall = share of the same-label pairs put in one cluster.
    A clustering that joins no pair has precision 1 (it claims nothing); a truth with no same-label
    pair gives recall 1. Returns ``{"precision", "recall", "f"}``."""
    n, _, _, ci = _contingency(labels, clusters, unclustered)
    tp = float(np.sum(n * (n - 1) / 2))
    label_sizes = np.unique(np.asarray(labels), return_counts=True)[1].astype(np.float64)
    cluster_sizes = np.bincount(ci).astype(np.float64)
    true_pairs = float(np.sum(label_sizes * (label_sizes - 1) / 2))
    claimed = float(np.sum(cluster_sizes * (cluster_sizes - 1) / 2))
    p = tp / claimed if claimed else 1.0
    r = tp / true_pairs if true_pairs else 1.0
    return {"precision": p, "recall": r, "f": _f(p, r)}
