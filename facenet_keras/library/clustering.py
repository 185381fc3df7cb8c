"""Clustering of unnamed faces into people: numpy, SciPy and scikit-learn (the ``library`` extra);
embeddings in, labels out.

Every method returns one cluster id per face (0, 1, ... by decreasing size) and -1 for a face left
alone ("unknown"): a group needs two faces at least, and nothing is forced into a group.

The default is average linkage cut at a threshold derived from the profile's calibration and the
number of faces (:func:`clustering_threshold`): the 1:1 threshold is not a clustering threshold,
because each of N faces meets N - 1 others, so the cut tightens as N grows; but only until the
strangers it lets in balance the face's own photos it leaves out, so it does not over-split large
sets. Where it stops is each profile's own constant (:attr:`Calibration.balance`), chosen on half of
the development identities and judged on the other half (``benchmarks/clustering_held_out.py``,
protocol in :mod:`facenet_keras.evaluation.held_out`); methods compared in
``benchmarks/clustering.py``.

Scale: below :data:`DENSE_MAX` faces the full distance matrix is used (exact); above it, only the
k nearest neighbours of each face (a sparse graph, found with identity.search's index in chunks),
so 100k faces never build an N x N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenet_keras.identity.search import make_index, pairwise_distances

__all__ = [
    "Calibration",
    "ENCODER_CALIBRATION",
    "ACCURATE_CALIBRATION",
    "calibration_for",
    "METHODS",
    "DEFAULT_METHOD",
    "clustering_threshold",
    "knn",
    "cluster",
    "relabel",
]

DENSE_MAX = 3000  # faces up to which the exact N x N distance matrix is used
DEFAULT_K = 30  # neighbours per face in the sparse graph (k=30 reproduces exact average linkage on LFW-dev)
UNCLUSTERED = -1


@dataclass(frozen=True)
class Calibration:
    """A profile's distances, each kind modelled as a normal law: other people's (impostor) pairs,
    of which ``threshold`` accepts a fraction ``far``, with spread ``impostor_std``; and one
    person's (genuine) pairs, mean ``genuine_mean``, spread ``genuine_std``. ``balance``: the
    clustering cut's constant for this profile (:func:`clustering_threshold`).

    Defaults, dlib ResNet with the default pipeline (the fast profile): 0.6 is the 10-fold threshold
    on both development sets (docs/performance.md, "How the default threshold was chosen"), where
    it accepts about 1% of impostor pairs; the impostor spread is 0.091 on LFW fold 1 and 0.095 on
    faces/ (all pairs of the main face per photo); a normal law fits LFW's tail to within 0.01 down
    to 1e-5. Genuine pairs: every same-person pair of faces/ and lfw-dev together (1,435), mean
    0.394, spread 0.087 (benchmarks/clustering_held_out.py prints them for each profile). Balance
    20: the best worst-case BCubed F on half A of the held-out benchmark for this profile.
    """

    threshold: float = 0.6
    far: float = 1e-2
    impostor_std: float = 0.093
    genuine_mean: float = 0.394
    genuine_std: float = 0.087
    balance: float = 20.0

    @property
    def impostor_mean(self) -> float:
        from scipy.special import ndtri

        return float(self.threshold - ndtri(self.far) * self.impostor_std)

    def quantile(self, rate: float) -> float:
        """The distance below which a fraction ``rate`` of impostor pairs falls."""
        from scipy.special import ndtri

        return float(self.impostor_mean + ndtri(rate) * self.impostor_std)

    def false_accepts(self, distance: float) -> float:
        """The fraction of impostor pairs within ``distance``."""
        from scipy.special import ndtr

        return float(ndtr((distance - self.impostor_mean) / self.impostor_std))

    def false_rejects(self, distance: float) -> float:
        """The fraction of genuine pairs beyond ``distance``."""
        from scipy.special import ndtr

        return float(ndtr((self.genuine_mean - distance) / self.genuine_std))


ENCODER_CALIBRATION = Calibration()
# The accurate profile's fused distances (faces/profiles.py), measured the same way on the same
# photos (benchmarks/clustering_held_out.py prints it): 1% of impostor pairs within 2.278. Its
# genuine and impostor distances lie further apart than dlib's, so a tighter cut costs it few of a
# person's own photos: balance 1 is its best worst case on half A (20, dlib's, was 0.012 lower).
ACCURATE_CALIBRATION = Calibration(
    threshold=2.2778, far=1e-2, impostor_std=0.1472, genuine_mean=1.3885, genuine_std=0.2542, balance=1.0
)


def calibration_for(space_id: str | None) -> Calibration:
    """The calibration of the profile whose embedding space ``space_id`` names (the fast profile's,
    dlib's, for any other space)."""
    from facenet_keras.faces.profiles import profile_of_space

    profile = profile_of_space(space_id)
    return ACCURATE_CALIBRATION if profile is not None and profile.name == "accurate" else ENCODER_CALIBRATION


def clustering_threshold(
    n_faces: int, calibration: Calibration = ENCODER_CALIBRATION, balance: float | None = None
) -> float:
    """The average-linkage cut for ``n_faces`` faces: where the other people's faces a face meets
    within it, (N - 1) x FAR, balance ``balance`` (default: the profile's own,
    ``calibration.balance``) x the share of its own other photos left beyond it, FRR; never above
    the 1:1 threshold.

    More faces bring more strangers within any cut, so the cut tightens as N grows, but only as
    far as the profile's own genuine distances allow: a cut that held the strangers per face at a
    quarter whatever N over-split at 6,893 faces (cut 0.447, BCubed recall 0.846). Default
    calibration (fast): 100 faces -> 0.571, 807 -> 0.536, 6,893 -> 0.499, 100k -> 0.454; below 20,
    0.6. Accurate: 100 -> 2.047, 807 -> 1.994, 6,893 -> 1.943, 100k -> 1.882."""
    from scipy.optimize import brentq

    n = max(2, int(n_faces))
    cal = calibration
    balance = cal.balance if balance is None else float(balance)
    lo, hi = min(cal.genuine_mean, cal.threshold), cal.threshold

    def excess(t: float) -> float:
        return (n - 1) * cal.false_accepts(t) - balance * cal.false_rejects(t)

    if excess(hi) <= 0:
        return float(hi)
    if excess(lo) >= 0:
        return float(lo)
    return float(brentq(excess, lo, hi, xtol=1e-6))


# ---------------------------------------------------------------------------- neighbours
def knn(
    embeddings: np.ndarray, k: int = DEFAULT_K, *, backend: str = "exact", chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other faces of each face: distances (N, k) float32 and indices (N, k) int64,
    nearest first, padded with inf / -1. Queries go in chunks, so memory is chunk x N, not N x N."""
    x = np.ascontiguousarray(np.asarray(embeddings, np.float32))
    n = len(x)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    index = make_index(x, backend)
    dist = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for start in range(0, n, chunk):
        d, i = index.search(x[start : start + chunk], k + 1)
        rows = np.arange(start, min(start + chunk, n))
        # drop each face itself (it may not come first when duplicates tie at distance 0)
        is_self = i == rows[:, None]
        keep = ~is_self
        keep[~is_self.any(axis=1), -1] = False  # no self found: drop the farthest instead
        dist[rows] = d[keep].reshape(len(rows), k)
        idx[rows] = i[keep].reshape(len(rows), k)
    return dist, idx


def _graph(dist: np.ndarray, idx: np.ndarray, n: int, max_distance: float | None = None):
    """Symmetric sparse graph (CSR, distances as weights) of the kNN edges (within max_distance)."""
    from scipy.sparse import coo_matrix

    rows = np.repeat(np.arange(n), dist.shape[1])
    cols = idx.reshape(-1)
    w = dist.reshape(-1).astype(np.float64)
    keep = cols >= 0
    if max_distance is not None:
        keep &= w <= max_distance
    g = coo_matrix((np.maximum(w[keep], 1e-12), (rows[keep], cols[keep])), shape=(n, n)).tocsr()
    return g.maximum(g.T)


# ---------------------------------------------------------------------------- labels
def relabel(labels, min_size: int = 2) -> np.ndarray:
    """Cluster ids 0, 1, ... by decreasing size (ties: first face first); groups smaller than
    ``min_size`` and negative ids become -1."""
    labels = np.asarray(labels).reshape(-1)
    out = np.full(len(labels), UNCLUSTERED, np.int64)
    valid = labels >= 0
    if not valid.any():
        return out
    ids, first, counts = np.unique(labels[valid], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new = 0
    for j in order:
        if counts[j] < min_size:
            continue
        out[valid & (labels == ids[j])] = new
        new += 1
    return out


# ---------------------------------------------------------------------------- methods
def _average(x: np.ndarray, threshold: float, k: int, backend: str, dense_max: int | None = None) -> np.ndarray:
    """Average linkage cut at ``threshold``, exact.

    Two groups merge only if their mean distance is within the threshold, so some pair of them is:
    every group lies inside one connected component of the graph of pairs within the threshold
    (single linkage). Large sets are therefore split into those components (found from the kNN
    graph) and each is clustered on its own exact distance matrix; only a component larger than
    :data:`DENSE_MAX` falls back to scikit-learn's average linkage restricted to kNN edges.
    """
    n = len(x)
    if n <= (DENSE_MAX if dense_max is None else dense_max):
        return _dense_average(x, threshold)
    from scipy.sparse.csgraph import connected_components

    dist, idx = knn(x, k, backend=backend)
    graph = _graph(dist, idx, n, threshold)
    _, comp = connected_components(graph, directed=False)
    labels = np.full(n, UNCLUSTERED, np.int64)
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    next_id = 0
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        if len(members) == 2:  # joined by an edge within the threshold: one group
            sub = np.zeros(2, np.int64)
        elif len(members) <= DENSE_MAX:
            sub = _dense_average(x[members], threshold)
        else:
            from sklearn.cluster import AgglomerativeClustering

            sub_graph = _graph(*_restrict(dist, idx, members), len(members))
            sub = AgglomerativeClustering(
                n_clusters=None, distance_threshold=threshold, linkage="average", connectivity=sub_graph
            ).fit_predict(x[members].astype(np.float64))
        labels[members] = sub + next_id
        next_id += int(sub.max()) + 1
    return labels


def _dense_average(x: np.ndarray, threshold: float) -> np.ndarray:
    """Exact average linkage (UPGMA) on the full distance matrix of ``x``, cut at ``threshold``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    d = pairwise_distances(x, x)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    tree = linkage(squareform(d, checks=False), method="average")
    return fcluster(tree, t=threshold, criterion="distance").astype(np.int64) - 1


def _restrict(dist: np.ndarray, idx: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kNN lists of ``members`` renumbered within them (neighbours outside become -1)."""
    where = np.full(int(idx.max()) + 2, -1, np.int64)
    where[members] = np.arange(len(members))
    sub_idx = np.where(idx[members] >= 0, where[idx[members]], -1)
    return dist[members], sub_idx


def _single(x: np.ndarray, threshold: float, k: int, backend: str) -> np.ndarray:
    """Connected components of the kNN edges within the threshold (single linkage: chains)."""
    from scipy.sparse.csgraph import connected_components

    dist, idx = knn(x, k, backend=backend)
    return connected_components(_graph(dist, idx, len(x), threshold), directed=False)[1]


def chinese_whispers(
    dist: np.ndarray, idx: np.ndarray, threshold: float, iterations: int = 100, seed: int = 0
) -> np.ndarray:
    """Chinese whispers (Biemann 2006) over the kNN edges within ``threshold``, each edge of weight 1
    as in dlib: every face, in random order, takes the label most common among its neighbours."""
    n = len(dist)
    rng = np.random.default_rng(seed)
    g = _graph(dist, idx, n, threshold)
    indptr, indices = g.indptr, g.indices
    labels = np.arange(n)
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(n):
            nb = indices[indptr[i] : indptr[i + 1]]
            if len(nb) == 0:
                continue
            values, counts = np.unique(labels[nb], return_counts=True)
            best = values[np.argmax(counts)]
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if changed == 0:
            break
    return labels


def _whispers(x: np.ndarray, threshold: float, k: int, backend: str) -> np.ndarray:
    dist, idx = knn(x, k, backend=backend)
    return chinese_whispers(dist, idx, threshold)


def _hdbscan(x: np.ndarray, threshold: float, k: int, backend: str) -> np.ndarray:
    """scikit-learn's HDBSCAN, groups of two or more; it picks its own density levels (no threshold)."""
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=2, min_samples=1, copy=True).fit_predict(x.astype(np.float64))


METHODS = {"average": _average, "chinese-whispers": _whispers, "single": _single, "hdbscan": _hdbscan}
DEFAULT_METHOD = "average"


def cluster(
    embeddings,
    *,
    method: str = DEFAULT_METHOD,
    threshold: float | None = None,
    k: int = DEFAULT_K,
    backend: str = "exact",
    calibration: Calibration = ENCODER_CALIBRATION,
) -> tuple[np.ndarray, float]:
    """Group faces (N, D) into people: ``(labels (N,) int64, threshold used)``, labels 0, 1, ... by
    decreasing size and -1 for faces left alone.

    ``threshold``: the distance cut (default :func:`clustering_threshold` of N under the profile's
    ``calibration``; HDBSCAN ignores it).
    ``k``: neighbours per face in the sparse graph; ``backend``: the kNN search ('exact', 'faiss').
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}: use one of {', '.join(METHODS)}")
    x = np.asarray(embeddings, np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or inf")
    tau = clustering_threshold(len(x), calibration) if threshold is None else float(threshold)
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"threshold must be a positive distance, got {threshold}")
    if len(x) < 2:
        return np.full(len(x), UNCLUSTERED, np.int64), tau
    return relabel(METHODS[method](x, tau, k, backend)), tau
