"""The people of a library: cluster the unnamed faces, name a cluster once (which enrols that person
in the gallery with all its faces), merge, split, and show a person or cluster as a contact sheet.

A *target* on the command line is a cluster id (an integer, from the last ``cluster`` run) or a
person's name. Named people are the gallery's; the library records which faces are theirs.
"""

from __future__ import annotations

import os

import numpy as np

from facenet_keras.library import clustering
from facenet_keras.library.store import FaceRecord, LibraryStore

__all__ = [
    "run_clustering",
    "summary",
    "parse_target",
    "name_cluster",
    "merge",
    "split",
    "faces_of",
    "best_faces",
    "face_crop",
    "contact_sheet",
]


def parse_target(text: str) -> int | str:
    """A cluster id (all digits) or a person's name (anything else), stripped."""
    text = str(text).strip()
    if not text:
        raise ValueError("give a cluster id or a person's name")
    return int(text) if text.isdigit() else text


def run_clustering(
    library: LibraryStore,
    *,
    method: str = clustering.DEFAULT_METHOD,
    threshold: float | None = None,
    backend: str = "exact",
    calibration: clustering.Calibration | None = None,
) -> dict:
    """Group every face that belongs to no named person; clusters numbered 1, 2, ... by size, faces
    left alone in none. Replaces the previous clustering. Returns what was done, threshold included.
    ``calibration``: the profile's distances, from which the default cut is derived (default: the
    calibration of the profile the library's faces were encoded with)."""
    if calibration is None:
        calibration = clustering.calibration_for(library.meta("model_id"))
    ids, emb = library.embeddings(unnamed=True)
    labels, tau = (
        clustering.cluster(emb, method=method, threshold=threshold, backend=backend, calibration=calibration)
        if len(ids)
        else (
            np.zeros(0, np.int64),
            clustering.clustering_threshold(0, calibration) if threshold is None else float(threshold),
        )
    )
    library.set_clusters(ids.tolist(), [None if c < 0 else int(c) + 1 for c in labels], replace_all=True)
    library.set_meta("cluster_threshold", repr(float(tau)))
    library.set_meta("cluster_method", method)
    return {
        "faces": int(len(ids)),
        "clusters": int(labels.max() + 1) if len(labels) and labels.max() >= 0 else 0,
        "unclustered": int(np.count_nonzero(labels < 0)),
        "threshold": round(float(tau), 4),
        "method": method,
        "threshold_rule": (
            f"strangers within the cut balance {calibration.balance:g} x own photos beyond it, N = {len(ids)} faces"
            if threshold is None
            else "given"
        ),
    }


def summary(library: LibraryStore, gallery, *, sample: int = 4) -> dict:
    """Named people (faces and photos in the library, enrolled photos in the gallery) and clusters;
    each with ``sample``: the ids of up to ``sample`` of its best faces (:func:`best_faces`)."""
    faces = library.faces()
    people: dict[str, list[FaceRecord]] = {}
    clusters: dict[int, list[FaceRecord]] = {}
    for f in faces:
        if f.person is not None:
            people.setdefault(f.person, []).append(f)
        elif f.cluster is not None:
            clusters.setdefault(f.cluster, []).append(f)
    enrolled = gallery.people()
    names = sorted(set(people) | set(enrolled))
    return {
        "people": [
            {
                "name": n,
                "faces": len(people.get(n, [])),
                "photos": len({f.path for f in people.get(n, [])}),
                "enrolled_photos": enrolled.get(n, 0),
                "sample": [f.id for f in best_faces(people.get(n, []), sample)],
            }
            for n in names
        ],
        "clusters": [
            {
                "cluster": c,
                "faces": len(fs),
                "photos": sorted({f.path for f in fs if f.path is not None})[:3],
                "sample": [f.id for f in best_faces(fs, sample)],
            }
            for c, fs in sorted(clusters.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
        "unclustered": sum(1 for f in faces if f.person is None and f.cluster is None),
        "threshold": library.meta("cluster_threshold"),
        "method": library.meta("cluster_method"),
    }


def faces_of(library: LibraryStore, target: int | str, *, embeddings: bool = False) -> list[FaceRecord]:
    """The faces of a cluster or person; KeyError naming what exists when there are none."""
    if isinstance(target, int):
        faces = library.faces(cluster=target, embeddings=embeddings)
    else:
        faces = library.faces(person=target, embeddings=embeddings)
    if not faces:
        raise KeyError(_unknown(library, target))
    return faces


def _unknown(library: LibraryStore, target) -> str:
    recs = library.faces()
    clusters = sorted({f.cluster for f in recs if f.cluster is not None})
    names = sorted({f.person for f in recs if f.person is not None})
    listing = (
        f"clusters {', '.join(map(str, clusters[:12]))}{' ...' if len(clusters) > 12 else ''}"
        if clusters
        else "no clusters (run 'facenet-keras cluster')"
    )
    listing += f"; people: {', '.join(names[:12]) or 'nobody named yet'}"
    what = f"cluster {target}" if isinstance(target, int) else f"{target!r}"
    return f"no faces of {what} in {library.path} ({listing})"


def name_cluster(library: LibraryStore, gallery, cluster: int, name: str) -> int:
    """Name cluster ``cluster``: all its faces are enrolled as ``name`` in the gallery (a new person,
    or more photos of one already there) and marked as theirs. Returns the number of faces."""
    from facenet_keras.identity.rules import check_new_name

    name = check_new_name(name)
    faces = faces_of(library, int(cluster), embeddings=True)
    gallery.add(
        name,
        np.stack([f.embedding for f in faces]),
        sources=[f.path for f in faces],
        boxes=[f.box for f in faces],
        model_id=library.meta("model_id"),
    )
    library.set_person([f.id for f in faces], name, [None] * len(faces))
    return len(faces)


def merge(library: LibraryStore, gallery, a: int | str, b: int | str) -> str:
    """Merge B into A. Two clusters: B's faces join A. A name and a cluster (either order): the
    cluster is named. Two names: B's enrolled photos and faces become A's, and B is removed."""
    if isinstance(a, int) and isinstance(b, int):
        faces = faces_of(library, b)
        faces_of(library, a)
        library.set_clusters([f.id for f in faces], [a] * len(faces))
        return f"cluster {b} ({len(faces)} faces) merged into cluster {a}"
    if isinstance(a, int) or isinstance(b, int):
        cluster, name = (a, b) if isinstance(a, int) else (b, a)
        n = name_cluster(library, gallery, cluster, name)
        return f"cluster {cluster} ({n} faces) named {name!r}"
    if a == b:
        raise ValueError("merge needs two different people")
    emb, _ = gallery.embeddings(b)  # KeyError naming who is enrolled
    gallery.embeddings(a)
    photos = gallery.photos(b)
    gallery.add(a, emb, sources=[p.source for p in photos], boxes=[p.box for p in photos])
    gallery.remove(b)
    moved = library.rename_person(b, a)
    return f"{b!r} merged into {a!r} ({len(emb)} enrolled photos, {moved} library faces)"


def split(library: LibraryStore, cluster: int, threshold: float | None = None) -> dict:
    """Re-cluster one cluster's faces at a stricter cut (default: 0.8 x the last clustering's
    threshold); its parts get new ids, faces left alone leave every cluster."""
    faces = faces_of(library, int(cluster), embeddings=True)
    last = library.meta("cluster_threshold")
    tau = (
        float(threshold)
        if threshold is not None
        else 0.8 * (float(last) if last else clustering.clustering_threshold(len(faces)))
    )
    labels, _ = clustering.cluster(np.stack([f.embedding for f in faces]), threshold=tau)
    known = [f.cluster for f in library.faces() if f.cluster is not None]
    base = max(known) if known else 0
    new = [None if c < 0 else (int(cluster) if c == 0 else base + int(c)) for c in labels]
    library.set_clusters([f.id for f in faces], new)
    parts = sorted({c for c in new if c is not None})
    return {
        "cluster": int(cluster),
        "threshold": round(tau, 4),
        "parts": parts,
        "sizes": [new.count(c) for c in parts],
        "unclustered": new.count(None),
    }


def best_faces(faces: list[FaceRecord], n: int) -> list[FaceRecord]:
    """The ``n`` faces that show a person best: largest and sharpest first (ties: lowest id)."""
    return sorted(faces, key=lambda f: (-f.size * min(f.sharpness, 500.0), f.id))[: max(0, int(n))]


def face_crop(image: np.ndarray, box, tile: int = 112):
    """A square PIL image ``tile`` px wide of the face at ``box`` (x, y, w, h, pixels of ``image``,
    an (H, W, 3) uint8 photo) with a margin of a quarter of the box around it (black past the edges)."""
    from PIL import Image

    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * 1.5
    cx, cy = x + w / 2, y + h / 2
    left, top = int(cx - side / 2), int(cy - side / 2)
    crop = Image.fromarray(image).crop((left, top, left + int(side), top + int(side)))
    return crop.resize((tile, tile), Image.BILINEAR)


def contact_sheet(
    faces: list[FaceRecord],
    out: str | os.PathLike,
    *,
    title: str = "",
    tile: int = 112,
    columns: int = 8,
    limit: int = 64,
) -> int:
    """Write a grid of the faces (cut from their photos with a margin, ``tile`` px square, largest and
    sharpest first) to ``out`` (PNG or JPEG, 0600, atomic). Faces whose photo is gone are skipped.
    Returns the number of faces drawn."""
    from PIL import Image, ImageDraw

    from facenet_keras.files import atomic_write
    from facenet_keras.images import ImageError, load_image

    chosen = best_faces(faces, limit)
    tiles = []
    loaded: dict = {}
    for f in chosen:
        if f.path not in loaded:
            try:
                loaded[f.path] = load_image(f.path)
            except (ImageError, OSError, TypeError):
                loaded[f.path] = None
        image = loaded[f.path]
        if image is None:
            continue
        tiles.append((face_crop(image, f.box, tile), os.path.basename(str(f.path))))
    if not tiles:
        raise ValueError("none of these faces' photos can be read any more; run 'facenet-keras index' again")
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    caption, head = 14, 20 if title else 0
    sheet = Image.new("RGB", (columns * tile, head + rows * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 4), title, fill="black")
    for n, (crop, label) in enumerate(tiles):
        r, c = divmod(n, columns)
        sheet.paste(crop, (c * tile, head + r * (tile + caption)))
        draw.text((c * tile + 2, head + r * (tile + caption) + tile + 1), label[:18], fill="black")
    suffix = os.path.splitext(str(out))[1].lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix)
    if fmt is None:
        raise ValueError(f"contact sheet must be .png or .jpg, got {out}")
    with atomic_write(out) as fh:
        sheet.save(fh, format=fmt)
    return len(tiles)
