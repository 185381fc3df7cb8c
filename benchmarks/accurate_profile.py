"""The ``accurate`` profile (dlib's ResNet and SFace fused) against ``fast`` (dlib alone): its
constants (``--fit``) and its figures on LFW fold 1.

Usage::

    python benchmarks/accurate_profile.py --fit [--data DIR] [--no-cache]
    python benchmarks/accurate_profile.py [--data DIR] [--no-cache] [--json OUT.json]

``--fit`` reproduces the constants of :mod:`facenet_keras.faces.profiles`: every photo of
``DIR/faces`` and ``DIR/lfw-dev`` (``DIR`` = ../shared/data or $FACENET_KERAS_SHARED_DATA) goes
through the profile's pipeline with every scale 1 (one detection, the gate, the main face; dlib's
and SFace's embeddings, mirror averaged); ``s_x`` is the standard deviation of each encoder's
squared distance over every pair of those photos with a usable face (both sets pooled, pairs across
the two sets included), the scales ``sqrt(0.5 / s_x)``; the threshold is the one of best balanced
accuracy (mean of the true accept and true reject rates; ties: the middle of the tied range) of
the fused distance on the pairs of ``faces/pairs.csv`` and ``lfw-dev/pairs.csv`` together.

Without ``--fit``: both profiles on ``lfw-dev/pairs.csv`` through ``pair_distances`` (what
``facenet-keras evaluate --profile ...`` runs, sharing its embedding cache): accuracy (10-fold
inside the fold), errors, pairs fixed and broken by ``accurate`` (under the 10-fold decisions and at
the shipped thresholds) and McNemar's exact p, AUC, TAR at
FAR 1e-3 over every cross-identity pair of lfw-dev's photos (300 impostor pairs cannot resolve
1e-3), and accuracy at each profile's shipped threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.encoder_profiles import cv_correct, mcnemar_p  # noqa: E402


def _photos(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))


def _pairs(data: Path):
    from facenet_keras.evaluation.protocols import read_pairs

    out = [read_pairs(data / name / "pairs.csv") for name in ("faces", "lfw-dev")]
    p1 = [p for o in out for p in o[0]]
    p2 = [p for o in out for p in o[1]]
    return p1, p2, np.concatenate([o[2] for o in out])


def balanced_threshold(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): the best balanced accuracy of ``d <= t`` over the midpoints
    between neighbouring distances; ties: the middle of the tied range of candidates."""
    ok = np.isfinite(d)
    d, same = d[ok], same[ok]
    values = np.unique(d)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    genuine, impostor = np.sort(d[same]), np.sort(d[~same])
    tar = np.searchsorted(genuine, candidates, side="right") / len(genuine)
    far = np.searchsorted(impostor, candidates, side="right") / len(impostor)
    balanced = (tar + 1.0 - far) / 2.0
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float((candidates[best[0]] + candidates[best[-1]]) / 2.0), float(balanced.max())


def fit(data: Path, use_cache: bool) -> dict:
    """The scales and threshold, from the unscaled profile's embeddings (see the module docstring)."""
    from facenet_keras.evaluation.protocols import primary_embeddings
    from facenet_keras.faces.profiles import ACCURATE, FUSION_WEIGHT, Part, Profile

    raw = ACCURATE.unscaled()
    paths = _photos(data / "faces") + _photos(data / "lfw-dev" / "images")
    emb, problems = primary_embeddings(paths, model=raw, cache=use_cache)
    kept = [p for p, e in zip(paths, emb) if e is not None]
    vec = np.stack([e for e in emb if e is not None])
    parts = np.split(vec, len(raw.parts), axis=1)  # each encoder's 128-D embedding, unscaled
    i1, i2 = np.triu_indices(len(vec), 1)
    stats = {}
    for part, e in zip(raw.parts, parts):
        sq = _pair_sq(e.astype(np.float64), i1, i2)
        stats[part.encoder] = {"mean": float(sq.mean()), "std": float(sq.std())}
    scales = {n: float(np.sqrt(FUSION_WEIGHT / s["std"])) for n, s in stats.items()}
    fused = Profile("accurate", tuple(Part(p.encoder, scales[p.encoder]) for p in raw.parts))
    by_path = dict(zip(kept, fused.fuse(parts)))
    p1, p2, same = _pairs(data)
    d = np.array(
        [np.linalg.norm(by_path[a] - by_path[b]) if a in by_path and b in by_path else np.nan for a, b in zip(p1, p2)]
    )
    threshold, balanced = balanced_threshold(d, same)
    return {
        "photos": len(paths),
        "photos_without_usable_face": len(problems),
        "pairs_for_statistics": len(i1),
        "squared_distance": stats,
        "scales": scales,
        "pairs_for_threshold": len(same),
        "failed_pairs": int(np.isnan(d).sum()),
        "threshold": threshold,
        "balanced_accuracy": balanced,
    }


def _pair_sq(e: np.ndarray, i1: np.ndarray, i2: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
    """Squared Euclidean distances of the pairs (i1, i2) of rows of ``e``, in chunks."""
    return np.concatenate(
        [np.sum((e[i1[s : s + chunk]] - e[i2[s : s + chunk]]) ** 2, 1) for s in range(0, len(i1), chunk)]
    )


def figures(data: Path, use_cache: bool) -> dict:
    """Both profiles on LFW fold 1 (see the module docstring)."""
    from facenet_keras import evaluation as ev
    from facenet_keras.evaluation import metrics
    from facenet_keras.evaluation.protocols import pair_distances, primary_embeddings, read_pairs
    from facenet_keras.faces.pipeline import encoder_threshold
    from facenet_keras.faces.profiles import ACCURATE, FAST

    p1, p2, same, folds = read_pairs(data / "lfw-dev" / "pairs.csv")
    ids = metrics._stratified_folds(same, 10)  # the folds verification_report deals (no fold column)
    photos = _photos(data / "lfw-dev" / "images")
    people = np.array([Path(p).parent.name for p in photos])
    out, correct, at_shipped = {}, {}, {}
    for profile in (FAST, ACCURATE):
        d, _ = pair_distances(p1, p2, model=profile, cache=use_cache)
        r = ev.verification_report(d, same, folds=10, fold_ids=folds)
        correct[profile.name] = cv_correct(d, same, ids if folds is None else np.unique(folds, return_inverse=True)[1])
        assert abs(correct[profile.name].mean() - r["accuracy"]) < 1e-9, "per-pair decisions disagree"
        tau = encoder_threshold(profile)
        at_shipped[profile.name] = np.isfinite(d) & ((d <= tau) == same)
        emb, _ = primary_embeddings(photos, model=profile, cache=use_cache)
        ok = np.array([e is not None for e in emb])
        vec, who = np.stack([e for e in emb if e is not None]), people[ok]
        i1, i2 = np.triu_indices(len(vec), 1)
        d_all, same_all = np.sqrt(_pair_sq(vec.astype(np.float64), i1, i2)), who[i1] == who[i2]
        out[profile.name] = {
            "accuracy_10fold": r["accuracy"],
            "errors_10fold": int(round((1 - r["accuracy"]) * len(same))),
            "auc": r["auc"],
            "shipped_threshold": tau,
            "accuracy_at_shipped_threshold": ev.accuracy_at(d, same, tau),
            "errors_at_shipped_threshold": int(round((1 - ev.accuracy_at(d, same, tau)) * len(same))),
            "failed_pairs": r["failed"],
            "all_pairs": len(d_all),
            "all_pairs_impostor": int((~same_all).sum()),
            "all_pairs_auc": ev.auc(d_all, same_all),
            "all_pairs_tar_at_far_1e-3": ev.tar_at_far(d_all, same_all, 1e-3),
        }
    fixed = int(np.sum(correct["accurate"] & ~correct["fast"]))
    broken = int(np.sum(~correct["accurate"] & correct["fast"]))
    out["accurate_vs_fast"] = {"fixed": fixed, "broken": broken, "mcnemar_p": mcnemar_p(fixed, broken)}
    fixed = int(np.sum(at_shipped["accurate"] & ~at_shipped["fast"]))
    broken = int(np.sum(~at_shipped["accurate"] & at_shipped["fast"]))
    out["accurate_vs_fast_at_shipped_thresholds"] = {
        "fixed": fixed,
        "broken": broken,
        "mcnemar_p": mcnemar_p(fixed, broken),
    }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("FACENET_KERAS_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data", default=default, help="the shared data folder (holds faces/ and lfw-dev/)")
    parser.add_argument("--fit", action="store_true", help="measure the profile's scales and threshold")
    parser.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "lfw-dev" / "pairs.csv").is_file() or not (data / "faces" / "pairs.csv").is_file():
        print(f"error: {data} lacks faces/pairs.csv or lfw-dev/pairs.csv (pass --data)", file=sys.stderr)
        return 2
    if args.fit:
        report = fit(data, not args.no_cache)
        st, sc = report["squared_distance"], report["scales"]
        print(
            f"{report['photos']} photos ({report['photos_without_usable_face']} without a usable face), "
            f"{report['pairs_for_statistics']} pairs for the statistics"
        )
        for name in st:
            print(f"  {name}: d^2 mean {st[name]['mean']:.6f}, std {st[name]['std']:.6f} -> scale {sc[name]:.6f}")
        print(
            f"threshold {report['threshold']:.6f} (balanced accuracy {report['balanced_accuracy']:.5f} on "
            f"{report['pairs_for_threshold']} pairs, {report['failed_pairs']} failed)"
        )
    else:
        report = figures(data, not args.no_cache)
        for name in ("fast", "accurate"):
            f = report[name]
            print(
                f"{name:9} 10-fold {f['accuracy_10fold']:.4f} ({f['errors_10fold']} errors), AUC {f['auc']:.5f}; "
                f"at its shipped threshold {f['shipped_threshold']:.4f}: {f['accuracy_at_shipped_threshold']:.4f} "
                f"({f['errors_at_shipped_threshold']} errors); all {f['all_pairs']} photo pairs "
                f"({f['all_pairs_impostor']} cross-identity): AUC {f['all_pairs_auc']:.5f}, "
                f"TAR@FAR=1e-3 {f['all_pairs_tar_at_far_1e-3']:.4f}"
            )
        for key, how in (
            ("accurate_vs_fast", "10-fold decisions"),
            ("accurate_vs_fast_at_shipped_thresholds", "shipped thresholds"),
        ):
            v = report[key]
            print(
                f"accurate against fast ({how}): fixed {v['fixed']}, broken {v['broken']}, "
                f"McNemar p {v['mcnemar_p']:.3g}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
