"""The course's triplet loss and the TripletLoss layer, against a numpy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from facenet_keras.training.losses import TripletLoss, triplet_loss  # noqa: E402


def reference_triplet_loss(a, p, n, alpha):
    """sum_i max(||a_i - p_i||^2 - ||a_i - n_i||^2 + alpha, 0), written out with numpy loops."""
    total = 0.0
    for ai, pi, ni in zip(a, p, n):
        total += max(float(np.sum((ai - pi) ** 2) - np.sum((ai - ni) ** 2)) + alpha, 0.0)
    return total


@pytest.fixture(scope="module")
def triplets():
    rng = np.random.default_rng(0)
    a, p, n = (rng.normal(size=(16, 128)).astype("float32") * 0.1 for _ in range(3))
    return a, p, n


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.5])
def test_triplet_loss_matches_numpy_reference(triplets, alpha):
    a, p, n = triplets
    expected = reference_triplet_loss(a, p, n, alpha)
    got_list = float(triplet_loss(None, [a, p, n], alpha=alpha))
    got_stacked = float(triplet_loss(None, np.stack([a, p, n], axis=1), alpha=alpha))
    assert got_list == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert got_stacked == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_course_values():
    """The course's check: one triplet per row, hand-computed."""
    a = np.array([[0.0, 0.0], [1.0, 0.0]], "float32")
    p = np.array([[1.0, 0.0], [1.0, 0.5]], "float32")  # d_ap^2 = 1, 0.25
    n = np.array([[0.0, 0.5], [3.0, 0.0]], "float32")  # d_an^2 = 0.25, 4
    # row 1: 1 - 0.25 + 0.2 = 0.95 ; row 2: 0.25 - 4 + 0.2 < 0 -> 0
    assert float(triplet_loss(None, [a, p, n], alpha=0.2)) == pytest.approx(0.95, abs=1e-6)


def test_all_zero_encoding_costs_the_margin():
    """The collapse the margin rules out: every face at one point costs alpha per triplet."""
    z = np.zeros((8, 128), "float32")
    assert float(triplet_loss(None, [z, z, z], alpha=0.2)) == pytest.approx(8 * 0.2, abs=1e-6)
    assert float(triplet_loss(None, [z, z, z], alpha=0.0)) == 0.0


def test_bad_shapes_are_rejected(triplets):
    a, p, _ = triplets
    with pytest.raises(ValueError):
        triplet_loss(None, [a, p])
    with pytest.raises(ValueError):
        triplet_loss(None, np.stack([a, p], axis=1))


def _shared_encoder_model(alpha=0.2, reduction="mean"):
    enc = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.UnitNormalization()], name="encoder")
    a, p, n = (keras.Input((6,), name=k) for k in ("anchor", "positive", "negative"))
    dists = TripletLoss(alpha=alpha, reduction=reduction)([enc(a), enc(p), enc(n)])
    return enc, keras.Model([a, p, n], dists)


def test_triplet_loss_layer_shares_one_encoder_and_trains(tmp_path):
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)  # the encoder's random start must leave triplets to fix
    enc, model = _shared_encoder_model()
    # weights tied: the three-input model holds exactly the encoder's weights
    assert model.count_params() == enc.count_params()
    centres = rng.normal(size=(4, 6)).astype("float32")  # close clusters: a random encoder mixes them
    ids = rng.integers(0, 4, size=64)
    other = (ids + rng.integers(1, 4, size=64)) % 4
    A = centres[ids] + rng.normal(size=(64, 6)).astype("float32") * 0.3
    P = centres[ids] + rng.normal(size=(64, 6)).astype("float32") * 0.3
    N = centres[other] + rng.normal(size=(64, 6)).astype("float32") * 0.3

    def layer_loss():
        ea, ep, en = (np.asarray(enc(x)) for x in (A, P, N))
        return reference_triplet_loss(ea, ep, en, 0.2) / len(A)

    before = layer_loss()
    assert before > 0.01, "the random encoder already separates everything: nothing to learn"
    # the layer's added loss is the mean of the course formula
    d = np.asarray(model([A, P, N]))
    ea, ep, en = (np.asarray(enc(x)) for x in (A, P, N))
    np.testing.assert_allclose(d[:, 0], np.sum((ea - ep) ** 2, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d[:, 1], np.sum((ea - en) ** 2, 1), rtol=1e-4, atol=1e-5)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    hist = model.fit([A, P, N], epochs=30, batch_size=64, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(before, rel=1e-3, abs=1e-4)
    assert layer_loss() < 0.5 * before

    path = tmp_path / "triplet.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(again([A, P, N])), np.asarray(model([A, P, N])), atol=1e-5)
    layer = [l for l in again.layers if isinstance(l, TripletLoss)][0]
    assert layer.alpha == pytest.approx(0.2) and layer.reduction == "mean"
