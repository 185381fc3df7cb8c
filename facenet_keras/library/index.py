"""Index every face of every photo under a folder, incrementally.

A run lists the image files under the folder, and for each one:
  * unchanged since last time (same path, size and mtime): skipped without reading it;
  * new bytes under a new or changed path: hashed (sha256); bytes already indexed (a moved, renamed
    or copied photo) only get the new path, no face is encoded again;
  * really new bytes: detected, aligned and encoded exactly as enrolment does (so distances to the
    gallery mean what they mean for ``recognize``), each face stored with box, landmarks, quality
    and embedding, and recognised against the named people of the gallery (nearest person within the
    usual threshold, else nobody).
Paths under the folder that are gone are dropped, and photos no path points at any more are pruned
with their faces. A file that cannot be read as an image is recorded with its error (and retried
only when its bytes change); it never stops the run. Each photo is written in one transaction
(content, faces, path), so a run killed at any moment resumes where it stopped, with no duplicate.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facenet_keras.files import sha256_file
from facenet_keras.library.store import LibraryStore, PathInfo, library_path_for, open_library

__all__ = ["IndexReport", "index_folder", "index"]

CHUNK = 8  # photos whose chips are encoded together


@dataclass
class IndexReport:
    """What an index run did. ``failed``: path -> reason, for files that could not be indexed
    (this run's and earlier runs' still on disk); ``gated``: reason -> how many new faces the quality
    gate turned away (kept in the index with their reason, never recognised, clustered or named)."""

    folder: str
    files: int = 0
    unchanged: int = 0
    recognised_by_content: int = 0  # moved, renamed or copied: new path, bytes already indexed
    indexed: int = 0
    faces: int = 0
    assigned: dict[str, int] = field(default_factory=dict)
    gated: dict[str, int] = field(default_factory=dict)  # faces the quality gate turned away, per reason
    removed_paths: int = 0
    pruned_photos: int = 0
    pruned_faces: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    encode_seconds: float = 0.0  # reading, detecting, encoding and writing the new photos
    threshold: float | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["photos_per_second"] = round(self.indexed / self.encode_seconds, 3) if self.encode_seconds > 0 else None
        return out


def _file_info(path: Path, known: PathInfo | None) -> tuple[PathInfo, bool]:
    """(info, unchanged): the file's size/mtime, hashing it only when they differ from ``known``."""
    st = path.stat()
    if known is not None and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns:
        return known, True
    return PathInfo(sha256_file(path), int(st.st_size), int(st.st_mtime_ns)), False


def index_folder(
    folder,
    library: LibraryStore,
    gallery,
    *,
    model=None,
    detector=None,
    threshold: float | None = None,
    progress: bool | None = None,
    chunk: int = CHUNK,
) -> IndexReport:
    """Index ``folder`` into ``library`` (a :class:`~facenet_keras.library.store.LibraryStore`),
    recognising new faces against ``gallery`` (a FaceGallery). Returns an :class:`IndexReport`."""
    from tqdm.auto import tqdm

    from facenet_keras.faces.pipeline import pipeline_for
    from facenet_keras.identity.rules import check_gallery_space, encoder_for, resolve_threshold
    from facenet_keras.images import ImageError, iter_image_files, load_image

    t0 = time.perf_counter()
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    root = Path(os.path.abspath(root))  # paths as the user reaches them (symlinks kept, so pruning sees them)
    pipe = pipeline_for(encoder_for(gallery, model), detector=detector)
    model_key = check_gallery_space(gallery, pipe)  # the embedding space; the gallery must hold the same
    stored = library.meta("model_id")
    if stored is not None and stored != model_key:
        raise ValueError(
            f"{library.path} indexes faces of embedding space {stored!r}, not {model_key!r}; "
            "use another library file for another encoder"
        )
    if stored is None:
        library.set_meta("model_id", model_key)
    tau = resolve_threshold(threshold, gallery, pipe)
    report = IndexReport(str(root), threshold=tau)

    # 1. list and recognise what is known; hash only what changed
    files = list(iter_image_files(root))
    seen, todo = set(), []
    for path in files:
        key = str(path)
        seen.add(key)
        known = library.path_info(key)
        try:
            info, unchanged = _file_info(path, known)
        except OSError as exc:
            report.failed[key] = f"cannot read file ({exc.strerror or exc})"
            continue
        if unchanged:
            report.unchanged += 1
        elif library.has_content(info.sha):
            library.set_path(key, info)
            report.recognised_by_content += 1
        else:
            todo.append((key, info))
    report.files = len(files)

    # 2. forget paths that are gone, then photos no path points at
    gone = [p for p in library.paths(str(root)) if p not in seen]
    report.removed_paths = library.remove_paths(gone)
    report.pruned_photos, report.pruned_faces = library.prune()

    # 3. encode what is new, a chunk at a time; each photo written in its own transaction
    t_encode = time.perf_counter()
    show = progress if progress is not None else len(todo) >= 8
    bar = tqdm(total=len(todo), desc="indexing photos", unit="photo", disable=not show)
    done_sha: set[str] = set()
    for start in range(0, len(todo), max(1, int(chunk))):
        batch = []
        for key, info in todo[start : start + chunk]:
            if info.sha in done_sha:  # the same bytes twice in this run (a copy): path only
                library.set_path(key, info)
                report.recognised_by_content += 1
                bar.update(1)
                continue
            try:
                image = load_image(key)
                dets = pipe.detect(image)  # judged by the quality gate
            except (ImageError, OSError) as exc:
                library.add_photo(key, info, [], error=str(exc))
                report.failed[key] = str(exc)
                bar.update(1)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad photo never stops the run (not stored: retried)
                report.failed[key] = f"{type(exc).__name__}: {exc}"
                bar.update(1)
                continue
            batch.append((key, info, image, dets))
            done_sha.add(info.sha)
        if not batch:
            continue
        encoded = pipe.encode_images([b[2] for b in batch], [b[3] for b in batch])
        usable = [f for faces in encoded for f in faces if f.gated is None]
        found = iter(gallery.search(np.stack([f.embedding for f in usable])) if usable and len(gallery) else [])
        for (key, info, image, _), faces_of_photo in zip(batch, encoded):
            shape = image.shape[:2]
            faces = []
            for face in faces_of_photo:
                q = face.quality
                record = {
                    "box": face.box,
                    "landmarks": face.landmarks,
                    "confidence": face.confidence,
                    "embedding": face.embedding,
                    "gated": face.gated,
                    "size": q.size,
                    "sharpness": q.sharpness,
                    "yaw": q.yaw,
                    "pitch": q.pitch,
                    "roll": q.roll,
                }
                if face.gated is None and len(gallery):
                    m = next(found)
                    if m.identity is not None and m.distance <= tau:
                        record["person"], record["distance"] = m.identity, m.distance
                        report.assigned[m.identity] = report.assigned.get(m.identity, 0) + 1
                elif face.gated is not None:
                    report.gated[face.gated] = report.gated.get(face.gated, 0) + 1
                faces.append(record)
            library.add_photo(key, info, faces, shape=shape)
            report.indexed += 1
            report.faces += len(faces)
            bar.update(1)
    bar.close()
    report.encode_seconds = time.perf_counter() - t_encode
    # earlier runs' failures that are still on disk stay reported
    for path, reason in library.errors().items():
        if path.startswith(str(root) + os.sep):
            report.failed.setdefault(path, reason)
    report.seconds = time.perf_counter() - t0
    return report


def index(
    folder, gallery=None, *, library=None, model=None, threshold: float | None = None, progress: bool | None = None
) -> IndexReport:
    """``fk.index(dir, gallery)``: index every face under ``folder``; ``gallery`` a FaceGallery, a
    gallery path/URL or None (the default gallery); ``library`` the index file (default: beside the
    gallery, see :func:`~facenet_keras.library.store.library_path_for`)."""
    from facenet_keras.identity.gallery import FaceGallery

    own_gallery = not isinstance(gallery, FaceGallery)
    g = FaceGallery(gallery) if own_gallery else gallery
    try:
        lib_path = library if library is not None else library_path_for(g.path)
        with open_library(lib_path) as lib:
            return index_folder(folder, lib, g, model=model, threshold=threshold, progress=progress)
    finally:
        if own_gallery:
            g.close()
