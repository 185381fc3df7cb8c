"""dlib's 5-point shape predictor in numpy: the .dat reader (hand-made bytes and the real file), the
prediction against dlib-bin (oracle only) on real photos, and the MTCNN -> dlib box mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facenet_keras.faces.landmarks import (
    ShapePredictor,
    load_shape_predictor,
    rect_from_detection,
    rect_from_landmarks,
)
from facenet_keras.weights import DLIB_RESNET_PIP, DlibFormatError, MissingWeightsError
from facenet_keras.weights import dlib_shape_predictor as dsp
from facenet_keras.weights.dlib_shape_predictor import (
    ShapePredictorArrays,
    load_shape_predictor_arrays,
    parse_shape_predictor,
    shape_predictor_dat_path,
)

MAX_SIDE = 640  # photos are downscaled to this for speed (dlib's HOG detector is slow on 2 cores)


# ------------------------------------------------------------------ a hand-made model, in bytes
def _int(v: int) -> bytes:
    """dlib's integer encoding, written independently of the reader under test."""
    mag = abs(v)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if v < 0 else 0)]) + body


def _float(x: float) -> bytes:
    m, e = math.frexp(x)
    return _int(int(m * 2**24)) + _int(e - 24)


def _column(values) -> bytes:  # current dlib writes the dimensions negated
    return _int(-len(values)) + _int(-1) + b"".join(_float(v) for v in values)


def _tiny_model(version: int = 1) -> bytes:
    """Two parts at (0.25, 0.5) and (0.75, 0.5) of the box; one level with one depth-1 tree that
    compares the pixels under the two parts: if the first is brighter by more than 10, both parts
    move right by 0.1 box widths, else up by 0.1 box heights."""
    out = _int(version) + _column([0.25, 0.5, 0.75, 0.5])
    out += _int(1) + _int(1)  # one level holding one tree
    out += _int(1) + _int(0) + _int(1) + _float(10.0)  # splits: (idx1=0, idx2=1, thresh=10)
    out += _int(2) + _column([0.1, 0.0, 0.1, 0.0]) + _column([0.0, -0.1, 0.0, -0.1])
    out += _int(1) + _int(2) + _int(0) + _int(1)  # anchor_idx: pixel 0 on part 0, pixel 1 on part 1
    out += _int(1) + _int(2) + _float(0.0) + _float(0.0) + _float(0.0) + _float(0.0)  # deltas
    return out


def test_parse_hand_made_model():
    a = parse_shape_predictor(_tiny_model())
    assert a.num_parts == 2 and a.depth == 1
    np.testing.assert_array_equal(a.initial_shape, [[0.25, 0.5], [0.75, 0.5]])
    assert a.split_idx.shape == (1, 1, 1, 2) and a.split_idx[0, 0, 0].tolist() == [0, 1]
    assert a.split_thresh[0, 0, 0] == 10.0
    np.testing.assert_allclose(a.leaf_values[0, 0, 1], [[0.0, -0.1], [0.0, -0.1]], atol=1e-7)
    assert a.anchor_idx.tolist() == [[0, 1]] and a.deltas.shape == (1, 2, 2)


def test_hand_made_model_walks_its_tree():
    sp = ShapePredictor(parse_shape_predictor(_tiny_model()))
    img = np.zeros((130, 230, 3), np.uint8)
    rect = (10, 20, 210, 120)  # parts start at (60, 70) and (160, 70)
    img[70, 60] = (200, 100, 1)  # intensity (200 + 100 + 1) // 3 = 100 > 0 + 10: left leaf
    np.testing.assert_allclose(sp.predict(img, rect), [[80, 70], [180, 70]])
    img[70, 160] = (91, 91, 92)  # intensity 91: 100 - 91 = 9, not > 10: right leaf
    np.testing.assert_allclose(sp.predict(img, [rect])[0], [[60, 60], [160, 60]])
    gray = np.zeros((130, 230), np.uint8)
    gray[70, 60] = 11
    np.testing.assert_allclose(sp.predict(gray, rect), [[80, 70], [180, 70]])
    # the feature pixels fall outside the image: both read 0, so the right leaf
    np.testing.assert_allclose(sp.predict(img, (300, 20, 500, 120)), [[350, 60], [450, 60]])


@pytest.mark.parametrize(
    "data, match",
    [
        (_tiny_model(version=2), "version"),
        (_tiny_model()[:-3], "truncated"),
        (_tiny_model() + b"\x00", "trailing"),
    ],
    ids=["version", "truncated", "trailing"],
)
def test_parse_errors(data, match):
    with pytest.raises(DlibFormatError, match=match):
        parse_shape_predictor(data)


def test_missing_package_says_how_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingWeightsError, match=DLIB_RESNET_PIP):
        shape_predictor_dat_path()


# ------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def predictor() -> ShapePredictor:
    return load_shape_predictor()


def test_real_file_layout_and_cache(predictor, tmp_path):
    a = predictor.arrays
    assert (a.num_parts, a.depth) == (5, 4)
    assert a.split_idx.shape == (15, 500, 15, 2) and a.leaf_values.shape == (15, 500, 16, 5, 2)
    assert a.anchor_idx.shape == (15, 800) and a.deltas.shape == (15, 800, 2)
    # mean shape inside the box: eye corners above the point under the nose, right eye on the right
    assert np.all((a.initial_shape > 0) & (a.initial_shape < 1))
    assert a.initial_shape[4, 1] > a.initial_shape[:4, 1].max()
    assert a.initial_shape[:2, 0].min() > a.initial_shape[2:4, 0].max()
    # the arrays round-trip through .npz, and the loader is memoised
    a.to_npz(tmp_path / "x.npz")
    b = ShapePredictorArrays.from_npz(tmp_path / "x.npz")
    for k in ("initial_shape", "split_idx", "split_thresh", "leaf_values", "anchor_idx", "deltas"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert load_shape_predictor() is predictor


def test_cache_rebuilds_corrupt_npz(tmp_path, monkeypatch):
    calls = []
    tiny = parse_shape_predictor(_tiny_model())
    src = tmp_path / "tiny.dat"
    src.write_bytes(_tiny_model())
    monkeypatch.setattr(dsp, "read_shape_predictor", lambda p: calls.append(p) or tiny)
    first = load_shape_predictor_arrays(src, cache_directory=tmp_path / "c")
    load_shape_predictor_arrays(src, cache_directory=tmp_path / "c")
    assert len(calls) == 1  # second load comes from the cache
    npz = tmp_path / "c" / "tiny.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    again = load_shape_predictor_arrays(src, cache_directory=tmp_path / "c")
    assert len(calls) == 2
    np.testing.assert_array_equal(first.leaf_values, again.leaf_values)


def _downscale(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return img
    f = MAX_SIDE / max(h, w)
    return np.asarray(Image.fromarray(img).resize((round(w * f), round(h * f)), Image.LANCZOS))


@pytest.fixture(scope="module")
def photos(shared_data) -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    from facenet_keras.images import load_image

    out = {
        "grace_hopper": load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "astronaut": skimage.data.astronaut(),
    }
    for p in sorted((shared_data / "group").glob("*.jpg")):
        out[p.name] = load_image(p)
    full = []
    for p in sorted((shared_data / "faces").rglob("*.jpg")):
        with Image.open(p) as im:
            if min(im.size) > 150:
                full.append(p)
    for p in full[::8]:
        out[f"{p.parent.name}/{p.name}"] = load_image(p)
    return {k: _downscale(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def dlib_oracle(photos):
    """dlib's HOG boxes and dlib's own 5 points for every photo (dlib-bin as the oracle)."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(shape_predictor_dat_path()))
    out = {}
    for name, img in photos.items():
        rects = list(hog(img, 1))
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects]).reshape(-1, 4)
        pts = np.array([[(p.x, p.y) for p in sp(img, r).parts()] for r in rects]).reshape(-1, 5, 2)
        # the same boxes pushed half off the photo (feature pixels outside read 0)
        h, w = img.shape[:2]
        shifted = boxes + np.array([1, 0, 1, 0]) * (w - (boxes[:, 0:1] + boxes[:, 2:3]) // 2)
        spts = np.array([[(p.x, p.y) for p in sp(img, dlib.rectangle(*map(int, b))).parts()] for b in shifted]).reshape(
            -1, 5, 2
        )
        out[name] = (boxes, pts, shifted, spts)
    return out


def test_matches_dlib_on_real_photos(predictor, photos, dlib_oracle):
    diffs = []
    for name, img in photos.items():
        boxes, pts, shifted, spts = dlib_oracle[name]
        if len(boxes) == 0:
            continue
        diffs.append(np.abs(predictor.predict(img, boxes) - pts).max(axis=2).ravel())
        diffs.append(np.abs(predictor.predict(img, shifted) - spts).max(axis=2).ravel())
    diffs = np.concatenate(diffs)
    assert diffs.size >= 5 * 60, f"only {diffs.size // 5} faces found by dlib"
    # dlib's points are integers; a rare rounding tie may flip one feature pixel and move a point
    assert np.mean(diffs == 0) >= 0.99, np.bincount(diffs.astype(int))
    assert np.percentile(diffs, 99.9) <= 1.0


def test_batched_equals_one_at_a_time_and_subpixel(predictor, photos, dlib_oracle):
    img = photos["face_api_js__bbt4.jpg"]
    boxes = dlib_oracle["face_api_js__bbt4.jpg"][0]
    assert len(boxes) >= 3
    batch = predictor.predict(img, boxes, rounded=False)
    for i, b in enumerate(boxes):
        np.testing.assert_array_equal(predictor.predict(img, b, rounded=False), batch[i])
    rounded = predictor.predict(img, boxes)
    assert np.all(np.abs(batch - rounded) <= 0.5) and np.any(batch != rounded)
    assert predictor.predict(img, np.zeros((0, 4))).shape == (0, 5, 2)
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(img.astype(np.float32), boxes)


def test_rect_from_landmarks_geometry():
    lm = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float64)  # s = 40
    r = rect_from_landmarks(lm, coeffs=(0.0, 0.5, 2.0))
    c = lm.mean(axis=0) + (0, 20)
    np.testing.assert_allclose(r, [c[0] - 40, c[1] - 40, c[0] + 40, c[1] + 40])
    # a face turned 90 degrees clockwise in the photo: "down the face" is now -x
    rot = np.stack([-(lm[:, 1] - 60), lm[:, 0] - 50], axis=1)
    r2 = rect_from_landmarks(rot, coeffs=(0.0, 0.5, 2.0))
    c2 = rot.mean(axis=0) + (-20, 0)
    np.testing.assert_allclose(r2, [c2[0] - 40, c2[1] - 40, c2[0] + 40, c2[1] + 40], atol=1e-9)
    assert rect_from_landmarks(np.stack([lm, rot])).shape == (2, 4)


def test_mtcnn_box_gives_dlibs_points(predictor, photos, dlib_oracle, detector):
    """From MTCNN's detections, the mapped box leads our predictor close to dlib's own points
    (which start from dlib's HOG box). Faces are paired as in scripts/fit_shape_predictor_rect.py
    (eye midpoints within a quarter of the inter-ocular distance)."""
    errors = []
    names = ("grace_hopper", "astronaut", "face_api_js__bbt4.jpg", "face_recognition__obama_and_biden.jpg")
    for name in names:
        img = photos[name]
        _, pts, _, _ = dlib_oracle[name]
        faces = detector.detect(img)
        m_eyes = np.stack([f.landmarks[:2].mean(axis=0) for f in faces])
        ours = predictor.predict(img, rect_from_detection(faces), rounded=False)
        for p in pts:
            iod = np.linalg.norm(p[:2].mean(0) - p[2:4].mean(0))
            dist = np.linalg.norm(m_eyes - p[:4].mean(axis=0), axis=1)
            j = int(np.argmin(dist))
            if dist[j] < 0.25 * iod:
                errors.append(np.linalg.norm(ours[j] - p, axis=1).max() / iod)
    errors = np.array(errors)
    assert errors.size >= 8
    # worst of the 5 points: typically ~2% of the inter-ocular distance (~1 px, dlib's own points
    # being rounded to pixels); a small, strongly turned face in obama_and_biden is the exception
    assert np.median(errors) < 0.04 and np.mean(errors < 0.1) >= 0.85, errors
