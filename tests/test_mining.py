"""Online triplet mining on hand-built batches where the answers are known, and against brute force."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from facenet_keras.training.losses import (  # noqa: E402
    ActiveTriplets,
    TripletMiningLoss,
    hardest_positive_negative,
    mined_triplet_loss,
    pairwise_distances,
    semi_hard_mask,
    semi_hard_negatives,
)

# Points on a line (second coordinate 0), Euclidean distances are |x_i - x_j|.
#   index : 0    1    2    3    4    5
#   label : 0    0    0    1    1    2
#   x     : 0    1    3    2    5    10
LABELS = np.array([0, 0, 0, 1, 1, 2])
X = np.array([0.0, 1.0, 3.0, 2.0, 5.0, 10.0])
EMB = np.stack([X, np.zeros_like(X)], axis=1).astype("float32")


def brute_force(labels, emb, margin, squared):
    """Every (a, p, n) spelled out: the reference for the three strategies."""
    d = np.sqrt(((emb[:, None] - emb[None]) ** 2).sum(-1))
    if squared:
        d = d**2
    n = len(labels)
    trip = [
        (a, p, m)
        for a, p, m in itertools.product(range(n), repeat=3)
        if a != p and labels[a] == labels[p] and labels[a] != labels[m]
    ]
    per = [max(d[a, p] - d[a, m] + margin, 0.0) for a, p, m in trip]
    n_active_all = sum(v > 1e-12 for v in per)
    batch_all = sum(per) / max(n_active_all, 1)
    hard = []
    for a in range(n):
        ps = [p for p in range(n) if p != a and labels[p] == labels[a]]
        ns = [m for m in range(n) if labels[m] != labels[a]]
        if ps and ns:
            hard.append(max(max(d[a, p] for p in ps) - min(d[a, m] for m in ns) + margin, 0.0))
    semi = []
    for a in range(n):
        ns = [m for m in range(n) if labels[m] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a] or not ns:
                continue
            farther = [d[a, m] for m in ns if d[a, m] > d[a, p]]
            dn = min(farther) if farther else max(d[a, m] for m in ns)
            semi.append(max(d[a, p] - dn + margin, 0.0))
    return {
        "all": batch_all,
        "hard": float(np.mean(hard)),
        "semi-hard": float(np.mean(semi)),
        "active_all": n_active_all,
    }


def test_pairwise_distances():
    d = np.asarray(pairwise_distances(EMB, squared=False))
    np.testing.assert_allclose(d, np.abs(X[:, None] - X[None]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(pairwise_distances(EMB)), (X[:, None] - X[None]) ** 2, atol=1e-4)


def test_hardest_positive_and_negative_are_the_known_ones():
    hp, hn = (np.asarray(t) for t in hardest_positive_negative(LABELS, EMB))
    # anchor 0 (x=0): positives x=1, x=3 -> farthest is 2; negatives x=2, 5, 10 -> closest is 3
    # anchor 1 (x=1): positives 0 (d1), 2 (d2) -> 2;  negatives 3 (d1), 4, 5 -> 3
    # anchor 2 (x=3): positives 0 (d3), 1 (d2) -> 0;  negatives 3 (d1) -> 3
    # anchor 3 (x=2): positive 4 (d3);  negatives 1 (d1), 2 (d1), 0 (d2) -> first of the ties, 1
    # anchor 4 (x=5): positive 3;  negatives 2 (d2) -> 2
    # anchor 5 (x=10): no positive (-1);  closest negative is 4 (x=5)
    assert hp.tolist() == [2, 2, 0, 4, 3, -1]
    assert hn.tolist() == [3, 3, 3, 1, 2, 4]


def test_semi_hard_set_is_the_known_one():
    # Euclidean distances, margin 1.5: semi-hard means d(a,p) < d(a,n) < d(a,p) + 1.5
    # a=0,p=1 (d 1): band (1, 2.5), negatives at 2 (n=3), 5, 10   -> (0, 1, 3)
    # a=0,p=2 (d 3): band (3, 4.5), negatives at 2, 5, 10         -> none
    # a=1,p=0 (d 1): band (1, 2.5), negatives at 1, 4, 9          -> none (1 is not farther)
    # a=1,p=2 (d 2): band (2, 3.5), negatives at 1, 4, 9          -> none
    # a=2,p=0 (d 3) and a=2,p=1 (d 2): negatives at 1, 2, 7       -> none
    # a=3,p=4 (d 3): band (3, 4.5), negatives at 2, 1, 1, 8       -> none
    # a=4,p=3 (d 3): band (3, 4.5), negatives at 5, 4 (n=1), 2, 5 -> (4, 3, 1)
    # a=5: no positive
    mask = np.asarray(semi_hard_mask(LABELS, EMB, margin=1.5, squared=False))
    got = sorted(tuple(int(i) for i in t) for t in np.argwhere(mask))
    assert got == [(0, 1, 3), (4, 3, 1)]
    # a margin of 0.9 leaves both outside the band (both negatives are exactly 1 beyond the positive)
    mask = np.asarray(semi_hard_mask(LABELS, EMB, margin=0.9, squared=False))
    assert np.argwhere(mask).tolist() == []


def test_semi_hard_negative_choice():
    neg = np.asarray(semi_hard_negatives(LABELS, EMB, squared=False))
    # a=0,p=1 (d1): closest negative farther than 1 is 3 (d2)
    assert neg[0, 1] == 3
    # a=0,p=2 (d3): farther than 3: 4 (d5), 5 (d10) -> 4
    assert neg[0, 2] == 4
    # a=2,p=0 (d3): negatives of x=3 at d 1 (idx3), 2 (idx4), 7 (idx5): farther than 3 -> 5
    assert neg[2, 0] == 5
    # a=3,p=4 (d3): negatives of x=2 at 2 (0), 1 (1), 1 (2), 8 (5) -> 5
    assert neg[3, 4] == 5
    # not a positive pair, or an anchor with no positive: -1
    assert neg[0, 3] == -1 and neg[0, 0] == -1 and (neg[5] == -1).all()


def test_semi_hard_falls_back_to_the_farthest_negative():
    labels = np.array([0, 0, 1, 1])
    emb = np.array([[0.0], [5.0], [1.0], [2.0]], "float32")  # every negative of 0 is closer than its positive
    neg = np.asarray(semi_hard_negatives(labels, emb, squared=False))
    assert neg[0, 1] == 3  # farthest negative of anchor 0 (d=2)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("strategy", ["all", "hard", "semi-hard"])
def test_losses_match_brute_force(strategy, squared):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 3)
    emb = rng.normal(size=(12, 5)).astype("float32")
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    margin = 0.2 if squared else 0.3
    ref = brute_force(labels, emb, margin, squared)
    loss, active = mined_triplet_loss(labels, emb, strategy, margin, squared)
    assert float(loss) == pytest.approx(ref[strategy], rel=1e-4, abs=1e-5)
    if strategy == "all":
        assert float(active) == ref["active_all"]
    # the hand-built batch too
    ref = brute_force(LABELS, EMB, 1.5, squared)
    assert float(mined_triplet_loss(LABELS, EMB, strategy, 1.5, squared)[0]) == pytest.approx(
        ref[strategy], rel=1e-4, abs=1e-4
    )


@pytest.mark.parametrize("strategy", ["all", "hard", "semi-hard"])
def test_collapsed_embeddings_cost_the_margin(strategy):
    labels = np.repeat(np.arange(3), 2)
    zero = np.zeros((6, 8), "float32")
    loss, active = mined_triplet_loss(labels, zero, strategy, 0.2)
    assert float(loss) == pytest.approx(0.2, abs=1e-6)
    assert float(active) > 0


def test_separated_clusters_have_no_active_triplets():
    labels = np.repeat(np.arange(3), 4)
    emb = np.repeat(np.eye(3, 4, dtype="float32"), 4, axis=0)  # each identity a single point, distance^2 = 2
    for strategy in ("all", "hard", "semi-hard"):
        loss, active = mined_triplet_loss(labels, emb, strategy, 0.2)
        assert float(loss) == 0.0 and float(active) == 0.0


def test_unknown_strategy():
    with pytest.raises(ValueError):
        TripletMiningLoss("easy")


def test_keras_loss_and_metric_in_fit(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 10)).astype("float32")
    labels = np.repeat(np.arange(6), 8)
    x = centres[labels] + 0.8 * rng.normal(size=(48, 10)).astype("float32")
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8), keras.layers.UnitNormalization()])
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=TripletMiningLoss("semi-hard", 0.2),
        metrics=[ActiveTriplets("semi-hard", 0.2)],
    )
    first = model.evaluate(x, labels, batch_size=48, verbose=0, return_dict=True)
    hist = model.fit(x, labels, batch_size=48, epochs=40, verbose=0, shuffle=False)
    assert hist.history["loss"][-1] < 0.5 * first["loss"]
    assert hist.history["active_triplets"][-1] < first["active_triplets"]
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again.loss, TripletMiningLoss) and again.loss.strategy == "semi-hard"
