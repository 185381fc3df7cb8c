"""Fit ``facenet_keras.landmarks.rect_from_landmarks``: the dlib-style face box built from MTCNN's
five landmarks, so dlib's 5-point shape predictor (our numpy port) can start from MTCNN detections.

Why: dlib's shape predictor was trained with boxes from dlib's HOG face detector; it starts from its
mean shape placed in the box, so a box placed differently (MTCNN's) shifts and scales its answer.

What it does, on the full photos of ``../shared/data/faces`` (not the 150x150 crops) and
``../shared/data/group`` (never lfw-dev, the evaluation set), each downscaled to at most
``--max-side`` px:
1. dlib's HOG detector (upsampled once) and our MTCNN :class:`FaceDetector`; faces paired by the
   nearest eye midpoint (dlib's eye corners vs MTCNN's eye centres, within 0.25 inter-ocular);
2. for each pair, the face scale ``s`` (MTCNN eye midpoint to mouth midpoint) and frame ``u``
   (along MTCNN's eye line), ``v`` (u turned 90 degrees, down the face); least squares of
   (HOG box centre - mean of MTCNN's landmarks) / s on ``c0 u + c1 v``, and of the box side / s on
   ``c2`` -- the three numbers printed as RECT_COEFFS, hard-coded in ``facenet_keras/landmarks.py``;
3. evaluation, two-fold cross-fitted (fit on even faces, score odd ones, and back): the distance
   between our predictor's points started from the fitted box and dlib's points from dlib's HOG
   box, per face relative to the inter-ocular distance (dlib's eye-corner midpoints), median and
   95th percentile; also for the MTCNN box taken as is, for reference;
4. ``--embed``: chips cut with ``alignment.DLIB_TEMPLATE`` from our points (rounded and sub-pixel)
   and from MTCNN's points (``alignment.align_faces``), embedded by our encoder, compared with
   dlib's own descriptor of dlib's own chip (median Euclidean distance).

Run: ``.venv/bin/python scripts/fit_shape_predictor_rect.py --embed --cache /tmp/sp_rect.npz``
(a few minutes on 2 cores; the cache memoises detections and dlib's descriptors between runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fit_chip_template import downscale, photo_paths  # noqa: E402  (the same photos: faces/ full photos + group/)

from facenet_keras import alignment  # noqa: E402
from facenet_keras.faces.landmarks import load_shape_predictor, rect_from_landmarks  # noqa: E402
from facenet_keras.images import load_image  # noqa: E402

SIZE, PADDING = 150, 0.25


def collect(paths, max_side: int):
    """Faces found by both detectors: photo index, HOG rect (4,), dlib points (5, 2), MTCNN
    landmarks (5, 2), MTCNN box (4,), dlib descriptor (128,)."""
    import dlib
    import face_recognition_models as frm

    from facenet_keras.faces.detection import FaceDetector

    models = Path(frm.__file__).parent / "models"
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    det = FaceDetector(max_side=None)
    rows = {k: [] for k in ("idx", "rect", "dlib", "mtcnn", "box", "desc")}
    for i, path in enumerate(paths):
        img = downscale(load_image(path), max_side)
        faces = det.detect(img)
        if not faces:
            continue
        m_eyes = np.stack([f.landmarks[:2].mean(axis=0) for f in faces])
        for r in hog(img, 1):
            shape = sp(img, r)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            iod = np.linalg.norm(pts[:2].mean(0) - pts[2:4].mean(0))
            dist = np.linalg.norm(m_eyes - pts[:4].mean(axis=0), axis=1)
            j = int(np.argmin(dist))
            if dist[j] > 0.25 * iod:
                continue
            rows["idx"].append(i)
            rows["rect"].append([r.left(), r.top(), r.right(), r.bottom()])
            rows["dlib"].append(pts)
            rows["mtcnn"].append(faces[j].landmarks.astype(np.float64))
            rows["box"].append(faces[j].box.astype(np.float64))
            rows["desc"].append(np.array(rec.compute_face_descriptor(img, shape)))
    return {k: np.asarray(v, dtype=np.float64 if k != "idx" else np.int64) for k, v in rows.items()}


def collect_cached(paths, max_side: int, cache: Path | None):
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        if list(z["paths"]) == [str(p) for p in paths] and int(z["max_side"]) == max_side:
            return {k: z[k] for k in ("idx", "rect", "dlib", "mtcnn", "box", "desc")}
    rows = collect(paths, max_side)
    if cache is not None:
        np.savez(cache, paths=np.array([str(p) for p in paths]), max_side=max_side, **rows)
    return rows


def face_frame(lm: np.ndarray):
    """(N, 5, 2) MTCNN landmarks -> mean (N, 2), scale s (N,), u, v (N, 2), as in landmarks.py."""
    eyes = (lm[:, 0] + lm[:, 1]) / 2
    mouth = (lm[:, 3] + lm[:, 4]) / 2
    s = np.linalg.norm(mouth - eyes, axis=1)
    u = lm[:, 1] - lm[:, 0]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    return lm.mean(axis=1), s, u, v


def fit_coeffs(rect: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """Least-squares (c0, c1, c2) of the box model, in units of the face scale s."""
    mean, s, u, v = face_frame(lm)
    centre = (rect[:, :2] + rect[:, 2:]) / 2
    side = ((rect[:, 2] - rect[:, 0]) + (rect[:, 3] - rect[:, 1])) / 2
    off = (centre - mean) / s[:, None]
    # off = c0 u + c1 v: stack the 2 coordinates of every face as rows of one linear system.
    a = np.concatenate([np.stack([u[:, 0], v[:, 0]], 1), np.stack([u[:, 1], v[:, 1]], 1)])
    b = np.concatenate([off[:, 0], off[:, 1]])
    (c0, c1), *_ = np.linalg.lstsq(a, b, rcond=None)
    c2 = float(np.mean(side / s))  # least squares of side / s = c2: every face counts the same
    return np.array([c0, c1, c2])


def relative_errors(ours: np.ndarray, dlib_pts: np.ndarray) -> np.ndarray:
    """Per face: max over the 5 points of |ours - dlib|, over dlib's inter-ocular distance."""
    iod = np.linalg.norm(dlib_pts[:, :2].mean(1) - dlib_pts[:, 2:4].mean(1), axis=1)
    return np.linalg.norm(ours - dlib_pts, axis=2).max(axis=1) / iod


def mean_relative_errors(ours: np.ndarray, dlib_pts: np.ndarray) -> np.ndarray:
    iod = np.linalg.norm(dlib_pts[:, :2].mean(1) - dlib_pts[:, 2:4].mean(1), axis=1)
    return np.linalg.norm(ours - dlib_pts, axis=2).mean(axis=1) / iod


def predict_all(sp, images, idx, rects, rounded=True) -> np.ndarray:
    out = np.zeros((len(idx), 5, 2))
    for i in np.unique(idx):
        sel = np.nonzero(idx == i)[0]
        out[sel] = sp.predict(images[i], rects[sel], rounded=rounded)
    return out


def summary(name: str, e: np.ndarray, unit: str = "inter-ocular distance") -> str:
    return f"{name:<34s} median {np.median(e):.4f}  p95 {np.percentile(e, 95):.4f}  max {e.max():.4f}  (x {unit})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--embed", action="store_true", help="also compare embeddings with dlib's")
    args = ap.parse_args(argv)

    paths = photo_paths(args.data)
    t = time.time()
    rows = collect_cached(paths, args.max_side, args.cache)
    n = len(rows["idx"])
    print(f"{len(paths)} photos, {n} faces found by both detectors ({time.time() - t:.0f} s)")
    images = [downscale(load_image(p), args.max_side) for p in paths]
    sp = load_shape_predictor()

    # Sanity: our port from dlib's own HOG boxes reproduces dlib's points.
    exact = predict_all(sp, images, rows["idx"], rows["rect"])
    diff = np.abs(exact - rows["dlib"]).max()
    print("port vs dlib from the same HOG box: max |diff|", diff, "px")

    coeffs = fit_coeffs(rows["rect"], rows["mtcnn"])
    print("RECT_COEFFS =", np.array2string(coeffs, precision=4, separator=", "))

    # Two-fold cross-fitted evaluation of the box model.
    folds = np.arange(n) % 2
    rects_cv = np.zeros((n, 4))
    for f in (0, 1):
        c = fit_coeffs(rows["rect"][folds != f], rows["mtcnn"][folds != f])
        rects_cv[folds == f] = rect_from_landmarks(rows["mtcnn"][folds == f], c)
    box = rows["box"]
    mtcnn_rect = np.concatenate([box[:, :2], box[:, :2] + box[:, 2:]], axis=1)
    pts_cv = predict_all(sp, images, rows["idx"], rects_cv)
    pts_cv_sub = predict_all(sp, images, rows["idx"], rects_cv, rounded=False)
    pts_box = predict_all(sp, images, rows["idx"], mtcnn_rect)
    hog = rows["rect"]
    rect_err = np.abs(rects_cv - hog).max(axis=1) / (hog[:, 2] - hog[:, 0])
    print(summary("box error, fitted box (cv)", rect_err, "HOG box side"))
    for name, pts in (("fitted box (cv), max over points", pts_cv), ("MTCNN box as is, max over points", pts_box)):
        print(summary(name, relative_errors(pts, rows["dlib"])))
    print(summary("fitted box (cv), mean over points", mean_relative_errors(pts_cv, rows["dlib"])))
    iod = np.linalg.norm(rows["dlib"][:, :2].mean(1) - rows["dlib"][:, 2:4].mean(1), axis=1)
    print(f"inter-ocular distance: median {np.median(iod):.1f} px (range {iod.min():.0f}-{iod.max():.0f})")

    t = time.perf_counter()
    for _ in range(5):
        sp.predict(images[rows["idx"][0]], rects_cv[:1])
    t1 = (time.perf_counter() - t) / 5
    big = np.repeat(rects_cv[:1], 32, axis=0)
    t = time.perf_counter()
    sp.predict(images[rows["idx"][0]], big)
    t32 = (time.perf_counter() - t) / 32
    print(f"predict: {t1 * 1e3:.1f} ms for one face, {t32 * 1e3:.2f} ms per face in a batch of 32")

    if args.embed:
        from facenet_keras.models.encoder import encode_chips

        dst = alignment.template_pixels(alignment.DLIB_TEMPLATE, SIZE, PADDING)

        def chips_from(points) -> np.ndarray:
            out = np.zeros((n, SIZE, SIZE, 3), np.uint8)
            m = alignment.similarity_transform(points, dst)
            for i in np.unique(rows["idx"]):
                sel = np.nonzero(rows["idx"] == i)[0]
                out[sel] = alignment.warp_affine(images[i], m[sel], SIZE)
            return out

        def mtcnn_chips() -> np.ndarray:
            out = np.zeros((n, SIZE, SIZE, 3), np.uint8)
            for i in np.unique(rows["idx"]):
                sel = np.nonzero(rows["idx"] == i)[0]
                out[sel] = alignment.align_faces(images[i], rows["mtcnn"][sel])
            return out

        for name, chips in (
            ("dlib's points (HOG box) [floor]", chips_from(rows["dlib"])),
            ("our points, fitted box (cv)", chips_from(pts_cv)),
            ("our sub-pixel points (cv)", chips_from(pts_cv_sub)),
            ("MTCNN points, alignment default", mtcnn_chips()),
        ):
            d = np.linalg.norm(encode_chips(chips) - rows["desc"], axis=1)
            print(
                f"embedding distance to dlib's descriptor, {name:<34s} median {np.median(d):.4f}"
                f"  p95 {np.percentile(d, 95):.4f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
