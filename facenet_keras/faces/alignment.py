"""Landmarks -> canonical face chips: least-squares similarity transforms and one batched warp.

Pure numpy. The encoder (dlib's ResNet) was trained on dlib's face chips, made by
``dlib.get_face_chip_details(shape, size=150, padding=0.25)`` from dlib's own 5-point landmarks
(eye corners and the point under the nose). MTCNN gives other points (eye centres, nose tip, mouth
corners), so we map them onto *where those points fall in dlib's chip*. Templates here are in dlib's
normalised, unpadded chip frame (x, y in [0, 1]); a padded chip position is
``(padding + t) / (2 * padding + 1) * size`` measured from the chip's outer edge, exactly dlib's
formula (:func:`template_pixels` converts it to pixel-centre indices).

Conventions: points are (x, y) in pixels, integer coordinates at pixel centres; a transform is a
(2, 3) matrix ``M`` with ``dst = M[:, :2] @ src + M[:, 2]`` (image -> chip). Pixels that fall
outside the photo are black, as in dlib's chips.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DLIB_TEMPLATE",
    "EYES_TEMPLATE",
    "MTCNN_TEMPLATE",
    "MTCNN_WEIGHTS",
    "ARCFACE_TEMPLATE",
    "ARCFACE_SIZE",
    "arcface_chips",
    "CHIP_TEMPLATE",
    "ALIGN_POINTS",
    "DEFAULT_METHOD",
    "ALIGNMENT_VERSION",
    "template_pixels",
    "template_from_pixels",
    "similarity_transform",
    "align_faces",
    "face_transforms",
    "warp_affine",
]

#: dlib's normalised 5-point chip template (from dlib's ``get_face_chip_details``): outer and inner
#: corner of the eye on the image's right, outer and inner corner of the other eye, point under the nose.
DLIB_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)

#: Eye midpoints of :data:`DLIB_TEMPLATE` in MTCNN's order (left_eye = image left, right_eye).
EYES_TEMPLATE = np.array(
    [
        (DLIB_TEMPLATE[2] + DLIB_TEMPLATE[3]) / 2.0,
        (DLIB_TEMPLATE[0] + DLIB_TEMPLATE[1]) / 2.0,
    ],
    dtype=np.float64,
)

#: MTCNN's five points (left_eye, right_eye, nose, mouth_left, mouth_right; left = image left) in
#: dlib's normalised chip frame, produced by ``scripts/fit_chip_template.py``: MTCNN's landmarks of
#: 133 faces (the full photos in ../shared/data/faces and group; never lfw-dev) mapped into dlib's own
#: chips (dlib HOG + 5-point predictor + get_face_chip_details), per-coordinate median, then
#: mirror-averaged about the template's vertical axis (x = 0.4901).
MTCNN_TEMPLATE = np.array(
    [
        [0.2244, 0.1990],
        [0.7558, 0.1990],
        [0.4901, 0.5262],
        [0.2433, 0.7504],
        [0.7368, 0.7504],
    ],
    dtype=np.float64,
)

#: Weights of the five points in the least-squares similarity: their inverse robust variances in
#: dlib's chip frame (same script, same photos; summing to 5). The eye centres weigh ~6.5x the nose
#: tip and ~20x the mouth corners (which also move with expression).
#: With them, our encoder's embedding of our chip lies a median 0.102 from dlib's descriptor of
#: dlib's own chip (2-fold cross-fitted; 0.125 unweighted, 0.140 eyes-only; floor 0.030 = our
#: encoder on dlib's chip), over those 133 faces.
MTCNN_WEIGHTS = np.array([2.218, 2.218, 0.341, 0.112, 0.112], dtype=np.float64)

#: The ArcFace 5-point template in pixels of a 112x112 chip (InsightFace's ``arcface_dst``, which
#: OpenCV's ``FaceRecognizerSF.alignCrop`` uses for SFace): left eye, right eye, nose tip, left and
#: right mouth corners (left = image left, MTCNN's order), pixel centres at integers as in OpenCV.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_SIZE = 112

#: Bumped whenever the chips cut for the same landmarks change (templates, weights, sampling,
#: conventions), so caches of chips or embeddings can key on it. 2: pixel-centre fix in
#: :func:`template_pixels`, binomial pyramid, weighted 5-point MTCNN template.
ALIGNMENT_VERSION = 2

#: The template :func:`align_faces` uses by default, and the MTCNN points it aligns on.
DEFAULT_METHOD = "five"
ALIGN_POINTS = {"eyes": (0, 1), "five": (0, 1, 2, 3, 4)}

for _const in (DLIB_TEMPLATE, EYES_TEMPLATE, MTCNN_TEMPLATE, MTCNN_WEIGHTS, ARCFACE_TEMPLATE):
    _const.setflags(write=False)
del _const


def _template_for(method: str) -> tuple[np.ndarray, tuple[int, ...]]:
    if method == "eyes":
        return EYES_TEMPLATE, ALIGN_POINTS["eyes"]
    if method == "five":
        return MTCNN_TEMPLATE, ALIGN_POINTS["five"]
    raise ValueError(f"method must be 'eyes' or 'five', got {method!r}")


def _weights_for(method: str) -> np.ndarray | None:
    return MTCNN_WEIGHTS if method == "five" else None


#: The normalised template of the default method (the chip positions of the points it aligns on).
CHIP_TEMPLATE = _template_for(DEFAULT_METHOD)[0]


def template_pixels(template: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Normalised template points (K, 2) -> chip pixel coordinates (K, 2), pixel centres at integers.

    dlib's formula ``(padding + t) / (2 * padding + 1) * size`` measures from the chip's outer edge
    (its extraction rectangle spans ``size`` pixels edge to edge, pixel i covering [i, i + 1]); we
    index pixel centres, hence the ``- 0.5``. Checked against ``dlib.get_face_chip`` in the tests
    (without it every chip is half a pixel off dlib's).
    """
    t = np.asarray(template, dtype=np.float64)
    return (padding + t) / (2.0 * padding + 1.0) * size - 0.5


def template_from_pixels(pixels: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Inverse of :func:`template_pixels`: chip pixel coordinates -> normalised template frame."""
    p = np.asarray(pixels, dtype=np.float64)
    return (p + 0.5) / size * (2.0 * padding + 1.0) - padding


def similarity_transform(src, dst, weights=None) -> np.ndarray:
    """Least-squares similarity transforms (rotation, uniform scale, translation; no reflection).

    Minimises ``sum_k w_k |s R src[n, k] + t - dst[k]|^2`` for each n (Umeyama's solution, which in
    2-D has a closed form: with weighted-centred points as complex numbers z, w, the best
    ``s e^{i theta}`` is ``sum(w_k conj(z_k) w_k) / sum(w_k |z_k|^2)``).

    Args:
        src: (N, K, 2) or (K, 2) points, K >= 2, not all identical.
        dst: (K, 2) target points (shared by every n), or (N, K, 2).
        weights: optional (K,) non-negative weights of the points (e.g. inverse variances);
            ``None`` weighs all equally.

    Returns:
        (N, 2, 3) float64 matrices (or (2, 3) for a (K, 2) ``src``) mapping src onto dst.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    single = src.ndim == 2
    if single:
        src = src[None]
    if src.ndim != 3 or src.shape[-1] != 2 or src.shape[1] < 2:
        raise ValueError(f"src must have shape (N, K, 2) with K >= 2, got {src.shape}")
    if dst.shape not in (src.shape[1:], src.shape):
        raise ValueError(f"dst must have shape {src.shape[1:]} or {src.shape}, got {dst.shape}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("similarity_transform: points must be finite")
    dst = np.broadcast_to(dst, src.shape)
    k = src.shape[1]
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (k,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"weights must be {k} finite non-negative numbers, not all zero; got {weights!r}")
        w = w / w.sum()
    mu_s = np.einsum("k,nkd->nd", w, src)[:, None, :]
    mu_d = np.einsum("k,nkd->nd", w, dst)[:, None, :]
    zs = src - mu_s
    zd = dst - mu_d
    var = np.einsum("k,nkd->n", w, zs**2)
    if np.any(var <= 1e-12 * (1.0 + np.einsum("k,nkd->n", w, src**2))):
        raise ValueError("similarity_transform: src points of a face coincide (degenerate landmarks)")
    # Re(conj(z) w) and Im(conj(z) w), weighted sums over the K points.
    a = np.einsum("k,nk->n", w, zs[..., 0] * zd[..., 0] + zs[..., 1] * zd[..., 1]) / var
    b = np.einsum("k,nk->n", w, zs[..., 0] * zd[..., 1] - zs[..., 1] * zd[..., 0]) / var
    m = np.empty((src.shape[0], 2, 3), dtype=np.float64)
    m[:, 0, 0] = a
    m[:, 0, 1] = -b
    m[:, 1, 0] = b
    m[:, 1, 1] = a
    lin = m[:, :, :2]
    m[:, :, 2] = mu_d[:, 0, :] - np.einsum("nij,nj->ni", lin, mu_s[:, 0, :])
    return m[0] if single else m


def face_transforms(landmarks, size: int = 150, padding: float = 0.25, method: str = DEFAULT_METHOD) -> np.ndarray:
    """(N, 5, 2) MTCNN landmarks -> (N, 2, 3) image-to-chip transforms for :func:`align_faces`."""
    lm = _check_landmarks(landmarks)
    template, points = _template_for(method)
    dst = template_pixels(template, size, padding)
    return similarity_transform(lm[:, list(points), :], dst, _weights_for(method))


def align_faces(
    image,
    landmarks,
    size: int = 150,
    padding: float = 0.25,
    *,
    method: str = DEFAULT_METHOD,
) -> np.ndarray:
    """Cut one canonical chip per face, as the encoder expects them.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        landmarks: (N, 5, 2) MTCNN points in pixels (left_eye, right_eye, nose, mouth_left,
            mouth_right; left = image left), or (5, 2) for one face.
        size: chip side in pixels (150 for dlib's ResNet).
        padding: dlib's padding (0.25 for the encoder): the fraction of the unpadded face width
            added on each side.
        method: "five" (default: weighted least squares of all five points onto
            :data:`MTCNN_TEMPLATE` with :data:`MTCNN_WEIGHTS`) or "eyes" (the similarity that puts
            the two eye centres on :data:`EYES_TEMPLATE`, dlib's eye-corner midpoints).

    Returns:
        (N, size, size, 3) uint8 chips (N may be 0).
    """
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if not (0.0 <= padding <= 4.0):
        raise ValueError(f"padding must be in [0, 4], got {padding!r}")
    image = _check_image(image)
    lm = _check_landmarks(landmarks)
    if lm.shape[0] == 0:
        return np.zeros((0, int(size), int(size), 3), dtype=np.uint8)
    transforms = face_transforms(lm, int(size), padding, method)
    return warp_affine(image, transforms, int(size))


def arcface_chips(image, landmarks) -> np.ndarray:
    """ArcFace-family chips (SFace, InsightFace's models): (N, 112, 112, 3) uint8.

    The least-squares similarity (all five points weighed equally, as InsightFace and OpenCV fit
    it) of MTCNN's points (N, 5, 2) or (5, 2) onto :data:`ARCFACE_TEMPLATE`, then the same warp as
    every chip here (bilinear, black outside the photo, a binomial pyramid where the face shrinks
    more than 2x, which OpenCV's ``warpAffine`` does not do).
    """
    image = _check_image(image)
    lm = _check_landmarks(landmarks)
    if lm.shape[0] == 0:
        return np.zeros((0, ARCFACE_SIZE, ARCFACE_SIZE, 3), dtype=np.uint8)
    return warp_affine(image, similarity_transform(lm, ARCFACE_TEMPLATE), ARCFACE_SIZE)


def warp_affine(image: np.ndarray, transforms: np.ndarray, size: int) -> np.ndarray:
    """Sample (N, size, size, 3) uint8 chips from ``image`` through image->chip ``transforms`` (N, 2, 3).

    Bilinear interpolation, black outside the photo. Where a chip shrinks the face more than 2x, the
    photo is first blurred and halved (binomial pyramid, as dlib's ``extract_image_chips`` does) so
    the chip is not aliased; faces needing the same pyramid level are warped together in one gather.
    """
    transforms = np.asarray(transforms, dtype=np.float64)
    n = transforms.shape[0]
    out = np.zeros((n, size, size, 3), dtype=np.uint8)
    # image pixels per chip pixel = 1 / scale of the transform
    scale = np.sqrt(np.abs(np.linalg.det(transforms[:, :, :2])))
    ratio = 1.0 / np.maximum(scale, 1e-12)
    levels = np.where(ratio >= 2.0, np.floor(np.log2(np.maximum(ratio, 1.0))), 0).astype(int)
    level_image = image.astype(np.float32)
    for level in range(int(levels.max()) + 1):
        if level > 0:
            level_image = _halve(level_image)
        idx = np.nonzero(levels == level)[0]
        if idx.size == 0 or min(level_image.shape[:2]) < 2:
            continue
        f = 2.0**level
        # coordinates at this level: x_L = (x + 0.5) / f - 0.5  <=>  x = f * x_L + (f - 1) / 2
        lvl = transforms[idx].copy()
        lin = lvl[:, :, :2]
        lvl[:, :, 2] = lvl[:, :, 2] + lin @ np.full(2, (f - 1.0) / 2.0)
        lvl[:, :, :2] = lin * f
        out[idx] = _bilinear(level_image, lvl, size)
    return out


def _halve(img: np.ndarray) -> np.ndarray:
    """Blur with dlib's 5-tap binomial kernel [1 4 6 4 1] / 16 (separable), keep every other pixel.

    Output pixel i is centred on input position 2 i + 0.5, matching the coordinate mapping in
    :func:`warp_affine` (edges replicated; an odd last row/column is dropped).
    """
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2

    def blur_half(a: np.ndarray, axis: int, n: int) -> np.ndarray:
        # centred on 2 i + 0.5: taps at 2i-1.5 .. 2i+2.5 -> use the 6-tap [1 5 10 10 5 1] / 32
        # (the binomial kernel shifted by half a pixel) over inputs 2i-2 .. 2i+3
        pad = [(0, 0)] * a.ndim
        pad[axis] = (2, 3)
        a = np.pad(a, pad, mode="edge")
        taps = (1.0, 5.0, 10.0, 10.0, 5.0, 1.0)
        out = 0.0
        for k, wgt in enumerate(taps):
            sl = [slice(None)] * a.ndim
            sl[axis] = slice(k, k + n, 2)
            out = out + wgt * a[tuple(sl)]
        return out / 32.0

    img = blur_half(img[:h, :w], 0, h)
    return blur_half(img, 1, w)


def _bilinear(img: np.ndarray, transforms: np.ndarray, size: int) -> np.ndarray:
    """Gather (N, size, size, 3) bilinear samples; transforms map image -> chip (inverted here)."""
    lin = transforms[:, :, :2]
    inv = np.linalg.inv(lin)  # (N, 2, 2)
    off = -np.einsum("nij,nj->ni", inv, transforms[:, :, 2])  # (N, 2)
    grid = np.arange(size, dtype=np.float64)
    gx, gy = np.meshgrid(grid, grid)  # (size, size): chip x, y
    pts = np.stack([gx.ravel(), gy.ravel()], axis=0)  # (2, P)
    src = np.einsum("nij,jp->nip", inv, pts) + off[:, :, None]  # (N, 2, P) image x, y
    x, y = src[:, 0], src[:, 1]
    h, w = img.shape[:2]
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    acc = np.zeros(x.shape + (3,), dtype=np.float32)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi = x0 + dx
            yi = y0 + dy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, P, 3)
            acc += vals * (wx * wy * ok[..., None])
    chips = np.clip(np.rint(acc), 0, 255).astype(np.uint8)
    return chips.reshape(-1, size, size, 3)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return image


def _check_landmarks(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must have shape (N, 5, 2) or (5, 2), got {np.shape(landmarks)}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks must be finite")
    return lm
