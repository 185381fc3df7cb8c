"""A gallery as one portable file, so it moves between backends (SQLite -> PostgreSQL -> Milvus)
without re-encoding a photo.

The file is JSON (private, 0600; written atomically)::

    {"format": "facenet-keras-gallery", "version": 1, "encoder": "...", "threshold": 0.55, "dim": 128,
     "people": [{"name": "Ada", "photos": [{"source": "ada.jpg", "box": [x, y, w, h],
                  "sha256": "<photo file hash, when the store kept one>",
                  "key": "<sha256 of the float32 embedding bytes>",
                  "embedding": "<base64 of little-endian float32 x dim>"}]}]}

Import checks every embedding against its key, refuses a different dimension or encoder, and is
idempotent: a photo whose key is already stored for that person is skipped, so an interrupted
import can simply be run again. Each person is one ``add`` (one transaction, or one committed batch).
"""
from __future__ import annotations

import base64
import json
import os

import numpy as np

from facenet_keras.files import atomic_write
from facenet_keras.identity.remote import embedding_key

FORMAT = "facenet-keras-gallery"
VERSION = 1


def export_gallery(gallery, path: str | os.PathLike) -> dict:
    """Write ``gallery`` (a FaceGallery or a store) to ``path``; returns a summary (people, photos)."""
    store = getattr(gallery, "store", gallery)
    emb, labels = store.embeddings()
    photos = store.photos()
    if len(photos) != len(emb) or any(p.name != n for p, n in zip(photos, labels)):
        raise RuntimeError("the gallery changed while it was exported; run the export again")
    hashes = store.photo_hashes() if hasattr(store, "photo_hashes") else {}
    people: dict[str, list] = {}
    for photo, vec in zip(photos, emb):
        vec = np.ascontiguousarray(vec, dtype="<f4")
        people.setdefault(photo.name, []).append({
            "source": photo.source, "box": None if photo.box is None else [float(v) for v in photo.box],
            "sha256": hashes.get(photo.id), "key": embedding_key(vec),
            "embedding": base64.b64encode(vec.tobytes()).decode("ascii")})
    doc = {"format": FORMAT, "version": VERSION, "encoder": store.model_id, "threshold": store.threshold,
           "dim": int(emb.shape[1]) if len(emb) else None,
           "people": [{"name": n, "photos": p} for n, p in sorted(people.items())]}
    with atomic_write(path, "w") as f:
        json.dump(doc, f)
    return {"people": len(people), "photos": len(photos), "file": str(path)}


def read_export(path: str | os.PathLike) -> dict:
    """The export at ``path``, checked: format, version, and every embedding against its key."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a gallery export (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a facenet-keras gallery export")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path} is a gallery export of version {doc.get('version')}; this version reads {VERSION}")
    dim = doc.get("dim")
    for person in doc["people"]:
        for photo in person["photos"]:
            raw = base64.b64decode(photo["embedding"])
            vec = np.frombuffer(raw[:len(raw) - len(raw) % 4], dtype="<f4")
            if len(raw) % 4 or (dim is not None and vec.size != dim) or embedding_key(vec) != photo["key"]:
                raise ValueError(f"{path}: a photo of {person['name']!r} ({photo.get('source')}) is corrupt "
                                 "(its embedding does not match its key); nothing was imported")
            photo["vector"] = vec.astype(np.float32)
    return doc


def import_gallery(gallery, path: str | os.PathLike) -> dict:
    """Add the export at ``path`` to ``gallery``; returns counts (people, photos added, photos skipped)."""
    store = getattr(gallery, "store", gallery)
    doc = read_export(path)
    if doc["encoder"] and store.model_id and doc["encoder"] != store.model_id:
        raise ValueError(f"{path} holds embeddings of encoder {doc['encoder']!r}, this gallery {store.model_id!r}; "
                         "nothing was imported")
    added = skipped = 0
    for person in doc["people"]:
        have = set()
        if person["name"] in store:
            have = {embedding_key(v) for v in store.embeddings(person["name"])[0]}
        new = [p for p in person["photos"] if p["key"] not in have]
        skipped += len(person["photos"]) - len(new)
        if not new:
            continue
        kwargs = {}
        if any(p.get("sha256") for p in new) and hasattr(store, "photo_hashes"):
            kwargs["hashes"] = [p.get("sha256") for p in new]
        store.add(person["name"], np.stack([p["vector"] for p in new]), sources=[p["source"] for p in new],
                  boxes=[p["box"] for p in new], model_id=doc["encoder"], **kwargs)
        added += len(new)
    if doc["threshold"] is not None and store.threshold is None:
        store.threshold = doc["threshold"]
    return {"people": len(doc["people"]), "added": added, "skipped": skipped, "threshold": store.threshold}
