"""Find photos in the library: every photo of a named person, or of whoever is in a given face.

Distances are the usual Euclidean distances between embeddings, compared with the usual threshold
(:func:`facenet_keras.identity.recognition.resolve_threshold`): a face is someone's when its
nearest enrolled person is them and within the threshold.
"""

from __future__ import annotations

import numpy as np

from facenet_keras.identity.search import pairwise_distances
from facenet_keras.library.store import FaceRecord, LibraryStore

__all__ = ["photos_of", "photos_like"]


def _by_photo(hits: list[tuple[FaceRecord, float | None, str]]) -> list[dict]:
    """One entry per photo (its best face), nearest first; named faces (distance None) first."""
    best: dict[str, tuple[FaceRecord, float | None, str]] = {}
    for face, d, how in hits:
        if face.path is None:
            continue
        key = -1.0 if d is None else d
        old = best.get(face.path)
        if old is None or key < (-1.0 if old[1] is None else old[1]):
            best[face.path] = (face, d, how)
    rows = sorted(best.values(), key=lambda t: (-1.0 if t[1] is None else t[1], t[0].path))
    return [
        {
            "photo": f.path,
            "face": f.id,
            "box": [round(float(v), 1) for v in f.box],
            "distance": None if d is None else round(float(d), 4),
            "how": how,
            "cluster": f.cluster,
            "person": f.person,
        }
        for f, d, how in rows
    ]


def photos_of(library: LibraryStore, gallery, name: str, threshold: float | None = None, *, model=None) -> list[dict]:
    """Every photo of ``name``: faces named or recognised as them, plus unnamed faces whose nearest
    enrolled person is ``name`` within the threshold (the one that belongs to ``model``, the encoder
    the library was indexed with). ``distance``: to the nearest of their enrolled photos other than
    the face itself (None when the face is their only enrolled photo). Gated faces never match."""
    return _photos_of(library, gallery, name, _checked_threshold(library, gallery, threshold, model))


def _photos_of(library: LibraryStore, gallery, name: str, tau: float) -> list[dict]:
    """:func:`photos_of` with the threshold already resolved (and the spaces already checked)."""
    enrolled, _ = gallery.embeddings(name)  # KeyError naming who is enrolled
    hits = []
    own = library.faces(person=name, embeddings=True)
    for f in own:
        d = pairwise_distances(f.embedding[None], enrolled)[0]
        d = d[d > 1e-5]  # leave out the face's own enrolment
        hits.append((f, float(d.min()) if len(d) else None, "named" if f.distance is None else "recognised"))
    unnamed = library.faces(unnamed=True, embeddings=True)
    if unnamed:
        matches = gallery.search(np.stack([f.embedding for f in unnamed]))
        for f, m in zip(unnamed, matches):
            if m.identity == name and m.distance <= tau:
                hits.append((f, m.distance, "matched"))
    return _by_photo(hits)


def photos_like(library: LibraryStore, gallery, image, threshold: float | None = None, *, model=None) -> dict:
    """The photos of whoever is in ``image`` (its main face): if that face is a named person's, all
    their photos; else every indexed face within the threshold, with the rest of the cluster of the
    nearest of them. Returns ``{"person", "distance", "photos"}``; NoFaceError (a ValueError) when
    no face is found, UnusableFaceError when the quality gate turned it away."""
    from facenet_keras.faces.pipeline import pipeline_for
    from facenet_keras.identity.rules import encoder_for

    pipe = pipeline_for(encoder_for(gallery, model))
    tau = _checked_threshold(library, gallery, threshold, pipe)
    face, _, _ = pipe.encode_main(image)
    if len(gallery):
        m = gallery.search(face.embedding[None])[0]
        if m.identity is not None and m.distance <= tau:
            return {
                "person": m.identity,
                "distance": round(m.distance, 4),
                "photos": _photos_of(library, gallery, m.identity, tau),
            }
    records = library.faces(embeddings=True)
    if not records:
        return {"person": None, "distance": None, "photos": []}
    d = pairwise_distances(face.embedding[None], np.stack([f.embedding for f in records]))[0]
    near = [(records[i], float(d[i]), "matched") for i in np.flatnonzero(d <= tau)]
    if near:
        nearest = records[int(np.argmin(d))]
        if nearest.cluster is not None:
            near += [
                (f, float(d[i]), "cluster")
                for i, f in enumerate(records)
                if f.cluster == nearest.cluster and d[i] > tau
            ]
    return {"person": None, "distance": round(float(d.min()), 4), "photos": _by_photo(near)}


def _checked_threshold(library: LibraryStore, gallery, threshold: float | None, model) -> float:
    """The threshold of the encoder ``model``, after checking the gallery and the library hold its
    embedding space (a library of another encoder's faces is refused, never searched)."""
    from facenet_keras.faces.pipeline import pipeline_for
    from facenet_keras.identity.rules import check_gallery_space, encoder_for, resolve_threshold

    pipe = pipeline_for(encoder_for(gallery, model))
    space = check_gallery_space(gallery, pipe)
    stored = library.meta("model_id")
    if stored is not None and stored != space:
        raise ValueError(
            f"{library.path} indexes faces of embedding space {stored!r}, not {space!r} (the encoder in use): "
            "search it with the encoder it was indexed with"
        )
    return resolve_threshold(threshold, gallery, pipe)
