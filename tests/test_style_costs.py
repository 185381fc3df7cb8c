"""The course's style-transfer costs against plain numpy references (no network needed)."""

import numpy as np
import pytest
import tensorflow as tf

from style_transfer import costs


def np_content_cost(a_C, a_G):
    _, h, w, c = a_G.shape
    return np.sum((a_C - a_G) ** 2) / (4 * h * w * c)


def np_gram(A):
    return A @ A.T


def np_layer_style_cost(a_S, a_G):
    _, h, w, c = a_G.shape
    S = a_S.reshape(h * w, c).T  # the course's unrolling: (n_C, n_H*n_W)
    G = a_G.reshape(h * w, c).T
    return np.sum((np_gram(S) - np_gram(G)) ** 2) / (4 * c**2 * (h * w) ** 2)


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def test_content_cost_matches_numpy(rng):
    a_C = rng.normal(size=(1, 4, 5, 3)).astype(np.float32)
    a_G = rng.normal(size=(1, 4, 5, 3)).astype(np.float32)
    got = float(costs.compute_content_cost(a_C, a_G))
    assert got == pytest.approx(np_content_cost(a_C, a_G), rel=1e-5)
    assert float(costs.compute_content_cost(a_C, a_C)) == 0.0


def test_gram_matrix_matches_numpy(rng):
    A = rng.normal(size=(3, 8)).astype(np.float32)
    G = costs.gram_matrix(A).numpy()
    np.testing.assert_allclose(G, np_gram(A), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(G, G.T, atol=1e-6)
    # the batched form used by the optimiser agrees with the course's unrolled form
    a = rng.normal(size=(2, 4, 2, 3)).astype(np.float32)
    batched = costs.gram_from_activation(a).numpy()
    for i in range(2):
        np.testing.assert_allclose(batched[i], np_gram(a[i].reshape(-1, 3).T), rtol=1e-5, atol=1e-5)


def test_layer_style_cost_matches_numpy(rng):
    a_S = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    a_G = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
    want = np_layer_style_cost(a_S, a_G)
    assert float(costs.compute_layer_style_cost(a_S, a_G)) == pytest.approx(want, rel=1e-4)
    # the precomputed-target form gives the same number
    G_S = costs.normalized_gram(a_S)[0]
    assert float(costs.layer_style_cost_from_gram(G_S, a_G)) == pytest.approx(want, rel=1e-4)


def test_style_cost_is_weighted_sum_over_layers(rng):
    layers = [("a", 0.3), ("b", 0.7)]
    S = {"a": rng.normal(size=(1, 6, 6, 4)), "b": rng.normal(size=(1, 3, 3, 8))}
    G = {"a": rng.normal(size=(1, 6, 6, 4)), "b": rng.normal(size=(1, 3, 3, 8))}
    want = sum(w * np_layer_style_cost(S[n], G[n]) for n, w in layers)
    assert float(costs.compute_style_cost(S, G, layers)) == pytest.approx(want, rel=1e-4)
    # lists in STYLE_LAYERS order (the course's calling convention, content output last)
    as_list = float(costs.compute_style_cost([S["a"], S["b"], S["a"]], [G["a"], G["b"], G["b"]], layers))
    assert as_list == pytest.approx(want, rel=1e-4)
    assert costs.STYLE_LAYERS == [(f"block{i}_conv1", 0.2) for i in range(1, 6)]


def test_total_cost_course_defaults():
    assert float(costs.total_cost(tf.constant(2.0), tf.constant(3.0))) == pytest.approx(10 * 2 + 40 * 3)
    assert float(costs.total_cost(1.0, 1.0, alpha=1, beta=2)) == 3.0


def test_total_variation_cost_matches_numpy(rng):
    x = rng.uniform(size=(1, 5, 7, 3)).astype(np.float32)
    want = np.mean((x[:, 1:] - x[:, :-1]) ** 2) + np.mean((x[:, :, 1:] - x[:, :, :-1]) ** 2)
    assert float(costs.total_variation_cost(x)) == pytest.approx(want, rel=1e-5)
    assert float(costs.total_variation_cost(np.full((1, 4, 4, 3), 0.5))) == 0.0


def test_costs_are_differentiable(rng):
    a_C = tf.constant(rng.normal(size=(1, 3, 3, 2)), tf.float32)
    a_G = tf.Variable(rng.normal(size=(1, 3, 3, 2)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        J = costs.compute_content_cost(a_C, a_G) + costs.compute_layer_style_cost(a_C, a_G)
    g = tape.gradient(J, a_G).numpy()
    # content gradient alone is (a_G - a_C) / (2 n_H n_W n_C); the style part adds to it
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
