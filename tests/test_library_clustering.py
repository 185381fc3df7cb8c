"""Clustering metrics (hand-computed examples) and the clustering methods (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.evaluation.metrics import bcubed, pairwise_f
from facenet_keras.library import clustering as C

# truth a a a b b c; predicted {a1 a2} {a3 b1 b2} and c left alone
LABELS = ["a", "a", "a", "b", "b", "c"]
CLUSTERS = [1, 1, 2, 2, 2, -1]


def test_bcubed_hand_computed():
    # precision per item: 1, 1, 1/3, 2/3, 2/3, 1 -> 14/3 / 6; recall: 2/3, 2/3, 1/3, 1, 1, 1 -> 14/3 / 6
    b = bcubed(LABELS, CLUSTERS)
    assert b["precision"] == pytest.approx(14 / 18)
    assert b["recall"] == pytest.approx(14 / 18)
    assert b["f"] == pytest.approx(14 / 18)
    assert (b["clusters"], b["unclustered"]) == (2, 1)


def test_bcubed_asymmetric_example():
    # truth a a b b; everything in one cluster: precision 1/2 for all, recall 1 -> F = 2/3
    b = bcubed(["a", "a", "b", "b"], [0, 0, 0, 0])
    assert (b["precision"], b["recall"], b["f"]) == pytest.approx((0.5, 1.0, 2 / 3))
    # everything left alone: precision 1, recall 1/2
    b = bcubed(["a", "a", "b", "b"], [-1, None, -1, -1])
    assert (b["precision"], b["recall"]) == pytest.approx((1.0, 0.5))
    assert b["unclustered"] == 4


def test_unclustered_items_are_not_one_cluster():
    # two faces of different people both left out must not count as grouped together
    assert bcubed(["a", "b"], [-1, -1])["precision"] == 1.0
    assert pairwise_f(["a", "b"], [-1, -1])["precision"] == 1.0


def test_pairwise_f_hand_computed():
    # claimed pairs: {a1 a2} 1 + {a3 b1 b2} 3 = 4, right: a1a2, b1b2 = 2; true pairs: a 3 + b 1 = 4
    p = pairwise_f(LABELS, CLUSTERS)
    assert (p["precision"], p["recall"], p["f"]) == pytest.approx((0.5, 0.5, 0.5))
    p = pairwise_f(["a", "a", "b"], [0, 0, 1])
    assert (p["precision"], p["recall"]) == pytest.approx((1.0, 1.0))


def test_metrics_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="length"):
        bcubed(["a", "b"], [0])


def _blobs(sizes, dim=16, spread=0.05, gap=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x, y = [], []
    for person, n in enumerate(sizes):
        centre = rng.normal(0, gap / np.sqrt(2 * dim), dim) * 3
        x.append(centre + rng.normal(0, spread / np.sqrt(2 * dim), (n, dim)))
        y += [person] * n
    return np.concatenate(x).astype(np.float32), np.array(y)


@pytest.mark.parametrize("method", ["average", "chinese-whispers", "single"])
def test_methods_recover_separated_people_and_leave_singletons_alone(method):
    x, y = _blobs([6, 4, 3, 1, 1])
    labels, tau = C.cluster(x, method=method, threshold=0.3)
    assert tau == 0.3
    b = bcubed(y, labels)
    assert b["f"] == 1.0
    assert list(labels[-2:]) == [-1, -1]  # the two people seen once stay unclustered
    assert list(labels[:6]) == [0] * 6  # ids by decreasing size


def test_large_route_equals_exact_average_linkage():
    # the kNN-components route (used above DENSE_MAX) is exact average linkage, not an approximation
    x, _ = _blobs([30, 20, 10, 5, 3, 2, 1, 1, 1], spread=0.5, gap=0.7, seed=3)
    exact = C.relabel(C._dense_average(x, 0.35))
    routed = C.relabel(C._average(x, 0.35, k=30, backend="exact", dense_max=0))
    assert (exact == routed).all()
    assert len(set(exact.tolist()) - {-1}) >= 3


def test_threshold_shrinks_with_faces_and_is_capped():
    t = [C.clustering_threshold(n) for n in (3, 186, 807, 10_000, 100_000)]
    assert t[0] == C.ENCODER_CALIBRATION.threshold
    assert all(a > b for a, b in zip(t[1:], t[2:]))
    # the rule before held a quarter of a stranger per face whatever N: 0.447 at 6,893 faces, where
    # an unseen LFW fold came out over-split (BCubed recall 0.846); the balanced cut stays above it
    assert C.clustering_threshold(6893) > 0.47


def test_cut_balances_strangers_within_against_own_photos_beyond():
    cal = C.ENCODER_CALIBRATION
    for n in (100, 807, 6893):
        t = C.clustering_threshold(n)
        strangers = (n - 1) * cal.false_accepts(t)
        assert strangers == pytest.approx(20.0 * cal.false_rejects(t), rel=1e-3)
    # more faces: more strangers within any cut, so the cut tightens and lets in more of them
    # per face (but fewer per pair)
    lo, hi = C.clustering_threshold(100), C.clustering_threshold(6893)
    assert 99 * cal.false_accepts(lo) < 6892 * cal.false_accepts(hi)


def test_cut_follows_the_profile_calibration_not_a_fixed_distance():
    # the same faces in a space three times as wide (another profile), with its calibration: the
    # same cut in that space's units and the same groups; a fixed absolute cut would join everyone
    x, y = _blobs([6, 4, 3, 2, 1, 1], dim=128, spread=0.4, gap=0.8, seed=7)
    cal = C.ENCODER_CALIBRATION
    wide = C.Calibration(
        threshold=3 * cal.threshold,
        far=cal.far,
        impostor_std=3 * cal.impostor_std,
        genuine_mean=3 * cal.genuine_mean,
        genuine_std=3 * cal.genuine_std,
    )
    labels, tau = C.cluster(x)
    wide_labels, wide_tau = C.cluster(3 * x, calibration=wide)
    assert wide_tau == pytest.approx(3 * tau, rel=1e-4)
    assert (labels == wide_labels).all()
    assert bcubed(y, labels)["f"] == 1.0


def test_knn_excludes_self_and_pads():
    x, _ = _blobs([3, 2])
    d, i = C.knn(x, 10)
    assert d.shape == (5, 4)
    assert not (i == np.arange(5)[:, None]).any()
    assert (np.diff(d, axis=1) >= 0).all()


def test_bad_input():
    with pytest.raises(ValueError, match="method"):
        C.cluster(np.zeros((3, 4)), method="kmeans")
    with pytest.raises(ValueError, match="NaN"):
        C.cluster(np.full((3, 4), np.nan))


def test_people_cluster_merge_split_name_on_a_synthetic_library(tmp_path):
    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.library import people
    from facenet_keras.library.store import PathInfo, open_library

    x, y = _blobs([6, 4, 1], dim=128, seed=5)
    face = {
        "box": (0, 0, 10, 10),
        "landmarks": [[0, 0]] * 5,
        "confidence": 1.0,
        "size": 10,
        "sharpness": 1,
        "yaw": 0,
        "pitch": 0,
        "roll": 0,
    }
    with open_library(tmp_path / "lib.sqlite") as lib, FaceGallery(tmp_path / "g.sqlite") as g:
        for i, e in enumerate(x):
            lib.add_photo(f"/photos/{i}.jpg", PathInfo(f"{i:064x}", 1, 1), [{**face, "embedding": e}])
        done = people.run_clustering(lib, threshold=0.3)
        assert (done["clusters"], done["unclustered"]) == (2, 1)
        by_id = {f.id: f.cluster for f in lib.faces()}
        assert [by_id[i + 1] for i in range(11)] == [1] * 6 + [2] * 4 + [None]

        people.merge(lib, g, 1, 2)
        assert len(people.faces_of(lib, 1)) == 10
        with pytest.raises(KeyError, match="no faces of cluster 2"):
            people.faces_of(lib, 2)
        parts = people.split(lib, 1, threshold=0.3)
        assert parts["sizes"] == [6, 4] and parts["unclustered"] == 0

        people.name_cluster(lib, g, 1, "Ann")
        assert g.people() == {"Ann": 6}
        assert {f.id for f in people.faces_of(lib, "Ann")} == set(range(1, 7))
        again = people.run_clustering(lib, threshold=0.3)  # named faces are no longer clustered
        assert again["faces"] == 5 and again["clusters"] == 1
        message = people.merge(lib, g, "Ann", 1)  # a name and a cluster: the cluster is named
        assert "named 'Ann'" in message and g.people() == {"Ann": 10}
        summary = people.summary(lib, g)
        assert summary["people"] == [
            {"name": "Ann", "faces": 10, "photos": 10, "enrolled_photos": 10, "sample": [1, 2, 3, 4]}
        ]  # sample: her best faces (all alike here: lowest ids first)
        assert summary["clusters"] == [] and summary["unclustered"] == 1


def test_each_profile_clusters_with_its_own_calibration():
    """A library of the accurate profile gets the fused distances' calibration, any other space dlib's:
    the fused distances are about 4x dlib's, so dlib's cut on them would put every face alone."""
    from facenet_keras.faces.pipeline import embedding_space_id
    from facenet_keras.faces.profiles import ACCURATE

    assert C.calibration_for(embedding_space_id(ACCURATE)) is C.ACCURATE_CALIBRATION
    assert C.calibration_for(embedding_space_id()) is C.ENCODER_CALIBRATION
    assert C.calibration_for(None) is C.ENCODER_CALIBRATION
    assert C.clustering_threshold(500, C.ACCURATE_CALIBRATION) > 3 * C.clustering_threshold(500)


def test_each_profile_cuts_with_its_own_balance():
    """The balance is the profile's (chosen per profile on half A of the held-out benchmark): the
    accurate profile's cut lets in as many strangers per face as 1 x its missed own photos, the fast
    profile's 20 x, and an explicit balance overrides either."""
    for cal, balance in ((C.ACCURATE_CALIBRATION, 1.0), (C.ENCODER_CALIBRATION, 20.0)):
        assert cal.balance == balance
        for n in (100, 807, 6893, 100_000):
            t = C.clustering_threshold(n, cal)
            assert (n - 1) * cal.false_accepts(t) == pytest.approx(balance * cal.false_rejects(t), rel=1e-3)
    acc = C.ACCURATE_CALIBRATION
    assert C.clustering_threshold(807, acc) == pytest.approx(1.994, abs=1e-3)
    assert C.clustering_threshold(807, acc, balance=20) == pytest.approx(2.070, abs=1e-3)
