"""The rulebook: every rule that decides whether an answer may be given, in one place.

Every door (the CLI, ``fk.*``, the service and its page, ``watch`` and liveness, the photo library,
the course functions) asks these functions, so the same photo gets the same decision everywhere:

* the encoder: the ``model`` or ``profile`` asked for, else the profile the gallery was built with
  (:func:`encoder_for`);
* the embedding space: a gallery answers only for embeddings of the space it was enrolled in
  (:func:`check_gallery_space`);
* the threshold: the argument, else the gallery's calibrated one, else the one that belongs to the
  encoder in use; never another encoder's (:func:`resolve_threshold` needs the encoder);
* which face of a photo to enrol: one face, or the one the caller named (:func:`choose_face`);
* whether a face may serve as a reference, or be named at all: the quality gate
  (:mod:`facenet_keras.faces.quality`; :func:`check_reference`);
* warnings when a new photo is already enrolled, or looks like someone else (:func:`enrolment_warnings`);
* the name a new person may take (:func:`check_new_name`): one the service's URLs can reach again.
"""

from __future__ import annotations

import os

import numpy as np

from facenet_keras.faces.detection import NoFaceError
from facenet_keras.faces.face import Face
from facenet_keras.faces.pipeline import FacePipeline, embedding_space_id, encoder_threshold, primary_face
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.identity.stores.base import check_space, check_threshold, display_name, normalize_name

__all__ = [
    "FACE_CHOICES",
    "check_gallery_space",
    "check_new_name",
    "check_reference",
    "choose_face",
    "encoder_for",
    "enrolment_warnings",
    "resolve_threshold",
]

FACE_CHOICES = ("largest", "centre", "center")


# ---------------------------------------------------------------------------- spaces and thresholds
def encoder_for(gallery=None, model=None, profile=None):
    """What a door encodes with: ``model`` (None, a path, a Keras model, a pipeline or a profile) or
    the named ``profile`` (both at once is refused); when neither is given, the profile of the
    gallery (``FaceGallery(..., profile=)``), else the fused profile its stored embeddings were
    built with (a gallery of the ``accurate`` profile opens with it), else None (the default encoder)."""
    from facenet_keras.faces.profiles import encoder_choice, profile_of_space

    chosen = encoder_choice(model, profile)
    if chosen is not None or gallery is None:
        return chosen
    own = getattr(gallery, "profile", None)
    return own if own is not None else profile_of_space(gallery.space_id)


def _space_of(model) -> str:
    return model.space_id if isinstance(model, FacePipeline) else embedding_space_id(model)


def check_gallery_space(gallery, model, *, space: str | None = None) -> str:
    """The encoder's embedding space, after checking that ``gallery`` holds embeddings of the same
    space (an empty gallery takes any). ``model``: None (the pretrained encoder), a path, a Keras
    model or a :class:`FacePipeline`. Raises :class:`~facenet_keras.identity.store.EmbeddingSpaceError`."""
    space = space or _space_of(model)
    stored = gallery.space_id
    if stored != space:
        check_space(stored, space, gallery.path, empty=len(gallery) == 0)
    return space


def resolve_threshold(threshold: float | None, gallery, model) -> float:
    """The threshold argument, else the gallery's calibrated one, else the one that belongs to the
    encoder ``model`` (None = the pretrained encoder, a path, a Keras model or a FacePipeline; there is
    no default, so no door can forget which encoder it decides for). An encoder without a threshold
    (a trained model never calibrated) raises ValueError saying how to calibrate it."""
    if threshold is None and gallery is not None:
        threshold = gallery.threshold
    if threshold is None:
        threshold = model.threshold if isinstance(model, FacePipeline) else encoder_threshold(model)
    if threshold is None:
        ref = model.model_ref if isinstance(model, FacePipeline) else model
        where = ref if isinstance(ref, (str, os.PathLike)) else getattr(ref, "name", "this encoder")
        if str(where).lower().endswith(".onnx"):  # a file you bring: it cannot store a threshold
            raise ValueError(
                f"the encoder {where} ships no distance threshold for this pipeline, so it cannot decide "
                f"'same person': pass --threshold, or calibrate it on your pairs and keep it in the gallery: "
                f"'facenet-keras calibrate PAIRS.csv --model {where} --target-far 1e-3 --save'"
            )
        raise ValueError(
            f"the encoder {where} carries no distance threshold, so it cannot decide 'same person': "
            f"calibrate it first, e.g. 'facenet-keras calibrate PAIRS.csv --model {where} --target-far "
            "1e-3 --save-model' (or pass --threshold)"
        )
    return check_threshold(threshold)


# ---------------------------------------------------------------------------- names
def check_new_name(name) -> str:
    """The name a person is enrolled, named or renamed under: :func:`normalize_name`'s rules (no
    control characters, no surrounding spaces), and no ``/`` nor the whole name ``.`` or ``..``, which
    a URL path segment cannot carry back (``/v1/people/{name}`` would never reach that person again).
    ``?``, ``#`` and ``%`` are fine: percent-encoded, they come back as they were. Raises ValueError."""
    text = normalize_name(name)
    if "/" in text or text in (".", ".."):
        raise ValueError(
            f"a person's name must not contain '/' nor be '.' or '..' (a web address could not reach it): "
            f"{display_name(text)}"
        )
    return text


# ---------------------------------------------------------------------------- which face
def choose_face(faces, image_shape, face, source: str) -> tuple[Face, int]:
    """The face to enrol and its index in largest-first order (as ``facenet-keras detect`` lists
    them). Without ``face``: the one usable face (faces the quality gate turned away do not count,
    so a photo with one person and a gated background detection needs no choice); several usable
    faces are refused, since which is the person would be a guess; none usable is refused with the
    gate's reason. With ``face``: 'largest', 'centre' (large and nearest the centre) or an index."""
    from facenet_keras.faces.pipeline import UnusableFaceError, unusable_because

    ordered: list[Face] = sorted(faces, key=lambda f: -f.area)
    if not ordered:
        raise NoFaceError(f"no face found in {source}; nothing was enrolled")
    if face is None:
        usable = [f for f in ordered if f.gated is None]
        if len(usable) > 1:
            raise SeveralFacesError(
                f"{source} shows {len(usable)} faces: say which to enrol with --face largest, "
                f"--face centre or --face INDEX (0 = the largest; 'facenet-keras detect' lists them)",
                ordered,
            )
        if not usable:
            raise UnusableFaceError(
                f"{source}: no usable face to enrol ({unusable_because(ordered[0])}); nothing was enrolled",
                ordered[0],
            )
        return usable[0], ordered.index(usable[0])
    if isinstance(face, str) and not face.isdigit():
        if face not in FACE_CHOICES:
            raise ValueError(f"face must be 'largest', 'centre' or an index, got {face!r}")
        chosen = ordered[0] if face == "largest" else primary_face(ordered, image_shape)
        if chosen is None:  # primary_face finds none only among no faces, ruled out above
            raise NoFaceError(f"no face found in {source}; nothing was enrolled")
        return chosen, ordered.index(chosen)
    index = int(face)
    if not 0 <= index < len(ordered):
        raise ValueError(f"{source} shows {len(ordered)} face(s): face index {index} does not exist")
    return ordered[index], index


class SeveralFacesError(ValueError):
    """A photo to enrol shows several faces and the caller did not say which: ``faces`` (largest
    first) lets a page draw them and ask."""

    def __init__(self, message: str, faces: list[Face]):
        super().__init__(message)
        self.faces = faces


# ---------------------------------------------------------------------------- quality
def check_reference(image: np.ndarray, face: Face, source: str) -> None:
    """Refuse (ValueError, one line) a face that cannot serve as a reference: one the pipeline's gate
    turned away, or one below the stricter :data:`~facenet_keras.faces.quality.REFERENCE_GATE`
    (large and sharp enough to be compared with for years). ``--force`` skips this check."""
    from facenet_keras.faces import quality
    from facenet_keras.faces.pipeline import unusable_because

    if face.gated is not None:
        raise ValueError(
            f"{source}: the face cannot serve as a reference ({unusable_because(face)}); use another photo, or --force"
        )
    if face.quality is not None:  # the pipeline measured it: judge those measures by the stricter gate
        judged = quality.REFERENCE_GATE.rejudge(face.quality)
    else:  # a bare detection passed in by a caller
        (judged,) = quality.assess(image, [face], quality.REFERENCE_GATE)
    if judged.reason is not None:
        why = unusable_because(face.with_quality(judged))
        raise ValueError(
            f"{source}: the face is not good enough to serve as a reference ({why}); use a larger, sharper "
            "photo, or --force"
        )


# ---------------------------------------------------------------------------- warnings
def enrolment_warnings(gallery, name: str, embeddings: np.ndarray, sources, digests, tau: float | None) -> list[str]:
    """One warning per new photo that is already enrolled under another name (same bytes), or whose
    face is within the threshold ``tau`` of another enrolled person (None: no look-alike check)."""
    out = []
    by_digest: dict[str, str] = {}
    for p in gallery.photos():
        if p.name != name and getattr(p, "sha256", None):
            by_digest.setdefault(p.sha256, p.name)
    emb, labels = gallery.embeddings()
    others = [i for i, n in enumerate(labels) if n != name]
    d = pairwise_distances(embeddings, emb[others]) if others and tau is not None else None
    for k, (src, digest) in enumerate(zip(sources, digests)):
        if digest is not None and digest in by_digest:
            out.append(
                f"{src} is already enrolled as {display_name(by_digest[digest])}: the same photo now stands "
                f"for two people; remove one ('gallery remove')"
            )
            continue
        if d is not None:
            j = int(np.argmin(d[k]))
            if d[k, j] <= tau:
                who = display_name(str(labels[others[j]]))
                out.append(
                    f"{src} looks like {who} (distance {d[k, j]:.2f} <= threshold {tau:.2f}): check that it "
                    f"shows {display_name(name)}"
                )
    return out
