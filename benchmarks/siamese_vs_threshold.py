"""Siamese binary classifier vs the plain distance threshold, on identities neither has trained on.

Embeddings: the pretrained dlib ResNet (mirrored chip averaged in) on the chips of
``/work/shared/data/faces`` (detected and aligned once, cached). Pairs: ``faces/pairs.csv``.
Identities are dealt into 5 folds; for each fold the classifier is trained on the pairs whose two
people are both outside the fold, the threshold is chosen on those same pairs, and both are tested
on the pairs whose two people are both inside the fold (pairs across folds are never tested).
Test predictions are pooled over the folds. Calibration: Brier score and expected calibration
error (10 bins) of the probabilities; dlib's fixed 0.6 threshold is reported too.

    python benchmarks/siamese_vs_threshold.py [--root /work/shared/data/faces] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def load_pairs(root: Path, paths: list[str]):
    """pairs.csv -> (i, j, same) index arrays into ``paths`` (pairs with an unknown photo are dropped)."""
    index = {p: k for k, p in enumerate(paths)}
    ii, jj, ss = [], [], []
    with open(root / "pairs.csv", newline="") as f:
        for row in csv.DictReader(f):
            a, b = index.get(row["path1"]), index.get(row["path2"])
            if a is not None and b is not None:
                ii.append(a), jj.append(b), ss.append(int(row["same"]))
    return np.array(ii), np.array(jj), np.array(ss, bool)


def photo_kinds(root: Path, paths: list[str]) -> np.ndarray:
    kinds = {}
    manifest = root / "manifest.csv"
    if manifest.is_file():
        with open(manifest, newline="") as f:
            for row in csv.DictReader(f):
                kinds[row["file"].split("/", 1)[1]] = row["kind"]
    return np.array([kinds.get(p, "unknown") for p in paths])


def run(root: Path, folds: int = 5, seed: int = 0, kinds=("abs", "chi2")) -> dict:
    from facenet_keras.evaluation.metrics import accuracy_at, best_threshold
    from facenet_keras.faces.pipeline import embed_chips
    from facenet_keras.training.data import load_chips
    from facenet_keras.training.siamese import SiameseClassifier, brier_score, expected_calibration_error

    chips = load_chips(root)
    emb = embed_chips(chips.chips)  # pretrained dlib ResNet, flip averaged
    i, j, same = load_pairs(root, chips.paths)
    person = chips.labels
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(chips.names)) % folds
    pi, pj = fold_of[person[i]], fold_of[person[j]]
    dist = np.linalg.norm(emb[i] - emb[j], axis=1)
    tested = np.zeros(len(i), bool)
    thr_pred = np.zeros(len(i), bool)
    prob = {k: np.zeros(len(i)) for k in kinds}
    thresholds = []
    for f in range(folds):
        tr = (pi != f) & (pj != f)
        te = (pi == f) & (pj == f)
        if not te.any() or same[tr].all() or not same[tr].any():
            continue
        t = best_threshold(dist[tr], same[tr])
        thresholds.append(t)
        thr_pred[te] = dist[te] <= t
        for k in kinds:
            clf = SiameseClassifier(dim=emb.shape[1], kind=k).fit(emb[i[tr]], emb[j[tr]], same[tr], seed=seed)
            prob[k][te] = clf.predict_proba(emb[i[te]], emb[j[te]])
        tested |= te
    y = same[tested]
    pair_kind = photo_kinds(root, chips.paths)
    ka, kb = pair_kind[i[tested]], pair_kind[j[tested]]
    groups = {
        "pooled": np.ones(len(y), bool),
        "crop-crop": (ka == "tight_crop") & (kb == "tight_crop"),
        "photo-photo": (ka == "full_photo") & (kb == "full_photo"),
        "mixed": ka != kb,
    }
    result = {
        "test_pairs": int(tested.sum()),
        "same": int(y.sum()),
        "different": int((~y).sum()),
        "folds": folds,
        "thresholds": [round(t, 4) for t in thresholds],
        "by_kind": {},
    }
    for g, m in groups.items():
        if not m.any():
            continue
        row = {
            "pairs": int(m.sum()),
            "threshold_accuracy": float(np.mean(thr_pred[tested][m] == y[m])),
            "dlib_0.6_accuracy": accuracy_at(dist[tested][m], y[m], 0.6),
        }
        for k in kinds:
            p = prob[k][tested][m]
            row[f"siamese_{k}_accuracy"] = float(np.mean((p >= 0.5) == y[m]))
            row[f"siamese_{k}_brier"] = brier_score(p, y[m])
            row[f"siamese_{k}_ece"] = expected_calibration_error(p, y[m])
        result["by_kind"][g] = row
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not (args.root / "pairs.csv").is_file():
        print(f"{args.root}/pairs.csv not found: pass --root", file=sys.stderr)
        return 2
    r = run(args.root, args.folds, args.seed)
    print(
        f"{r['test_pairs']} test pairs ({r['same']} same, {r['different']} different) of identities unseen in "
        f"training, {r['folds']} identity folds; thresholds chosen per fold: {r['thresholds']}"
    )
    cols = [
        "threshold_accuracy",
        "dlib_0.6_accuracy",
        "siamese_abs_accuracy",
        "siamese_abs_brier",
        "siamese_abs_ece",
        "siamese_chi2_accuracy",
        "siamese_chi2_brier",
        "siamese_chi2_ece",
    ]
    print(f"{'pairs':<12}{'n':>6}  " + "  ".join(f"{c:>22}" for c in cols))
    for g, row in r["by_kind"].items():
        print(f"{g:<12}{row['pairs']:>6}  " + "  ".join(f"{row.get(c, float('nan')):>22.4f}" for c in cols))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
