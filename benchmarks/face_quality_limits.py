"""How small, how blurred can a face be and still be recognised? LFW fold 1 with one photo of each
pair degraded: the measurements behind ``faces/quality.py``'s "too small" and "low quality" limits.

For an even sample of the pairs of ``../shared/data/lfw-dev/pairs.csv`` the second photo is
degraded, then detected, measured (:func:`facenet_keras.faces.quality.assess`), aligned and encoded
by the real pipeline; the first photo stays as it is. Two series:

- ``eye E``: area-downscaled (PIL's box filter, as a lower-resolution camera sees it) until the main
  face's eye distance is E px;
- ``blur b``: Gaussian blur of sigma = b x (eye distance / 40) px (the same blur relative to the face
  whatever its size; LFW's faces have about 40 px between the eyes).

A pair whose degraded photo yields no face counts as an error (it cannot be recognised). Reported:
per level, faces found, accuracy at the encoder's threshold, TAR and FAR; then all degraded faces
pooled and binned by what the gate measures on them (eye distance, sharpness), with the accuracy in
each bin: the gate's limits sit where accuracy falls clearly below the full-size figure.

Entries are cached (``FACENET_KERAS_HOME``) under the pipeline's embedding key plus the degradation
and what is stored (the main face's embedding followed by its eye distance and sharpness), so a
rerun only re-encodes what changed.

Run: ``nice .venv/bin/python benchmarks/face_quality_limits.py [--pairs 300]``.

Measured (300 pairs, threshold 0.6; full size: accuracy 0.997, TAR 0.993, FAR 0):

    eye px  6: 0.870   8: 0.967   10: 0.983   12: 0.997   14: 0.993   17: 0.990   20: 0.997   25: 0.997
    blur    1: 0.997   2: 0.997    3: 0.950    4: 0.863    5: 0.720    6: 0.620  (FAR up to 0.027)
    blurred faces by sharpness: < 0.06: 0.717 (FAR 0.024), [0.06, 0.08): 0.873 (FAR 0.033),
    [0.08, 0.10): 0.968, [0.10, 0.12): 1.000, [0.12, 0.14): 0.988, >= 0.14: 0.990 .. 1.000

All 600 pairs (``--pairs 0 --eyes 8 10 12 14 --blurs 2 3``; full size 0.995): eye px 8: 0.962,
10: 0.982, 12: 0.992, 14: 0.990; blurred faces by sharpness [0.06, 0.08): 0.931 (FAR 0.041),
[0.08, 0.10): 0.966, [0.10, 0.12): 0.986, [0.12, 0.14): 0.988, [0.14, 0.17): 0.984, above: 1.000;
hence the default gate's 12 px between the eyes and sharpness 0.10 (faces/quality.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from facenet_keras.evaluation.embedding_cache import EmbeddingCache
from facenet_keras.faces.detection import FaceDetector
from facenet_keras.faces.pipeline import embedding_key, encode, encoder_threshold, primary_face
from facenet_keras.faces.quality import QUALITY_VERSION, assess
from facenet_keras.images import load_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-dev"
EYES = (6, 8, 10, 12, 14, 17, 20, 25)
BLURS = (1, 2, 3, 4, 5, 6)
EYE_BINS = (0, 8, 10, 12, 14, 16, 20, 25, 30, 1000)
SHARP_BINS = (0, 0.06, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2, 0.25, 0.3, 10)


def _main_face(image: np.ndarray, detector: FaceDetector):
    """The main face's embedding followed by its eye distance and sharpness, or None (no face)."""
    faces = encode(image, detector=detector)
    face = primary_face(faces, image.shape)
    if face is None:
        return None
    q = assess(image, [face])[0]
    return np.concatenate([face.embedding, [q.eye_distance, q.sharpness]]).astype(np.float32)


def _degrade(path: Path, kind: str, level: float, eye: float) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    if kind == "eye":
        f = level / eye
        img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.BOX)
    else:
        img = img.filter(ImageFilter.GaussianBlur(level * eye / 40.0))
    return np.asarray(img)


def _accuracy(rows) -> tuple[float, float, float]:
    """(accuracy, TAR, FAR) of (same, distance or None) rows at the encoder's threshold."""
    t = encoder_threshold()
    ok = [(d is not None and d < t) == s for s, d in rows]
    same = [(d is not None and d < t) for s, d in rows if s]
    diff = [(d is not None and d < t) for s, d in rows if not s]
    return float(np.mean(ok)), float(np.mean(same)) if same else float("nan"), float(np.mean(diff)) if diff else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300, help="an even sample of N pairs (0: all 600)")
    ap.add_argument("--eyes", type=float, nargs="*", default=EYES, help="target eye distances (px)")
    ap.add_argument("--blurs", type=float, nargs="*", default=BLURS, help="blur sigmas per 40 px of eye distance")
    args = ap.parse_args(argv)
    rows = list(csv.DictReader(open(DATA / "pairs.csv")))
    if args.pairs:  # genuine pairs come first in the file, impostors after
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, args.pairs).round().astype(int)]
    detector = FaceDetector()
    key = embedding_key()
    full = EmbeddingCache(key + "|primary face|full size")

    def whole(path: Path):
        return full.get_or_compute(path, lambda p: _embedding_only(load_image(str(p)), detector))

    stored = f"|primary face + eye distance, sharpness (quality v{QUALITY_VERSION})"
    base = EmbeddingCache(key + stored + "|as it is")
    print(f"{len(rows)} pairs of lfw-dev, threshold {encoder_threshold()}")
    print(f"{'degraded':>10} {'found':>6} {'accuracy':>9} {'TAR':>6} {'FAR':>6}")
    pooled = []  # (series, eye distance, sharpness, same, distance or None)
    for kind, levels in (("as is", [0.0]), ("eye", args.eyes), ("blur", args.blurs)):
        for level in levels:
            cache = EmbeddingCache(key + stored + f"|{kind} {level:g}")
            results = []
            for r in rows:
                a = whole(DATA / r["path1"])
                p2 = DATA / r["path2"]
                plain = base.get_or_compute(p2, lambda p: _main_face(load_image(str(p)), detector))
                if kind == "as is" or plain is None or (kind == "eye" and plain[-2] <= level):
                    b = plain
                else:
                    eye = float(plain[-2])
                    b = cache.get_or_compute(
                        p2, lambda p, k=kind, lv=level, eye=eye: _main_face(_degrade(p, k, lv, eye), detector)
                    )
                same = r["same"] == "1"
                d = None if a is None or b is None else float(np.linalg.norm(a - b[:-2]))
                results.append((same, d))
                if b is not None and kind != "as is":
                    pooled.append((kind, float(b[-2]), float(b[-1]), same, d))
            acc, tar, far = _accuracy(results)
            found = sum(d is not None for _, d in results)
            label = kind if kind == "as is" else f"{kind} {level:g}"
            print(f"{label:>10} {found:>6} {acc:>9.3f} {tar:>6.3f} {far:>6.3f}", flush=True)
    for name, col, bins, series in (
        ("eye distance px", 1, EYE_BINS, "eye"),
        ("sharpness (blur series)", 2, SHARP_BINS, "blur"),
        ("sharpness (all degraded)", 2, SHARP_BINS, None),
    ):
        print(f"\nfaces found, binned by {name}:")
        print(f"{'bin':>14} {'faces':>6} {'accuracy':>9} {'TAR':>6} {'FAR':>6}")
        for lo, hi in zip(bins[:-1], bins[1:]):
            sel = [(p[3], p[4]) for p in pooled if lo <= p[col] < hi and (series is None or p[0] == series)]
            if sel:
                acc, tar, far = _accuracy(sel)
                print(f"{f'[{lo:g}, {hi:g})':>14} {len(sel):>6} {acc:>9.3f} {tar:>6.3f} {far:>6.3f}")
    return 0


def _embedding_only(image: np.ndarray, detector: FaceDetector):
    face = primary_face(encode(image, detector=detector), image.shape)
    return None if face is None else face.embedding


if __name__ == "__main__":
    sys.exit(main())
