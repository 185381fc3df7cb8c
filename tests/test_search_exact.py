"""Exact search with the principal-subspace lower bound: the same rows, distances and runner-ups as
comparing every row, on structured (face-like) and adversarial (isotropic) galleries, with ties."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.identity.pruning import PartialBound, pruned_candidates, tolerance
from facenet_keras.identity.search import ExactIndex, matches_from_neighbours, rows_for_runner_up

DIM = 128


def brute_force(emb: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: every distance in float64 by differences, ordered by (distance, row)."""
    dist = np.empty((len(queries), k), np.float64)
    idx = np.empty((len(queries), k), np.int64)
    for j, q in enumerate(queries.astype(np.float64)):
        d = np.sqrt(((emb.astype(np.float64) - q) ** 2).sum(axis=1))
        order = np.lexsort((np.arange(len(emb)), d))[:k]
        dist[j], idx[j] = d[order], order
    return dist, idx


def face_like(n: int, seed: int, people: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings shaped like real ones: identity centres on a decaying spectrum (a few dozen
    directions hold most of the variance), photos = centre + smaller noise on the same spectrum."""
    rng = np.random.default_rng(seed)
    people = people or max(n // 4, 1)
    scale = 0.35 * np.exp(-np.arange(DIM) / 12.0)  # ~30 of 128 components hold 90 % of the variance
    basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    centres = (rng.normal(size=(people, DIM)) * scale) @ basis.T + rng.normal(size=DIM) * 0.1
    labels = rng.integers(0, people, n)
    noise = (rng.normal(size=(n, DIM)) * scale * 0.45) @ basis.T
    return (centres[labels] + noise).astype(np.float32), labels


def isotropic(n: int, seed: int) -> np.ndarray:
    """The bound's worst case: every direction carries the same variance."""
    x = np.random.default_rng(seed).normal(size=(n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pruned_index(emb: np.ndarray, chunk: int = 1024) -> ExactIndex:
    index = ExactIndex(emb, prune=True)
    index.chunk = chunk  # many chunks: the threshold is carried from chunk to chunk
    assert index.pruned
    return index


def check_same(index: ExactIndex, emb: np.ndarray, queries: np.ndarray, k: int) -> None:
    for q in queries:
        d_p, i_p = index.search(q[None], k)
        d_b, i_b = index.search(q[None], k, prune=False)
        np.testing.assert_array_equal(i_p, i_b)
        np.testing.assert_array_equal(d_p, d_b)  # to the last bit
        d_o, i_o = brute_force(emb, q[None], k)
        np.testing.assert_array_equal(i_p, i_o)
        np.testing.assert_allclose(d_p, d_o, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def gallery():
    emb, labels = face_like(12_000, seed=1)
    return emb, labels, pruned_index(emb)


def test_face_like_gallery_prunes_and_is_exact(gallery):
    emb, labels, index = gallery
    assert index._bound is not None and index._bound.rank < DIM // 3  # the structure is found
    rng = np.random.default_rng(2)
    probes = emb[rng.integers(0, len(emb), 10)] + rng.normal(scale=0.02, size=(10, DIM)).astype(np.float32)
    fresh, _ = face_like(10, seed=3)  # other people drawn from another basis: far from the subspace
    for k in (1, 7, rows_for_runner_up(labels), 60):
        check_same(index, emb, np.concatenate([probes, fresh]).astype(np.float32), k)
    # and the bound does its job: a probe near the gallery reads few rows in full
    tol = tolerance(DIM, float(np.linalg.norm(probes[0])), float(np.sqrt(index._sq_norms.max())))
    _, read = pruned_candidates(index._bound, emb, index._sq_norms, probes[0], 7, tol, 1024)
    assert read < len(emb) // 20


def test_runner_up_is_the_same(gallery):
    emb, labels, index = gallery
    names = [f"p{i}" for i in labels]
    k = rows_for_runner_up(labels)
    probes = emb[:20] + np.float32(0.01)
    pruned = matches_from_neighbours(*index.search(probes[:4], k), names)
    plain = matches_from_neighbours(*index.search(probes[:4], k, prune=False), names)
    assert pruned == plain
    assert all(m.runner_up is not None and m.runner_up != m.identity for m in pruned)


def test_off_subspace_queries_and_batches(gallery):
    """Queries the basis knows nothing about (the bound is loose for them), and a batch of queries
    (which takes the plain product) give the same answers."""
    emb, _, index = gallery
    far = isotropic(5, seed=4) * 3
    check_same(index, emb, far, 5)
    batch = emb[100:110]
    np.testing.assert_array_equal(index.search(batch, 5)[1], brute_force(emb, batch, 5)[1])


def test_nearest_row_hides_in_the_dropped_directions():
    """Rows whose bound orders them differently from their distance: near the query only along the
    kept directions (small bound, large distance) or only along the dropped ones (larger bound,
    smaller distance), all in the first chunk. The threshold must come from full distances."""
    emb, _ = face_like(8000, seed=12)
    eigvec = np.linalg.eigh(np.cov(emb.T.astype(np.float64)))[1]
    top, last = eigvec[:, -1], eigvec[:, 0]  # the most and the least varying directions
    q = emb[5000]
    near = [q + 0.30 * last, q + 0.20 * top, q + 0.32 * last, q + 0.25 * top, q - 0.21 * top]
    gallery = np.concatenate([np.asarray(near, np.float32), emb]).astype(np.float32)
    index = pruned_index(gallery)
    assert index._bound is not None and index._bound.rank < DIM - 8
    for k in (1, 2, 3, 4):
        check_same(index, gallery, (q + np.float32(0.0))[None], k)


def test_isotropic_gallery_is_still_exact():
    """Where pruning fails (every direction matters) the answer must not change: chunks fall back to
    one product; and the automatic choice does not prune such a gallery."""
    emb = isotropic(6000, seed=5)
    index = pruned_index(emb, chunk=512)
    check_same(index, emb, isotropic(8, seed=6), 10)
    assert PartialBound.fit(emb, max_rank=DIM // 3) is None


def test_ties_are_broken_by_row():
    """Duplicate rows (the same embedding enrolled again, under another name) and rows at exactly the
    k-th distance: the lower row index comes first, whichever scan found them."""
    base, _ = face_like(3000, seed=7)
    dup = np.concatenate([base, base[:50], base[:50], base[1000:1010]])  # exact copies at the end
    rng = np.random.default_rng(8)
    perm = rng.permutation(len(dup))
    dup = dup[perm]
    index = pruned_index(dup, chunk=256)
    queries = np.concatenate([base[:5], base[1000:1003]])  # each equals several rows exactly
    for k in (1, 2, 3, 4):
        check_same(index, dup, queries, k)
    d, i = index.search(base[0][None], 3)
    assert d[0, 0] == 0.0 and d[0, 1] == 0.0 and d[0, 2] == 0.0 and list(i[0]) == sorted(i[0])


def test_small_k_and_padding():
    emb, _ = face_like(500, seed=9)
    index = pruned_index(emb, chunk=128)
    d, i = index.search(emb[:1], 600)  # more than the gallery: padded with inf / -1
    assert (i[0, 500:] == -1).all() and np.isinf(d[0, 500:]).all()
    np.testing.assert_array_equal(i[0, :500], brute_force(emb, emb[:1], 500)[1][0])


def test_automatic_choice():
    """Prune only large galleries with low-dimensional structure (the size limit lowered here)."""
    emb, _ = face_like(3000, seed=10)
    assert not ExactIndex(emb).pruned  # small: the plain product

    class Lower(ExactIndex):
        PRUNE_MIN_ROWS = 1000

    assert Lower(emb).pruned
    assert not Lower(isotropic(3000, seed=11)).pruned


def test_non_finite_query_is_refused(gallery):
    emb, _, index = gallery
    bad = emb[:1].copy()
    bad[0, 3] = np.nan
    for prune in (True, False):
        with pytest.raises(ValueError, match="NaN or inf"):
            index.search(bad, 3, prune=prune)
