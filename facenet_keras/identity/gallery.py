"""``FaceGallery``: the public face of a gallery, a thin facade over a storage backend plus the
enrolment decision.

Enrolment is one-shot: a new person is one more row, no retraining. All photos are encoded before
anything is written, and the write is one transaction, so a bad photo or a crash leaves the gallery
as it was. The store (SQLite by default, chosen by the gallery URL) keeps and searches embeddings;
:func:`facenet_keras.identity.recognition.enroll` turns photos into embeddings.

Erasure: :meth:`FaceGallery.remove` deletes a person's embeddings and face crops from the store and
every cached embedding of their photos (keyed by the photos' sha256, which the gallery keeps), so
nothing derived from their face stays behind in the package's files.
"""

from __future__ import annotations

import os

import numpy as np

from facenet_keras.identity.search import Match
from facenet_keras.identity.stores.base import GalleryStore, Photo, normalize_name
from facenet_keras.identity.stores.urls import default_gallery_path, open_store
from facenet_keras.weights.cache import erase_photo_entries

__all__ = ["FaceGallery", "Match", "Photo", "default_gallery_path"]


class FaceGallery:
    """Enrolled people and their face embeddings.

    ``url``: a path or ``sqlite:///path`` (default: ``$FACENET_KERAS_GALLERY`` or the user data
    folder); ``":memory:"`` keeps it in memory. ``backend``: in-process search for the SQLite store,
    'exact' (default), 'faiss' or 'faiss-hnsw'. ``readonly``: open an existing gallery for reading
    only (nothing is ever created or changed). ``profile``: 'fast' or 'accurate', the encoders
    its decisions use when a call names no ``model`` (default: the profile its stored embeddings
    were built with, else the default encoder); a gallery of another profile is refused on use.
    """

    def __init__(
        self,
        url: str | os.PathLike | None = None,
        *,
        backend: str = "exact",
        store: GalleryStore | None = None,
        readonly: bool = False,
        profile=None,
    ):
        from facenet_keras.faces.profiles import get_profile

        self.profile = None if profile is None else get_profile(profile)
        self.store = store if store is not None else open_store(url, backend=backend, readonly=readonly)
        self.backend = backend

    # ------------------------------------------------------------------ the decisions
    def enroll(self, name: str, images, *, model=None, detector=None, face=None, force: bool = False):
        """Enrol ``name`` from one or several photos (paths, bytes, PIL images or arrays); see
        :func:`facenet_keras.identity.recognition.enroll`. Returns an ``Enrolment`` (iterating it
        gives the new rows' ids)."""
        from facenet_keras.identity.recognition import enroll

        return enroll(self, name, images, model=model, detector=detector, face=face, force=force)

    def migrate(self, *, model=None, detector=None) -> dict:
        """Re-encode the gallery for ``model``'s embedding space from its stored face crops (or
        upgrade an old gallery in place); see :func:`facenet_keras.identity.recognition.migrate`."""
        from facenet_keras.identity.recognition import migrate

        return migrate(self, model=model, detector=detector)

    def enroll_folder(
        self, root, *, model=None, detector=None, progress: bool | None = None, several_faces: str = "skip"
    ):
        """Enrol everyone in ``root`` (one sub-folder per person); returns the per-photo report
        (enrolled / no face / several faces / duplicate / unreadable); see
        :func:`facenet_keras.identity.folders.enroll_folder`."""
        from facenet_keras.identity.folders import enroll_folder

        return enroll_folder(self, root, model=model, detector=detector, progress=progress, several_faces=several_faces)

    # ------------------------------------------------------------------ storage, delegated
    @property
    def path(self):
        return self.store.path

    @property
    def threshold(self) -> float | None:
        """A calibrated distance threshold stored with the gallery (used by verify/recognize), or None."""
        return self.store.threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self.store.threshold = value

    @property
    def space_id(self) -> str | None:
        """The embedding space (encoder weights, chip alignment, augmentation) of the stored embeddings."""
        return self.store.space_id

    model_id = space_id  # the 0.2 name

    def add(
        self,
        name: str,
        embeddings,
        *,
        sources=None,
        boxes=None,
        space_id: str | None = None,
        crops=None,
        digests=None,
        model_id: str | None = None,
    ) -> list[int]:
        """Enrol precomputed ``embeddings`` (N, D) for ``name`` in one transaction; returns the row ids.
        ``space_id`` (``model_id`` in 0.2): the embedding space they come from."""
        return self.store.add(
            normalize_name(name),
            embeddings,
            sources=sources,
            boxes=boxes,
            space_id=space_id if space_id is not None else model_id,
            crops=crops,
            digests=digests,
        )

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow); the new name obeys the rulebook's
        :func:`~facenet_keras.identity.rules.check_new_name`."""
        from facenet_keras.identity.rules import check_new_name

        self.store.rename(normalize_name(old), check_new_name(new))

    def remove(self, name: str) -> int:
        """Erase a person: their embeddings, face crops and the cached embeddings of their photos.
        Returns how many photos went."""
        name = normalize_name(name)
        digests = [p.sha256 for p in self.store.photos(name)]  # KeyError naming who is enrolled
        n = self.store.remove(name)
        erase_photo_entries(d for d in digests if d)
        return n

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo (and its cached embeddings); a person left with no photo is removed too."""
        digests = [p.sha256 for p in self.store.photos() if p.id == int(photo_id)]
        self.store.remove_photo(photo_id)
        erase_photo_entries(d for d in digests if d)

    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return self.store.names()

    def __contains__(self, name: str) -> bool:
        return name in self.store

    def people(self) -> dict[str, int]:
        """Each enrolled name with its number of photos."""
        return self.store.people()

    def photos(self, name: str | None = None) -> list[Photo]:
        """The enrolled photos (of one person, or all)."""
        return self.store.photos(name)

    def embeddings(self, name: str | None = None) -> tuple[np.ndarray, list[str]]:
        """All stored embeddings (M, D) float32 and the name of each row (or one person's)."""
        return self.store.embeddings(name)

    def search(self, queries) -> list[Match]:
        """For each query embedding (Q, D): the nearest identity, its distance, and the runner-up.

        No thresholding here: deciding "not recognised" is :func:`facenet_keras.recognize`'s job.
        """
        return self.store.search(queries)

    def __len__(self) -> int:
        return len(self.store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"FaceGallery({str(self.path)!r}, people={len(self)}, backend={self.backend!r})"
