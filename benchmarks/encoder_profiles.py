"""Two encoders alone and fused: Inception-ResNet-v1's preprocessing, the fusion weight, thresholds,
the LFW fold 1 check and throughput.

Usage::

    python benchmarks/encoder_profiles.py [--data DIR] [--skip-lfw] [--skip-throughput] [--no-cache]
                                          [--json OUT.json]

1. Development pairs (``DIR/faces/pairs.csv``; ``DIR`` = ../shared/data or $FACENET_KERAS_SHARED_DATA):
   every photo's main face is detected once (the pipeline's detector and face choice); its dlib
   chip goes through dlib's ResNet, and its Inception chip, cut each way below, through FaceNet's
   Inception-ResNet-v1, each with and without the mirrored chip's embedding averaged in. Printed:
   10-fold cross-validated accuracy (the evaluate command's protocol), AUC, EER per variant, and
   which variant the rule (accuracy, then AUC) picks.
2. Fusion on the same pairs: the concatenation of the two L2-normalised embeddings weighted by w
   (``facenet_keras.fusion.fuse``) against a fused distance ``(1 - w) d_dlib + w d_inception``; w
   on a 0.05 grid, chosen as the one with the best AUC on the training pairs (ties: the middle of
   the tied range), with a nested 10-fold cross-validation of that choice; then the 10-fold
   cross-validated thresholds of the Inception encoder alone and of the fused embedding.
3. LFW fold 1 (``DIR/lfw-dev/pairs.csv``), evaluated once with the package's chosen settings
   (nothing here is chosen on it): each encoder alone and fused; accuracy, AUC, EER, TAR@FAR, the
   pairs fusion fixes and breaks against dlib alone and McNemar's exact p.
4. Throughput at batch 32 of each encoder and of both, against dlib-bin's batched encoder in the
   same run (if installed).

Embeddings are cached per photo and variant (``facenet_keras.embedding_cache``), so a second run
takes seconds; ``--no-cache`` recomputes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
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


def inception_variants():
    """name -> (cut(image, detection) -> (1, 160, 160, 3) uint8, prewhiten?)."""
    from facenet_keras.faces.facenet_chips import facenet_chips

    def box(margin):
        return lambda image, d: facenet_chips(image, [d], method="box", margin=margin)

    def box_relative(frac):
        return lambda image, d: facenet_chips(image, [d], method="box", margin=frac * float(max(d.box[2:])))

    def aligned(padding):
        return lambda image, d: facenet_chips(image, [d], method="aligned", padding=padding)

    return {
        "box margin 32 px (FaceNet)": (box(32.0), False),
        "box margin 32 px, prewhitened": (box(32.0), True),
        "box margin 44 px (the wheel's)": (box(44.0), False),
        "box margin 25% of the box": (box_relative(0.25), False),
        "aligned, padding 0.15": (aligned(0.15), False),
        "aligned, padding 0.25": (aligned(0.25), False),
        "aligned, padding 0.35": (aligned(0.35), False),
        # about FaceNet's own framing: with padding 0.65 the eyes span what they span in its crops
        "aligned, padding 0.5": (aligned(0.5), False),
        "aligned, padding 0.65": (aligned(0.65), False),
        "aligned, padding 0.8": (aligned(0.8), False),
    }


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
    [:, 0] the chip's embedding, [:, 1] its mirror image's. ``variants``: name -> (cut, prewhiten)
    plus the key "dlib" (dlib's own chip through dlib's ResNet)."""
    from facenet_keras import FaceDetector, load_image
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache
    from facenet_keras.evaluation.protocols import primary_namespace
    from facenet_keras.faces.pipeline import embedding_key, face_chips, primary_face
    from facenet_keras.models.inception_resnet_v1 import WEIGHTS_DIGEST

    base = primary_namespace(embedding_key(flip=False))
    caches = {
        name: EmbeddingCache(f"{base}|encoder-profiles-v1|{name}|inception-{WEIGHTS_DIGEST[:16]}") for name in variants
    }
    dims = {name: 128 if name == "dlib" else 512 for name in variants}
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
            for name, spec in variants.items():
                if name in cached:
                    continue
                if face is None:
                    value = None
                elif name == "dlib":
                    chip = face_chips(image, [face], 150, "dlib")
                    value = encoders.dlib_embed(np.concatenate([chip, chip[:, :, ::-1]])).reshape(-1)
                else:
                    cut, prewhiten = spec
                    chip = cut(image, face)
                    value = encoders.inception_embed(np.concatenate([chip, chip[:, :, ::-1]]), prewhiten).reshape(-1)
                cached[name] = value
                caches[name].put(value, path)
        for name, value in cached.items():
            if value is not None:
                out[name][i] = np.asarray(value, np.float32).reshape(2, -1)
        if todo and todo % 50 == 0:
            print(f"  {label}: {i + 1}/{len(paths)} photos ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def pair_distances(emb: np.ndarray, index: dict, p1, p2, flip: bool, normalize: bool = True) -> np.ndarray:
    """Euclidean distances of the pairs' embeddings (NaN where a photo had no face)."""
    e = emb.mean(axis=1) if flip else emb[:, 0]
    if normalize:
        e = _unit(e)
    a = e[[index[p] for p in p1]]
    b = e[[index[p] for p in p2]]
    return np.linalg.norm(a - b, axis=1)


# ------------------------------------------------------------------------------------ measures
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


def summary(d: np.ndarray, same: np.ndarray, kinds: np.ndarray | None = None) -> dict:
    from facenet_keras import evaluation as ev

    r = ev.verification_report(d, same, folds=FOLDS)
    out = {
        k: r[k]
        for k in ("accuracy", "accuracy_std", "threshold", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "failed")
    }
    out["errors"] = round((1.0 - r["accuracy"]) * len(d))
    if kinds is not None:
        out["by_kind"] = {
            k: ev.accuracy_at(d[kinds == k], same[kinds == k], r["threshold"])
            for k in ("crop", "photo", "mixed")
            if (kinds == k).any()
        }
    return out


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p (binomial test of the discordant pairs against 1/2)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broken) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def best_by_auc(make, same, mask) -> float:
    """The grid weight whose distances have the best AUC on the pairs in ``mask``; ties: the middle."""
    from facenet_keras import evaluation as ev

    aucs = np.array([ev.auc(make(w)[mask], same[mask]) for w in GRID])
    tied = GRID[np.isclose(aucs, aucs.max(), rtol=0, atol=1e-12)]
    return float(tied[(len(tied) - 1) // 2])


def fusion_study(dd: np.ndarray, di: np.ndarray, same: np.ndarray) -> dict:
    """Concatenation vs fused distance: nested-CV accuracy of the weight choice, the weight on all pairs."""
    from facenet_keras import evaluation as ev
    from facenet_keras.faces.fusion import fused_distance

    makers = {"concatenation": lambda w: fused_distance(dd, di, w), "fused distance": lambda w: (1.0 - w) * dd + w * di}
    ids = fold_ids(same)
    out = {}
    for kind, make in makers.items():
        ok = np.zeros(len(same), bool)
        weights = []
        for k in range(FOLDS):
            test = ids == k
            w = best_by_auc(make, same, ~test)
            weights.append(w)
            d = make(w)
            t = ev.best_threshold(d[~test], same[~test])
            ok[test] = np.isfinite(d[test]) & ((d[test] <= t) == same[test])
        w_all = best_by_auc(make, same, np.ones(len(same), bool))
        out[kind] = {
            "nested_cv_accuracy": float(ok.mean()),
            "fold_weights": weights,
            "weight": w_all,
            **summary(make(w_all), same),
        }
    return out


def _kinds(paths_a, paths_b) -> np.ndarray:
    """'crop' (no side above 160 px), 'photo', or 'mixed' per pair."""
    from PIL import Image

    def kind(p):
        with Image.open(p) as im:
            return "crop" if max(im.size) <= 160 else "photo"

    memo = {}
    for p in set(paths_a) | set(paths_b):
        memo[p] = kind(p)
    return np.array([memo[a] if memo[a] == memo[b] else "mixed" for a, b in zip(paths_a, paths_b)])


# ------------------------------------------------------------------------------------ sections
def development(data: Path, encoders: Encoders, use_cache: bool, report: dict) -> None:
    from facenet_keras.evaluation.protocols import read_pairs
    from facenet_keras.faces.facenet_chips import DEFAULT_METHOD, DEFAULT_PADDING
    from facenet_keras.faces.fusion import FUSED_THRESHOLD, FUSION_WEIGHT
    from facenet_keras.models.inception_resnet_v1 import SAME_PERSON_THRESHOLD

    pairs = data / "faces" / "pairs.csv"
    p1, p2, same, _ = read_pairs(pairs)
    paths = sorted(set(p1) | set(p2))
    index = {p: i for i, p in enumerate(paths)}
    kinds = _kinds(p1, p2)
    variants = {"dlib": None, **inception_variants()}
    emb = photo_embeddings(paths, variants, encoders, use_cache, "faces")
    print(f"\n== 1. {pairs}: {len(same)} pairs ({same.sum()} same), {len(paths)} photos; 10-fold CV ==")
    print(
        f"{'encoder / chip':40} {'mirror':6} {'accuracy':>16} {'errors':>6} {'threshold':>9} {'AUC':>8} "
        f"{'EER':>7}  crop / photo / mixed"
    )
    rows = {}
    dlib_raw = pair_distances(emb["dlib"], index, p1, p2, flip=True, normalize=False)
    for name in variants:
        for flip in (False, True):
            d = pair_distances(emb[name], index, p1, p2, flip, normalize=name != "dlib")
            s = summary(d, same, kinds)
            rows[f"{name}|flip={int(flip)}"] = s
            print(
                f"{name:40} {'yes' if flip else 'no':6} {s['accuracy']:.4f} +- {s['accuracy_std']:.4f} "
                f"{s['errors']:6d} {s['threshold']:9.4f} {s['auc']:.5f} {s['eer']:7.4f}  "
                + " / ".join(f"{v:.4f}" for v in s["by_kind"].values())
            )
    inception_rows = {k: v for k, v in rows.items() if not k.startswith("dlib|")}
    best = max(inception_rows, key=lambda k: (inception_rows[k]["accuracy"], inception_rows[k]["auc"]))
    package = f"aligned, padding {DEFAULT_PADDING:g}|flip=1" if DEFAULT_METHOD == "aligned" else None
    print(f"best Inception preprocessing (accuracy, then AUC): {best}; the package's default: {package}")
    if best != package:
        print("WARNING: the package's default preprocessing is not the best measured here")

    dd = pair_distances(emb["dlib"], index, p1, p2, flip=True)
    di = pair_distances(emb[f"aligned, padding {DEFAULT_PADDING:g}"], index, p1, p2, flip=True)
    fusion = fusion_study(dd, di, same)
    print("\n== 2. fusion on the same pairs (dlib + Inception, both L2-normalised, mirrored chips averaged) ==")
    for kind, f in fusion.items():
        print(
            f"{kind:15} w chosen per fold {f['fold_weights']}: nested-CV accuracy {f['nested_cv_accuracy']:.4f}; "
            f"w on all pairs {f['weight']:.2f}: accuracy {f['accuracy']:.4f} +- {f['accuracy_std']:.4f}, "
            f"AUC {f['auc']:.6f}, EER {f['eer']:.4f}, threshold {f['threshold']:.4f}"
        )
    conc = fusion["concatenation"]
    alone = summary(di, same)
    dlib_alone = summary(dlib_raw, same)
    print(
        f"dlib alone (raw, the pipeline's): accuracy {dlib_alone['accuracy']:.4f}, AUC {dlib_alone['auc']:.6f}, "
        f"EER {dlib_alone['eer']:.4f}, threshold {dlib_alone['threshold']:.4f}"
    )
    print(
        f"thresholds (10-fold CV, mean of the fold thresholds): Inception alone {alone['threshold']:.4f} "
        f"(package: {SAME_PERSON_THRESHOLD}), fused at w={conc['weight']:.2f} {conc['threshold']:.4f} "
        f"(package: w={FUSION_WEIGHT}, threshold {FUSED_THRESHOLD})"
    )
    report["development"] = {
        "pairs": str(pairs),
        "variants": rows,
        "best_preprocessing": best,
        "fusion": fusion,
        "inception_threshold": alone["threshold"],
        "dlib_raw": dlib_alone,
    }


def lfw(data: Path, encoders: Encoders, use_cache: bool, report: dict) -> None:
    from facenet_keras.evaluation.protocols import read_pairs
    from facenet_keras.faces.facenet_chips import DEFAULT_PADDING
    from facenet_keras.faces.fusion import FUSED_THRESHOLD, FUSION_WEIGHT, fused_distance
    from facenet_keras.identity.recognition import DEFAULT_THRESHOLD
    from facenet_keras.models.inception_resnet_v1 import SAME_PERSON_THRESHOLD

    pairs = data / "lfw-dev" / "pairs.csv"
    p1, p2, same, folds = read_pairs(pairs)
    paths = sorted(set(p1) | set(p2))
    index = {p: i for i, p in enumerate(paths)}
    name = f"aligned, padding {DEFAULT_PADDING:g}"
    variants = {"dlib": None, name: inception_variants()[name]}
    emb = photo_embeddings(paths, variants, encoders, use_cache, "lfw")
    d_dlib_raw = pair_distances(emb["dlib"], index, p1, p2, flip=True, normalize=False)
    dd = pair_distances(emb["dlib"], index, p1, p2, flip=True)
    di = pair_distances(emb[name], index, p1, p2, flip=True)
    distances = {
        "dlib ResNet (fast)": (d_dlib_raw, DEFAULT_THRESHOLD),
        "Inception-ResNet-v1": (di, SAME_PERSON_THRESHOLD),
        f"fused, w={FUSION_WEIGHT} (accurate)": (fused_distance(dd, di, FUSION_WEIGHT), FUSED_THRESHOLD),
    }
    ids = fold_ids(same) if folds is None else np.unique(folds, return_inverse=True)[1].reshape(-1)
    print(f"\n== 3. {pairs}: {len(same)} pairs, checked once with the settings chosen above ==")
    out = {}
    ok_dlib = cv_correct(d_dlib_raw, same, ids)
    fixed_dlib = np.isfinite(d_dlib_raw) & ((d_dlib_raw <= DEFAULT_THRESHOLD) == same)
    for label, (d, tau) in distances.items():
        s = summary(d, same)
        ok = cv_correct(d, same, ids)
        assert abs(ok.mean() - s["accuracy"]) < 1e-9, "per-pair decisions disagree with kfold_accuracy"
        at_tau = np.isfinite(d) & ((d <= tau) == same)
        fixed, broken = int(np.sum(ok & ~ok_dlib)), int(np.sum(~ok & ok_dlib))
        fixed_t, broken_t = int(np.sum(at_tau & ~fixed_dlib)), int(np.sum(~at_tau & fixed_dlib))
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
            f"{label:28} accuracy {s['accuracy']:.4f} +- {s['accuracy_std']:.4f} ({s['errors']} errors), "
            f"AUC {s['auc']:.5f}, EER {s['eer']:.4f}, TAR@FAR=1e-2 {s['tar_at_far_1e-2']:.4f}, "
            f"TAR@FAR=1e-3 {s['tar_at_far_1e-3']:.4f}; at the development threshold {tau:g}: "
            f"{s['accuracy_at_threshold']:.4f}"
        )
        if label != "dlib ResNet (fast)":
            print(
                f"{'':28} vs dlib alone: fixed {fixed}, broken {broken} (McNemar p {s['mcnemar_p']:.3g}); "
                f"at the thresholds: fixed {fixed_t}, broken {broken_t} (p {s['mcnemar_p_at_threshold']:.3g})"
            )
    n_imp = int((~same).sum())
    print(f"({n_imp} different-person pairs: TAR@FAR=1e-3 there means no false accept at all)")
    report["lfw_fold1"] = out


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
    development(data, encoders, not args.no_cache, report)
    if not args.skip_lfw:
        lfw(data, encoders, not args.no_cache, report)
    if not args.skip_throughput:
        throughput(data, encoders, args.chips, args.repeats, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
