"""The deep-learning course's own face functions, with its names and signatures, on the real pipeline.

The course (Convolutional Neural Networks, week 4, "Face Recognition") builds three functions on a
pretrained FaceNet; here they run on this package's pipeline: MTCNN detection, alignment to the
encoder's chip, the pretrained dlib ResNet (128-D), one distance function
(:func:`facenet_keras.identity.search.pairwise_distances`)::

    from facenet_keras.course import img_to_encoding, verify, who_is_it

    database = {"grace": img_to_encoding("grace.jpg"), "eileen": img_to_encoding("eileen.png")}
    dist, door_open = verify("camera.jpg", "grace", database)
    min_dist, identity = who_is_it("camera.jpg", database)

What differs from the course, and why:

* photos need not be 96x96 face crops: any photo with a face works (its main face is used);
  a photo without a face raises :class:`~facenet_keras.faces.detection.NoFaceError` instead of
  encoding whatever is there;
* the threshold is the one that belongs to the encoder in use (0.6 for the pretrained encoder's raw
  embeddings, the one stored in a trained ``.keras`` file; the course's 0.7 was for its
  L2-normalised FaceNet), from the package's one rulebook (:mod:`facenet_keras.identity.rules`);
* faces the quality gate turns away (too small, not a face?, low quality) are never encoded as a
  person: :class:`~facenet_keras.faces.pipeline.UnusableFaceError` says why;
* the course's plain dict database carries no embedding space, so the encodings
  :func:`img_to_encoding` returns carry theirs (an :class:`Encoding`, still a numpy array):
  ``verify`` / ``who_is_it`` refuse a database holding encodings of another encoder, and any
  encoding (plain arrays included) whose width is not the encoder's;
* ``who_is_it`` returns ``identity=None`` for a face farther than the threshold from everyone,
  where the course returns the nearest name and prints "Not in the database" (a stranger is never
  named);
* nothing is printed: the course's messages ("It's younes, welcome in!") are the caller's to print.

``database`` is the course's plain dict, name -> encoding ((1, 128) or (128,), or (N, 128) for
several photos of a person: the nearest counts), or a :class:`~facenet_keras.identity.gallery.FaceGallery`.
The package's API goes further: :func:`facenet_keras.verify` / :func:`facenet_keras.recognize`
(every face in a photo, runner-up, calibrated thresholds, a Siamese classifier as the rule),
:class:`~facenet_keras.FaceGallery` (persistent SQLite, one-shot enrolment, folders, FAISS).
The course's ``triplet_loss`` is :func:`facenet_keras.training.losses.triplet_loss`.
"""

from __future__ import annotations

import numpy as np

from facenet_keras.faces.pipeline import pipeline_for
from facenet_keras.faces.profiles import encoder_choice, profile_of_space
from facenet_keras.identity.gallery import FaceGallery
from facenet_keras.identity.rules import check_gallery_space, encoder_for, resolve_threshold
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.identity.stores.base import EmbeddingSpaceError

__all__ = ["Encoding", "img_to_encoding", "verify", "who_is_it"]


class Encoding(np.ndarray):
    """An encoding f(x) that remembers its embedding space (``.space``): a plain numpy array in
    every other way, so the course's dict database can be checked against the encoder in use."""

    space: str | None

    def __new__(cls, values, space: str | None):
        out = np.asarray(values, np.float32).view(cls)
        out.space = space
        return out

    def __array_finalize__(self, obj):
        self.space = getattr(obj, "space", None)


def img_to_encoding(image_path, model=None, *, detector=None, profile=None) -> np.ndarray:
    """Lecture idea: the encoding f(x) ("face verification", "Siamese network"): a ConvNet maps a
    face to a 128-D vector so that photos of one person land close together.

    ``image_path``: a photo (a path, or anything :func:`facenet_keras.load_image` takes); its main
    face is detected, aligned and encoded. ``model``: None (the pretrained encoder), a Keras encoder
    or a saved ``.keras`` file; or ``profile``: 'fast' or 'accurate' (a (1, 256) encoding). Returns
    a (1, 128) float32 array, as the course's does (its ``model.predict_on_batch`` of one image), an
    :class:`Encoding` that carries its embedding space. Raises NoFaceError when the photo shows no
    face (UnusableFaceError, with the reason, when the quality gate turned the face away).
    """
    pipe = pipeline_for(encoder_choice(model, profile), detector=detector)
    face, _, _ = pipe.encode_main(image_path)
    return Encoding(np.asarray(face.embedding, np.float32).reshape(1, -1), pipe.space_id)


def verify(
    image_path, identity: str, database, model=None, *, threshold: float | None = None, detector=None, profile=None
) -> tuple[float, bool]:
    """Lecture idea: face verification (1:1), "is this the claimed person?": d = ||f(img) - f(identity)||,
    the door opens when d <= threshold.

    ``database``: dict name -> encoding(s), or a FaceGallery (then its calibrated threshold, if
    any, is the default). Returns ``(dist, door_open)``; ``dist`` is to the nearest of the person's
    encodings. The package's :func:`facenet_keras.verify` does the same with a richer answer.
    Raises KeyError for an identity not in the database. ``profile``: as in :func:`img_to_encoding`
    (default: the one the database's encodings were made with).
    """
    pipe = _pipeline(database, model, profile, detector)
    enrolled, _ = _encodings(database, pipe, identity)
    tau = resolve_threshold(threshold, database if isinstance(database, FaceGallery) else None, pipe)
    encoding = img_to_encoding(image_path, pipe)
    dist = float(pairwise_distances(encoding, enrolled).min())
    return dist, dist <= tau


def who_is_it(
    image_path, database, model=None, *, threshold: float | None = None, detector=None, profile=None
) -> tuple[float, str | None]:
    """Lecture idea: face recognition (1:K), "who is this?": the nearest encoding in the database,
    accepted when its distance is at most the threshold (one-shot learning: one photo per person
    is enough, nobody is retrained when someone joins).

    Returns ``(min_dist, identity)``; identity is None when even the nearest person is farther
    than the threshold (the course returns the nearest name and prints "Not in the database").
    The package's :func:`facenet_keras.recognize` answers for every face in a photo, with the runner-up.
    """
    pipe = _pipeline(database, model, profile, detector)
    enrolled, labels = _encodings(database, pipe)
    if len(labels) == 0:
        raise ValueError("the database is empty: enrol someone first")
    tau = resolve_threshold(threshold, database if isinstance(database, FaceGallery) else None, pipe)
    encoding = img_to_encoding(image_path, pipe)
    d = pairwise_distances(encoding, enrolled)[0]
    j = int(np.argmin(d))
    min_dist = float(d[j])
    return min_dist, (labels[j] if min_dist <= tau else None)


def _pipeline(database, model, profile, detector):
    """The pipeline to encode with: ``model`` or ``profile``, else the profile the database was
    built with (a gallery's, or the one space all of a dict's :class:`Encoding` values carry)."""
    gallery = database if isinstance(database, FaceGallery) else None
    chosen = encoder_for(gallery, model, profile)
    if chosen is None and isinstance(database, dict):
        spaces = {getattr(e, "space", None) for e in database.values()}
        chosen = profile_of_space(spaces.pop()) if len(spaces) == 1 else None
    return pipeline_for(chosen, detector=detector)


def _encodings(database, pipe, identity: str | None = None) -> tuple[np.ndarray, list[str]]:
    """The database's encodings (M, D) and the name of each row (one identity's, or everyone's),
    after checking they belong to the pipeline's encoder: a gallery by its embedding space; a dict
    by the space its :class:`Encoding` values carry, and every value by its width."""
    if isinstance(database, FaceGallery):
        check_gallery_space(database, pipe)
        return database.embeddings(identity)
    if not isinstance(database, dict):
        raise TypeError(f"database must be a dict name -> encoding or a FaceGallery, not {type(database).__name__}")
    if identity is not None:
        if identity not in database:
            known = ", ".join(map(repr, sorted(database))) or "nobody"
            raise KeyError(f"{identity!r} is not in the database (it holds {known})")
        database = {identity: database[identity]}
    rows, labels = [], []
    for name, encoding in database.items():
        space = getattr(encoding, "space", None)
        if space is not None and space != pipe.space_id:
            raise EmbeddingSpaceError(
                f"the encoding of {name!r} was made by another encoder (embedding space {space!r}, this "
                f"one is {pipe.space_id!r}): distances between them mean nothing; encode it again with this model"
            )
        e = np.asarray(encoding, np.float32)
        if e.shape[-1] != pipe.dimension:
            raise ValueError(
                f"the encoding of {name!r} has {e.shape[-1]} values, this encoder makes {pipe.dimension}: "
                "it was made by another encoder"
            )
        e = e.reshape(1, -1) if e.ndim == 1 else e
        if e.ndim != 2:
            raise ValueError(f"the encoding of {name!r} must have shape (128,) or (N, 128), got {e.shape}")
        rows.append(e)
        labels += [name] * len(e)
    if not rows:
        return np.zeros((0, 0), np.float32), []
    widths = {r.shape[1] for r in rows}
    if len(widths) > 1:
        raise ValueError(f"the database mixes encodings of different widths: {sorted(widths)}")
    return np.concatenate(rows), labels
