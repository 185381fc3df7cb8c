"""Nearest-neighbour search over enrolled embeddings: exact (one matrix product) or FAISS.

Both backends take a matrix of enrolled embeddings (M, D) and answer ``search(queries, k)`` with the
Euclidean distances (Q, k) and row indices (Q, k) of the k nearest rows, nearest first. Rows past M
are padded with distance inf and index -1, so callers never special-case a small gallery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _as_matrix(x, name: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} have dimension {x.shape[1]}, but the gallery holds {dim}-D embeddings")
    return x


def pairwise_distances(a, b, *, dtype=np.float64, b_sq_norms: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` (n, D) and ``b`` (m, D): (n, m) in ``dtype``.

    The package's one distance function: d^2 = |a|^2 + |b|^2 - 2 a.b, one matrix product.
    ``b_sq_norms`` (m,) may be passed when ``b`` is searched many times.
    """
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two 2-D arrays with the same width, got {a.shape} and {b.shape}")
    b_sq = np.einsum("ij,ij->i", b, b) if b_sq_norms is None else b_sq_norms
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(d2, 0.0, out=d2))


@dataclass(frozen=True)
class Match:
    """The nearest identity to one query, and the runner-up (nearest other identity)."""

    identity: str | None
    distance: float
    runner_up: str | None
    runner_up_distance: float


NO_MATCH = Match(None, float("inf"), None, float("inf"))


def rows_for_runner_up(labels) -> int:
    """How many nearest rows a search must return so that a second identity is always among them:
    the largest number of rows of one identity, plus one."""
    if len(labels) == 0:
        return 0
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    return int(min(len(labels), counts.max() + 1))


def matches_from_neighbours(dist: np.ndarray, idx: np.ndarray, labels) -> list[Match]:
    """Per query, the nearest identity and the runner-up from its k nearest rows.

    dist, idx: (Q, k) nearest first, padded with inf / -1 (as every index here returns);
    labels: the identity of each row. Pure: the same rule for every storage backend.
    """
    out = []
    for d_row, i_row in zip(dist, idx):
        best = second = None
        for d, i in zip(d_row, i_row):
            if i < 0:
                break
            if best is None:
                best = (labels[i], float(d))
            elif labels[i] != best[0]:
                second = (labels[i], float(d))
                break
        if best is None:
            out.append(NO_MATCH)
            continue
        second = second or (None, float("inf"))
        out.append(Match(best[0], best[1], second[0], second[1]))
    return out


class ExactIndex:
    """Exact Euclidean search: d^2 = |q|^2 + |e|^2 - 2 q.e, one matrix product per batch of queries."""

    name = "exact"

    def __init__(self, embeddings):
        self.embeddings = _as_matrix(embeddings, "embeddings")
        self._sq_norms = np.einsum("ij,ij->i", self.embeddings, self.embeddings)

    def __len__(self) -> int:
        return len(self.embeddings)

    def distances(self, queries) -> np.ndarray:
        """All distances (Q, M) from each query to each enrolled row."""
        q = _as_matrix(queries, "queries", self.embeddings.shape[1])
        return pairwise_distances(q, self.embeddings, dtype=np.float32, b_sq_norms=self._sq_norms)

    def search(self, queries, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        q = _as_matrix(queries, "queries", self.embeddings.shape[1])
        kk = min(k, len(self.embeddings))
        if kk == 0:
            return _pad(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64), k)
        # Rank on |e|^2 - 2 q.e (|q|^2 is the same for every row): one product and one pass over the
        # M scores, and the square root only for the k kept, not for all M (the search reads the whole
        # matrix once; everything else here should be small beside that).
        score = q @ self.embeddings.T
        score *= -2.0
        score += self._sq_norms
        idx = (
            np.argpartition(score, kk - 1, axis=1)[:, :kk]
            if kk < score.shape[1]
            else np.tile(np.arange(kk), (len(q), 1))
        )
        part = np.take_along_axis(score, idx, axis=1) + np.einsum("ij,ij->i", q, q)[:, None]
        part = np.sqrt(np.maximum(part, 0.0))
        order = np.argsort(part, axis=1, kind="stable")
        return _pad(np.take_along_axis(part, order, 1), np.take_along_axis(idx, order, 1), k)


class FaissIndex:
    """FAISS search for very large galleries (``pip install faiss-cpu``).

    ``kind="flat"`` is exact (IndexFlatL2, multi-threaded); ``kind="hnsw"`` is approximate and
    sub-linear (IndexHNSWFlat), for millions of rows.
    """

    name = "faiss"

    def __init__(self, embeddings, kind: str = "flat", hnsw_m: int = 32):
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("FAISS search needs the faiss-cpu package: pip install faiss-cpu") from exc
        x = np.ascontiguousarray(_as_matrix(embeddings, "embeddings"))
        dim = x.shape[1]
        self._index: faiss.Index
        if kind == "flat":
            self._index = faiss.IndexFlatL2(dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, hnsw_m)
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}: use 'flat' or 'hnsw'")
        self._index.add(x)
        self._dim = dim

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, queries, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(_as_matrix(queries, "queries", self._dim))
        kk = min(k, len(self))
        if kk == 0:
            return _pad(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64), k)
        d2, idx = self._index.search(q, kk)
        return _pad(np.sqrt(np.maximum(d2, 0.0)), idx.astype(np.int64), k)


def _pad(dist: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    missing = k - dist.shape[1]
    if missing > 0:
        dist = np.concatenate([dist, np.full((len(dist), missing), np.inf, np.float32)], axis=1)
        idx = np.concatenate([idx, np.full((len(idx), missing), -1, np.int64)], axis=1)
    return dist.astype(np.float32), idx


BACKENDS = ("exact", "faiss", "faiss-hnsw")


def check_backend(backend: str) -> None:
    """Raise now, not at the first search, for an unknown backend or a missing faiss package."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown search backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend.startswith("faiss"):
        try:
            import faiss  # noqa: F401
        except ImportError as exc:
            raise ImportError("FAISS search needs the faiss-cpu package: pip install faiss-cpu") from exc


def make_index(embeddings, backend: str = "exact") -> ExactIndex | FaissIndex:
    """An index over ``embeddings`` (M, D): backend 'exact', 'faiss' (flat, exact) or 'faiss-hnsw'."""
    check_backend(backend)
    if backend == "exact":
        return ExactIndex(embeddings)
    return FaissIndex(embeddings, kind="hnsw" if backend == "faiss-hnsw" else "flat")
