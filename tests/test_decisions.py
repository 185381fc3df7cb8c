"""The decisions on real photos, at their edges: a distance exactly at the threshold, a photo whose
largest face is not the one it is about, and an enrolment with one bad photo among several."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import facenet_keras as fk
from facenet_keras.demo import changed_copy, sample_portraits
from facenet_keras.faces.pipeline import encode, primary_face


@pytest.fixture(scope="module")
def portraits():
    return sample_portraits()


@pytest.fixture()
def grace_gallery(portraits, tmp_path, detector):
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", portraits["Grace Hopper"], detector=detector)
        yield g


# ------------------------------------------------------------------------------ d == tau


def test_verify_matches_at_exactly_the_threshold(portraits, grace_gallery, detector):
    probe = changed_copy(portraits["Grace Hopper"])
    d = fk.verify(probe, "grace", grace_gallery, detector=detector).distance
    assert 0.0 < d < 0.6
    at = fk.verify(probe, "grace", grace_gallery, threshold=d, detector=detector)
    assert at.distance == at.threshold == d and at.match, "d == tau must be a match (d <= tau)"
    below = fk.verify(probe, "grace", grace_gallery, threshold=float(np.nextafter(d, 0)), detector=detector)
    assert below.distance == d and not below.match


def test_recognize_accepts_at_exactly_the_threshold(portraits, grace_gallery, detector):
    probe = changed_copy(portraits["Grace Hopper"], brightness=0.9)
    (r,) = fk.recognize(probe, grace_gallery, detector=detector)
    assert r.identity == "grace" and 0.0 < r.distance < 0.6
    d = float(r.distance)
    (at,) = fk.recognize(probe, grace_gallery, threshold=d, detector=detector)
    assert at.distance == d == at.threshold and at.identity == "grace", "d == tau must be recognised"
    (below,) = fk.recognize(probe, grace_gallery, threshold=float(np.nextafter(d, 0)), detector=detector)
    assert below.identity is None and below.nearest == "grace"


# ------------------------------------------------------------------------------ the main face

LFW_CENTRE = "Angela_Bassett/Angela_Bassett_0002.jpg"  # the person the picture is about
LFW_ENROL = "Angela_Bassett/Angela_Bassett_0001.jpg"
LFW_SIDE = "Bill_Frist/Bill_Frist_0002.jpg"  # larger, at the side


@pytest.fixture(scope="module")
def off_centre_picture(shared_data, tmp_path_factory):
    """900x360: Bill Frist's photo enlarged to 360 px at the left, Angela Bassett's 250 px photo in
    the middle. His face is the largest (about 1.7x hers), hers is the central one."""
    images = shared_data / "lfw-dev" / "images"
    side = Image.open(images / LFW_SIDE).convert("RGB").resize((360, 360), Image.BICUBIC)
    canvas = Image.new("RGB", (900, 360), (255, 255, 255))
    canvas.paste(side, (0, 0))
    canvas.paste(Image.open(images / LFW_CENTRE).convert("RGB"), (325, 55))
    path = tmp_path_factory.mktemp("main-face") / "picture.png"
    canvas.save(path)
    return path


def test_main_face_is_the_central_one_not_the_largest(off_centre_picture, shared_data, tmp_path, detector):
    image = np.asarray(Image.open(off_centre_picture))
    faces = encode(image, detector=detector)
    assert len(faces) == 2
    largest = max(faces, key=lambda f: f.area)
    main = primary_face(faces, image.shape)
    assert main is not largest and main.area >= largest.area / 3  # the rule has a choice to make
    assert abs(np.mean(main.landmarks[:, 0]) - 450) < 60  # hers, in the middle

    # verify uses the main face: Angela (enrolled from another photo) matches, Bill does not
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("angela", shared_data / "lfw-dev" / "images" / LFW_ENROL, detector=detector)
        g.enroll("bill", np.asarray(Image.open(shared_data / "lfw-dev" / "images" / LFW_SIDE)), detector=detector)
        v = fk.verify(off_centre_picture, "angela", g, detector=detector)
        assert v.faces_found == 2 and v.match
        assert not fk.verify(off_centre_picture, "bill", g, detector=detector).match

    # and so does the evaluation protocol (through the embedding cache)
    from facenet_keras.evaluation.protocols import primary_embeddings

    (emb,), problems = primary_embeddings([off_centre_picture], detector=detector, progress=False)
    assert not problems
    np.testing.assert_allclose(emb, main.embedding, atol=1e-5)


# ------------------------------------------------------------------------------ atomic enrolment


def test_enrolment_with_one_bad_photo_among_several_writes_nothing(portraits, tmp_path, detector):
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    blank = np.full((200, 200, 3), 127, np.uint8)
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("eileen", eileen, detector=detector)
        before = g.embeddings()[0].copy()
        # the faceless photo comes last: the good ones before it must not have been written
        with pytest.raises(fk.NoFaceError, match="nothing was enrolled"):
            g.enroll("grace", [grace, changed_copy(grace), blank], detector=detector)
        assert g.people() == {"eileen": 1}
        np.testing.assert_array_equal(g.embeddings()[0], before)
        # adding photos to someone already enrolled is all-or-nothing too
        with pytest.raises(fk.NoFaceError):
            g.enroll("eileen", [changed_copy(eileen), blank], detector=detector)
        assert g.people() == {"eileen": 1}
        # an unreadable photo among good ones: nothing either
        bad = tmp_path / "notes.jpg"
        bad.write_text("not an image")
        with pytest.raises(ValueError, match="notes.jpg"):
            g.enroll("grace", [grace, bad], detector=detector)
        assert g.people() == {"eileen": 1}
        # and the same photos without the bad one enrol fine
        assert len(g.enroll("grace", [grace, changed_copy(grace)], detector=detector)) == 2
        assert g.people() == {"eileen": 1, "grace": 2}
