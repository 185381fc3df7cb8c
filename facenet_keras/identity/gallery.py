"""``FaceGallery``: the public face of a gallery, a thin facade over a storage backend plus the
enrolment decision.

Enrolment is one-shot: a new person is one more row, no retraining. All photos are encoded before
anything is written, and the write is one transaction, so a bad photo or a crash leaves the gallery
as it was. The store (SQLite by default, chosen by the gallery URL) keeps and searches embeddings;
:func:`facenet_keras.identity.recognition.enroll` turns photos into embeddings.
"""
from __future__ import annotations

import os

import numpy as np

from facenet_keras.identity.search import Match
from facenet_keras.identity.store import GalleryStore, Photo, default_gallery_path, open_store

__all__ = ["FaceGallery", "Match", "Photo", "default_gallery_path"]


class FaceGallery:
    """Enrolled people and their face embeddings.

    ``url``: a path or ``sqlite:///path`` (default: ``$FACENET_KERAS_GALLERY`` or the user data
    folder); ``":memory:"`` keeps it in memory. ``backend``: in-process search for the SQLite store,
    'exact' (default), 'faiss' or 'faiss-hnsw'.
    """

    def __init__(self, url: str | os.PathLike | None = None, *, backend: str = "exact",
                 store: GalleryStore | None = None):
        self.store = store if store is not None else open_store(url, backend=backend)
        self.backend = backend

    # ------------------------------------------------------------------ the decision
    def enroll(self, name: str, images, *, model=None, detector=None) -> list[int]:
        """Enrol ``name`` from one or several photos (paths, bytes, PIL images or arrays); see
        :func:`facenet_keras.identity.recognition.enroll`. Returns the new rows' ids."""
        from facenet_keras.identity.recognition import enroll

        return enroll(self, name, images, model=model, detector=detector)

    def enroll_folder(self, root, *, model=None, detector=None, progress: bool | None = None,
                      several_faces: str = "skip"):
        """Enrol everyone in ``root`` (one sub-folder per person); returns the per-photo report
        (enrolled / no face / several faces / duplicate / unreadable); see
        :func:`facenet_keras.identity.folders.enroll_folder`."""
        from facenet_keras.identity.folders import enroll_folder

        return enroll_folder(self, root, model=model, detector=detector, progress=progress,
                             several_faces=several_faces)

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
    def model_id(self) -> str | None:
        """Which encoder (and pipeline settings) produced the stored embeddings."""
        return self.store.model_id

    def add(self, name: str, embeddings, *, sources=None, boxes=None, model_id: str | None = None) -> list[int]:
        """Enrol precomputed ``embeddings`` (N, D) for ``name`` in one transaction; returns the row ids."""
        return self.store.add(name, embeddings, sources=sources, boxes=boxes, model_id=model_id)

    def rename(self, old: str, new: str) -> None:
        """Rename a person (all their photos follow)."""
        self.store.rename(old, new)

    def remove(self, name: str) -> int:
        """Remove a person and all their photos; returns how many photos went."""
        return self.store.remove(name)

    def remove_photo(self, photo_id: int) -> None:
        """Remove one enrolled photo; a person left with no photo is removed too."""
        self.store.remove_photo(photo_id)

    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return self.store.names()

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

    def __contains__(self, name: str) -> bool:
        return name in self.store

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"FaceGallery({str(self.path)!r}, people={len(self)}, backend={self.backend!r})"
