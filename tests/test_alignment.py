"""Alignment maths: similarity transforms recovered exactly, chips that put landmarks on the
template, and agreement with dlib's own chip extraction."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_keras.faces import alignment
from facenet_keras.faces.alignment import (
    CHIP_TEMPLATE,
    EYES_TEMPLATE,
    MTCNN_TEMPLATE,
    align_faces,
    similarity_transform,
    template_pixels,
    warp_affine,
)


def _random_similarities(rng, n):
    theta = rng.uniform(-np.pi, np.pi, n)
    scale = rng.uniform(0.2, 5.0, n)
    shift = rng.uniform(-300, 300, (n, 2))
    m = np.zeros((n, 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = scale * np.cos(theta)
    m[:, 1, 0] = scale * np.sin(theta)
    m[:, 0, 1] = -m[:, 1, 0]
    m[:, :, 2] = shift
    return m


def _apply(m, pts):
    return np.einsum("...ij,...kj->...ki", m[..., :2], pts) + m[..., None, :, 2]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_known_similarity_is_recovered_exactly(k):
    rng = np.random.default_rng(k)
    dst = rng.uniform(0, 150, (k, 2))
    truth = _random_similarities(rng, 64)  # maps dst -> src; we must find its inverse
    src = _apply(truth, np.broadcast_to(dst, (64, k, 2)))
    m = similarity_transform(src, dst)
    assert m.shape == (64, 2, 3)
    np.testing.assert_allclose(_apply(m, src), np.broadcast_to(dst, src.shape), atol=1e-8)
    inv = np.linalg.inv(truth[:, :, :2])
    np.testing.assert_allclose(m[:, :, :2], inv, atol=1e-9)
    # single face form
    np.testing.assert_allclose(similarity_transform(src[0], dst), m[0])


def test_least_squares_matches_umeyama_and_never_reflects():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    dst = template_pixels(MTCNN_TEMPLATE)
    src = _apply(_random_similarities(rng, 20), np.broadcast_to(dst, (20, 5, 2))) + rng.normal(0, 3, (20, 5, 2))
    m = similarity_transform(src, dst)
    for i in range(20):
        ref = SimilarityTransform.from_estimate(src[i], dst) if hasattr(SimilarityTransform, "from_estimate") else None
        if ref is None:
            ref = SimilarityTransform()
            ref.estimate(src[i], dst)
        np.testing.assert_allclose(m[i], ref.params[:2], atol=1e-8)
    # mirrored points: the best rotation+scale, never a reflection (positive determinant)
    mirrored = src * np.array([-1.0, 1.0])
    assert np.all(np.linalg.det(similarity_transform(mirrored, dst)[:, :, :2]) > 0)


def test_weighted_least_squares_matches_linear_solve():
    """With weights, the closed form equals weighted linear least squares in (a, b, tx, ty)."""
    rng = np.random.default_rng(5)
    dst = template_pixels(MTCNN_TEMPLATE)
    src = _apply(_random_similarities(rng, 8), np.broadcast_to(dst, (8, 5, 2))) + rng.normal(0, 4, (8, 5, 2))
    w = alignment.MTCNN_WEIGHTS
    m = similarity_transform(src, dst, w)
    for i in range(8):
        x, y = src[i, :, 0], src[i, :, 1]
        one, zero = np.ones(5), np.zeros(5)
        design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
        target = np.concatenate([dst[:, 0], dst[:, 1]])
        sw = np.sqrt(np.concatenate([w, w]))
        a, b, tx, ty = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
        np.testing.assert_allclose(m[i], [[a, -b, tx], [b, a, ty]], atol=1e-8)
    # weighting changes the answer on noisy points, not on exact ones
    assert not np.allclose(m, similarity_transform(src, dst))
    exact = _apply(_random_similarities(rng, 3), np.broadcast_to(dst, (3, 5, 2)))
    np.testing.assert_allclose(similarity_transform(exact, dst, w), similarity_transform(exact, dst), atol=1e-9)
    with pytest.raises(ValueError, match="weights"):
        similarity_transform(src, dst, [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        similarity_transform(src, dst, [1.0, -1.0, 1.0, 1.0, 1.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((1, 5, 2)), template_pixels(MTCNN_TEMPLATE))
    with pytest.raises(ValueError, match="shape"):
        similarity_transform(np.zeros((1, 5, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="shape"):
        similarity_transform(np.zeros((1, 5, 2)), np.zeros((4, 2)))
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="landmarks"):
        align_faces(img, np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="uint8"):
        align_faces(img.astype(np.float32), np.zeros((1, 5, 2)))
    with pytest.raises(ValueError, match="method"):
        align_faces(img, template_pixels(MTCNN_TEMPLATE), method="three")
    assert align_faces(img, np.zeros((0, 5, 2))).shape == (0, 150, 150, 3)


def test_template_pixels_uses_dlibs_padding_formula():
    px = template_pixels(np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]), size=150, padding=0.25)
    # dlib's (padding + t) / (2 padding + 1) * size from the chip's edge, as pixel-centre indices
    np.testing.assert_allclose(px, [[24.5, 24.5], [124.5, 124.5], [74.5, 74.5]])
    np.testing.assert_allclose(alignment.template_from_pixels(px), [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
    assert CHIP_TEMPLATE.shape[1] == 2
    # eyes template: the eye-corner midpoints of dlib's template, left (image) eye first
    np.testing.assert_allclose(EYES_TEMPLATE[0], alignment.DLIB_TEMPLATE[[2, 3]].mean(0))
    assert EYES_TEMPLATE[0, 0] < EYES_TEMPLATE[1, 0]
    # MTCNN template: eyes above nose above mouth, left before right, inside the unpadded chip
    t = MTCNN_TEMPLATE
    assert t[0, 0] < t[2, 0] < t[1, 0] and t[3, 0] < t[4, 0]
    assert max(t[0, 1], t[1, 1]) < t[2, 1] < min(t[3, 1], t[4, 1])
    assert np.all((t > 0) & (t < 1))


def _blob_image(centres, shape=(400, 500), sigma=2.5):
    """White blobs (distinct colours) at ``centres`` on black."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    colours = np.eye(3)
    for i, (cx, cy) in enumerate(centres):
        img += 255 * colours[i % 3] * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _centroid(channel):
    c = channel.astype(np.float64)
    c[c < 0.2 * c.max()] = 0
    yy, xx = np.mgrid[0 : c.shape[0], 0 : c.shape[1]]
    return np.array([(xx * c).sum(), (yy * c).sum()]) / c.sum()


@pytest.mark.parametrize("method", ["eyes", "five"])
def test_chip_of_synthetic_face_puts_landmarks_on_the_template(method):
    rng = np.random.default_rng(7)
    template, points = alignment._template_for(method)
    target = template_pixels(template, 150, 0.25)  # where the points must land in the chip
    # a photo in which the face is rotated 25 degrees, 1.6x larger than the chip, and shifted
    theta, s = np.deg2rad(25.0), 1.6
    rot = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    chip_to_photo = np.hstack([rot, [[140.0], [60.0]]])
    landmarks = np.zeros((5, 2))
    landmarks[list(points)] = _apply(chip_to_photo, target)
    others = [i for i in range(5) if i not in points]
    landmarks[others] = rng.uniform(100, 300, (len(others), 2))  # unused by "eyes"
    photo = _blob_image(landmarks[list(points)][:3])
    chip = align_faces(photo, landmarks[None], size=150, padding=0.25, method=method)[0]
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    for i in range(min(3, len(points))):
        found = _centroid(chip[..., i])
        assert np.linalg.norm(found - target[i]) < 0.35, (method, i, found, target[i])


def test_identity_warp_reproduces_pixels_and_black_outside():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    shift = np.array([[[1.0, 0.0, -10.0], [0.0, 1.0, -5.0]]])  # image (x, y) -> chip (x - 10, y - 5)
    chip = warp_affine(img, shift, 40)[0]
    np.testing.assert_array_equal(chip, img[5:45, 10:50])
    out = warp_affine(img, np.array([[[1.0, 0.0, 30.0], [0.0, 1.0, 0.0]]]), 40)[0]
    assert np.all(out[:, :29] == 0)  # left of the photo: black
    np.testing.assert_array_equal(out[:, 30:], img[:40, :10])


def test_batched_faces_match_one_at_a_time():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    base = template_pixels(MTCNN_TEMPLATE, 150, 0.25)
    lms = np.stack([base * s + o for s, o in ((0.5, 10), (1.0, 40), (3.0, -20), (0.3, 200))])
    together = align_faces(img, lms, size=96)
    assert together.shape == (4, 96, 96, 3)
    for i in range(4):
        np.testing.assert_array_equal(together[i], align_faces(img, lms[i], size=96)[0])


@pytest.mark.parametrize("zoom", [1, 3])
def test_matches_dlib_get_face_chip_on_a_real_photo(zoom):
    """Our warp with dlib's own transform reproduces dlib.get_face_chip (the encoder's training
    chips): same geometry, same sampling, same anti-aliasing when shrinking."""
    from pathlib import Path

    import dlib
    import face_recognition_models as frm
    import matplotlib.cbook
    from PIL import Image

    from facenet_keras.images import load_image

    small = load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))  # 600x512, face ~200 px
    models = Path(frm.__file__).parent / "models"
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    r = dlib.get_frontal_face_detector()(small, 0)[0]
    # zoom 3: the chip shrinks the face ~4.7x, so both dlib and we must anti-alias (pyramid)
    h, w = small.shape[:2]
    img = np.asarray(Image.fromarray(small).resize((w * zoom, h * zoom), Image.BICUBIC))
    rect = dlib.rectangle(r.left() * zoom, r.top() * zoom, r.right() * zoom, r.bottom() * zoom)
    shape = sp(img, rect)
    pts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(5)], np.float64)
    theirs = np.asarray(dlib.get_face_chip(img, shape, size=150, padding=0.25)).astype(int)
    m = similarity_transform(pts, template_pixels(alignment.DLIB_TEMPLATE, 150, 0.25))
    ours = warp_affine(img, m[None], 150)[0].astype(int)
    diff = np.abs(ours - theirs).mean()
    shifted = np.abs(np.roll(ours, 1, axis=1) - theirs)[:, 1:].mean()  # one chip pixel off
    print(zoom, diff, shifted)
    # grey levels: ~0.9 without a pyramid; ~4 with one (dlib's pyramid grid is anchored on a crop)
    assert diff < (1.5 if zoom == 1 else 5.0)
    assert diff < (0.4 if zoom == 1 else 0.75) * shifted


def test_our_chips_embed_like_dlibs_own(encoder, detector):
    """End to end with dlib as the oracle: MTCNN landmarks + our template give chips whose embedding
    (our encoder) is close to dlib's descriptor of its own chip (HOG + 5 points + dlib's ResNet);
    dlib's same-person threshold is 0.6, and over 133 faces the median is ~0.10."""
    from pathlib import Path

    import dlib
    import face_recognition_models as frm
    import matplotlib.cbook
    from skimage import data as skimage_data

    from facenet_keras.images import load_image
    from facenet_keras.models.encoder import encode_chips

    models = Path(frm.__file__).parent / "models"
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    photos = [load_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg")), skimage_data.astronaut()]
    for img in photos:
        theirs = np.array(rec.compute_face_descriptor(img, sp(img, hog(img, 1)[0])))
        landmarks = detector.detect(img)[0].landmarks
        chips = np.concatenate([align_faces(img, landmarks, method=m) for m in ("five", "eyes")])
        five, eyes = np.linalg.norm(encode_chips(chips, model=encoder) - theirs, axis=1)
        assert five < 0.2, (five, eyes)
        assert eyes < 0.3, (five, eyes)
