"""Nearest-neighbour search over enrolled embeddings: exact (one matrix product) or FAISS.

Both backends take a matrix of enrolled embeddings (M, D) and answer ``search(queries, k)`` with the
Euclidean distances (Q, k) and row indices (Q, k) of the k nearest rows, nearest first. Rows past M
are padded with distance inf and index -1, so callers never special-case a small gallery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenet_keras.identity.pruning import CHUNK, PartialBound, pruned_candidates, tolerance


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


def rank_exactly(embeddings: np.ndarray, query: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of ``rows`` (indices into ``embeddings`` (M, D)) to ``query`` (D,): distances
    (k,) float32 and row indices (k,), nearest first, ties broken by the lower row index.

    The final order of every exact search: squared differences summed per row in float64, so a
    row's distance does not depend on which other rows were ranked with it (a matrix product's
    rounding does), and a plain scan and a pruned scan give the same answer to the last bit.
    """
    diff = embeddings[rows].astype(np.float64)
    diff -= query.astype(np.float64)
    d2 = np.einsum("ij,ij->i", diff, diff)
    order = np.lexsort((rows, d2))[:k]
    return np.sqrt(d2[order]).astype(np.float32), rows[order].astype(np.int64)


class ExactIndex:
    """Exact Euclidean search: the k nearest rows, the same answer as comparing every row.

    Large galleries (``prune``: None decides by size and shape) keep the first principal
    coordinates of every row (:mod:`facenet_keras.identity.pruning`, about r/D more memory) and read
    in full only the rows whose lower bound could beat the k-th distance; otherwise (small
    galleries, batches of queries, embeddings without low-dimensional structure) one matrix product
    scores every row. Both end with :func:`rank_exactly`.
    """

    name = "exact"
    PRUNE_MIN_ROWS = (
        100_000  # measured: 20x faster at 100k (docs/galleries.md); below, the plain product takes a few ms
    )
    PRUNE_MAX_QUERIES = 4  # a batch larger than this shares one read of the matrix: plain is cheaper

    def __init__(self, embeddings, *, prune: bool | None = None):
        self.embeddings = _as_matrix(embeddings, "embeddings")  # not copied when already float32
        self._sq_norms = np.einsum("ij,ij->i", self.embeddings, self.embeddings)
        self._max_norm = float(np.sqrt(self._sq_norms.max())) if len(self.embeddings) else 0.0
        self.chunk = CHUNK  # rows per step of the pruned scan
        self._prune = prune
        self._bound: PartialBound | None = None
        self._fitted = False  # the bound is fitted at the first single query (batches never need it)

    def _fit_bound(self) -> PartialBound | None:
        if not self._fitted:
            prune, (m, dim) = self._prune, self.embeddings.shape
            if m and (prune or (prune is None and m >= self.PRUNE_MIN_ROWS)):
                self._bound = PartialBound.fit(self.embeddings, max_rank=dim if prune else dim // 3)
            self._fitted = True
        return self._bound

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def pruned(self) -> bool:
        """Whether single queries use the lower-bound pruning (a basis was fitted)."""
        return self._fit_bound() is not None

    def distances(self, queries) -> np.ndarray:
        """All distances (Q, M) from each query to each enrolled row."""
        q = _as_matrix(queries, "queries", self.embeddings.shape[1])
        return pairwise_distances(q, self.embeddings, dtype=np.float32, b_sq_norms=self._sq_norms)

    def search(self, queries, k: int = 1, *, prune: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Distances (Q, k) and row indices (Q, k) of the k nearest rows per query, nearest first.

        ``prune=False`` forces one product over every row (the same answer; for comparisons)."""
        q = _as_matrix(queries, "queries", self.embeddings.shape[1])
        if not np.isfinite(q).all():
            raise ValueError("the query embeddings hold NaN or inf: no nearest row can be named")
        m, dim = self.embeddings.shape
        kk = min(k, m)
        if kk == 0:
            return _pad(np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64), k)
        dist = np.empty((len(q), kk), np.float32)
        idx = np.empty((len(q), kk), np.int64)
        q_norms = np.sqrt(np.einsum("ij,ij->i", q, q))
        bound = self._fit_bound() if prune and len(q) <= self.PRUNE_MAX_QUERIES and kk * 8 <= self.chunk else None
        if bound is not None:
            for j, row in enumerate(q):
                tol = tolerance(dim, float(q_norms[j]), self._max_norm)
                rows, _ = pruned_candidates(bound, self.embeddings, self._sq_norms, row, kk, tol, self.chunk)
                dist[j], idx[j] = rank_exactly(self.embeddings, row, rows, kk)
            return _pad(dist, idx, k)
        # One product for all queries, ranked on |e|^2 - 2 q.e (|q|^2 is the same for every row);
        # every row within rounding of the k-th goes to the exact ranking, so ties are decided there.
        score = q @ self.embeddings.T
        score *= -2.0
        score += self._sq_norms
        for j, row in enumerate(q):
            tol = tolerance(dim, float(q_norms[j]), self._max_norm)
            kth = np.partition(score[j], kk - 1)[kk - 1] if kk < m else score[j].max()
            rows = np.flatnonzero(score[j] <= kth + 2.0 * tol)
            dist[j], idx[j] = rank_exactly(self.embeddings, row, rows, kk)
        return _pad(dist, idx, k)


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
