"""Decisions: enrolment (photos -> embeddings -> the gallery), verification (1:1, "is this the person
they claim to be?") and recognition (1:K, "who is this?", with "not recognised" for strangers).

Both compare Euclidean distances between embeddings with a threshold tau: a match when d <= tau.
The threshold used is, in order: the ``threshold`` argument, the one stored in the gallery by
``facenet-keras calibrate``, then :data:`DEFAULT_THRESHOLD`. Verification can instead use a trained
Siamese classifier (:class:`facenet_keras.training.siamese.SiameseClassifier`, passed in) as its decision rule.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from facenet_keras.faces.detection import NoFaceError
from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.faces.face import Face
from facenet_keras.faces.pipeline import describe_source, encode_batch, pipeline_id, primary_face

# Default tau for the pretrained dlib ResNet with the default pipeline (MTCNN, 5-point alignment,
# mirrored chip averaged in), on its raw (not L2-normalised) 128-D embeddings. Chosen from data:
# see README "How the default threshold was chosen".
DEFAULT_THRESHOLD = 0.6


@dataclass(frozen=True)
class Verification:
    """The answer to a 1:1 claim. ``faces_found`` > 1 means the main face was used (see ``face``)."""

    match: bool
    distance: float
    threshold: float
    identity: str
    face: Face
    faces_found: int
    probability: float | None = None  # P(same) when a Siamese classifier made the decision

    def to_dict(self) -> dict:
        out = {"match": self.match, "identity": self.identity, "distance": round(self.distance, 5),
               "threshold": self.threshold, "faces_found": self.faces_found,
               "face": self.face.to_dict(embedding=False)}
        if self.probability is not None:
            out["probability"] = round(self.probability, 5)
        return out


@dataclass(frozen=True)
class Recognition:
    """One face's answer to 1:K: ``identity`` is None when the nearest enrolled person is farther
    than the threshold ("not recognised"); ``nearest`` is who that was anyway."""

    face: Face
    identity: str | None
    distance: float
    nearest: str | None
    runner_up: str | None
    runner_up_distance: float
    threshold: float

    @property
    def box(self) -> np.ndarray:
        return self.face.box

    def to_dict(self) -> dict:
        fin = lambda v: None if not np.isfinite(v) else round(float(v), 5)  # noqa: E731
        return {"identity": self.identity, "distance": fin(self.distance), "nearest": self.nearest,
                "runner_up": self.runner_up, "runner_up_distance": fin(self.runner_up_distance),
                "threshold": self.threshold, **self.face.to_dict(embedding=False)}


def resolve_threshold(threshold: float | None, gallery: FaceGallery | None = None) -> float:
    """The threshold argument, else the gallery's calibrated one, else DEFAULT_THRESHOLD."""
    if threshold is None and gallery is not None:
        threshold = gallery.threshold
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive distance, got {threshold}")
    return threshold


def enroll(gallery: FaceGallery, name: str, images, *, model=None, detector=None) -> list[int]:
    """Enrol ``name`` in ``gallery`` from one or several photos (paths, bytes, PIL images or arrays).

    Each photo must show a face; when it shows several, the main one (large, nearest the centre) is
    taken. All photos are encoded before anything is written, and the write is one transaction, so a
    bad photo or an interruption leaves the gallery untouched. Returns the new rows' ids.
    """
    if isinstance(images, (str, os.PathLike, bytes)) or hasattr(images, "shape") or hasattr(images, "mode"):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("enroll needs at least one photo")
    faces_per_image, loaded = encode_batch(images, model=model, detector=detector, return_images=True)
    embeddings, sources, boxes = [], [], []
    for src, faces, image in zip(images, faces_per_image, loaded):
        face = primary_face(faces, image.shape)
        if face is None:
            raise NoFaceError(f"no face found in {describe_source(src)}; nothing was enrolled")
        embeddings.append(face.embedding)
        sources.append(describe_source(src))
        boxes.append(face.box)
    return gallery.add(name, np.stack(embeddings), sources=sources, boxes=boxes, model_id=pipeline_id(model))


def verify(image, identity: str, gallery: FaceGallery, threshold: float | None = None, *,
           model=None, detector=None, classifier=None) -> Verification:
    """Is the person in ``image`` the enrolled ``identity``? Match when d <= threshold.

    d is the distance from the photo's face to the nearest of the identity's enrolled photos.
    With a ``classifier`` (a trained :class:`~facenet_keras.siamese.SiameseClassifier`), the match
    is its decision instead: P(same) >= its threshold for the best of the enrolled photos, and the
    probability is reported. When the photo shows several faces the main one (large, nearest the
    centre) is used and ``faces_found`` says how many there were. Raises KeyError for an identity
    not enrolled and :class:`NoFaceError` when the photo has no face.
    """
    enrolled, _ = gallery.embeddings(identity)  # KeyError naming who is enrolled
    tau = resolve_threshold(threshold, gallery)
    faces, loaded = encode_batch([image], model=model, detector=detector, progress=False, return_images=True)
    face = primary_face(faces[0], loaded[0].shape)
    if face is None:
        raise NoFaceError(f"no face found in {describe_source(image)}")
    distance = float(pairwise_distances(face.embedding[None], enrolled).min())
    if classifier is None:
        return Verification(distance <= tau, distance, tau, identity, face, len(faces[0]))
    probe = np.repeat(face.embedding[None], len(enrolled), axis=0)
    p = float(np.max(classifier.predict_proba(probe, enrolled)))
    return Verification(p >= classifier.threshold, distance, tau, identity, face, len(faces[0]), p)


def recognize(image, gallery: FaceGallery, threshold: float | None = None, *,
              model=None, detector=None) -> list[Recognition]:
    """Who is each face in ``image``? One :class:`Recognition` per face found (an empty list when
    there is none), largest face first."""
    return recognize_batch([image], gallery, threshold, model=model, detector=detector)[0]


def recognize_batch(images, gallery: FaceGallery, threshold: float | None = None, *,
                    model=None, detector=None, progress: bool | None = None) -> list[list[Recognition]]:
    """:func:`recognize` for many photos, encoding all their faces in shared batches."""
    tau = resolve_threshold(threshold, gallery)
    per_image = encode_batch(images, model=model, detector=detector, progress=progress)
    out = []
    for faces in per_image:
        faces = sorted(faces, key=lambda f: -f.area)
        matches = gallery.search(np.stack([f.embedding for f in faces])) if faces else []
        out.append([Recognition(f, m.identity if m.distance <= tau else None, m.distance, m.identity,
                                m.runner_up, m.runner_up_distance, tau) for f, m in zip(faces, matches)])
    return out



@dataclass(frozen=True)
class Comparison:
    """The answer to "are these two photos the same person?" (no gallery involved).

    ``faces``: the face used in each photo (its main one); ``faces_found``: how many each photo had."""

    match: bool
    distance: float
    threshold: float
    faces: tuple[Face, Face]
    faces_found: tuple[int, int]

    def to_dict(self) -> dict:
        return {"match": self.match, "distance": round(self.distance, 5), "threshold": self.threshold,
                "faces_found": list(self.faces_found), "faces": [f.to_dict(embedding=False) for f in self.faces]}


def compare(photo1, photo2, threshold: float | None = None, *, model=None, detector=None) -> Comparison:
    """Are the people in two photos the same person? Match when d <= threshold (default
    :data:`DEFAULT_THRESHOLD`), as in deepface's ``verify(img1, img2)`` or face_recognition's
    ``compare_faces``.

    Each photo's main face (large, nearest the centre) is used; the two are encoded in one batch.
    Raises :class:`NoFaceError` naming the photo when one has no face.
    """
    tau = resolve_threshold(threshold)
    per_image, loaded = encode_batch([photo1, photo2], model=model, detector=detector, progress=False,
                                     return_images=True)
    chosen = []
    for src, faces, image in zip((photo1, photo2), per_image, loaded):
        face = primary_face(faces, image.shape)
        if face is None:
            raise NoFaceError(f"no face found in {describe_source(src)}")
        chosen.append(face)
    distance = float(pairwise_distances(chosen[0].embedding[None], chosen[1].embedding[None])[0, 0])
    return Comparison(distance <= tau, distance, tau, (chosen[0], chosen[1]),
                      (len(per_image[0]), len(per_image[1])))
