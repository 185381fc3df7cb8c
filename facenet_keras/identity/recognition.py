"""Decisions: enrolment (photos -> embeddings -> the gallery), verification (1:1, "is this the person
they claim to be?"), recognition (1:K, "who is this?", with "not recognised" for strangers) and
migration (re-encoding a gallery for a new embedding space from its stored face crops).

Both decisions compare Euclidean distances between embeddings with a threshold tau: a match when
d <= tau. The threshold used is, in order: the ``threshold`` argument, the one stored in the gallery
by ``facenet-keras calibrate --save``, then the encoder's own (0.6 for dlib's pretrained ResNet, the
one saved in a trained ``.keras`` file); an encoder without one refuses to decide. A gallery is bound
to one embedding space (:func:`facenet_keras.faces.pipeline.embedding_space_id`): searching it with
another encoder, alignment or augmentation is refused, never answered. Verification can instead use
a trained Siamese classifier (:class:`facenet_keras.training.siamese.SiameseClassifier`, passed in).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field

import numpy as np

from facenet_keras.faces.detection import NoFaceError  # noqa: F401  (re-exported: doors catch it from here)
from facenet_keras.faces.face import Face
from facenet_keras.faces.pipeline import (
    describe_source,
    embedding_space_id,
    encode_batch,
    main_face,
    pipeline_for,
    pipeline_id,
    primary_face,
)
from facenet_keras.files import sha256_file
from facenet_keras.identity.rules import (
    FACE_CHOICES,
    SeveralFacesError,
    check_gallery_space,
    check_new_name,
    check_reference,
    choose_face,
    encoder_for,
    enrolment_warnings,
    resolve_threshold,
)
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.identity.stores.base import Gallery as FaceGallery  # a protocol: gallery.py imports this module
from facenet_keras.identity.stores.base import GalleryError, display_name, normalize_name
from facenet_keras.models.metadata import PRETRAINED_THRESHOLD

__all__ = [
    "FACE_CHOICES",
    "Comparison",
    "Enrolment",
    "Recognition",
    "SeveralFacesError",
    "Verification",
    "check_gallery_space",
    "choose_face",
    "compare",
    "enroll",
    "enroll_faces",
    "migrate",
    "recognize",
    "recognize_batch",
    "recognize_faces",
    "resolve_threshold",
    "verify",
    "verify_face",
]

# tau for the pretrained dlib ResNet with the default pipeline (MTCNN, 5-point alignment, mirrored
# chip averaged in), on its raw (not L2-normalised) 128-D embeddings: see docs/performance.md "How the default
# threshold was chosen". Other encoders carry their own (see encoder_threshold).
DEFAULT_THRESHOLD = PRETRAINED_THRESHOLD

_CROP_MARGIN = 0.5  # stored crop: the face box plus half its size on every side
_CROP_MAX_SIDE = 256


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
        out = {
            "match": self.match,
            "identity": self.identity,
            "distance": round(self.distance, 5),
            "threshold": round(self.threshold, 5),
            "faces_found": self.faces_found,
            "face": self.face.to_dict(embedding=False),
        }
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
        return {
            "identity": self.identity,
            "distance": fin(self.distance),
            "nearest": self.nearest,
            "runner_up": self.runner_up,
            "runner_up_distance": fin(self.runner_up_distance),
            "threshold": round(self.threshold, 5),
            **self.face.to_dict(embedding=False),
        }


@dataclass
class Enrolment:
    """What :func:`enroll` did: the new rows' ids, the photos skipped as already enrolled (same
    sha256), which face was taken in each photo (index in largest-first order, and how many there
    were), and warnings (e.g. the new face is within the threshold of another person)."""

    name: str
    ids: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    faces: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __iter__(self):  # the 0.2 return value was the list of ids
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "photo_ids": self.ids,
            "duplicates": self.duplicates,
            "faces": self.faces,
            "warnings": self.warnings,
        }


# ---------------------------------------------------------------------------- enrolment
def photo_digest(src) -> str | None:
    """sha256 of a photo's bytes (a path or bytes), the key of the embedding cache; None for
    in-memory images, which have no file."""
    if isinstance(src, (str, os.PathLike)):
        try:
            return sha256_file(src)
        except OSError:
            return None  # loading it reports the problem
    if isinstance(src, (bytes, bytearray)):
        return hashlib.sha256(bytes(src)).hexdigest()
    return None


def face_crop(image: np.ndarray, face: Face, margin: float = _CROP_MARGIN, max_side: int = _CROP_MAX_SIDE) -> bytes:
    """A square JPEG crop of ``face`` with ``margin`` (of the box size) on every side, at most
    ``max_side`` px: enough to detect and align the face again when the gallery is re-encoded."""
    from PIL import Image

    x, y, w, h = (float(v) for v in face.box)
    side = max(w, h) * (1 + 2 * margin)
    x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    s = max(1, int(round(side)))
    H, W = image.shape[:2]
    ys = np.clip(np.arange(y0, y0 + s), 0, H - 1)  # replicate the border where the square leaves the photo
    xs = np.clip(np.arange(x0, x0 + s), 0, W - 1)
    crop = Image.fromarray(np.ascontiguousarray(image[ys][:, xs]))
    if s > max_side:
        crop = crop.resize((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def enroll(
    gallery: FaceGallery,
    name: str,
    images,
    *,
    model=None,
    detector=None,
    face=None,
    force: bool = False,
    profile=None,
) -> Enrolment:
    """Enrol ``name`` in ``gallery`` from one or several photos (paths, bytes, PIL images or arrays).

    Each photo must show a face; a photo with several needs ``face`` ('largest', 'centre' or an
    index, largest first). A photo already enrolled for this person (same sha256) adds nothing. The
    face must be large and sharp enough to serve as a reference, unless ``force``. A small face crop
    of each photo is kept in the gallery (for ``gallery migrate``). All photos are checked and
    encoded before anything is written, and the write is one transaction, so a bad photo or an
    interruption leaves the gallery untouched. ``profile`` ('fast' or 'accurate') instead of ``model``;
    neither: the gallery's own (:func:`~facenet_keras.identity.rules.encoder_for`). Returns an
    :class:`Enrolment`.
    """
    model = encoder_for(gallery, model, profile)
    name = check_new_name(name)
    if isinstance(images, (str, os.PathLike, bytes)) or hasattr(images, "shape") or hasattr(images, "mode"):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("enroll needs at least one photo")
    space = check_gallery_space(gallery, model)
    result = Enrolment(name)
    known = {p.sha256 for p in gallery.photos(name)} if name in gallery else set()
    todo, digests = [], []
    for src in images:
        digest = photo_digest(src)
        if digest is not None and digest in known:
            result.duplicates.append(describe_source(src))
            continue
        if digest is not None:
            known.add(digest)
        todo.append(src)
        digests.append(digest)
    if not todo:
        return result
    pipe = pipeline_for(model, detector=detector)
    if force:  # judged and reported, but a gated face may be enrolled
        pipe = pipe.with_gate(None)
    faces_per_image, loaded = pipe.encode_batch(todo, return_images=True)
    return enroll_faces(
        gallery,
        name,
        [describe_source(src) for src in todo],
        loaded,
        faces_per_image,
        digests,
        model=model,
        face=face,
        force=force,
        space=space,
        result=result,
    )


def enroll_faces(
    gallery: FaceGallery,
    name: str,
    sources: list[str],
    images: list[np.ndarray],
    faces_per_image: list[list[Face]],
    digests: list[str | None],
    *,
    model=None,
    face=None,
    force: bool = False,
    space: str | None = None,
    result: Enrolment | None = None,
) -> Enrolment:
    """The enrolment decision on photos already encoded (one list of faces per photo): choose the face
    (:func:`~facenet_keras.identity.rules.choose_face`), check it can serve as a reference (the
    quality gate, unless ``force``), keep its crop, warn of photos enrolled under another name and of
    look-alikes, write in one transaction. :func:`enroll` encodes and calls this; the service and
    folder enrolment call it with faces already encoded."""
    name = check_new_name(name)
    space = space if space is not None else check_gallery_space(gallery, model)
    result = result if result is not None else Enrolment(name)
    vectors: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    crops: list[bytes] = []
    for source, faces, image in zip(sources, faces_per_image, images):
        chosen, index = choose_face(faces, image.shape, face, source)
        if not force:
            check_reference(image, chosen, source)
        vectors.append(_embedding(chosen))
        boxes.append(chosen.box)
        crops.append(face_crop(image, chosen))
        result.faces.append(
            {"photo": source, "face": index, "faces_found": len(faces), "box": [round(float(v), 1) for v in chosen.box]}
        )
    embeddings = np.stack(vectors)
    try:
        tau: float | None = resolve_threshold(None, gallery, model)
    except ValueError:
        tau = None  # an encoder without a threshold cannot say what "close" is
    result.warnings = enrolment_warnings(gallery, name, embeddings, sources, digests, tau)
    result.ids = gallery.add(
        name, embeddings, sources=list(sources), boxes=boxes, space_id=space, crops=crops, digests=list(digests)
    )
    return result


# ---------------------------------------------------------------------------- decisions
def verify(
    image,
    identity: str,
    gallery: FaceGallery,
    threshold: float | None = None,
    *,
    model=None,
    detector=None,
    classifier=None,
    profile=None,
) -> Verification:
    """Is the person in ``image`` the enrolled ``identity``? Match when d <= threshold.

    d is the distance from the photo's face to the nearest of the identity's enrolled photos.
    With a ``classifier`` (a trained :class:`~facenet_keras.siamese.SiameseClassifier`), the match
    is its decision instead: P(same) >= its threshold for the best of the enrolled photos, and the
    probability is reported. When the photo shows several faces the main one (large, nearest the
    centre) is used and ``faces_found`` says how many there were. Raises KeyError for an identity
    not enrolled, :class:`NoFaceError` when the photo has no face (its subclass
    :class:`~facenet_keras.faces.pipeline.UnusableFaceError` when the quality gate turned the main
    face away), and an EmbeddingSpaceError when the gallery was enrolled with another encoder.
    ``profile`` ('fast' or 'accurate') instead of ``model``; neither: the gallery's own.
    """
    model = encoder_for(gallery, model, profile)
    identity = normalize_name(identity)
    enrolled, _ = gallery.embeddings(identity)  # KeyError naming who is enrolled
    check_gallery_space(gallery, model)
    if classifier is None or threshold is not None:
        tau = resolve_threshold(threshold, gallery, model)
    else:  # the classifier decides; the distance threshold is only reported
        tau = _threshold_or_nan(gallery, model)
    face, found, _ = pipeline_for(model, detector=detector).encode_main(image)
    return verify_face(face, identity, enrolled, tau, faces_found=found, classifier=classifier)


def verify_face(
    face: Face, identity: str, enrolled: np.ndarray, threshold: float, *, faces_found: int = 1, classifier=None
) -> Verification:
    """The 1:1 decision for an encoded ``face`` against the identity's ``enrolled`` embeddings (M, D):
    match when the nearest is within ``threshold`` (or by the ``classifier``, see :func:`verify`)."""
    embedding = _embedding(face)
    distance = float(pairwise_distances(embedding[None], enrolled).min())
    if classifier is None:
        return Verification(distance <= threshold, distance, threshold, identity, face, faces_found)
    probe = np.repeat(embedding[None], len(enrolled), axis=0)
    p = float(np.max(classifier.predict_proba(probe, enrolled)))
    return Verification(p >= classifier.threshold, distance, threshold, identity, face, faces_found, p)


def _embedding(face: Face) -> np.ndarray:
    """An encoded face's embedding (D,); the pipeline encodes every face it returns, so a face
    without one is a caller's mistake (a detection passed where an encoded face is needed)."""
    if face.embedding is None:
        raise ValueError("this face has no embedding: encode it first (facenet_keras.encode)")
    return face.embedding


def _threshold_or_nan(gallery, model) -> float:
    """The distance threshold to report beside a classifier's decision (NaN when there is none)."""
    try:
        return resolve_threshold(None, gallery, model)
    except ValueError:
        return float("nan")


def recognize(
    image, gallery: FaceGallery, threshold: float | None = None, *, model=None, detector=None, profile=None
) -> list[Recognition]:
    """Who is each face in ``image``? One :class:`Recognition` per face found (an empty list when
    there is none), largest face first. ``profile`` ('fast' or 'accurate') instead of ``model``."""
    return recognize_batch([image], gallery, threshold, model=model, detector=detector, profile=profile)[0]


def recognize_batch(
    images,
    gallery: FaceGallery,
    threshold: float | None = None,
    *,
    model=None,
    detector=None,
    progress: bool | None = None,
    profile=None,
) -> list[list[Recognition]]:
    """:func:`recognize` for many photos, encoding all their faces in shared batches."""
    model = encoder_for(gallery, model, profile)
    check_gallery_space(gallery, model)
    tau = resolve_threshold(threshold, gallery, model)
    per_image = pipeline_for(model, detector=detector).encode_batch(images, progress=progress)
    return [recognize_faces(faces, gallery, tau) for faces in per_image]


def recognize_faces(faces, gallery: FaceGallery, threshold: float) -> list[Recognition]:
    """The 1:K decision for one photo's encoded ``faces``: one :class:`Recognition` each, largest
    first. A face the quality gate turned away is never named: it is reported with no identity and
    no nearest person (its ``face.gated`` says why), and is not searched for."""
    faces = sorted(faces, key=lambda f: -f.area)
    usable = [f for f in faces if f.gated is None]
    matches = iter(gallery.search(np.stack([_embedding(f) for f in usable])) if usable else [])
    out = []
    for f in faces:
        if f.gated is not None:
            out.append(Recognition(f, None, float("nan"), None, None, float("nan"), threshold))
            continue
        m = next(matches)
        named = m.identity if m.distance <= threshold else None
        out.append(Recognition(f, named, m.distance, m.identity, m.runner_up, m.runner_up_distance, threshold))
    return out


# ---------------------------------------------------------------------------- migration
def migrate(gallery: FaceGallery, *, model=None, detector=None, profile=None) -> dict:
    """Bring ``gallery`` to the embedding space of ``model`` or ``profile`` (default: the gallery's
    own profile, else the pretrained encoder).

    A schema-1 gallery (facenet-keras 0.2 or earlier, no crops) whose recorded pipeline is exactly
    the current one keeps its embeddings and is upgraded in place; one from another pipeline is
    refused untouched (it has no crops to re-encode from). A gallery of another space is re-encoded
    from its stored face crops, all rows in one transaction (any crop without a face: nothing
    changes); its calibrated threshold, which belonged to the old space, is dropped.
    """
    model = encoder_for(gallery, model, profile)
    store = gallery.store
    target = embedding_space_id(model)
    report = {
        "gallery": str(gallery.path),
        "space": target,
        "schema_upgraded": False,
        "re_encoded": 0,
        "threshold_dropped": None,
    }
    if store.needs_upgrade:  # every backend declares its schema upgrade (the store protocol)
        legacy = store.legacy_model_id
        if legacy is not None and legacy != pipeline_id(model):
            raise GalleryError(
                f"the gallery {gallery.path} was enrolled by an older facenet-keras pipeline "
                f"({legacy!r}, now {pipeline_id(model)!r}) and keeps no face crops to re-encode "
                "from: enrol its people again into a new gallery ('gallery list' names their "
                "photos); it was left untouched"
            )
        store.upgrade_schema()
        report["schema_upgraded"] = True
        if legacy is not None:
            store.set_space_id(target)
        return report
    stored = gallery.space_id
    if stored == target or len(gallery) == 0:
        if stored is None and len(gallery) == 0:
            report["space"] = None
        return report
    photos = gallery.photos()
    crops = [store.crop(p.id) for p in photos]
    missing = sorted({p.name for p, c in zip(photos, crops) if c is None})
    if missing:
        raise GalleryError(
            f"the gallery {gallery.path} has photos without a stored face crop (of "
            f"{', '.join(display_name(n) for n in missing[:5])}), so it cannot be re-encoded: "
            "enrol them again into a new gallery"
        )
    faces_per_crop, loaded = encode_batch(crops, model=model, detector=detector, return_images=True)
    embeddings: list[np.ndarray] = []
    failed: list[str] = []
    for photo, faces, image in zip(photos, faces_per_crop, loaded):
        face = primary_face(faces, image.shape)
        if face is None:
            failed.append(f"#{photo.id} ({display_name(photo.name)})")
        else:
            embeddings.append(_embedding(face))
    if failed:
        raise ValueError(
            f"no face found again in the stored crop of photo(s) {', '.join(failed[:5])}: nothing "
            f"was changed; remove those photos ('gallery remove --photo ID') and run migrate again"
        )
    report["threshold_dropped"] = gallery.threshold
    store.replace_embeddings([p.id for p in photos], np.stack(embeddings), target)  # drops the threshold too
    report["re_encoded"] = len(photos)
    return report


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
        return {
            "match": self.match,
            "distance": round(self.distance, 5),
            "threshold": self.threshold,
            "faces_found": list(self.faces_found),
            "faces": [f.to_dict(embedding=False) for f in self.faces],
        }


def compare(photo1, photo2, threshold: float | None = None, *, model=None, detector=None, profile=None) -> Comparison:
    """Are the people in two photos the same person? Match when d <= threshold (default: the
    encoder's own, 0.6 for the pretrained one), as in deepface's ``verify(img1, img2)`` or face_recognition's
    ``compare_faces``.

    Each photo's main face (large, nearest the centre) is used; the two are encoded in one batch.
    Raises :class:`NoFaceError` naming the photo when one has no face. ``profile`` ('fast' or
    'accurate') instead of ``model``.
    """
    model = encoder_for(None, model, profile)
    tau = resolve_threshold(threshold, None, model)
    per_image, loaded = pipeline_for(model, detector=detector).encode_batch(
        [photo1, photo2], progress=False, return_images=True
    )
    return compare_faces(per_image, [image.shape for image in loaded], tau, (photo1, photo2))


def compare_faces(per_image, shapes, threshold: float, sources=("the first photo", "the second photo")) -> Comparison:
    """The 1:1 decision between two photos' encoded faces (one list per photo, and the photos'
    shapes): each photo's main face, match when d <= ``threshold``. :class:`NoFaceError` names a
    photo without a face, :class:`UnusableFaceError` one whose main face the quality gate turned
    away (``sources``: the photos, or their names in messages)."""
    chosen = [main_face(faces, shape, src) for src, faces, shape in zip(sources, per_image, shapes)]
    distance = float(pairwise_distances(_embedding(chosen[0])[None], _embedding(chosen[1])[None])[0, 0])
    return Comparison(
        distance <= threshold, distance, threshold, (chosen[0], chosen[1]), (len(per_image[0]), len(per_image[1]))
    )
