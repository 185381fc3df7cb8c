"""dlib's 5-point face landmark predictor in numpy: face box -> eye corners, point under the nose.

The encoder was trained on dlib's face chips, aligned on the five points of dlib's
``shape_predictor_5_face_landmarks.dat``. :class:`ShapePredictor` runs that model (an ensemble of
regression trees, Kazemi & Sullivan 2014, as implemented in dlib's ``shape_predictor.h``) without
dlib, vectorised over faces and trees, and reproduces dlib's points.

For each of the L cascade levels, starting from the model's mean shape in the box frame:

1. the 2x2 part of the least-squares similarity transform from the mean shape to the current
   shape (no translation: the feature pixels hang from parts of the current shape);
2. each feature pixel = its anchor part of the current shape + that 2x2 matrix times its stored
   offset, mapped to the image by the box (x -> left + x * (right - left), y likewise; dlib's
   ``unnormalizing_tform``) and rounded to the nearest pixel;
3. its intensity: (R + G + B) // 3 of that pixel (dlib's ``get_pixel_intensity`` on an RGB pixel),
   0 outside the image;
4. every tree walks from its root: to the left child when ``f[idx1] - f[idx2] > thresh``, and adds
   its leaf's shape increment to the current shape.

dlib then maps the shape to the image and rounds each point to an integer pixel (its
``full_object_detection`` holds integer points); ``predict(..., rounded=False)`` keeps the
sub-pixel values instead.

Boxes are dlib rectangles ``(left, top, right, bottom)`` in pixels, the corners' pixel indices
(dlib's HOG detector gives integer, square ones, about 2.3x the eye-to-mouth distance wide, on which
the model was trained); MTCNN's boxes sit elsewhere on the face, so :func:`rect_from_detection`
builds the box the predictor expects from MTCNN's five landmarks.
Points come out in the order of dlib's model: outer and inner corner of the eye on the image's
right, outer and inner corner of the other eye, point under the nose (that of
:data:`facenet_keras.alignment.DLIB_TEMPLATE`).
"""

from __future__ import annotations

import functools
from os import PathLike

import numpy as np

from facenet_keras.weights.dlib_shape_predictor import ShapePredictorArrays, load_shape_predictor_arrays

__all__ = [
    "ShapePredictor",
    "load_shape_predictor",
    "load_shape_predictor_68",
    "rect_from_detection",
    "rect_from_landmarks",
    "RECT_COEFFS",
]


def _similarity_2x2(src_centred: np.ndarray, src_ss: float, dst: np.ndarray) -> np.ndarray:
    """2x2 linear part of the least-squares similarity (rotation + scale) src -> dst.

    src_centred: (P, 2) float64 source points minus their mean; src_ss: their sum of squares;
    dst: (N, P, 2). Returns (N, 2, 2) float64 ``[[a, -b], [b, a]]``, the transform Umeyama's method
    (dlib's ``find_similarity_transform``) finds, in its closed form for 2-D points.
    """
    n = dst.shape[0]
    if src_centred.shape[0] < 2:  # dlib: a one-part shape has the identity transform
        return np.broadcast_to(np.eye(2), (n, 2, 2)).copy()
    d = dst.astype(np.float64)
    d -= d.mean(axis=1, keepdims=True)
    a = np.einsum("pk,npk->n", src_centred, d) / src_ss
    b = (d[..., 1] @ src_centred[:, 0] - d[..., 0] @ src_centred[:, 1]) / src_ss
    m = np.empty((n, 2, 2), np.float64)
    m[:, 0, 0] = m[:, 1, 1] = a
    m[:, 0, 1] = -b
    m[:, 1, 0] = b
    return m


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """floor(x + 0.5): dlib's conversion of a real point to an integer pixel."""
    return np.floor(x + 0.5)


class ShapePredictor:
    """dlib's shape predictor (default: the 5-point face model), run with numpy.

    ``ShapePredictor(arrays)`` wraps :class:`ShapePredictorArrays`; most callers want the cached
    :func:`load_shape_predictor`. Stateless after construction, so one instance can be shared.
    """

    def __init__(self, arrays: ShapePredictorArrays):
        self.arrays = arrays
        self._initial = np.ascontiguousarray(arrays.initial_shape, np.float32)  # (P, 2)
        init = self._initial.astype(np.float64)
        self._init_centred = init - init.mean(axis=0)
        self._init_ss = float(np.sum(self._init_centred**2))
        n_levels, n_trees, n_splits = arrays.split_thresh.shape
        self._n_splits = n_splits
        self._depth = int(round(np.log2(n_splits + 1)))
        self._n_pixels = arrays.anchor_idx.shape[1]
        self._anchor = arrays.anchor_idx.astype(np.intp)  # (L, F)
        self._deltas = np.ascontiguousarray(arrays.deltas.transpose(0, 2, 1))  # (L, 2, F) float32
        # Flattened per level for fast gathers: node k of tree t is entry t * n_splits + k.
        self._idx1 = arrays.split_idx[..., 0].reshape(n_levels, -1).astype(np.intp)
        self._idx2 = arrays.split_idx[..., 1].reshape(n_levels, -1).astype(np.intp)
        self._thresh = arrays.split_thresh.reshape(n_levels, -1)
        self._leaves = arrays.leaf_values.reshape(n_levels, n_trees * (n_splits + 1), -1)
        self._tree_base = np.arange(n_trees, dtype=np.intp)

    @property
    def num_parts(self) -> int:
        return self.arrays.num_parts

    def __repr__(self) -> str:
        a = self.arrays
        return (
            f"ShapePredictor(parts={a.num_parts}, levels={a.split_thresh.shape[0]}, "
            f"trees={a.split_thresh.shape[1]}, depth={self._depth}, pixels={a.anchor_idx.shape[1]})"
        )

    def predict(self, image: np.ndarray, rects, *, rounded: bool = True) -> np.ndarray:
        """Landmarks of the faces in ``rects``.

        image: (H, W, 3) uint8 RGB or (H, W) uint8 grayscale.
        rects: (N, 4) or (4,) dlib rectangles ``(left, top, right, bottom)`` in pixels (integers
        reproduce dlib exactly; real values are accepted).
        rounded: round the points to integer pixels, as dlib does (default); False keeps
        sub-pixel positions.
        Returns (N, P, 2) float64 points (x, y) in pixels (P = 5 for dlib's 5-point model;
        (P, 2) if ``rects`` was a single (4,) box).
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"image must be (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
        boxes = np.asarray(rects, dtype=np.float64)
        single = boxes.ndim == 1
        boxes = boxes.reshape(-1, 4)
        if not np.all(np.isfinite(boxes)):
            raise ValueError("rects must be finite")
        n = boxes.shape[0]
        p = self.num_parts
        if n == 0:
            return np.zeros((0, p, 2), np.float64)
        h, w = image.shape[:2]
        pixels = np.ascontiguousarray(image).reshape(h * w, -1)  # (H*W, C)
        origin = boxes[:, :2, None]  # (N, 2, 1): left, top
        scale = (boxes[:, 2:] - boxes[:, :2])[:, :, None]  # (N, 2, 1): right-left, bottom-top
        shape = np.broadcast_to(self._initial, (n, p, 2)).copy()  # float32, box frame
        offsets = (np.arange(n) * self._n_pixels)[:, None]  # row starts in the flat features
        trees = self._tree_base.size
        for level in range(self._thresh.shape[0]):
            # 1-2. feature pixel positions (float32 arithmetic as in dlib, then the box in float64).
            m = _similarity_2x2(self._init_centred, self._init_ss, shape).astype(np.float32)
            dx, dy = self._deltas[level]  # (F,) each
            pos = m[:, :, 0:1] * dx + m[:, :, 1:2] * dy  # (N, 2, F): m00 dx + m01 dy, ...
            pos += shape.transpose(0, 2, 1)[:, :, self._anchor[level]]
            ipos = np.floor(origin + scale * pos + 0.5)  # float64 (N, 2, F), rounded half up
            # 3. intensities, 0 outside the image.
            x, y = ipos[:, 0], ipos[:, 1]
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            pix = pixels[np.where(inside, y * w + x, 0).astype(np.intp)]  # (N, F, C)
            pix = pix[..., 0] if pix.shape[-1] == 1 else pix.sum(axis=-1, dtype=np.uint16) // 3
            feats = np.where(inside, pix, 0).astype(np.float32).ravel()  # (N * F,)
            # 4. walk all trees of the level at once: node (N, T) in breadth-first numbering.
            node = np.zeros((n, trees), np.intp)
            base = self._tree_base * self._n_splits
            for _ in range(self._depth):
                k = base + node
                diff = feats[self._idx1[level][k] + offsets] - feats[self._idx2[level][k] + offsets]
                node = 2 * node + np.where(diff > self._thresh[level][k], 1, 2)
            leaf = self._tree_base * (self._n_splits + 1) + (node - self._n_splits)
            increments = self._leaves[level][leaf]  # (N, T, 2P) float32
            # dlib adds the trees' increments one after another in float32. numpy reduces along
            # an axis that is not the fastest-varying one row by row, in order (pairwise
            # summation is used only along the contiguous axis), so this is the same sum.
            steps = np.concatenate([shape.reshape(n, 1, 2 * p), increments], axis=1)
            shape = np.add.reduce(steps, axis=1, dtype=np.float32).reshape(n, p, 2)
        origin = origin.transpose(0, 2, 1)
        scale = scale.transpose(0, 2, 1)
        points = origin + scale * shape.astype(np.float64)
        if rounded:
            points = _round_half_up(points)
        return points[0] if single else points

    __call__ = predict


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> ShapePredictor:
    return ShapePredictor(load_shape_predictor_arrays(path))


def load_shape_predictor(path: str | PathLike[str] | None = None) -> ShapePredictor:
    """The shape predictor from ``path`` (default: dlib's 5-point face model from the installed
    ``face_recognition_models``), converted once into the user cache and kept in memory.

    Raises :class:`facenet_keras.weights.MissingWeightsError` (with the pip command) if missing.
    """
    return _load(None if path is None else str(path))


def load_shape_predictor_68() -> ShapePredictor:
    """dlib's 68-point face model (``shape_predictor_68_face_landmarks.dat`` from the installed
    ``face_recognition_models``), on the same boxes as the 5-point one; cached like it."""
    from facenet_keras.weights.dlib_shape_predictor import SHAPE_PREDICTOR_68_FILE, shape_predictor_dat_path

    return load_shape_predictor(shape_predictor_dat_path(SHAPE_PREDICTOR_68_FILE))


#: (c0, c1, c2) of :func:`rect_from_landmarks`, printed by ``scripts/fit_shape_predictor_rect.py``:
#: least squares against dlib's HOG boxes of the 134 faces both detectors find in the full photos
#: of ../shared/data/faces and group (never lfw-dev), from the detector's averaged-O-Net landmarks.
#: The box is centred 0.7% of s left and 0.9% of s up from the landmarks' mean and is 2.34 s wide.
#: From it our predictor lands a median 0.65% (95th percentile 2.0%) of the inter-ocular distance
#: from dlib's points on dlib's own box (mean over the 5 points; 1.5% / 4.1% for the worst point;
#: two-fold cross-fitted).
RECT_COEFFS = np.array([-0.0069, -0.0093, 2.3382], dtype=np.float64)


def rect_from_landmarks(landmarks, coeffs=None) -> np.ndarray:
    """dlib-style face boxes from MTCNN's five landmarks.

    landmarks: (N, 5, 2) or (5, 2) MTCNN points (left_eye, right_eye, nose, mouth_left,
    mouth_right; x, y in pixels). With the face's scale ``s`` (the distance from the eyes'
    midpoint to the mouth's midpoint) and the frame ``u`` (unit vector along the eye line),
    ``v`` (u turned 90 degrees, pointing down the face), the box is axis-aligned, of side
    ``c2 * s``, centred at ``mean(landmarks) + s * (c0 * u + c1 * v)``.
    coeffs: (c0, c1, c2), default :data:`RECT_COEFFS`.
    Returns (N, 4) or (4,) float64 ``(left, top, right, bottom)``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    single = lm.ndim == 2
    lm = lm.reshape(-1, 5, 2)
    c = RECT_COEFFS if coeffs is None else np.asarray(coeffs, dtype=np.float64)
    eyes = (lm[:, 0] + lm[:, 1]) / 2
    mouth = (lm[:, 3] + lm[:, 4]) / 2
    s = np.linalg.norm(mouth - eyes, axis=1)
    u = lm[:, 1] - lm[:, 0]
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    centre = lm.mean(axis=1) + s[:, None] * (c[0] * u + c[1] * v)
    half = (c[2] * s / 2)[:, None]
    rect = np.concatenate([centre - half, centre + half], axis=1)
    return rect[0] if single else rect


def rect_from_detection(detection, coeffs=None) -> np.ndarray:
    """The dlib-style box (left, top, right, bottom) for one MTCNN :class:`Detection`, or (N, 4)
    for a sequence of them; see :func:`rect_from_landmarks`."""
    if hasattr(detection, "landmarks"):
        return rect_from_landmarks(np.asarray(detection.landmarks), coeffs)
    dets = list(detection)
    if not dets:
        return np.zeros((0, 4), np.float64)
    return rect_from_landmarks(np.stack([np.asarray(d.landmarks) for d in dets]), coeffs)
