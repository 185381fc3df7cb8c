"""Enrol a whole folder of people (``ROOT/<person>/<photo>``, one sub-folder per person) in one run.

A batch job: it runs to the end and says, for every photo, what became of it (:data:`OUTCOMES`):

* ``enrolled``: one face, stored under the folder's name;
* ``no face``: nothing to enrol;
* ``several faces``: several usable faces, refused by default, since which face is the person is a guess
  (``several_faces="main"`` takes the main face, as :func:`~facenet_keras.identity.recognition.enroll`
  does); detections the quality gate turned away (a background speck, a button) do not count;
* ``unusable face``: the main face cannot serve as a reference (the gate's reason, or below the
  reference gate: too small, blurred, turned away), see :func:`~facenet_keras.identity.rules.check_reference`;
* ``duplicate``: the same pixels as a photo already enrolled (in the gallery, or earlier in this
  run): a copy of the file, or the folder enrolled again, which therefore adds nothing. A re-saved
  JPEG is a different picture to the encoder and is enrolled (see :data:`DUPLICATE_DISTANCE`);
* ``unreadable``: not an image, or a broken one;
* ``bad name``: the folder's name cannot be a person's (control characters: the rulebook's
  :func:`~facenet_keras.identity.rules.check_new_name`), so none of its photos is enrolled.

Each person's photos are encoded together and written in one transaction, so an interruption
leaves every person either fully enrolled from this run or untouched.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facenet_keras.faces.face import Face
from facenet_keras.faces.pipeline import pipeline_for, primary_face
from facenet_keras.identity.recognition import enroll_faces, photo_digest
from facenet_keras.identity.rules import check_gallery_space, check_new_name, check_reference, encoder_for
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.images import list_identities, load_image

OUTCOMES = ("enrolled", "no face", "several faces", "unusable face", "duplicate", "unreadable", "bad name")
#: Outcomes that are failures (``--strict`` turns any of them into exit code 2). A duplicate is not:
#: the photo is already enrolled, which is what was asked.
FAILURES = frozenset({"no face", "several faces", "unusable face", "unreadable", "bad name"})
#: Two embeddings closer than this come from the same pixels (float noise of batching only). A JPEG
#: re-save moves the embedding 0.045-0.076 (Grace Hopper's portrait, quality 95-75), as far as two
#: near-identical video frames in faces/ (0.045), so no threshold could tell "re-saved" from "another
#: frame": only identical pictures are duplicates.
DUPLICATE_DISTANCE = 1e-3
SEVERAL_FACES = ("skip", "main")


@dataclass(frozen=True)
class PhotoOutcome:
    """What became of one photo: ``outcome`` is one of :data:`OUTCOMES`; ``faces``: faces found;
    ``detail``: why (the image error, whom it duplicates); ``photo_id``: the new gallery row."""

    path: str
    person: str
    outcome: str
    faces: int = 0
    detail: str = ""
    photo_id: int | None = None


@dataclass
class FolderEnrolment:
    """The per-photo report of :func:`enroll_folder`."""

    root: str
    photos: list[PhotoOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many photos had each outcome (every outcome listed, zeros included)."""
        return {o: sum(p.outcome == o for p in self.photos) for o in OUTCOMES}

    def by_outcome(self, outcome: str) -> list[str]:
        """The paths of the photos with this outcome."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        return [p.path for p in self.photos if p.outcome == outcome]

    @property
    def failures(self) -> list[PhotoOutcome]:
        return [p for p in self.photos if p.outcome in FAILURES]

    def people(self) -> dict[str, int]:
        """Each person with the number of photos enrolled for them in this run."""
        out: dict[str, int] = {}
        for p in self.photos:
            if p.outcome == "enrolled":
                out[p.person] = out.get(p.person, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "counts": self.counts(),
            "people": self.people(),
            "photos": [asdict(p) for p in self.photos],
        }


def enroll_folder(
    gallery,
    root: str | os.PathLike,
    *,
    model=None,
    detector=None,
    progress: bool | None = None,
    several_faces: str = "skip",
) -> FolderEnrolment:
    """Enrol every person of ``root`` (``ROOT/<person>/<photo>``) in ``gallery``; one report line per photo.

    ``several_faces``: "skip" (default) refuses a photo with more than one face; "main" enrols its
    main face. ``progress``: draw a progress bar over the photos (default: when there are 8 or more).
    Raises FileNotFoundError / ValueError only when ``root`` is not a folder of identity folders.
    """
    from tqdm.auto import tqdm

    if several_faces not in SEVERAL_FACES:
        raise ValueError(f"several_faces must be one of {SEVERAL_FACES}, got {several_faces!r}")
    people = list_identities(root)
    report = FolderEnrolment(str(root))
    total = sum(len(photos) for photos in people.values())
    show = progress if progress is not None else total >= 8
    model = encoder_for(gallery, model)  # the gallery's own profile when none is named
    space = check_gallery_space(gallery, model)  # refused before any work when the encoder does not fit
    with tqdm(total=total, desc="enrolling", unit="photo", disable=not show) as bar:
        for person, photos in people.items():
            report.photos += _enroll_person(gallery, person, photos, model, detector, several_faces, space)
            bar.update(len(photos))
    return report


def _enroll_person(
    gallery, person: str, photos: list[Path], model, detector, several_faces: str, space: str
) -> list[PhotoOutcome]:
    """One person's photos: decide each, then write the accepted ones in one transaction through the
    one enrolment decision (:func:`facenet_keras.identity.recognition.enroll_faces`)."""
    try:
        person = check_new_name(person)  # before any work: the whole folder is refused
    except ValueError as exc:
        return [PhotoOutcome(str(file), person, "bad name", detail=str(exc)) for file in photos]
    outcomes: list[PhotoOutcome | None] = [None] * len(photos)
    images, readable = [], []
    for i, file in enumerate(photos):
        try:
            images.append(load_image(file))
            readable.append(i)
        except (ValueError, OSError) as exc:  # ImageError is a ValueError; OSError: unreadable file
            outcomes[i] = PhotoOutcome(str(file), person, "unreadable", detail=str(exc))
    per_image = pipeline_for(model, detector=detector).encode_images(images) if images else []
    accepted: list[tuple[int, Face]] = []  # (photo index, face)
    for i, image, faces in zip(readable, images, per_image):
        path, n = str(photos[i]), len(faces)
        if n == 0:
            outcomes[i] = PhotoOutcome(path, person, "no face")
            continue
        if sum(f.gated is None for f in faces) > 1 and several_faces == "skip":
            outcomes[i] = PhotoOutcome(path, person, "several faces", n)
            continue
        face = primary_face(faces, image.shape)
        if face is None:  # n >= 1, so primary_face found one
            raise RuntimeError(f"{path}: no main face among {n} faces")
        try:
            check_reference(image, face, path)  # the gate's reason when it turned the face away
        except ValueError as exc:
            outcomes[i] = PhotoOutcome(path, person, "unusable face", n, detail=str(exc))
            continue
        twin = _duplicate_of(gallery, _vector(face), [(str(photos[j]), _vector(f)) for j, f in accepted])
        if twin is not None:
            outcomes[i] = PhotoOutcome(path, person, "duplicate", n, detail=f"same picture as {twin}")
            continue
        accepted.append((i, face))
    if accepted:
        keep = [readable.index(i) for i, _ in accepted]
        done = enroll_faces(
            gallery,
            person,
            [str(photos[i]) for i, _ in accepted],
            [images[k] for k in keep],
            [[face] for _, face in accepted],
            [photo_digest(photos[i]) for i, _ in accepted],
            model=model,
            space=space,
            force=True,
        )  # checked above, photo by photo
        ids = done.ids
        for (i, _face), photo_id in zip(accepted, ids):
            n = len(per_image[readable.index(i)])
            outcomes[i] = PhotoOutcome(
                str(photos[i]),
                person,
                "enrolled",
                n,
                detail="main face of several" if n > 1 else "",
                photo_id=int(photo_id),
            )
    return [o for o in outcomes if o is not None]  # every slot is filled above


def _vector(face: Face) -> np.ndarray:
    if face.embedding is None:
        raise RuntimeError("a face came back without an embedding")
    return face.embedding


def _duplicate_of(gallery, embedding: np.ndarray, pending: list[tuple[str, np.ndarray]]) -> str | None:
    """Who or what ``embedding`` duplicates: an enrolled person ("NAME (enrolled)"), a photo accepted
    earlier in this run, or None."""
    (match,) = gallery.search(embedding[None])
    if match.identity is not None and match.distance < DUPLICATE_DISTANCE:
        return f"a photo of {match.identity!r} already enrolled"
    if pending:
        d = pairwise_distances(embedding[None], np.stack([e for _, e in pending]))[0]
        j = int(np.argmin(d))
        if d[j] < DUPLICATE_DISTANCE:
            return pending[j][0]
    return None
