"""A gallery as one portable file, so it moves between backends (SQLite -> PostgreSQL -> Milvus)
without re-encoding a photo.

The file is JSON (private, 0600; written atomically)::

    {"format": "facenet-keras-gallery", "version": 2, "space": "<embedding space id>", "threshold": 0.55,
     "dim": 128,
     "people": [{"name": "Ada", "photos": [{"source": "ada.jpg", "box": [x, y, w, h],
                  "sha256": "<the photo's sha256, when the store kept one>",
                  "key": "<sha256 of the float32 embedding bytes>",
                  "embedding": "<base64 of little-endian float32 x dim>",
                  "crop": "<base64 of the stored face crop (JPEG), or null>",
                  "crop_key": "<sha256 of the crop bytes, or null>"}]}]}

Import checks every embedding and crop against its key, refuses a different dimension or embedding
space (as enrolment does), and is idempotent: a photo whose key is already stored for that person
is skipped, so an interrupted import can simply be run again. Each person is one ``add`` (one
transaction, or one committed batch). Version 1 files (no space, no crops) are read too; their
people come without an embedding space (a gallery refuses to compare them until re-enrolled).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os

import numpy as np

from facenet_keras.files import atomic_write
from facenet_keras.identity.stores.base import EmbeddingSpaceError, display_name
from facenet_keras.identity.stores.remote import embedding_key

FORMAT = "facenet-keras-gallery"
VERSION = 2
READS = (1, 2)


def export_gallery(gallery, path: str | os.PathLike) -> dict:
    """Write ``gallery`` (a FaceGallery or a store) to ``path``; returns a summary (people, photos)."""
    doc = export_document(gallery)
    with atomic_write(path, "w") as f:
        json.dump(doc, f)
    return {"people": len(doc["people"]), "photos": sum(len(p["photos"]) for p in doc["people"]), "file": str(path)}


def export_document(gallery) -> dict:
    """The portable document of ``gallery`` (a FaceGallery or a store): what :func:`export_gallery`
    writes and the service's export endpoint sends."""
    store = getattr(gallery, "store", gallery)
    emb, labels = store.embeddings()
    photos = store.photos()
    if len(photos) != len(emb) or any(p.name != n for p, n in zip(photos, labels)):
        raise RuntimeError("the gallery changed while it was exported; run the export again")
    people: dict[str, list] = {}
    for photo, vec in zip(photos, emb):
        vec = np.ascontiguousarray(vec, dtype="<f4")
        crop = store.crop(photo.id)
        people.setdefault(photo.name, []).append(
            {
                "source": photo.source,
                "box": None if photo.box is None else [float(v) for v in photo.box],
                "sha256": photo.sha256,
                "key": embedding_key(vec),
                "embedding": base64.b64encode(vec.tobytes()).decode("ascii"),
                "crop": None if crop is None else base64.b64encode(crop).decode("ascii"),
                "crop_key": None if crop is None else hashlib.sha256(crop).hexdigest(),
            }
        )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "space": store.space_id,
        "threshold": store.threshold,
        "dim": int(emb.shape[1]) if len(emb) else None,
        "people": [{"name": n, "photos": p} for n, p in sorted(people.items())],
    }
    return doc


def read_export(path: str | os.PathLike) -> dict:
    """The export at ``path``, checked: format, version, and every embedding and crop against its key."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a gallery export (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a facenet-keras gallery export")
    if doc.get("version") not in READS:
        raise ValueError(
            f"{path} is a gallery export of version {doc.get('version')}; this version reads "
            + ", ".join(map(str, READS))
        )
    if doc["version"] == 1:
        doc["space"] = None  # version 1 named the 0.2 pipeline ("encoder"), not an embedding space
    dim = doc.get("dim")
    for person in doc["people"]:
        for photo in person["photos"]:
            where = f"{path}: a photo of {display_name(person['name'])} ({photo.get('source')})"
            try:
                raw = base64.b64decode(photo["embedding"], validate=True)
                crop = None if photo.get("crop") is None else base64.b64decode(photo["crop"], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{where} is corrupt (not base64); nothing was imported") from None
            vec = np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<f4")
            if len(raw) % 4 or (dim is not None and vec.size != dim) or embedding_key(vec) != photo["key"]:
                raise ValueError(f"{where} is corrupt (its embedding does not match its key); nothing was imported")
            if crop is not None and hashlib.sha256(crop).hexdigest() != photo.get("crop_key"):
                raise ValueError(f"{where} is corrupt (its face crop does not match its key); nothing was imported")
            photo["vector"] = vec.astype(np.float32)
            photo["crop_bytes"] = crop
    return doc


def import_gallery(gallery, path: str | os.PathLike) -> dict:
    """Add the export at ``path`` to ``gallery``; returns counts (people, photos added, photos skipped)."""
    store = getattr(gallery, "store", gallery)
    doc = read_export(path)
    space, stored = doc["space"], store.space_id
    if space and stored and space != stored and len(store):
        raise EmbeddingSpaceError(
            f"{path} holds embeddings of space {space!r}, the gallery {store.path} of "
            f"{stored!r}: nothing was imported (re-encode one of them with 'gallery migrate')"
        )
    added = skipped = 0
    for person in doc["people"]:
        have = set()
        if person["name"] in store:
            have = {embedding_key(v) for v in store.embeddings(person["name"])[0]}
        new = [p for p in person["photos"] if p["key"] not in have]
        skipped += len(person["photos"]) - len(new)
        if not new:
            continue
        store.add(
            person["name"],
            np.stack([p["vector"] for p in new]),
            sources=[p["source"] for p in new],
            boxes=[p["box"] for p in new],
            space_id=space,
            crops=[p["crop_bytes"] for p in new],
            digests=[p.get("sha256") for p in new],
        )
        added += len(new)
    if doc["threshold"] is not None and store.threshold is None:
        store.threshold = doc["threshold"]
    return {"people": len(doc["people"]), "added": added, "skipped": skipped, "threshold": store.threshold}
