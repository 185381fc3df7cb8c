"""The face-quality gate on real data: its measures behave (scale, blur, pose, layout), it refuses
what is not a usable face with the right reason, and it refuses no main face of lfw-dev or faces/.
Figures behind the defaults: benchmarks/face_quality_limits.py and benchmarks/face_quality_gate.py."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter
from quality_sets import face_free_images, group_detections, iou, match

from facenet_keras.faces.alignment import MTCNN_TEMPLATE, template_pixels
from facenet_keras.faces.face import Face
from facenet_keras.faces.pipeline import primary_face
from facenet_keras.faces.quality import (
    DEFAULT_GATE,
    LOW_QUALITY,
    NOT_A_FACE,
    REASONS,
    REFERENCE_GATE,
    TOO_SMALL,
    assess,
    landmark_geometry,
    pose,
    sharpness,
)
from facenet_keras.images import load_image

LFW_FACE = "lfw-dev/images/Abel_Pacheco/Abel_Pacheco_0001.jpg"
BUTTON = ("faces/barack_obama/3.jpg", (812, 1295, 23, 28))  # a jacket button MTCNN scores > 0.8
# a cross pendant on a neck in an LFW photo (250 px: the detector saw it at full size), eyes 14 px apart
PENDANT = ("lfw-dev/images/Georgia_Giddings/Georgia_Giddings_0001.jpg", (104, 196, 38, 48))
# What benchmarks/face_quality_gate.py reports for group/ against tests/data/group_detections.csv
GROUP_FACES_GATED = 0
GROUP_NON_FACES_PASSED = 0


def _main(detector, image):
    faces = detector.detect(image)
    face = primary_face(faces, image.shape)
    assert face is not None
    return face, assess(image, [face])[0]


def _at(detector, image, box):
    """The detection of ``image`` at ``box`` (IoU >= 0.5) and its quality."""
    faces = detector.detect(image)
    hits = [f for f in faces if iou(f.box, box) >= 0.5]
    assert len(hits) == 1, f"expected one detection at {box}, got {[f.box for f in faces]}"
    return hits[0], assess(image, hits)[0]


@pytest.fixture(scope="module")
def lfw_image(shared_data):
    return load_image(shared_data / LFW_FACE)


# ------------------------------------------------------------------ measures on real faces
def test_sharp_lfw_face_passes_with_plausible_measures(detector, lfw_image):
    face, q = _main(detector, lfw_image)
    assert q.usable and q.reason is None
    eyes = float(np.hypot(*(face.landmarks[1] - face.landmarks[0])))
    assert q.eye_distance == pytest.approx(eyes) and 30 < q.eye_distance < 55  # LFW: ~40 px
    assert q.size == pytest.approx(min(face.box[2], face.box[3]))
    assert q.geometry == 0.0 and abs(q.yaw) < 0.3 and abs(q.roll) < 15  # a little turned
    assert q.sharpness > 2 * DEFAULT_GATE.min_sharpness
    assert 0.4 < q.rank() <= 1.0
    out = q.to_dict()
    assert json.loads(json.dumps(out)) == out and out["reason"] is None and out["usable"] is True


def test_blurred_face_is_low_quality(detector, lfw_image):
    _, sharp = _main(detector, lfw_image)
    blurred = np.asarray(Image.fromarray(lfw_image).filter(ImageFilter.GaussianBlur(4)))
    _, q = _main(detector, blurred)
    assert q.sharpness < sharp.sharpness / 3
    assert q.reason == LOW_QUALITY and not q.usable and q.rank() == 0.0
    assert q.eye_distance == pytest.approx(sharp.eye_distance, rel=0.1)  # blur does not change the scale


def test_downscaled_face_is_too_small_and_sharpness_is_scale_free(detector, lfw_image):
    _, full = _main(detector, lfw_image)
    img = Image.fromarray(lfw_image)
    half = np.asarray(img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.BOX))
    _, q_half = _main(detector, half)
    assert q_half.usable
    assert q_half.eye_distance == pytest.approx(0.75 * full.eye_distance, rel=0.08)
    assert q_half.sharpness == pytest.approx(full.sharpness, rel=0.25)  # measured on the same 64 px crop
    assert 0 < q_half.rank() < full.rank()  # a smaller face is a worse frame
    f = (DEFAULT_GATE.min_eye_distance - 2) / full.eye_distance
    small = np.asarray(img.resize((round(img.width * f), round(img.height * f)), Image.BOX))
    _, q = _main(detector, small)
    assert q.eye_distance < DEFAULT_GATE.min_eye_distance
    assert q.reason == TOO_SMALL


def test_sharpness_ignores_contrast_and_brightness(detector, lfw_image):
    face, q = _main(detector, lfw_image)
    dim = np.clip(lfw_image.astype(np.float64) * 0.4 + 60, 0, 255).astype(np.uint8)
    assert sharpness(dim, face.landmarks) == pytest.approx(q.sharpness, rel=0.1)


def test_turned_face_has_yaw_and_mirror_flips_it(detector, shared_data):
    # the audience member in profile in the clip's frame 220 (found by eye on the contact sheet)
    from facenet_keras.live.frames import read_frames

    frames, _, _ = read_frames(str(shared_data / "video" / "short_hamilton_clip.mp4"), start=7.3, max_seconds=0.1)
    faces = detector.detect(frames[0])
    yaws = sorted(q.yaw for q in assess(frames[0], faces))
    assert yaws and yaws[0] < -0.6  # a face near profile
    mirrored = np.ascontiguousarray(frames[0][:, ::-1])
    yaws_m = sorted(q.yaw for q in assess(mirrored, detector.detect(mirrored)))
    assert yaws_m[-1] == pytest.approx(-yaws[0], abs=0.15)


# ------------------------------------------------------------------ the landmark layout
def test_geometry_is_zero_for_a_face_layout_whatever_its_scale_and_rotation():
    lm = template_pixels(MTCNN_TEMPLATE, 150, 0.25)
    assert landmark_geometry(lm) == 0.0
    yaw, pitch, roll = pose(lm)
    assert abs(yaw) < 0.05 and abs(roll) < 1.0
    for scale, angle in ((0.1, 0.0), (7.0, 30.0), (1.0, -80.0)):
        a = np.radians(angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        moved = (lm - 75) @ rot.T * scale + 300
        assert landmark_geometry(moved) == 0.0
        assert pose(moved)[2] == pytest.approx(roll + angle, abs=0.5)


@pytest.mark.parametrize(
    "what, change",
    [
        ("mouth above the eyes", lambda p: p[[0, 1, 2, 3, 4]] * [1, -1]),
        ("mouth corners swapped", lambda p: p[[0, 1, 2, 4, 3]]),
        ("nose below the mouth", lambda p: p[[0, 1, 2, 3, 4]] + [[0, 0], [0, 0], [0, 80], [0, 0], [0, 0]]),
        ("mouth as wide as three eye distances", lambda p: p + [[0, 0], [0, 0], [0, 0], [-60, 0], [60, 0]]),
        ("mouth tilted 40 degrees", lambda p: p + [[0, 0], [0, 0], [0, 0], [0, 20], [0, -20]]),
        ("all points on a line", lambda p: p * [1, 0]),
    ],
)
def test_implausible_layout_is_not_a_face(detector, lfw_image, what, change):
    face, q = _main(detector, lfw_image)
    odd = Face(box=face.box, landmarks=change(np.asarray(face.landmarks, np.float64)), confidence=face.confidence)
    q_odd = assess(lfw_image, [odd])[0]
    assert q_odd.geometry > DEFAULT_GATE.max_geometry, what
    if q_odd.eye_distance >= DEFAULT_GATE.min_eye_distance:
        assert q_odd.reason == NOT_A_FACE, what


def test_judge_order_too_small_then_not_a_face_then_low_quality():
    ok = dict(eye_distance=40.0, score=0.99, geometry=0.0, yaw=0.0, roll=0.0, sharpness=0.5)
    assert DEFAULT_GATE.judge(**ok) is None
    assert DEFAULT_GATE.judge(**{**ok, "eye_distance": 5.0, "score": 0.5, "sharpness": 0.0}) == TOO_SMALL
    assert DEFAULT_GATE.judge(**{**ok, "score": 0.5, "sharpness": 0.0}) == NOT_A_FACE
    assert DEFAULT_GATE.judge(**{**ok, "geometry": 1.0, "yaw": 5.0}) == NOT_A_FACE
    assert DEFAULT_GATE.judge(**{**ok, "sharpness": 0.0}) == LOW_QUALITY
    assert DEFAULT_GATE.judge(**{**ok, "yaw": -5.0}) == LOW_QUALITY
    assert DEFAULT_GATE.judge(**{**ok, "roll": 170.0}) == LOW_QUALITY
    assert DEFAULT_GATE.judge(**{**ok, "eye_distance": float("nan")}) == TOO_SMALL
    assert set(REASONS) == {TOO_SMALL, NOT_A_FACE, LOW_QUALITY}


def test_reference_gate_is_stricter_than_the_default():
    for name in ("min_eye_distance", "min_score", "min_sharpness"):
        assert getattr(REFERENCE_GATE, name) >= getattr(DEFAULT_GATE, name), name
    for name in ("max_geometry", "max_abs_yaw", "max_abs_roll"):
        assert getattr(REFERENCE_GATE, name) <= getattr(DEFAULT_GATE, name), name


def test_assess_rejects_what_is_not_a_photo():
    with pytest.raises(ValueError, match="uint8"):
        assess(np.zeros((10, 10), np.uint8), [])
    assert assess(np.zeros((10, 10, 3), np.uint8), []) == []


# ------------------------------------------------------------------ false detections
def test_jacket_button_is_gated(detector, shared_data):
    image = load_image(shared_data / BUTTON[0])
    face, q = _at(detector, image, BUTTON[1])
    assert face.confidence > 0.8  # the detector takes it for a face
    assert not q.usable and q.reason == TOO_SMALL  # eyes ~11 px apart: too small to tell, let alone name
    assert q.score < DEFAULT_GATE.min_score  # and its score would refuse it too


def test_non_face_of_face_size_is_not_a_face(detector, shared_data):
    image = load_image(shared_data / PENDANT[0])
    _, q = _at(detector, image, PENDANT[1])
    assert q.eye_distance >= DEFAULT_GATE.min_eye_distance and q.detected_eye_distance == q.eye_distance
    assert q.geometry == 0.0  # MTCNN's landmarks have a face's layout even here: the score is the evidence
    assert q.score < DEFAULT_GATE.min_score and q.reason == NOT_A_FACE


def test_face_free_set_every_detection_gated(detector):
    # set B (tests/quality_sets.py), held out from every choice of the gate: 48 images, 2 detections
    detections = 0
    for name, image in face_free_images("B"):
        faces = detector.detect(image)
        for q in assess(image, faces):
            detections += 1
            assert not q.usable, f"{name}: a usable face on a face-free photo: {q.to_dict()}"
    assert detections >= 2  # the set does give the detector something to find


def test_detection_seen_too_small_by_the_detector_is_not_a_face(detector):
    # the first held-out set's miss: a shelf in the 2 x 2 tiled motorcycle photo (1482 px, so the
    # detector worked at 1024 px), eyes 15 px apart in the photo, 10.4 where the detector saw it
    from quality_sets import base_images, variant

    image = variant(dict(base_images())["skimage/motorcycle_left.png"], "2x2 tiled")
    faces = detector.detect(image)
    qualities = assess(image, faces)
    shelf = [q for q in qualities if q.eye_distance >= DEFAULT_GATE.min_eye_distance]
    assert len(shelf) >= 2 and max(q.score for q in shelf) > 0.95  # the detector is sure of them
    for q in shelf:
        assert q.detected_eye_distance == pytest.approx(q.eye_distance * 1024 / max(image.shape[:2]))
        assert q.reason == NOT_A_FACE
    # judged as if the detector had seen the photo at full size, they would pass
    assert all(q.usable for q in assess(image, faces, detector_max_side=None) if q.eye_distance >= 12)


# ------------------------------------------------------------------ no real main face is refused
def test_no_main_face_of_lfw_dev_or_faces_is_gated(detector, shared_data):
    with open(shared_data / "lfw-dev" / "pairs.csv") as f:
        lfw = sorted({r[k] for r in csv.DictReader(f) for k in ("path1", "path2")})
    photos = [shared_data / "lfw-dev" / p for p in lfw[::4]]  # every 4th of the 807 photos
    photos += sorted((shared_data / "faces").glob("*/*.jpg"))[::2]  # every 2nd of faces/
    gated = []
    for p in photos:
        image = load_image(p)
        _, q = _main(detector, image)
        if not q.usable:
            gated.append((p.name, q.to_dict()))
    assert len(photos) > 250 and gated == []


def test_group_detections_against_the_by_eye_list(detector, shared_data):
    rows = group_detections()
    assert {r["face"] for r in rows} == {True, False}
    faces_gated, non_faces_passed, seen = [], [], 0
    for photo in sorted({r["photo"] for r in rows}):
        image = load_image(shared_data / "group" / photo)
        faces = detector.detect(image)
        for face, q in zip(faces, assess(image, faces)):
            row = match(photo, face.box, rows)
            assert row is not None, f"{photo}: a detection at {face.box} is not in the by-eye list"
            seen += 1
            if row["face"] and not q.usable:
                faces_gated.append((photo, q.reason))
            if not row["face"] and q.usable:
                non_faces_passed.append((photo, row["note"]))
    assert seen == len(rows)
    assert len(faces_gated) == GROUP_FACES_GATED, faces_gated
    assert len(non_faces_passed) == GROUP_NON_FACES_PASSED, non_faces_passed


def test_assess_is_fast(detector, shared_data):
    image = load_image(shared_data / "faces" / "deepface_10" / "3.jpg")  # 2500 px, a 500 px face
    faces = detector.detect(image)
    assess(image, faces)
    t = time.perf_counter()
    for _ in range(5):
        assess(image, faces)
    per_face = (time.perf_counter() - t) / 5 / len(faces)
    assert per_face < 0.01  # ~1 ms on a free core; generous for a loaded machine
