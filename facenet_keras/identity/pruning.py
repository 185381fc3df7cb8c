"""Exact k-nearest search that reads a fraction of the gallery: a principal-subspace lower bound.

The gallery's rows are rotated once into the principal axes of the gallery (an orthonormal basis V,
so distances do not change) and only the first r coordinates are kept, ``P = (E - mu) V[:, :r]``
(r x M, about r/D of the gallery's memory). For a query q, the squared distance on those r
coordinates, ``|P_i - (q - mu) V_r|^2``, is a lower bound of the full squared distance |e_i - q|^2
(the other D - r squared coordinates are dropped, not negative). Real face embeddings are
low-dimensional (28 of 128 components hold 90 % of the variance), so the bound is tight: one pass
over P finds the few rows whose bound is below the current k-th full distance, and only those rows
are read in full. Every row that could be among the k nearest is checked, so the answer is the same
as a scan of every row (``search.rank_exactly`` makes the final order, ties included).

Worst case (isotropic data, where the bound is loose): a chunk whose bound lets more than 1/8 of
its rows through is scanned in full with one product, so a query costs at most (1 + r/D) scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 16  # rows per step of the scan: the threshold tightens after each chunk
VARIANCE = 0.85  # the kept components hold at least this share of the gallery's variance
FIT_ROWS = 16_384  # rows (evenly spaced) the basis is fitted on: the basis decides speed, never the answer
U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


def tolerance(dim: int, q_norm: float, max_row_norm: float) -> float:
    """A bound (squared-distance units) on the float32 rounding error of |e|^2 - 2 q.e + |q|^2 and of
    the projected bound, for rows of norm <= max_row_norm: 16 (D + 2) u (|q| + max |e|)^2, a few times
    the worst case of a D-term float32 dot product (D u |q| |e|). Rows within it are never pruned."""
    return 16.0 * (dim + 2) * U32 * (q_norm + max_row_norm) ** 2


@dataclass
class PartialBound:
    """The rotated first r coordinates of every row, and what the bound needs.

    mean (D,), basis (D, r) float32 orthonormal columns, proj (r, M) float32 (row-major by coordinate,
    so one coordinate of all rows is contiguous), proj_sq (M,) = |proj[:, i]|^2.
    """

    mean: np.ndarray
    basis: np.ndarray
    proj: np.ndarray
    proj_sq: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    @classmethod
    def fit(cls, embeddings: np.ndarray, max_rank: int) -> PartialBound | None:
        """Fit the principal basis on a sample of ``embeddings`` (M, D) float32 and project every row.

        None when more than ``max_rank`` components are needed for ``VARIANCE`` of the variance (the
        bound would be loose and the pass over it too long: plain search is then faster)."""
        m, dim = embeddings.shape
        sample = embeddings[:: max(1, m // FIT_ROWS)].astype(np.float64)
        mean = sample.mean(axis=0)
        centred = sample - mean
        eigval, eigvec = np.linalg.eigh(centred.T @ centred)
        eigval, eigvec = eigval[::-1].clip(min=0.0), eigvec[:, ::-1]
        share = np.cumsum(eigval) / max(float(eigval.sum()), 1e-300)
        rank = int(np.searchsorted(share, VARIANCE)) + 1
        rank = min(dim, -(-rank // 8) * 8)  # a multiple of 8: whole SIMD lanes
        if rank > max_rank:
            return None
        basis = np.ascontiguousarray(eigvec[:, :rank], dtype=np.float32)
        mean32 = mean.astype(np.float32)
        shift = mean32 @ basis
        proj = np.empty((rank, m), np.float32)
        for s in range(0, m, CHUNK):  # chunked: no (M, D) temporary
            part = embeddings[s : s + CHUNK] @ basis
            part -= shift
            proj[:, s : s + CHUNK] = part.T
        return cls(mean32, basis, proj, np.einsum("ij,ij->j", proj, proj))


def _dot(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """rows (n, D) . query (D,) -> (n,), without BLAS: the scan makes many small products, and
    OpenBLAS's threads wait a whole time slice for each other at every call on a loaded machine
    (measured: 16 chunked products 430 ms with 2 threads against 38 ms with 1, load ~12)."""
    return np.einsum("ij,j->i", rows, query)


def pruned_candidates(
    bound: PartialBound,
    embeddings: np.ndarray,
    sq_norms: np.ndarray,
    query: np.ndarray,
    k: int,
    tol: float,
    chunk: int = CHUNK,
) -> tuple[np.ndarray, int]:
    """Row indices that include every row whose squared distance to ``query`` (D,) is within ``tol``
    of the k-th smallest: the candidates an exact ranking then orders. ``sq_norms`` (M,) = |e_i|^2;
    ``chunk``: rows per step (the threshold is updated after each). Also returns how many rows were
    read in full (the rest were pruned by their bound).

    Pruning is safe because bound_i <= |e_i - q|^2 (up to rounding, which ``tol`` covers): a row is
    dropped only when its bound exceeds the k-th smallest full distance found so far, which is never
    below the final k-th distance.
    """
    m = len(embeddings)
    qc = (query - bound.mean) @ bound.basis
    qc_sq = float(qc @ qc)
    qq = float(query @ query)
    thresh = np.inf  # the k-th smallest full squared distance among the rows checked so far
    pool_d2 = np.empty(0, np.float32)
    pool_id = np.empty(0, np.int64)
    checked = 0
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        lb = np.einsum("i,ij->j", qc, bound.proj[:, s:e])  # (rows,): the bound, less the constant qc_sq
        lb *= -2.0
        lb += bound.proj_sq[s:e]
        if not np.isfinite(thresh):  # first chunk: a threshold from its rows of least bound
            first = min(e - s, max(4 * k, 16))
            if first < e - s:
                seed = np.argpartition(lb, first - 1)[:first]
            else:
                seed = np.arange(e - s)
            seed_d2 = sq_norms[s + seed] - 2.0 * (_dot(embeddings[s + seed], query)) + qq
            if len(seed_d2) >= k:
                thresh = float(np.partition(seed_d2, k - 1)[k - 1])
        keep = np.flatnonzero(lb <= thresh + tol - qc_sq)
        if len(keep) * 8 > e - s:  # the bound is loose here: one product over the chunk is cheaper
            keep = np.arange(e - s)
            d2 = sq_norms[s:e] - 2.0 * (_dot(embeddings[s:e], query)) + qq
        else:
            rows = keep + s
            d2 = sq_norms[rows] - 2.0 * (_dot(embeddings[rows], query)) + qq
        checked += len(keep)
        pool_id = np.concatenate([pool_id, keep + s])
        pool_d2 = np.concatenate([pool_d2, d2])
        if len(pool_d2) >= k:
            thresh = float(np.partition(pool_d2, k - 1)[k - 1])
            near = pool_d2 <= thresh + 2.0 * tol
            pool_id, pool_d2 = pool_id[near], pool_d2[near]
    return pool_id, checked
