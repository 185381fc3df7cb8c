"""Clustering on people the rule has never seen: the cut is chosen on half of the identities and
judged on the other half, resampled at several sizes and identity mixes, per profile.

Protocol (seeded): the identities of ``../shared/data/lfw-dev`` and of ``../shared/data/faces`` are
each split in two halves at random; A = the two first halves (522 faces), B = the two second ones
(471 faces, 240 people). Faces are the main face of each photo (``clustering_faces.py``); the
quality gate's rejects are left out (the "gate off" table keeps them: the gate's effect alone).
From a half, resamples are drawn at each size (100, 200, 300 faces and the whole half) and
identity mix:

  * ``lfw``: people drawn at random with all their faces (as LFW: most seen once, a few many times),
  * ``pairs``: two faces of each person drawn among those with two or more, a fifth of the faces
    single photos of other people,
  * ``large``: people with five faces or more, all of them, a tenth single photos of other people;
    a mix that cannot fill a size on a half is not drawn at that size.

A half holds about 500 faces; larger sets (1,000, 3,000, 7,000 faces, mix ``lfw~``) are estimated,
not measured (:func:`larger`; from lfw-dev it reproduces the one large fold measured elsewhere).

Rules, all average linkage (the library's default method) with a cut from the profile's calibration
(:class:`facenet_keras.library.clustering.Calibration`), so one rule serves both profiles: the
balanced cut ``(N - 1) FAR(cut) = balance x FRR(cut)`` (the library's), and impostor quantiles
``q(N) = f / (N - 1) ** alpha`` (alpha 1, f 0.25: the library's rule before). The rule with the best
worst-case BCubed F on half A (measured and estimated sizes, both profiles together) is reported on
half B beside the rule before: the WORST F over the resamples of each size and mix, with its P and R.

Profiles: ``fast``, the dlib embeddings of the pipeline, under the shipped calibration; ``accurate``,
dlib and SFace fused into one vector (:func:`fuse`, to be swapped for the package's own when it
lands), calibrated here on all pairs of both data sets together (as the profile's constants are).

Run: ``nice .venv/bin/python benchmarks/clustering_held_out.py [--resamples 20] [--seed 0] [--json OUT]``
(the first run encodes the 993 photos, about 5 minutes on two cores; later runs read the cache and
take about a minute). Figures: docs/library.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from clustering_faces import FaceSet, load_faces  # noqa: E402

from facenet_keras.evaluation.metrics import bcubed  # noqa: E402
from facenet_keras.faces.profiles import ACCURATE  # noqa: E402
from facenet_keras.library import clustering as C  # noqa: E402

SIZES = (100, 200, 300, None)  # None: the whole half
MIXES = ("lfw", "pairs", "large")


# ---------------------------------------------------------------------------- profiles
def fusion_scales(dlib: np.ndarray, sface: np.ndarray) -> tuple[float, float]:
    """(a, b) of the fused profile: a = sqrt(0.5 / s_dlib), b = sqrt(0.5 / s_sface), s = the std of
    the squared distance over all pairs of faces."""
    i, j = np.triu_indices(len(dlib), 1)
    s_d = float(np.std(np.sum((dlib[i] - dlib[j]) ** 2, axis=1)))
    s_s = float(np.std(np.sum((sface[i] - sface[j]) ** 2, axis=1)))
    return float(np.sqrt(0.5 / s_d)), float(np.sqrt(0.5 / s_s))


def calibrate(x: np.ndarray, people: np.ndarray, far: float = 1e-2) -> C.Calibration:
    """A profile's calibration from all pairs: the distance accepting ``far`` of the cross-identity
    pairs and their spread; the mean and spread of the same-identity pairs."""
    i, j = np.triu_indices(len(x), 1)
    d = np.linalg.norm(x[i] - x[j], axis=1)
    same = people[i] == people[j]
    return C.Calibration(
        threshold=float(np.quantile(d[~same], far)),
        far=far,
        impostor_std=float(np.std(d[~same])),
        genuine_mean=float(np.mean(d[same])),
        genuine_std=float(np.std(d[same])),
    )


# ---------------------------------------------------------------------------- halves and resamples
def split_halves(faces: FaceSet, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of half A and half B: the set's identities shuffled and cut in two."""
    names = np.unique(faces.people)
    rng.shuffle(names)
    a = set(names[: len(names) // 2])
    in_a = np.array([p in a for p in faces.people])
    return np.flatnonzero(in_a), np.flatnonzero(~in_a)


def resample(people: np.ndarray, mix: str, size: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """Rows of one resample of ``size`` faces (None: the whole pool) in identity ``mix``; None when
    the pool cannot fill it."""
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


# ---------------------------------------------------------------------------- rules
def rule(f: float, alpha: float):
    """The cut at the impostor quantile ``q(N) = f / (N - 1) ** alpha`` of the profile's calibration
    (at most 1/2, never above the 1:1 threshold): alpha 1 keeps the expected number of other
    people's faces within the cut at f whatever N (the library's rule before, f = 0.25); alpha 0 is
    a fixed impostor rate, a fixed distance."""

    def threshold(cal: C.Calibration, n: int) -> float:
        q = min(0.5, f / max(1, n - 1) ** alpha)
        return min(cal.threshold, cal.quantile(q))

    return threshold


def balanced(balance: float):
    """The library's rule: (N - 1) FAR(cut) = balance x FRR(cut) (:func:`C.clustering_threshold`)."""
    return lambda cal, n: C.clustering_threshold(n, cal, balance)


BEFORE = "before: 0.25 strangers/face"


def rule_grid() -> dict:
    """Every rule searched on half A: the balanced cut at several balances, and impostor quantiles
    q(N) = f / (N - 1) ** alpha from a fixed rate (alpha 0) to a fixed count of strangers (alpha 1)."""
    grid = {f"balance {b:g}": balanced(b) for b in (0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0)}
    for alpha in (0.0, 0.5, 1.0):
        for q500 in (1e-4, 2e-4, 5e-4, 1e-3):
            f = float(f"{q500 * 499**alpha:.2g}")
            grid[f"alpha {alpha:g} f {f:g}"] = rule(f, alpha)
    grid[BEFORE] = rule(0.25, 1.0)
    return grid


def average_tree(x: np.ndarray):
    """The average-linkage tree of ``x`` (the library's dense route), to cut at several thresholds."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import pdist

    return linkage(pdist(x.astype(np.float64)), method="average")


def cut(tree, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return C.relabel(fcluster(tree, t=threshold, criterion="distance").astype(np.int64) - 1)


def draws(people: np.ndarray, resamples: int, seed: int):
    """(mix, size label, rows) of every resample of a pool, seeded."""
    rng = np.random.default_rng(seed)
    for mix in MIXES:
        for size in SIZES:
            for _ in range(1 if size is None else resamples):
                rows = resample(people, mix, size, rng)
                if rows is not None:
                    yield mix, "all" if size is None else str(size), rows


def evaluate(x: np.ndarray, people: np.ndarray, cal: C.Calibration, rules: dict, resamples: int, seed: int) -> dict:
    """{rule: {(mix, size): [(P, R, F, N, threshold) per resample]}} for average linkage, measured
    on resamples, plus the estimate at each of :data:`LARGER` faces (mix "lfw~", see :func:`larger`)."""
    out: dict = {name: {} for name in rules}
    for mix, size, rows in draws(people, resamples, seed):
        tree = average_tree(x[rows])
        for name, threshold in rules.items():
            t = threshold(cal, len(rows))
            b = bcubed(people[rows], cut(tree, t))
            out[name].setdefault((mix, size), []).append((b["precision"], b["recall"], b["f"], len(rows), t))
    tree, impostor = average_tree(x), _impostor_distances(x, people)
    for name, threshold in rules.items():
        for n in LARGER:
            t = threshold(cal, n)
            out[name][("lfw~", str(n))] = [(*larger(tree, people, impostor, t, n), n, t)]
    return out


LARGER = (1000, 3000, 7000)  # sizes beyond the halves, estimated (not measured) by larger()


def _impostor_distances(x: np.ndarray, people: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(x), 1)
    other = people[i] != people[j]
    return np.sort(np.linalg.norm(x[i[other]] - x[j[other]], axis=1))


def larger(tree, people: np.ndarray, impostor: np.ndarray, t: float, n: int) -> tuple[float, float, float]:
    """(P, R, F) estimated for ``n`` faces of the pool's kind cut at ``t``: recall as measured on the
    pool at ``t`` (it depends on how far a person's faces lie apart, not on how many others there
    are), precision as measured on the pool at the cut t' that puts as many other people's faces
    within reach of a face, (pool - 1) FAR(t') = (n - 1) FAR(t). Checked against the one large fold
    measured (6,893 faces, cut 0.447: P 0.985, R 0.846; this estimate from lfw-dev: P 0.98, R 0.84)."""
    pool = len(people)
    far = np.searchsorted(impostor, t, side="right") / len(impostor)
    rate = min(1.0, far * (n - 1) / (pool - 1))
    t_pool = impostor[min(len(impostor) - 1, int(np.ceil(rate * len(impostor))) - 1)] if rate > 0 else t
    R = bcubed(people, cut(tree, t))["recall"]
    P = bcubed(people, cut(tree, max(t, float(t_pool))))["precision"]
    return P, R, 0.0 if P + R == 0 else 2 * P * R / (P + R)


def worst(cells: dict, measured: bool = True) -> tuple:
    """The lowest F over the measured cells (or the estimated ones): (P, R, F, N, threshold, mix, size)."""
    rows = [(*v, mix, size) for (mix, size), vs in cells.items() for v in vs if (mix != "lfw~") == measured]
    return min(rows, key=lambda v: v[2])


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--resamples", type=int, default=20, help="resamples per size and mix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sets = [
        load_faces("lfw-dev", args.data / "lfw-dev" / "images"),
        load_faces("faces", args.data / "faces"),
    ]
    halves = {"A": [], "B": []}
    for s in sets:
        a, b = split_halves(s, rng)
        halves["A"].append(s.take(a))
        halves["B"].append(s.take(b))
        print(f"{s.name}: {len(s.people)} faces ({s.no_face} photos without one), {int(s.gated.sum())} gated")
    everyone = _concat([s.take(np.arange(len(s.people))) for s in sets])
    measured = fusion_scales(everyone.dlib, everyone.sface)
    scales = ACCURATE.scales  # the shipped profile's (faces/profiles.py)
    profiles = {
        "fast": lambda f: f.dlib,
        "accurate": lambda f: ACCURATE.fuse([f.dlib, f.sface]),
    }
    usable = ~everyone.gated
    cals = {"fast": C.ENCODER_CALIBRATION, "accurate": C.ACCURATE_CALIBRATION}  # the shipped ones
    for p, v in profiles.items():
        print(f"{p} calibration measured here: {calibrate(v(everyone)[usable], everyone.people[usable])}")
    print(
        f"fusion scales shipped a={scales[0]:.4f} b={scales[1]:.4f} (measured here {measured[0]:.4f} {measured[1]:.4f})"
    )
    for p, cal in cals.items():
        print(f"{p} calibration: {cal} (impostor mean {cal.impostor_mean:.4f})")
    report: dict = {"scales": scales, "calibrations": {p: vars(c) for p, c in cals.items()}, "rows": []}

    # choose the rule on half A, both profiles together, gate on: the best worst F over its
    # resamples and the estimates at larger sizes
    a = _concat(halves["A"]).take(np.flatnonzero(~_concat(halves["A"]).gated))
    grid = rule_grid()
    scores = {p: evaluate(v(a), a.people, cals[p], grid, args.resamples, args.seed) for p, v in profiles.items()}
    print(f"\nhalf A (choosing, {len(a.people)} faces): worst BCubed F measured / estimated at {LARGER} faces")
    chosen, best = "", -1.0
    for name in grid:
        w = {p: (worst(scores[p][name]), worst(scores[p][name], measured=False)) for p in profiles}
        low = min(min(m[2], e[2]) for m, e in w.values())
        print(f"  {name:28s} " + "  ".join(f"{p} {m[2]:.4f} / {e[2]:.4f} ({e[6]})" for p, (m, e) in w.items()))
        if low > best:
            chosen, best = name, low
    print(f"chosen on A: {chosen} (worst F {best:.4f}); shipped: balance {C.BALANCE:g}")
    lfw = sets[0].take(np.flatnonzero(~sets[0].gated))
    tree, impostor = average_tree(lfw.dlib), _impostor_distances(lfw.dlib, lfw.people)
    for t, what in (
        (0.447, "the cut that gave P 0.985 R 0.846 on 6,893 unseen faces"),
        (C.clustering_threshold(6893), "the shipped rule's cut for 6,893 faces"),
    ):
        P, R, F = larger(tree, lfw.people, impostor, t, 6893)
        print(f"estimate from lfw-dev for 6,893 faces at {t:.3f} ({what}): P {P:.3f} R {R:.3f} F {F:.4f}")
    report["chosen"] = chosen

    rules = {BEFORE: grid[BEFORE], f"chosen: {chosen}": grid[chosen]}
    print("\nwhole sets (development data, not held out): BCubed P / R / F")
    for s in sets:
        s = s.take(np.flatnonzero(~s.gated))
        for p, v in profiles.items():
            tree = average_tree(v(s))
            for name, threshold in rules.items():
                t = threshold(cals[p], len(s.people))
                b = bcubed(s.people, cut(tree, t))
                P, R, F = b["precision"], b["recall"], b["f"]
                print(f"  {s.name:8s} {p:9s} {name:28s} {t:6.3f} {P:6.3f} {R:6.3f} {F:6.4f}")
    for gate in (True, False):
        b = _concat(halves["B"])
        if gate:
            b = b.take(np.flatnonzero(~b.gated))
        print(
            f"\nhalf B (held out), gate {'on' if gate else 'off'}: {len(b.people)} faces, "
            f"{len(np.unique(b.people))} people; worst over {args.resamples} resamples per size "
            f"(lfw~: estimated, not measured)"
        )
        print(f"  {'profile':9s} {'rule':28s} {'mix':6s} {'size':>5s} {'thr':>6s} {'P':>6s} {'R':>6s} {'F':>6s}")
        for p, v in profiles.items():
            res = evaluate(v(b), b.people, cals[p], rules, args.resamples, args.seed + 1)
            for name, cells in res.items():
                for (mix, size), vs in cells.items():
                    P, R, F, n, t = min(vs, key=lambda r: r[2])
                    report["rows"].append(
                        {
                            "gate": gate,
                            "profile": p,
                            "rule": name,
                            "mix": mix,
                            "size": size,
                            "faces": n,
                            "threshold": t,
                            "P": P,
                            "R": R,
                            "F": F,
                            "resamples": len(vs),
                        }
                    )
                    print(f"  {p:9s} {name:28s} {mix:6s} {size:>5s} {t:6.3f} {P:6.3f} {R:6.3f} {F:6.4f}")
                w = worst(cells)
                print(f"  {p:9s} {name:28s} WORST measured F {w[2]:.4f} (P {w[0]:.3f}, R {w[1]:.3f}; {w[5]} {w[6]})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def _concat(parts: list[FaceSet]) -> FaceSet:
    return FaceSet(
        "+".join(p.name for p in parts),
        np.concatenate([p.people for p in parts]),
        np.concatenate([p.dlib for p in parts]),
        np.concatenate([p.sface for p in parts]),
        np.concatenate([p.gated for p in parts]),
        sum(p.no_face for p in parts),
    )


if __name__ == "__main__":
    sys.exit(main())
