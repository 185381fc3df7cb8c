"""End to end on real photos: enrol from faces/, verify, and recognise every labelled person in group/."""

from __future__ import annotations

import numpy as np
import pytest

import facenet_keras as fk
from facenet_keras.demo import changed_copy, sample_portraits

# group photo -> people the source names in it, all enrolled from faces/
GROUP_LABELS = {
    "face_recognition__two_people.jpg": {"barack_obama", "joe_biden"},
    "face_recognition__obama_and_biden.jpg": {"barack_obama", "joe_biden"},
    "face_recognition__kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "openface__longoria-cooper.jpg": {"bradley_cooper"},
    "deepface__couple.jpg": {"deepface_01"},
}
ENROLLED = sorted(set().union(*GROUP_LABELS.values()) | {"amy_adams", "paul_rudd", "steve_carell", "clapton"})


@pytest.fixture(scope="module")
def group_gallery(shared_data, tmp_path_factory, encoder, detector):
    """People enrolled one-shot from their first photo in faces/ (no retraining)."""
    g = fk.FaceGallery(tmp_path_factory.mktemp("gallery") / "g.sqlite")
    for name in ENROLLED:
        first = sorted((shared_data / "faces" / name).iterdir())[0]
        g.enroll(name, first, detector=detector, face="centre")  # some show a second face
    yield g
    g.close()


@pytest.fixture(scope="module")
def portraits():
    return sample_portraits()


def test_every_labelled_person_in_group_photos_is_recognised(shared_data, group_gallery, detector):
    photos = [shared_data / "group" / f for f in GROUP_LABELS]
    results = fk.recognition.recognize_batch(photos, group_gallery, detector=detector)
    for (name, expected), faces in zip(GROUP_LABELS.items(), results):
        found = {r.identity for r in faces if r.identity is not None}
        assert expected <= found, f"{name}: expected {expected}, recognised {found}"
        # nobody is recognised twice in one photo
        ids = [r.identity for r in faces if r.identity is not None]
        assert len(ids) == len(set(ids)), f"{name}: {ids}"


def test_one_shot_enrolment_and_open_set(portraits, tmp_path, detector):
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", grace, detector=detector)
        (r,) = fk.recognize(changed_copy(grace), g, detector=detector)
        assert r.identity == "grace" and r.distance < fk.DEFAULT_THRESHOLD
        (r,) = fk.recognize(eileen, g, detector=detector)
        assert r.identity is None and r.nearest == "grace" and r.distance > fk.DEFAULT_THRESHOLD
        g.enroll("eileen", eileen, detector=detector)
        (r,) = fk.recognize(changed_copy(eileen, brightness=0.8), g, detector=detector)
        assert r.identity == "eileen" and r.runner_up == "grace" and r.runner_up_distance > r.distance


def test_verify_match_no_match_and_errors(portraits, tmp_path, detector):
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", grace, detector=detector)
        v = fk.verify(changed_copy(grace, mirror=False), "grace", g, detector=detector)
        assert v.match and v.distance <= v.threshold == fk.DEFAULT_THRESHOLD and v.faces_found == 1
        v = fk.verify(eileen, "grace", g, detector=detector)
        assert not v.match
        v2 = fk.verify(eileen, "grace", g, threshold=v.distance + 0.01, detector=detector)
        assert v2.match  # the per-call threshold wins
        g.threshold = v.distance + 0.01  # a calibrated threshold stored in the gallery is used
        assert fk.verify(eileen, "grace", g, detector=detector).match
        with pytest.raises(KeyError, match="not enrolled"):
            fk.verify(grace, "nobody", g, detector=detector)
        blank = np.full((200, 200, 3), 127, np.uint8)
        with pytest.raises(fk.NoFaceError):
            fk.verify(blank, "grace", g, detector=detector)
        with pytest.raises(fk.NoFaceError):
            g.enroll("blank", blank, detector=detector)
        assert g.names() == ["grace"]


def test_several_faces_in_a_verification_photo_use_the_main_one(portraits, tmp_path, detector):
    from facenet_keras.demo import side_by_side

    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", grace, detector=detector)
        # Grace large in the centre, Eileen small at the side
        small = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(eileen).resize((160, 160)))
        picture = side_by_side(small, grace, small, height=400)
        v = fk.verify(picture, "grace", g, detector=detector)
        assert v.faces_found == 3 and v.match


def test_verify_with_a_siamese_classifier(shared_data, portraits, tmp_path, detector):
    """The Siamese head, trained on embeddings of faces/ pairs, as verify's decision rule."""
    import csv

    from facenet_keras.evaluation.protocols import primary_embeddings
    from facenet_keras.training.siamese import SiameseClassifier

    rows = list(csv.DictReader(open(shared_data / "faces" / "pairs.csv")))[::8]
    paths = sorted({r["path1"] for r in rows} | {r["path2"] for r in rows})
    emb, _ = primary_embeddings([shared_data / "faces" / p for p in paths], detector=detector, progress=False)
    index = {p: e for p, e in zip(paths, emb) if e is not None and np.all(np.isfinite(e))}
    rows = [r for r in rows if r["path1"] in index and r["path2"] in index]
    clf = SiameseClassifier().fit(
        np.stack([index[r["path1"]] for r in rows]),
        np.stack([index[r["path2"]] for r in rows]),
        [int(r["same"]) for r in rows],
    )
    grace, eileen = portraits["Grace Hopper"], portraits["Eileen Collins"]
    with fk.FaceGallery(tmp_path / "g.sqlite") as g:
        g.enroll("grace", grace, detector=detector)
        yes = fk.verify(changed_copy(grace), "grace", g, detector=detector, classifier=clf)
        no = fk.verify(eileen, "grace", g, detector=detector, classifier=clf)
    assert yes.match and yes.probability > 0.5
    assert not no.match and no.probability < 0.5
