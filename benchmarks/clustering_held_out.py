"""Clustering on people the rule has never seen: the cut is chosen on half of the identities and
judged on the other half, resampled at several sizes and identity mixes, per profile.

Protocol (seeded; :mod:`facenet_keras.evaluation.held_out`): the identities of
``../shared/data/lfw-dev`` and of ``../shared/data/faces`` are each split in two halves at random;
A = the two first halves (522 faces), B = the two second ones (471 faces, 240 people). Faces are
the main face of each photo (``clustering_faces.py``); the quality gate's rejects are left out (the
"gate off" table keeps them: the gate's effect alone). From a half, resamples are drawn at each
size (100, 200, 300 faces and the whole half) in three identity mixes (``lfw``: people with all
their faces, most seen once; ``pairs``: mostly two faces per person; ``large``: a few people with
five faces or more); larger sets (1,000, 3,000, 7,000 faces, mix ``lfw~``) are estimated, not
measured (``held_out.larger``; from lfw-dev it reproduces the one large fold measured elsewhere).

Rules, all average linkage (the library's default method) with a cut from the profile's calibration
(:class:`facenet_keras.library.clustering.Calibration`): the balanced cut
``(N - 1) FAR(cut) = balance x FRR(cut)`` (the library's), and impostor quantiles
``q(N) = f / (N - 1) ** alpha`` (alpha 1, f 0.25: the library's rule two rounds ago). For each
profile on its own, the rule with the best worst-case BCubed F on half A (measured and estimated
sizes; a tie goes to the better other worst) is the one to ship, and the library's shipped rule
(each profile's ``Calibration.balance``) is checked against it. On half B the shipped rule is
reported beside the rule before (balance 20 for both profiles): the WORST F over the resamples of
each size and mix, with its P and R. ``--oracle`` adds what any single cut per size could reach,
knowing the answers (no threshold rule does better).

Profiles: ``fast``, the dlib embeddings of the pipeline; ``accurate``, dlib and SFace fused into one
vector by the shipped profile (``facenet_keras/faces/profiles.py``); each under its shipped
calibration (the one measured here on all pairs of both sets is printed beside it).

Run: ``nice .venv/bin/python benchmarks/clustering_held_out.py [--resamples 20] [--seed 0] [--oracle]
[--json OUT]`` (the first run encodes the 993 photos, about 5 minutes on two cores; later runs read
the cache and take about a minute, three with ``--oracle``). Figures: docs/library.md.
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

from facenet_keras.evaluation import held_out as HO  # noqa: E402
from facenet_keras.evaluation.metrics import bcubed  # noqa: E402
from facenet_keras.faces.profiles import ACCURATE  # noqa: E402
from facenet_keras.library import clustering as C  # noqa: E402


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


QUARTER = "0.25 strangers/face"
BEFORE = "before: balance 20"


def rule_grid() -> dict:
    """Every rule searched on half A: the balanced cut at several balances, and impostor quantiles
    q(N) = f / (N - 1) ** alpha from a fixed rate (alpha 0) to a fixed count of strangers (alpha 1)."""
    grid = {f"balance {b:g}": balanced(b) for b in (0.3, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0)}
    for alpha in (0.0, 0.5, 1.0):
        for q500 in (1e-4, 2e-4, 5e-4, 1e-3):
            f = float(f"{q500 * 499**alpha:.2g}")
            grid[f"alpha {alpha:g} f {f:g}"] = rule(f, alpha)
    grid[QUARTER] = rule(0.25, 1.0)
    return grid


def shipped(cal: C.Calibration, n: int) -> float:
    """The library's cut as shipped: the profile's own balance (``cal.balance``)."""
    return C.clustering_threshold(n, cal)


def for_profile(rules: dict, cal: C.Calibration) -> dict:
    """The rules as held_out takes them (faces -> cut), under one profile's calibration."""
    return {name: (lambda n, r=r: r(cal, n)) for name, r in rules.items()}


def choose(cells: dict) -> tuple[str, tuple[float, float]]:
    """The rule with the best worst F over the measured and the estimated cells of half A; on a tie,
    the better worst of the other kind. Returns (rule, (worst, other worst))."""
    key = {}
    for name, c in cells.items():
        m, e = HO.worst(c)[2], HO.worst(c, measured=False)[2]
        key[name] = (min(m, e), max(m, e))
    best = max(key, key=key.get)
    return best, key[best]


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--resamples", type=int, default=20, help="resamples per size and mix")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--oracle", action="store_true", help="also the best single cut per size (slower)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sets = [
        load_faces("lfw-dev", args.data / "lfw-dev" / "images"),
        load_faces("faces", args.data / "faces"),
    ]
    halves: dict[str, list[FaceSet]] = {"A": [], "B": []}
    for s in sets:
        a, b = HO.split_halves(s.people, rng)
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
        m = calibrate(v(everyone)[usable], everyone.people[usable])
        print(
            f"{p} calibration measured here: threshold {m.threshold:.4f} (FAR {m.far:g}), impostor_std "
            f"{m.impostor_std:.4f}, genuine_mean {m.genuine_mean:.4f}, genuine_std {m.genuine_std:.4f}"
        )
    print(
        f"fusion scales shipped a={scales[0]:.4f} b={scales[1]:.4f} (measured here {measured[0]:.4f} {measured[1]:.4f})"
    )
    for p, cal in cals.items():
        print(f"{p} calibration: {cal} (impostor mean {cal.impostor_mean:.4f})")
    report: dict = {"scales": scales, "calibrations": {p: vars(c) for p, c in cals.items()}, "rows": []}

    # choose the rule on half A, each profile on its own, gate on: the best worst F over its
    # resamples and the estimates at larger sizes
    a = _concat(halves["A"]).take(np.flatnonzero(~_concat(halves["A"]).gated))
    grid = rule_grid()
    print(f"\nhalf A (choosing, {len(a.people)} faces): worst BCubed F measured / estimated at {HO.LARGER} faces")
    scores = {
        p: HO.evaluate(v(a), a.people, for_profile(grid, cals[p]), args.resamples, args.seed)
        for p, v in profiles.items()
    }
    for name in grid:
        w = {p: (HO.worst(scores[p][name]), HO.worst(scores[p][name], measured=False)) for p in profiles}
        print(f"  {name:28s} " + "  ".join(f"{p} {m[2]:.4f} / {e[2]:.4f} ({e[6]})" for p, (m, e) in w.items()))
    report["chosen"] = {}
    for p in profiles:
        chosen, (low, other) = choose(scores[p])
        ships = f"balance {cals[p].balance:g}"
        agree = "the same" if chosen == ships else "NOT the same: the shipped constant is stale"
        print(f"{p}: chosen on A {chosen} (worst F {low:.4f}, other worst {other:.4f}); shipped {ships}: {agree}")
        report["chosen"][p] = chosen
    lfw = sets[0].take(np.flatnonzero(~sets[0].gated))
    tree, impostor = HO.average_tree(lfw.dlib), HO.impostor_distances(lfw.dlib, lfw.people)
    for t, what in (
        (0.447, "the cut that gave P 0.985 R 0.846 on 6,893 unseen faces"),
        (C.clustering_threshold(6893), "the fast profile's shipped cut for 6,893 faces"),
    ):
        P, R, F = HO.larger(tree, lfw.people, impostor, t, 6893)
        print(f"estimate from lfw-dev for 6,893 faces at {t:.3f} ({what}): P {P:.3f} R {R:.3f} F {F:.4f}")

    rules = {"shipped": shipped, BEFORE: balanced(20.0)}
    print("\nwhole sets (development data, not held out): BCubed P / R / F")
    for s in sets:
        s = s.take(np.flatnonzero(~s.gated))
        for p, v in profiles.items():
            tree = HO.average_tree(v(s))
            for name, threshold in rules.items():
                t = threshold(cals[p], len(s.people))
                b = bcubed(s.people, HO.cut(tree, t))
                prf = f"{b['precision']:6.3f} {b['recall']:6.3f} {b['f']:6.4f}"
                print(f"  {s.name:8s} {p:9s} {_label(name, cals[p]):28s} {t:6.3f} {prf}")
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
            own = rules if cals[p].balance != 20.0 else {"shipped": shipped}  # else "before" is the same rule
            res = HO.evaluate(v(b), b.people, for_profile(own, cals[p]), args.resamples, args.seed + 1)
            if own is not rules:
                print(f"  {p:9s} {BEFORE}: the same rule as shipped")
            for name, cells in res.items():
                label = _label(name, cals[p])
                for (mix, size), vs in cells.items():
                    P, R, F, n, t = min(vs, key=lambda r: r[2])
                    report["rows"].append(
                        {
                            "gate": gate,
                            "profile": p,
                            "rule": label,
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
                    print(f"  {p:9s} {label:28s} {mix:6s} {size:>5s} {t:6.3f} {P:6.3f} {R:6.3f} {F:6.4f}")
                w, e = HO.worst(cells), HO.worst(cells, measured=False)
                print(
                    f"  {p:9s} {label:28s} WORST measured F {w[2]:.4f} (P {w[0]:.3f}, R {w[1]:.3f}; {w[5]} {w[6]}),"
                    f" estimated {e[2]:.4f} ({e[6]})"
                )
    if args.oracle:
        report["oracle"] = print_oracle(halves, profiles, cals, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def print_oracle(halves: dict, profiles: dict, cals: dict, args) -> dict:
    """What one average-linkage cut per size can reach on each half, knowing the answers."""
    print("\noracle (knowing the answers): worst BCubed F of the best single cut (per resample; per size)")
    out: dict = {}
    for p, v in profiles.items():
        cal = cals[p]
        grid = np.linspace(cal.genuine_mean, cal.threshold, 56)
        for h, seed in (("A", args.seed), ("B", args.seed + 1)):
            f = _concat(halves[h])
            f = f.take(np.flatnonzero(~f.gated))
            o = HO.oracle(v(f), f.people, grid, args.resamples, seed)
            out[f"{p} {h}"] = o
            sizes = "  ".join(f"{s}: {w:.4f} at {t:.3f}" for s, (w, t) in o["per_size"].items())
            est = "  ".join(f"~{n}: {w:.4f} at {t:.3f}" for n, (w, t) in o["estimated"].items())
            print(f"  {p:9s} half {h}  per resample {o['per_resample']:.4f}; per size {sizes}; estimated {est}")
    return out


def _label(rule_name: str, cal: C.Calibration) -> str:
    return f"shipped: balance {cal.balance:g}" if rule_name == "shipped" else rule_name


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
