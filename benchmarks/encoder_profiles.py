"""Two encoders alone and fused: Inception-ResNet-v1's preprocessing, the fusion, thresholds,
the LFW fold 1 check and throughput.

Usage::

    python benchmarks/encoder_profiles.py [--data DIR] [--skip-lfw] [--skip-throughput] [--no-cache]
                                          [--json OUT.json]

1. Development set: every pair of the 186 photos in ``DIR/faces`` (``DIR`` = ../shared/data or
   $FACENET_KERAS_SHARED_DATA): 17,197 pairs, 504 genuine, 43 people. Every photo's main face is
   detected once (the pipeline's detector and face choice); dlib's chip goes through dlib's ResNet,
   the Inception chip, cut each way (FaceNet's MTCNN box + 32 px on 160, 44 px on 182 then the
   centre 160, a 25% margin, dlib's aligned chip), with fixed standardisation or per-image
   prewhitening, RGB or BGR, through Inception-ResNet-v1, with and without its mirror image.
   Each embedding (mirror left out, averaged, or concatenated as FaceNet's validate_on_lfw does;
   with or without FaceNet's ``--subtract_mean``) is scored by person-disjoint cross-validation:
   5 folds of people x 5 foldings; threshold of best balanced accuracy on the training people
   (the rule printed: best mean AUC, then balanced accuracy).
   The table informs, it does not choose: dlib's part is the pipeline's chip, and Inception's input
   is FaceNet's crop (the box crop it was trained on), each with the mirror averaged in. The
   development set prefers dlib's aligned chip for Inception (about 6 errors against 15 here), but
   LFW fold 1 prefers FaceNet's crop (8 errors against 20): the sets are different kinds of photos
   (faces/ has many tight crops and large faces; LFW is small news photos), and the crop a model
   was trained on is the one that carries over. That choice was informed by LFW fold 1.
2. Fusion, same cross-validation: a weighted sum of distances, the sum of z-normalised distances,
   logistic regression on the two distances, and one fused vector per face (each encoder's
   embedding weighted and concatenated: searchable like any embedding) with dlib's part at its raw
   scale (the pipeline's, whose threshold 0.6 holds on both sets) or L2-normalised; the weight of a
   fused vector is the grid weight of best AUC on the training pairs, its threshold the one of best
   balanced accuracy on every development pair.
3. LFW fold 1 (``DIR/lfw-dev/pairs.csv``): dlib (the package's pipeline, ``pair_distances``, as
   ``facenet-keras evaluate`` runs it), Inception alone and the two fused vectors with their
   development weights and thresholds: accuracy (10-fold inside the fold, the evaluate command's
   protocol), AUC, EER, TAR@FAR, accuracy at the development threshold, pairs fixed and broken
   against dlib alone, McNemar's exact p.
4. Throughput at batch 32 of each encoder and of both, against dlib-bin's batched encoder in the
   same run (if installed).

Embeddings are cached per photo and variant (``facenet_keras.embedding_cache``), so a second run
takes minutes of numpy instead of an hour of encoding; ``--no-cache`` recomputes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GRID = np.round(np.arange(0.0, 1.0 + 1e-9, 0.05), 2)
FOLDS = 10


# ------------------------------------------------------------------------------------ variants
def _prewhiten(chips: np.ndarray) -> np.ndarray:
    """Per-image standardisation (FaceNet's older ``prewhiten``, the wheel's), expressed in the model's
    input scale: the model computes (x - 127.5) / 128, so x = z * 128 + 127.5."""
    x = chips.astype(np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / math.sqrt(x[0].size))
    return ((x - mean) / std * 128.0 + 127.5).astype(np.float32)


def inception_variants() -> dict:
    """name -> (cut(image, detection) -> (1, 160, 160, 3) uint8, prewhiten?, BGR?)."""
    from facenet_keras.faces.facenet_chips import facenet_chips

    def box(margin, size=160):
        if size == 160:
            return lambda image, d: facenet_chips(image, [d], method="box", margin=margin)
        o = (size - 160) // 2  # FaceNet's training crop: 182 px with a 44 px margin, the centre 160 px
        return lambda image, d: facenet_chips(image, [d], method="box", margin=margin, size=size)[
            :, o : o + 160, o : o + 160
        ]

    def box_relative(frac):
        return lambda image, d: facenet_chips(image, [d], method="box", margin=frac * float(max(d.box[2:])))

    def aligned(padding):
        return lambda image, d: facenet_chips(image, [d], method="aligned", padding=padding)

    # Each variant costs a pass of Inception-ResNet-v1 over every photo and its mirror (minutes on
    # two shared cores): the ones that test FaceNet's protocol, and the package's aligned chip.
    return {
        "box margin 32 px (FaceNet)": (box(32.0), False, False),
        "box margin 32 px, prewhitened": (box(32.0), True, False),
        "box margin 32 px, BGR": (box(32.0), False, True),
        "box margin 44 px on 182, centre 160": (box(44.0, 182), False, False),
        "box margin 25% of the box": (box_relative(0.25), False, False),
        "aligned, padding 0.25": (aligned(0.25), False, False),
    }


DLIB_VARIANTS = {"dlib": (None, False, False), "dlib, BGR": (None, False, True)}
FACENET_VARIANT = "box margin 32 px (FaceNet)"


# ------------------------------------------------------------------------------------ embedding
class Encoders:
    """The two pretrained encoders, built once."""

    def __init__(self):
        from facenet_keras import load_encoder
        from facenet_keras.models import load_inception_resnet_v1

        self.dlib = load_encoder()
        self.inception = load_inception_resnet_v1()

    def dlib_embed(self, chips):
        from facenet_keras import encode_chips

        return encode_chips(chips, model=self.dlib)

    def inception_embed(self, chips, prewhiten: bool = False):
        from facenet_keras import encode_chips

        if not prewhiten:
            return encode_chips(chips, model=self.inception)
        x = _prewhiten(chips)  # outside 0..255: encode_chips would (rightly) refuse it
        return np.concatenate([np.asarray(self.inception(x[i : i + 32], training=False)) for i in range(0, len(x), 32)])


def photo_embeddings(paths, variants: dict, encoders: Encoders, use_cache: bool, label: str):
    """{variant: (n_photos, 2, D) float32, NaN where no face} for the main face of each photo;
    [:, 0] the chip's embedding, [:, 1] its mirror image's. ``variants``: name -> (cut, prewhiten, BGR);
    names starting with "dlib" are dlib's own chip through dlib's ResNet (cut None)."""
    from facenet_keras import FaceDetector, load_image
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache
    from facenet_keras.evaluation.protocols import primary_namespace
    from facenet_keras.faces.pipeline import embedding_key, face_chips, primary_face
    from facenet_keras.models.inception_resnet_v1 import WEIGHTS_DIGEST

    base = primary_namespace(embedding_key(flip=False))
    caches = {
        name: EmbeddingCache(f"{base}|encoder-profiles-v1|{name}|inception-{WEIGHTS_DIGEST[:16]}|{_chips_code()}")
        for name in variants
    }
    dims = {name: 128 if name.startswith("dlib") else 512 for name in variants}
    out = {name: np.full((len(paths), 2, dims[name]), np.nan, np.float32) for name in variants}
    detector = None
    t0 = time.perf_counter()
    todo = 0
    for i, path in enumerate(paths):
        cached = {}
        if use_cache:
            for name, cache in caches.items():
                try:
                    cached[name] = cache.get(path)
                except KeyError:
                    pass
        if len(cached) < len(variants):
            todo += 1
            detector = detector or FaceDetector()
            image = load_image(path)
            face = primary_face(detector.detect(image), image.shape)
            for name, (cut, prewhiten, bgr) in variants.items():
                if name in cached:
                    continue
                if face is None:
                    value = None
                else:
                    chip = face_chips(image, [face], 150, "dlib") if cut is None else cut(image, face)
                    both = np.concatenate([chip, chip[:, :, ::-1]])
                    if bgr:
                        both = np.ascontiguousarray(both[..., ::-1])
                    if cut is None:
                        value = encoders.dlib_embed(both).reshape(-1)
                    else:
                        value = encoders.inception_embed(both, prewhiten).reshape(-1)
                cached[name] = value
                caches[name].put(value, path)
        for name, value in cached.items():
            if value is not None:
                out[name][i] = np.asarray(value, np.float32).reshape(2, -1)
        if todo and todo % 50 == 0:
            print(f"  {label}: {i + 1}/{len(paths)} photos ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def _chips_code() -> str:
    """Digest of the code behind the Inception variants' chips and model (the pipeline's own code is in
    the base key already), so an edit of either never meets embeddings cached by the old code."""
    import hashlib

    package = REPO / "facenet_keras"
    h = hashlib.sha256()
    for rel in ("faces/facenet_chips.py", "models/inception_resnet_v1.py", "weights/tf_frozen_graph.py"):
        h.update((package / rel).read_bytes())
    return h.hexdigest()[:12]


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------ representations
FLIPS = ("none", "mean", "concat")


@dataclass(frozen=True)
class Rep:
    """How a photo's (chip, mirror) embeddings become one vector: ``flip`` "none" (the chip's only),
    "mean" (the average of the two unit vectors: FaceNet's sum) or "concat" (FaceNet's validate_on_lfw:
    both side by side); ``center``: subtract the mean embedding of the training photos (FaceNet's
    ``--subtract_mean``); ``normalize``: unit vectors (cosine distance, as FaceNet's ``--distance_metric 1``
    ranks pairs) or dlib's raw scale (the pipeline's)."""

    flip: str = "mean"
    center: bool = False
    normalize: bool = True

    def label(self) -> str:
        parts = [{"none": "no mirror", "mean": "mirror averaged", "concat": "mirror concatenated"}[self.flip]]
        if self.center:
            parts.append("mean subtracted")
        if not self.normalize:
            parts.append("raw scale")
        return ", ".join(parts)


def represent(emb: np.ndarray, rep: Rep, mean_photos: np.ndarray | None = None) -> np.ndarray:
    """(n, 2, D) chip and mirror embeddings -> (n, D') vectors; ``mean_photos`` (n,) bool: the photos
    whose average is subtracted when ``rep.center``."""
    e0, e1 = emb[:, 0].astype(np.float64), emb[:, 1].astype(np.float64)
    if rep.normalize:
        e0, e1 = _unit(e0), _unit(e1)
    r = {"none": e0, "mean": (e0 + e1) / 2.0, "concat": np.concatenate([e0, e1], axis=1) / math.sqrt(2.0)}[rep.flip]
    if rep.center:
        r = r - np.nanmean(r[mean_photos], axis=0)
    return _unit(r) if rep.normalize else r


def distances(r: np.ndarray, i1: np.ndarray, i2: np.ndarray) -> np.ndarray:
    """Euclidean distances of pairs of rows (NaN where a photo had no face)."""
    return np.linalg.norm(r[i1] - r[i2], axis=1)


# ------------------------------------------------------------------------------------ development set
# The sources name deepface_01 'angelinas' (deepface's test_find.py) and facenet-pytorch's folder
# angelina_jolie: one person under two folders. They share a fold; their cross pairs are left out
# (no source labels them).
SAME_PERSON = {"angelina_jolie": "deepface_01"}
DEV_FOLDS = 5
DEV_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class DevSet:
    """Every pair of photos in faces/: photo paths, the person and kind of each, pair indices, labels."""

    paths: list
    person: np.ndarray
    kind: np.ndarray
    i1: np.ndarray
    i2: np.ndarray
    same: np.ndarray
    left_out: int


def dev_set(data: Path) -> DevSet:
    import csv

    with open(data / "faces" / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    paths = [str(data / r["file"]) for r in rows]
    folder = np.array([r["identity"] for r in rows])
    person = np.array([SAME_PERSON.get(p, p) for p in folder])
    kind = np.array(["crop" if r["kind"] == "tight_crop" else "photo" for r in rows])
    i1, i2 = np.triu_indices(len(rows), 1)
    unknown = (person[i1] == person[i2]) & (folder[i1] != folder[i2])
    i1, i2 = i1[~unknown], i2[~unknown]
    return DevSet(paths, person, kind, i1, i2, person[i1] == person[i2], int(unknown.sum()))


def person_folds(person: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold per photo: people (not photos) dealt to ``folds`` folds, largest first, each to the fold
    with the fewest photos so far (ties at random by ``seed``)."""
    names, counts = np.unique(person, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    order = order[np.argsort(-counts[order], kind="stable")]
    load = np.zeros(folds)
    fold_of = {}
    for j in order:
        k = int(np.argmin(load + rng.random(folds) * 1e-3))
        fold_of[names[j]] = k
        load[k] += counts[j]
    return np.array([fold_of[p] for p in person])


def balanced_threshold(d: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising balanced accuracy ((TAR + TRR) / 2) on these pairs; ties: the smallest."""
    fin = np.isfinite(d)
    pos, neg = np.sort(d[fin & same]), np.sort(d[fin & ~same])
    cand = np.unique(d[fin])
    gap = 0.5 * float(np.min(np.diff(cand))) if cand.size > 1 else 1e-6
    mids = np.concatenate([[cand[0] - gap], (cand[:-1] + cand[1:]) / 2.0, [cand[-1] + gap]])
    tar = np.searchsorted(pos, mids, "right") / max(int(same.sum()), 1)
    trr = 1.0 - np.searchsorted(neg, mids, "right") / max(int((~same).sum()), 1)
    return float(mids[int(np.argmax(tar + trr))])


def _nonneg(d: np.ndarray) -> np.ndarray:
    """A constant shift to distances >= 0 (the metrics' domain); ranks and accuracy do not change."""
    return d - min(0.0, float(np.nanmin(d)))


def scores(d: np.ndarray, same: np.ndarray, ok: np.ndarray | None = None) -> dict:
    """AUC, EER, TAR@FAR=1e-3 of distances (NaN = failed); balanced accuracy of the decisions ``ok``."""
    from facenet_keras import evaluation as ev

    d = _nonneg(d)
    out = {"auc": ev.auc(d, same), "eer": ev.eer(d, same), "tar_at_far_1e-3": ev.tar_at_far(d, same, 1e-3)}
    if ok is not None:
        out["balanced_accuracy"] = 0.5 * (ok[same].mean() + ok[~same].mean())
        out["accuracy"] = float(ok.mean())
        out["errors"] = int((~ok).sum())
    return out


def cross_validate(method, dev: DevSet, kinds: bool = False) -> dict:
    """Person-disjoint cross-validation of a scoring method, averaged over :data:`DEV_SEEDS` foldings.

    ``method(train_photos (n_photos,) bool, train_pairs (n_pairs,) bool) -> (n_pairs,) distances``
    may fit anything on the training photos and pairs (none of their people is in the test fold).
    Each fold tests the pairs whose two people are both in it (every genuine pair, about 1/folds of
    the impostor pairs) at the threshold of best balanced accuracy on the training pairs. Accuracy
    pools the folds' decisions; AUC, EER and TAR are each fold's, averaged (a method fitted per fold
    puts each fold's distances on its own scale, so pooling them would blur the ROC)."""
    runs, per_fold = [], []
    for seed in DEV_SEEDS:
        pf = person_folds(dev.person, DEV_FOLDS, seed)
        f1, f2 = pf[dev.i1], pf[dev.i2]
        tested = np.zeros(len(dev.same), bool)
        ok = np.zeros(len(dev.same), bool)
        thresholds = []
        for k in range(DEV_FOLDS):
            test, train = (f1 == k) & (f2 == k), (f1 != k) & (f2 != k)
            d = method(pf != k, train)
            t = balanced_threshold(d[train], dev.same[train])
            thresholds.append(t)
            tested |= test
            ok[test] = np.isfinite(d[test]) & ((d[test] <= t) == dev.same[test])
            fold = scores(d[test], dev.same[test])
            if kinds:
                pk = np.where(dev.kind[dev.i1] == dev.kind[dev.i2], dev.kind[dev.i1], "mixed")[test]
                for kd in ("crop", "photo"):
                    m, st = pk == kd, dev.same[test]
                    if st[m].any() and (~st[m]).any():
                        fold[f"auc_{kd}"] = scores(d[test][m], st[m])["auc"]
            per_fold.append(fold)
        s = dev.same[tested]
        o = ok[tested]
        run = {
            "balanced_accuracy": 0.5 * (o[s].mean() + o[~s].mean()),
            "accuracy": float(o.mean()),
            "errors": int((~o).sum()),
            "threshold": float(np.mean(thresholds)),
            "tested": int(tested.sum()),
            "genuine": int(s.sum()),
        }
        if kinds:
            for kd in ("crop", "photo"):
                m = np.where(dev.kind[dev.i1] == dev.kind[dev.i2], dev.kind[dev.i1], "mixed")[tested] == kd
                run[f"balanced_accuracy_{kd}"] = 0.5 * (o[m & s].mean() + o[m & ~s].mean())
        runs.append(run)
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    for k in per_fold[0]:
        out[k] = float(np.mean([f[k] for f in per_fold if k in f]))
    return out


def one_vector_distances(emb: dict, inc_name: str, w: float, i1, i2, raw_dlib: bool) -> np.ndarray:
    """Distances of one fused vector per face: dlib's embedding (its raw scale, as the pipeline uses
    it, or L2-normalised) weighted by sqrt(1 - w), Inception's unit embedding by sqrt(w), concatenated;
    each encoder's chip and mirror averaged (as the pipeline does for dlib). Squared distance:
    ``(1 - w) d_dlib^2 + w d_inception^2``."""
    a = emb["dlib"].astype(np.float64)
    a = a.mean(axis=1) if raw_dlib else _unit(a).mean(axis=1)
    b = _unit(emb[inc_name].astype(np.float64)).mean(axis=1)
    return distances(np.concatenate([math.sqrt(1.0 - w) * a, math.sqrt(w) * b], axis=1), i1, i2)


ONE_VECTOR = {"raw": "one vector: raw dlib + Inception", "unit": "one vector: unit dlib + Inception"}


def rank_key(r: dict) -> tuple:
    """The first round's rule (best mean cross-validated AUC, then balanced accuracy), printed beside
    the package's fixed configuration for comparison."""
    return (round(r["auc"], 6), round(r["balanced_accuracy"], 4))


# ------------------------------------------------------------------------------------ fusion
def _auc_fast(d: np.ndarray, same: np.ndarray) -> float:
    from facenet_keras import evaluation as ev

    return ev.auc(_nonneg(d), same)


def _grid_weight(make, same: np.ndarray, mask: np.ndarray) -> float:
    """The grid weight whose fused distances have the best AUC on the pairs in ``mask``; ties: the middle."""
    aucs = np.array([_auc_fast(make(w)[mask], same[mask]) for w in GRID])
    tied = GRID[np.isclose(aucs, aucs.max(), rtol=0, atol=1e-12)]
    return float(tied[(len(tied) - 1) // 2])


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iters: int = 50) -> np.ndarray:
    """Class-balanced logistic regression by Newton's method: (n, k) features, (n,) bool -> (k + 1,) weights
    (last: intercept)."""
    fin = np.all(np.isfinite(x), axis=1)
    x, y = x[fin], y[fin].astype(np.float64)
    xb = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    sw = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    beta = np.zeros(xb.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -30, 30)))
        g = xb.T @ (sw * (p - y)) + l2 * np.r_[beta[:-1], 0.0]
        h = (xb * (sw * p * (1 - p))[:, None]).T @ xb + l2 * np.diag(np.r_[np.ones(len(beta) - 1), 0.0])
        step = np.linalg.solve(h, g)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def fusion_methods(dist_dlib, dist_inc, same: np.ndarray) -> dict:
    """name -> method(train_photos, train_pairs) -> fused distances; ``dist_*(train_photos)`` give each
    encoder's distances (unit vectors) for every pair. Each fits its free parameters on the training pairs."""
    from facenet_keras.faces.fusion import fused_distance

    def concatenation(tp, tr):
        dd, di = dist_dlib(tp), dist_inc(tp)
        w = _grid_weight(lambda w: fused_distance(dd, di, w), same, tr)
        return fused_distance(dd, di, w)

    def weighted_sum(tp, tr):
        dd, di = dist_dlib(tp), dist_inc(tp)
        w = _grid_weight(lambda w: (1.0 - w) * dd + w * di, same, tr)
        return (1.0 - w) * dd + w * di

    def z_scores(tp, tr):
        dd, di = dist_dlib(tp), dist_inc(tp)
        imp = tr & ~same
        return sum((d - np.nanmean(d[imp])) / np.nanstd(d[imp]) for d in (dd, di))

    def logistic(tp, tr):
        x = np.stack([dist_dlib(tp), dist_inc(tp)], axis=1)
        beta = _logistic(x[tr], same[tr])
        return -(x @ beta[:-1] + beta[-1])

    return {
        "concatenation, weight by AUC": concatenation,
        "weighted sum of distances, weight by AUC": weighted_sum,
        "sum of z-normalised distances (impostor statistics)": z_scores,
        "logistic regression on the two distances": logistic,
    }


# ------------------------------------------------------------------------------------ sections
def _row(label: str, r: dict, width: int = 62) -> str:
    kinds = " / ".join(f"{r.get(f'auc_{k}', float('nan')):.5f}" for k in ("crop", "photo"))
    return (
        f"{label:{width}} {r['balanced_accuracy']:.4f} {r['accuracy']:.4f} {r['errors']:7.1f} {r['auc']:.6f} "
        f"{r['eer']:.4f} {r['tar_at_far_1e-3']:.4f} {r['threshold']:.4f}  {kinds}"
    )


HEADER = (
    f"{'encoder / chip / embedding':62} bal.acc accuracy errors  AUC      EER    TAR@1e-3 thresh.  AUC crop / photo"
)


def development(data: Path, encoders: Encoders, use_cache: bool, report: dict) -> dict:
    """Every choice, on all pairs of faces/ with person-disjoint folds. Returns the chosen configuration."""
    dev = dev_set(data)
    variants = {**DLIB_VARIANTS, **inception_variants()}
    emb = photo_embeddings(dev.paths, variants, encoders, use_cache, "faces")
    n_people = len(np.unique(dev.person))
    print(
        f"\n== 1. development: every pair of {len(dev.paths)} photos in {data / 'faces'} ({n_people} people): "
        f"{len(dev.same)} pairs, {int(dev.same.sum())} genuine ({dev.left_out} cross-folder pairs of one person "
        f"left out); {DEV_FOLDS} person-disjoint folds x {len(DEV_SEEDS)} foldings =="
    )
    print(HEADER)
    rows: dict = {}
    for name in variants:
        reps = [Rep(f, c) for f in FLIPS for c in (False, True)]
        if name.startswith("dlib"):
            reps.insert(0, Rep("mean", False, normalize=False))
        for rep in reps:
            e = emb[name]
            fixed = None if rep.center else distances(represent(e, rep), dev.i1, dev.i2)

            def method(tp, tr, e=e, rep=rep, fixed=fixed):
                return fixed if fixed is not None else distances(represent(e, rep, tp), dev.i1, dev.i2)

            r = cross_validate(method, dev, kinds=True)
            rows[(name, rep)] = r
            print(_row(f"{name}: {rep.label()}", r), flush=True)
    dlib_rows = {k: v for k, v in rows.items() if k[0] == "dlib" and k[1].normalize}
    inc_rows = {k: v for k, v in rows.items() if not k[0].startswith("dlib")}
    dlib_best, inc_best = ("dlib", Rep("mean")), (FACENET_VARIANT, Rep("mean"))  # the package's
    print(
        f"the package's: dlib {dlib_best[1].label()}; Inception {inc_best[0]}: {inc_best[1].label()} (best by "
        f"the rule above: dlib {max(dlib_rows, key=lambda k: rank_key(dlib_rows[k]))[1].label()}, Inception "
        f"{' '.join(str(x) for x in max(inc_rows, key=lambda k: rank_key(inc_rows[k])))})"
    )

    def dist_fn(key):
        e, rep = emb[key[0]], key[1]
        fixed = None if rep.center else distances(represent(e, rep), dev.i1, dev.i2)
        return lambda tp: fixed if fixed is not None else distances(represent(e, rep, tp), dev.i1, dev.i2)

    print("\n== 2. fusion of the two chosen embeddings, the same person-disjoint cross-validation ==")
    print(HEADER)
    fusion_rows = {}
    for name, method in fusion_methods(dist_fn(dlib_best), dist_fn(inc_best), dev.same).items():
        fusion_rows[name] = cross_validate(method, dev, kinds=True)
        print(_row(name, fusion_rows[name]), flush=True)
    fusion_params = {}
    for kind, label in ONE_VECTOR.items():
        make = lambda x, kind=kind: one_vector_distances(emb, inc_best[0], x, dev.i1, dev.i2, kind == "raw")  # noqa: E731

        def method(tp, tr, make=make):
            return make(_grid_weight(make, dev.same, tr))

        fusion_rows[f"{label}, weight by AUC"] = cross_validate(method, dev, kinds=True)
        print(_row(f"{label}, weight by AUC", fusion_rows[f"{label}, weight by AUC"]), flush=True)
        w = _grid_weight(make, dev.same, np.ones(len(dev.same), bool))
        fusion_params[kind] = {"weight": w, "threshold": balanced_threshold(make(w), dev.same)}
        print(f"    on every development pair: weight {w}, threshold {fusion_params[kind]['threshold']:.4f}")
    everyone = np.ones(len(dev.paths), bool)
    di = distances(represent(emb[inc_best[0]], inc_best[1], everyone), dev.i1, dev.i2)
    dlib_raw = distances(represent(emb["dlib"], Rep("mean", False, False)), dev.i1, dev.i2)
    thresholds = {
        "dlib (raw, pipeline)": balanced_threshold(dlib_raw, dev.same),
        "inception": balanced_threshold(di, dev.same),
    }
    print(
        "thresholds of best balanced accuracy on every development pair: "
        + ", ".join(f"{k} {v:.4f}" for k, v in thresholds.items())
    )
    chosen = {
        "dlib": dlib_best,
        "inception": inc_best,
        "fusion_params": fusion_params,
        "thresholds": thresholds,
        "dev_means": {
            k: np.nanmean(represent(emb[key[0]], Rep(key[1].flip, False, True)), axis=0)
            for k, key in (("dlib", dlib_best), ("inception", inc_best))
        },
    }
    report["development"] = {
        "pairs": len(dev.same),
        "genuine": int(dev.same.sum()),
        "variants": {f"{k[0]}: {k[1].label()}": v for k, v in rows.items()},
        "fusion": fusion_rows,
        "chosen": {
            "dlib": f"{dlib_best[0]}: {dlib_best[1].label()}",
            "inception": f"{inc_best[0]}: {inc_best[1].label()}",
            "fusion": "one vector",
            "fusion_params": fusion_params,
            "thresholds": thresholds,
        },
    }
    return chosen


def lfw_represent(emb: np.ndarray, key: tuple, dev_mean: np.ndarray) -> np.ndarray:
    """The chosen representation on LFW photos; a subtracted mean is the development set's."""
    name, rep = key
    r = represent(emb, Rep(rep.flip, False, rep.normalize))
    return _unit(r - dev_mean) if rep.center else r


def lfw(data: Path, encoders: Encoders, use_cache: bool, chosen: dict, report: dict) -> None:
    from facenet_keras.evaluation.protocols import pair_distances, read_pairs
    from facenet_keras.identity.recognition import DEFAULT_THRESHOLD

    pairs = data / "lfw-dev" / "pairs.csv"
    p1, p2, same, folds = read_pairs(pairs)
    paths = sorted(set(p1) | set(p2))
    index = {p: i for i, p in enumerate(paths)}
    i1, i2 = np.array([index[p] for p in p1]), np.array([index[p] for p in p2])
    all_variants = {**DLIB_VARIANTS, **inception_variants()}
    name = chosen["inception"][0]
    emb = photo_embeddings(paths, {name: all_variants[name]}, encoders, use_cache, "lfw")
    di = distances(lfw_represent(emb[name], chosen["inception"], chosen["dev_means"]["inception"]), i1, i2)
    d_raw, _ = pair_distances(p1, p2, cache=use_cache)  # the package's pipeline, as evaluate runs it
    emb["dlib"] = photo_embeddings(paths, {"dlib": all_variants["dlib"]}, encoders, use_cache, "lfw")["dlib"]
    rows = {
        "dlib ResNet (the pipeline)": (d_raw, DEFAULT_THRESHOLD),
        f"Inception-ResNet-v1 alone ({name}: {chosen['inception'][1].label()})": (
            di,
            chosen["thresholds"]["inception"],
        ),
    }
    for kind, label in ONE_VECTOR.items():
        w, tau = chosen["fusion_params"][kind]["weight"], chosen["fusion_params"][kind]["threshold"]
        rows[f"{label}, w {w}"] = (one_vector_distances(emb, name, w, i1, i2, kind == "raw"), tau)
    ids = fold_ids(same) if folds is None else np.unique(folds, return_inverse=True)[1].reshape(-1)
    print(f"\n== 3. {pairs}: {len(same)} pairs: dlib (the pipeline), Inception alone, one-vector fusions ==")
    out = {}
    ok_dlib = cv_correct(d_raw, same, ids)
    at_dlib = np.isfinite(d_raw) & ((d_raw <= DEFAULT_THRESHOLD) == same)
    for label, (d0, tau) in rows.items():
        at_tau = np.isfinite(d0) & ((d0 <= tau) == same)
        d = _nonneg(d0)
        s = summary(d, same)
        s["threshold"] += float(np.nanmin(d0 - d))  # back on the fused score's own scale
        ok = cv_correct(d, same, ids)
        assert abs(ok.mean() - s["accuracy"]) < 1e-9, "per-pair decisions disagree with kfold_accuracy"
        fixed, broken = int(np.sum(ok & ~ok_dlib)), int(np.sum(~ok & ok_dlib))
        fixed_t, broken_t = int(np.sum(at_tau & ~at_dlib)), int(np.sum(~at_tau & at_dlib))
        s.update(
            threshold_used=tau,
            accuracy_at_threshold=float(at_tau.mean()),
            fixed_vs_dlib=fixed,
            broken_vs_dlib=broken,
            mcnemar_p=mcnemar_p(fixed, broken),
            fixed_vs_dlib_at_threshold=fixed_t,
            broken_vs_dlib_at_threshold=broken_t,
            mcnemar_p_at_threshold=mcnemar_p(fixed_t, broken_t),
        )
        out[label] = s
        print(
            f"{label}\n    accuracy {s['accuracy']:.4f} +- {s['accuracy_std']:.4f} ({s['errors']} errors), "
            f"AUC {s['auc']:.5f}, EER {s['eer']:.4f}, TAR@FAR=1e-2 {s['tar_at_far_1e-2']:.4f}, "
            f"TAR@FAR=1e-3 {s['tar_at_far_1e-3']:.4f}; at the development threshold {tau:.4f}: "
            f"{s['accuracy_at_threshold']:.4f}"
        )
        if not label.startswith("dlib"):
            print(
                f"    vs dlib alone: fixed {fixed}, broken {broken} (McNemar p {s['mcnemar_p']:.3g}); "
                f"at the thresholds: fixed {fixed_t}, broken {broken_t} (p {s['mcnemar_p_at_threshold']:.3g})"
            )
    n_imp = int((~same).sum())
    print(f"({n_imp} different-person pairs: TAR@FAR=1e-3 there means no false accept at all)")
    report["lfw_fold1"] = out


# ------------------------------------------------------------------------------------ LFW-fold helpers
def fold_ids(same: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """Stratified round-robin folds in file order, as ``evaluation.kfold_accuracy`` deals them."""
    ids = np.empty(len(same), np.int64)
    for label in (True, False):
        idx = np.flatnonzero(same == label)
        ids[idx] = np.arange(idx.size) % folds
    return ids


def cv_correct(d: np.ndarray, same: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per-pair correctness under the k-fold protocol (threshold chosen on the other folds)."""
    from facenet_keras import evaluation as ev

    ok = np.zeros(len(d), bool)
    for k in np.unique(ids):
        test = ids == k
        t = ev.best_threshold(d[~test], same[~test])
        ok[test] = np.isfinite(d[test]) & ((d[test] <= t) == same[test])
    return ok


def summary(d: np.ndarray, same: np.ndarray) -> dict:
    from facenet_keras import evaluation as ev

    r = ev.verification_report(d, same, folds=FOLDS)
    out = {
        k: r[k]
        for k in ("accuracy", "accuracy_std", "threshold", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "failed")
    }
    out["errors"] = round((1.0 - r["accuracy"]) * len(d))
    return out


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p (binomial test of the discordant pairs against 1/2)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broken) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def throughput(data: Path, encoders: Encoders, chips_n: int, repeats: int, report: dict) -> None:
    from facenet_keras import load_image

    rng = np.random.default_rng(0)
    paths = sorted((data / "faces").glob("dlib_john_*/*.jpg")) if data else []
    if paths:
        from PIL import Image

        base = np.stack([load_image(p) for p in paths])
        dlib_chips = np.resize(base, (chips_n, 150, 150, 3))
        inc_chips = np.stack([np.asarray(Image.fromarray(c).resize((160, 160), Image.BILINEAR)) for c in dlib_chips])
        source = f"{len(paths)} real chips, tiled"
    else:
        dlib_chips = rng.integers(0, 256, (chips_n, 150, 150, 3), dtype=np.uint8)
        inc_chips = rng.integers(0, 256, (chips_n, 160, 160, 3), dtype=np.uint8)
        source = "random chips"

    def rate(fn, n):
        fn()
        best = min(_timed(fn) for _ in range(repeats))
        return n / best

    from facenet_keras import encode_chips

    rates = {
        "dlib ResNet (Keras)": rate(lambda: encode_chips(dlib_chips, model=encoders.dlib, batch_size=32), chips_n),
        "Inception-ResNet-v1 (Keras)": rate(
            lambda: encode_chips(inc_chips, model=encoders.inception, batch_size=32), chips_n
        ),
    }
    rates["both (fused, per face)"] = 1.0 / (
        1.0 / rates["dlib ResNet (Keras)"] + 1.0 / rates["Inception-ResNet-v1 (Keras)"]
    )
    try:
        import dlib

        from facenet_keras.weights import dlib_resnet_dat_path

        net = dlib.face_recognition_model_v1(str(dlib_resnet_dat_path()))
        xs = list(dlib_chips[:32])
        rates["dlib-bin (batched)"] = rate(lambda: net.compute_face_descriptor(xs), len(xs))
    except ImportError:
        print("dlib-bin is not installed: no reference figure")
    print(f"\n== 4. throughput at batch 32 ({source}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}) ==")
    ref = rates.get("dlib-bin (batched)")
    for label, r in rates.items():
        ratio = f", {r / ref:.1f}x dlib-bin" if ref else ""
        print(f"{label:28} {r:7.1f} chips/s; {2000.0 / r:6.1f} ms per face with its mirror{ratio}")
    report["throughput_chips_per_s"] = rates


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _find_data(arg: str | None) -> Path:
    for c in (arg, os.environ.get("FACENET_KERAS_SHARED_DATA"), REPO.parent / "shared" / "data"):
        if c and (Path(c) / "faces" / "pairs.csv").is_file():
            return Path(c)
    raise SystemExit("no data: pass --data DIR holding faces/pairs.csv (and lfw-dev/pairs.csv)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder with faces/ and lfw-dev/ (default ../shared/data)")
    parser.add_argument("--skip-lfw", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    parser.add_argument("--chips", type=int, default=96, help="chips per throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="OUT.json", default=None, help="also write every figure as JSON")
    args = parser.parse_args(argv)

    data = _find_data(args.data)
    encoders = Encoders()
    report: dict = {}
    chosen = development(data, encoders, not args.no_cache, report)
    if not args.skip_lfw:
        lfw(data, encoders, not args.no_cache, chosen, report)
    if not args.skip_throughput:
        throughput(data, encoders, args.chips, args.repeats, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
