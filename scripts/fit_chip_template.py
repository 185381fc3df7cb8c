"""Fit where MTCNN's five landmarks fall in dlib's face chip, and measure how well each alignment
recipe reproduces dlib's own chip (with dlib-bin as the oracle).

Why: the encoder (dlib's ResNet) was trained on chips from ``dlib.get_face_chip_details(shape,
size=150, padding=0.25)`` on dlib's 5-point landmarks (eye corners + under-nose point). We detect with
MTCNN (eye centres, nose tip, mouth corners), so we need MTCNN's points expressed in dlib's chip frame.

What it does, on the full photos of ``../shared/data/faces`` (not the 150x150 crops) and
``../shared/data/group`` (never lfw-dev, the evaluation set):
1. each photo, downscaled to at most ``--max-side`` px, goes through dlib's HOG detector and
   ``shape_predictor_5_face_landmarks.dat`` and through our :class:`FaceDetector`; dlib and MTCNN faces
   are paired by the nearest eye midpoint (within a quarter of the inter-ocular distance);
2. dlib's image->chip similarity (least squares of its 5 points onto dlib's padded template, which
   is what ``get_face_chip_details`` computes; checked against ``dlib.get_face_chip`` pixel for pixel)
   maps MTCNN's landmarks into the chip; converted back to dlib's normalised unpadded frame
   ``alignment.template_from_pixels``;
3. the template is the per-coordinate median of the mapped points (robust to a bad landmark), and
   each point gets a weight, its inverse (robust) variance there: the maximum-likelihood
   similarity then leans on the precise eye centres more than on the mouth corners; template and
   weights are then mirror-averaged (faces and their mirror images are equally likely);
4. ``--evaluate``: for each paired face, the Euclidean distance between our encoder's embedding of
   our chip and dlib's own descriptor (``face_recognition_model_v1.compute_face_descriptor`` on dlib's
   landmarks) for eyes-only alignment, the 5-point template fitted here (equal weights and
   weighted) and the recipe hard-coded in ``facenet_keras.alignment``; plus our encoder on dlib's
   own chip (the floor). Two-fold cross-fitting (fit on even faces, evaluate on odd, and back)
   keeps the fitted recipes honest.

Run: ``.venv/bin/python scripts/fit_chip_template.py --evaluate`` (about 3 minutes on 2 cores;
``--cache /tmp/fit.npz`` memoises the dlib/MTCNN landmarks between runs).
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

from facenet_keras import alignment  # noqa: E402
from facenet_keras.images import iter_image_files, load_image  # noqa: E402

SIZE, PADDING = 150, 0.25


def photo_paths(data: Path) -> list[Path]:
    """Full photos (not the 150x150 crops) in faces/, and every group photo."""
    from PIL import Image

    out = []
    for p in iter_image_files(data / "faces"):
        with Image.open(p) as im:
            if im.size != (SIZE, SIZE) and min(im.size) > SIZE:
                out.append(p)
    out += sorted((data / "group").glob("*.jpg"))
    return out


def dlib_models():
    import dlib
    import face_recognition_models as frm

    models = Path(frm.__file__).parent / "models"
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    f = max_side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * f), round(h * f)), Image.LANCZOS))


def collect(paths, max_side: int, with_descriptors: bool):
    """Faces found by both dlib and MTCNN: (photo index, dlib 5 points, MTCNN 5 points, dlib
    descriptor or None) over all photos, and the (downscaled) photos."""
    from facenet_keras.faces.detection import FaceDetector

    hog, sp, rec = dlib_models()
    det = FaceDetector(max_side=None)
    rows = []
    images = []
    for path in paths:
        img = downscale(load_image(path), max_side)
        images.append(img)
        rects = hog(img, 0)
        if len(rects) == 0:
            rects = hog(img, 1)
        faces = det.detect(img)
        if not faces:
            continue
        m_eyes = np.stack([f.landmarks[:2].mean(axis=0) for f in faces])
        for r in rects:
            shape = sp(img, r)
            pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(5)], dtype=np.float64)
            d_eyes = pts[:4].mean(axis=0)
            iod = np.linalg.norm(pts[[0, 1]].mean(0) - pts[[2, 3]].mean(0))
            dist = np.linalg.norm(m_eyes - d_eyes, axis=1)
            j = int(np.argmin(dist))
            if dist[j] > 0.25 * iod:
                continue
            desc = np.array(rec.compute_face_descriptor(img, shape)) if with_descriptors else None
            rows.append((len(images) - 1, pts, faces[j].landmarks.astype(np.float64), desc))
    return rows, images


def collect_cached(paths, max_side: int, cache: Path | None):
    """:func:`collect` with descriptors, memoised in an .npz (photos are re-read, not stored)."""
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        if list(z["paths"]) == [str(p) for p in paths] and int(z["max_side"]) == max_side:
            images = [downscale(load_image(p), max_side) for p in paths]
            rows = [(int(i), a, b, c) for i, a, b, c in zip(z["idx"], z["dlib"], z["mtcnn"], z["desc"])]
            return rows, images
    rows, images = collect(paths, max_side, True)
    if cache is not None:
        np.savez(
            cache,
            paths=np.array([str(p) for p in paths]),
            max_side=max_side,
            idx=np.array([r[0] for r in rows]),
            dlib=np.stack([r[1] for r in rows]),
            mtcnn=np.stack([r[2] for r in rows]),
            desc=np.stack([r[3] for r in rows]),
        )
    return rows, images


def dlib_transforms(dlib_pts: np.ndarray) -> np.ndarray:
    """(N, 5, 2) dlib landmarks -> (N, 2, 3) image->chip similarity, as get_face_chip_details."""
    dst = alignment.template_pixels(alignment.DLIB_TEMPLATE, SIZE, PADDING)
    return alignment.similarity_transform(dlib_pts, dst)


def to_normalised(chip_px: np.ndarray) -> np.ndarray:
    return alignment.template_from_pixels(chip_px, SIZE, PADDING)


def mapped_points(dlib_pts: np.ndarray, mtcnn_pts: np.ndarray) -> np.ndarray:
    """(N, 5, 2) MTCNN landmarks expressed in dlib's normalised chip frame (through dlib's transform)."""
    d = dlib_transforms(dlib_pts)
    chip_px = np.einsum("nij,nkj->nki", d[:, :, :2], mtcnn_pts) + d[:, None, :, 2]
    return alignment.template_from_pixels(chip_px, SIZE, PADDING)


def symmetrize(template: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-average a template and its weights about the vertical axis of dlib's template (its eye
    midpoints' centre, x = 0.4901): a face and its mirror image are equally likely, so a left/right
    difference in the fit is sampling noise (or the photos' pose bias), not a property of faces."""
    axis = float(alignment.EYES_TEMPLATE[:, 0].mean())
    mirror = template.copy()
    mirror[:, 0] = 2.0 * axis - mirror[:, 0]
    swap = [1, 0, 2, 4, 3]
    sym = 0.5 * (template + mirror[swap])
    w = 0.5 * (weights + weights[swap])
    return sym, w


def fit_template(dlib_pts: np.ndarray, mtcnn_pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template and point weights for MTCNN's five points in dlib's chip frame.

    Template: the per-coordinate median of MTCNN's points mapped into dlib's chips (robust to the
    odd bad landmark). Weights: inverse variances of those mapped points (variance estimated
    robustly as (1.4826 * median absolute deviation)^2, x and y pooled), normalised to sum to 5:
    the maximum-likelihood similarity weighs precise points (eye centres) more than noisy ones
    (mouth corners, whose position also moves with expression).
    """
    mapped = mapped_points(dlib_pts, mtcnn_pts)
    template = np.median(mapped, axis=0)
    sigma = 1.4826 * np.median(np.abs(mapped - template), axis=0)  # (5, 2)
    weights = 1.0 / np.mean(sigma**2, axis=1)
    return template, weights * (5.0 / weights.sum())


def dlib_chip_check(rows, images) -> float:
    """Mean abs grey-level difference between dlib.get_face_chip and our warp with dlib's transform
    (median over the first 10 faces): checks the chip geometry, sampling and anti-aliasing."""
    import dlib

    diffs = []
    for idx, pts, _, _ in rows[:10]:
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x), int(y)) for x, y in pts])
        theirs = np.asarray(dlib.get_face_chip(images[idx], shape, size=SIZE, padding=PADDING))
        ours = alignment.warp_affine(images[idx], dlib_transforms(pts[None]), SIZE)[0]
        diffs.append(np.abs(theirs.astype(int) - ours.astype(int)).mean())
    return float(np.median(diffs))


def chips_for(rows, images, transforms) -> np.ndarray:
    return np.concatenate(
        [alignment.warp_affine(images[r[0]], transforms[i : i + 1], SIZE) for i, r in enumerate(rows)]
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--evaluate", action="store_true", help="also measure embedding distances to dlib")
    ap.add_argument("--cache", type=Path, default=None, help="memoise dlib/MTCNN landmarks in this .npz")
    args = ap.parse_args(argv)

    paths = photo_paths(args.data)
    t0 = time.time()
    if args.evaluate or args.cache:
        rows, images = collect_cached(paths, args.max_side, args.cache)
    else:
        rows, images = collect(paths, args.max_side, False)
    print(f"{len(paths)} photos, {len(rows)} faces found by both dlib (HOG) and MTCNN ({time.time() - t0:.0f} s)")
    dlib_pts = np.stack([r[1] for r in rows])
    mtcnn_pts = np.stack([r[2] for r in rows])

    template, weights = symmetrize(*fit_template(dlib_pts, mtcnn_pts))
    mapped = mapped_points(dlib_pts, mtcnn_pts)
    mad = np.median(np.abs(mapped - template), axis=0)
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    print("MTCNN template in dlib's normalised chip frame (x, y); spread = median abs deviation; weight:")
    for name, t, sp_, w in zip(names, template, mad, weights):
        print(f"  {name:12s} {t[0]:.4f} {t[1]:.4f}   spread {sp_[0]:.4f} {sp_[1]:.4f}   weight {w:.3f}")
    print("MTCNN_TEMPLATE = np.array([")
    for t in template:
        print(f"    [{t[0]:.4f}, {t[1]:.4f}],")
    print("])")
    print("MTCNN_WEIGHTS = np.array([" + ", ".join(f"{w:.3f}" for w in weights) + "])")
    print(
        f"mean |dlib.get_face_chip - our warp| (grey levels, median over 10 faces): {dlib_chip_check(rows, images):.2f}"
    )

    if not args.evaluate:
        return 0
    from facenet_keras.models.encoder import encode_chips

    desc = np.stack([r[3] for r in rows])
    n = len(rows)
    t_px = alignment.template_pixels(template, SIZE, PADDING)
    halves = [np.arange(n) % 2 == 0, np.arange(n) % 2 == 1]
    cross_m = np.empty((n, 2, 3))
    cross_w = np.empty((n, 2, 3))
    cross_s = np.empty((n, 2, 3))
    for fit_on, eval_on in (halves, halves[::-1]):
        t_half, w_half = fit_template(dlib_pts[fit_on], mtcnn_pts[fit_on])
        px = alignment.template_pixels(t_half, SIZE, PADDING)
        cross_m[eval_on] = alignment.similarity_transform(mtcnn_pts[eval_on], px)
        cross_w[eval_on] = alignment.similarity_transform(mtcnn_pts[eval_on], px, w_half)
        t_sym, w_sym = symmetrize(t_half, w_half)
        px = alignment.template_pixels(t_sym, SIZE, PADDING)
        cross_s[eval_on] = alignment.similarity_transform(mtcnn_pts[eval_on], px, w_sym)
    t_raw, w_raw = fit_template(dlib_pts, mtcnn_pts)
    raw_px = alignment.template_pixels(t_raw, SIZE, PADDING)
    recipes = {
        "dlib's chip, our encoder (floor)": dlib_transforms(dlib_pts),
        "eyes-only (EYES_TEMPLATE)": alignment.face_transforms(mtcnn_pts, SIZE, PADDING, "eyes"),
        "5-point median, equal weights": alignment.similarity_transform(mtcnn_pts, raw_px),
        "5-point median, equal, 2-fold": cross_m,
        "5-point median, weighted": alignment.similarity_transform(mtcnn_pts, raw_px, w_raw),
        "5-point median, weighted, 2-fold": cross_w,
        "5-point symmetric, weighted": alignment.similarity_transform(mtcnn_pts, t_px, weights),
        "5-point symmetric, weighted, 2-fold": cross_s,
        "alignment.py as hard-coded (five)": alignment.face_transforms(mtcnn_pts, SIZE, PADDING, "five"),
    }
    print(f"distance to dlib's descriptor of dlib's own chip, over {n} faces (lower is better):")
    print(f"  {'recipe':36s} {'median':>7s} {'mean':>7s} {'p90':>7s} {'max':>7s}")
    for name, tr in recipes.items():
        emb = encode_chips(chips_for(rows, images, tr))
        d = np.linalg.norm(emb - desc, axis=1)
        print(f"  {name:36s} {np.median(d):7.4f} {d.mean():7.4f} {np.percentile(d, 90):7.4f} {d.max():7.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
