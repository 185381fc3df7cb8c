"""The held-out clustering protocol: a clustering rule chosen on some people and judged on others,
at several sizes and identity mixes (pure numpy and SciPy; embeddings and labels in, figures out).

A rule is a cut ``threshold(n) -> distance`` for average linkage (the library's default method) on
``n`` faces. :func:`split_halves` cuts a set's identities in two; :func:`draws` resamples a half at
each size in three identity mixes; :func:`evaluate` scores rules on every resample (BCubed P, R, F)
and estimates them at sizes beyond the half (:func:`larger`); :func:`worst` keeps the worst cell;
:func:`oracle` is the best any single cut could do (what a threshold rule can reach at all).
``benchmarks/clustering_held_out.py`` runs it on lfw-dev and faces/; a test runs a short form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from facenet_keras.evaluation.metrics import bcubed

__all__ = [
    "SIZES",
    "MIXES",
    "LARGER",
    "split_halves",
    "resample",
    "draws",
    "average_tree",
    "cut",
    "impostor_distances",
    "larger",
    "evaluate",
    "worst",
    "oracle",
]

SIZES: tuple[int | None, ...] = (100, 200, 300, None)  # None: the whole half
MIXES = ("lfw", "pairs", "large")
LARGER = (1000, 3000, 7000)  # sizes beyond a half, estimated (not measured) by larger()

Rule = Callable[[int], float]  # number of faces -> the average-linkage cut


def split_halves(people: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of half A and half B: the set's identities shuffled and cut in two."""
    names = np.unique(people)
    rng.shuffle(names)
    a = set(names[: len(names) // 2])
    in_a = np.array([p in a for p in people])
    return np.flatnonzero(in_a), np.flatnonzero(~in_a)


def resample(people: np.ndarray, mix: str, size: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """Rows of one resample of ``size`` faces (None: as many as the pool holds) in identity ``mix``;
    None when the pool cannot fill it.

    ``lfw``: people drawn at random with all their faces (as LFW: most seen once, a few many times);
    ``pairs``: two faces of each person among those with two or more, a fifth single photos of
    other people; ``large``: people with five faces or more, all of them, a tenth single photos."""
    if size is None:
        return np.arange(len(people)) if mix == "lfw" else resample(people, mix, _capacity(people, mix), rng)
    names, counts = np.unique(people, return_counts=True)
    rows_of = {n: np.flatnonzero(people == n) for n in names}
    order = rng.permutation(len(names))
    picked: list[int] = []
    if mix == "lfw":
        for k in order:
            picked += list(rows_of[names[k]])
            if len(picked) >= size:
                return np.array(picked[:size])
        return None
    group_min, group_share = (2, 0.8) if mix == "pairs" else (5, 0.9)
    grouped = int(round(size * group_share))
    singles = []
    for k in order:
        rows = rng.permutation(rows_of[names[k]])
        if counts[k] >= group_min and len(picked) < grouped:
            picked += list(rows[:2] if mix == "pairs" else rows)
        else:
            singles.append(rows[0])
    picked = picked[:grouped]
    need = size - len(picked)
    if len(picked) < grouped or len(singles) < need:
        return None
    return np.array(picked + singles[:need])


def _capacity(people: np.ndarray, mix: str) -> int:
    """The largest resample of ``mix`` a pool can fill."""
    counts = np.unique(people, return_counts=True)[1]
    if mix == "pairs":
        paired = 2 * int(np.sum(counts >= 2))
        return int(min(paired / 0.8, paired + np.sum(counts < 2)))
    large = int(np.sum(counts[counts >= 5]))
    return int(min(large / 0.9, large + np.sum(counts < 5)))


def draws(
    people: np.ndarray, resamples: int, seed: int, sizes: tuple[int | None, ...] = SIZES
) -> Iterator[tuple[str, str, np.ndarray]]:
    """(mix, size label, rows) of every resample of a pool, seeded; the whole pool is drawn once."""
    rng = np.random.default_rng(seed)
    for mix in MIXES:
        for size in sizes:
            for _ in range(1 if size is None else resamples):
                rows = resample(people, mix, size, rng)
                if rows is not None:
                    yield mix, "all" if size is None else str(size), rows


def average_tree(x: np.ndarray) -> np.ndarray:
    """The average-linkage tree of ``x`` (the library's exact route), to cut at several thresholds."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    return linkage(pdist(np.asarray(x, np.float64)), method="average")


def cut(tree: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster ids of the tree cut at ``threshold`` (a face alone is its own cluster)."""
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, t=threshold, criterion="distance").astype(np.int64) - 1


def impostor_distances(x: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Sorted distances of every pair of faces of different people."""
    i, j = np.triu_indices(len(x), 1)
    other = people[i] != people[j]
    return np.sort(np.linalg.norm(x[i[other]] - x[j[other]], axis=1))


def larger(tree, people: np.ndarray, impostor: np.ndarray, t: float, n: int) -> tuple[float, float, float]:
    """(P, R, F) estimated for ``n`` faces of the pool's kind cut at ``t``: recall as measured on the
    pool at ``t`` (it depends on how far a person's faces lie apart, not on how many others there
    are), precision as measured on the pool at the cut t' that puts as many other people's faces
    within reach of a face, (pool - 1) FAR(t') = (n - 1) FAR(t). Checked against the one large fold
    measured (6,893 faces, cut 0.447: P 0.985, R 0.846; this estimate from lfw-dev: P 0.98, R 0.84).
    One pair of photos of one person under two names makes FAR(t) > 0 at any cut and collapses it."""
    pool = len(people)
    far = np.searchsorted(impostor, t, side="right") / len(impostor)
    rate = min(1.0, far * (n - 1) / (pool - 1))
    t_pool = impostor[min(len(impostor) - 1, int(np.ceil(rate * len(impostor))) - 1)] if rate > 0 else t
    recall = bcubed(people, cut(tree, t))["recall"]
    precision = bcubed(people, cut(tree, max(t, float(t_pool))))["precision"]
    return precision, recall, 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(
    x: np.ndarray,
    people: np.ndarray,
    rules: dict[str, Rule],
    resamples: int,
    seed: int,
    *,
    sizes: tuple[int | None, ...] = SIZES,
    estimate: tuple[int, ...] = LARGER,
) -> dict[str, dict[tuple[str, str], list[tuple]]]:
    """{rule: {(mix, size): [(P, R, F, N, threshold) per resample]}}: each rule cuts the same
    average-linkage tree of every resample; plus the estimate at each size in ``estimate`` (mix
    "lfw~", :func:`larger`) from the whole pool."""
    out: dict = {name: {} for name in rules}
    for mix, size, rows in draws(people, resamples, seed, sizes):
        tree = average_tree(x[rows])
        for name, threshold in rules.items():
            t = threshold(len(rows))
            b = bcubed(people[rows], cut(tree, t))
            out[name].setdefault((mix, size), []).append((b["precision"], b["recall"], b["f"], len(rows), t))
    if estimate:
        tree, impostor = average_tree(x), impostor_distances(x, people)
        for name, threshold in rules.items():
            for n in estimate:
                t = threshold(n)
                out[name][("lfw~", str(n))] = [(*larger(tree, people, impostor, t, n), n, t)]
    return out


def worst(cells: dict, measured: bool = True) -> tuple:
    """The lowest F over the measured cells (or the estimated ones, mix "lfw~"):
    (P, R, F, N, threshold, mix, size)."""
    rows = [(*v, mix, size) for (mix, size), vs in cells.items() for v in vs if (mix != "lfw~") == measured]
    return min(rows, key=lambda v: v[2])


def oracle(
    x: np.ndarray,
    people: np.ndarray,
    grid: np.ndarray,
    resamples: int,
    seed: int,
    *,
    sizes: tuple[int | None, ...] = SIZES,
    estimate: tuple[int, ...] = LARGER,
) -> dict:
    """What any single average-linkage cut from ``grid`` can reach on a pool, knowing the answers:
    ``per_resample`` the worst over resamples of each one's best F; ``per_size`` {size: (worst F,
    cut)} of the one cut that is best for all resamples and mixes of that size; ``estimated`` {n: (F,
    cut)} the best estimated F at n faces. No rule that picks one cut per size can do better."""
    f_of: dict[str, list[list[float]]] = {}
    for _, size, rows in draws(people, resamples, seed, sizes):
        tree = average_tree(x[rows])
        f_of.setdefault(size, []).append([bcubed(people[rows], cut(tree, t))["f"] for t in grid])
    per_size, per_resample = {}, 1.0
    for size, fs in f_of.items():
        table = np.asarray(fs)
        per_resample = min(per_resample, float(table.max(axis=1).min()))
        low = table.min(axis=0)
        per_size[size] = (float(low.max()), float(grid[int(low.argmax())]))
    tree, impostor = average_tree(x), impostor_distances(x, people)
    estimated = {}
    for n in estimate:
        f = [larger(tree, people, impostor, float(t), n)[2] for t in grid]
        estimated[n] = (float(max(f)), float(grid[int(np.argmax(f))]))
    return {"per_resample": per_resample, "per_size": per_size, "estimated": estimated}
