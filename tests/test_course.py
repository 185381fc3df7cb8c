"""The course's names (img_to_encoding / verify / who_is_it), compare() and folder enrolment on the
real photos of faces/.

The expensive part is face detection on faces/'s 91 full photos (several > 2000 px). It runs once
per photo: ``recorded`` is the real detector with its answers remembered by image content, so a
photo seen by one test is not detected again by the next; ``detections`` is its answer for every
photo, counted here (not taken from the report under test) as the truth for the folder report.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import facenet_keras as fk
from facenet_keras.course import img_to_encoding, verify, who_is_it
from facenet_keras.images import list_identities, load_image


class RecordedDetector:
    """The real detector, with its answers remembered by image content (no face is invented:
    an image never seen is detected for real)."""

    def __init__(self, detector, answers: dict[str, list]):
        self.detector, self.answers = detector, answers

    @staticmethod
    def key(image: np.ndarray) -> str:
        return hashlib.sha1(image.tobytes() + repr(image.shape).encode()).hexdigest()

    def detect(self, image):
        image = load_image(image)
        k = self.key(image)
        if k not in self.answers:
            self.answers[k] = self.detector.detect(image)
        return self.answers[k]


@pytest.fixture(scope="module")
def people(shared_data):
    return list_identities(shared_data / "faces")


@pytest.fixture(scope="module")
def recorded(detector):
    return RecordedDetector(detector, {})


@pytest.fixture(scope="module")
def detections(people, recorded):
    """The real detector's faces in every photo of faces/: path -> list of faces."""
    return {str(p): recorded.detect(load_image(p)) for photos in people.values() for p in photos}


def test_course_functions_agree_with_the_package_api(shared_data, encoder, recorded):
    faces = shared_data / "faces"
    enrolment = {
        "barack_obama": faces / "barack_obama" / "2.jpg",
        "joe_biden": faces / "joe_biden" / "1.jpg",
        "kit_harington": faces / "kit_harington" / "1.jpg",
    }
    database = {name: img_to_encoding(path, detector=recorded) for name, path in enrolment.items()}
    assert all(e.shape == (1, 128) and e.dtype == np.float32 for e in database.values())
    gallery = fk.FaceGallery(":memory:")
    for name, path in enrolment.items():
        gallery.enroll(name, path, detector=recorded)

    probes = [
        faces / "barack_obama" / "4.jpg",
        faces / "joe_biden" / "2.jpg",
        faces / "kit_harington" / "2.jpg",
        faces / "rose_leslie" / "1.jpg",
    ]  # the last one is not enrolled
    answers = []
    for probe in probes:
        for name in enrolment:
            dist, door_open = verify(probe, name, database, detector=recorded)
            v = fk.verify(probe, name, gallery, detector=recorded)
            assert dist == pytest.approx(v.distance, abs=1e-5) and door_open == v.match
            assert verify(probe, name, gallery, detector=recorded) == pytest.approx((dist, door_open))
        min_dist, identity = who_is_it(probe, database, detector=recorded)
        r = max(fk.recognize(probe, gallery, detector=recorded), key=lambda r: r.face.area)
        assert min_dist == pytest.approx(r.distance, abs=1e-5) and identity == r.identity
        assert who_is_it(probe, gallery, detector=recorded) == (pytest.approx(min_dist, abs=1e-5), identity)
        answers.append(identity)
    assert answers == ["barack_obama", "joe_biden", "kit_harington", None]

    with pytest.raises(KeyError, match="not in the database"):
        verify(probes[0], "nobody", database, detector=recorded)


def test_course_refuses_a_photo_without_a_face():
    blank = np.full((200, 200, 3), 180, np.uint8)
    with pytest.raises(fk.NoFaceError):
        img_to_encoding(blank)


@pytest.mark.slow
def test_one_shot_who_is_it_on_faces(people, recorded):
    """The course's one-shot set-up: the first photo of each person with two or more photos in a
    ``database`` dict, every other photo of theirs identified with who_is_it."""
    multi = {name: photos for name, photos in people.items() if len(photos) >= 2}
    database = {name: img_to_encoding(photos[0], detector=recorded) for name, photos in multi.items()}
    probes = [(p, name) for name, photos in multi.items() for p in photos[1:]]
    named = [who_is_it(p, database, detector=recorded)[1] for p, _ in probes]
    right = np.mean([got == truth for got, (_, truth) in zip(named, probes)])
    errors = [(str(p), truth, got) for got, (p, truth) in zip(named, probes) if got != truth]
    assert len(probes) >= 100 and right >= 0.95, f"{right:.3f} identified right; errors: {errors}"


@pytest.mark.slow
def test_compare_equals_the_pairs_protocol(shared_data, recorded):
    """compare() on a subset of faces/pairs.csv (every 40th same-person and every 40th
    different-people pair: 13 + 25, both kinds of photo) answers as the pairs protocol does."""
    from facenet_keras.evaluation.protocols import pair_distances, read_pairs

    p1, p2, same, _ = read_pairs(shared_data / "faces" / "pairs.csv")
    rows = np.r_[np.flatnonzero(same)[::40], np.flatnonzero(~same)[::40]]
    a, b = [p1[i] for i in rows], [p2[i] for i in rows]
    d, problems = pair_distances(a, b, cache=False, progress=False)
    assert not problems and same[rows].sum() >= 10
    tau = fk.DEFAULT_THRESHOLD
    for x, y, d_protocol in zip(a, b, d):
        c = fk.compare(x, y, detector=recorded)
        assert c.threshold == tau and c.match == (d_protocol <= tau), (x, y, c.distance, d_protocol)
        assert c.distance == pytest.approx(d_protocol, abs=1e-4), (x, y)


@pytest.mark.slow
def test_folder_enrolment_of_faces_reports_exactly_the_photos_without_one_face(
    shared_data, people, detections, recorded
):
    from facenet_keras.faces.quality import REASONS, assess

    usable = {p: [q for q in assess(load_image(p), faces) if q.usable] for p, faces in detections.items()}
    several = sorted(p for p, faces in detections.items() if len(usable[p]) > 1)  # gated detections do not count
    none = sorted(p for p, faces in detections.items() if not faces)
    assert several, "faces/ has photos with several faces: the check below must be able to fail"
    with fk.FaceGallery(":memory:") as gallery:
        report = gallery.enroll_folder(shared_data / "faces", detector=recorded, progress=False)
        assert sorted(report.by_outcome("several faces")) == several
        assert sorted(report.by_outcome("no face")) == none
        assert report.by_outcome("unreadable") == []
        counts = report.counts()
        assert sum(counts.values()) == len(detections) == 186
        # faces the gate (or the stricter reference gate) turns away are refused, each with its reason
        weak = report.by_outcome("unusable face")
        detail = {p.path: p.detail for p in report.photos}
        for path in weak:
            assert any(reason in detail[path] for reason in REASONS), (path, detail[path])
        assert (
            counts["enrolled"]
            == len(gallery.photos())
            == len(detections) - len(several) - len(none) - len(weak) - counts["duplicate"]
        )
        # every person with at least one usable single-face photo is enrolled under their folder's name
        expected = {
            n
            for n, photos in people.items()
            if any(detections[str(p)] and str(p) not in several and str(p) not in weak for p in photos)
        }
        assert set(gallery.names()) == expected == set(report.people())
