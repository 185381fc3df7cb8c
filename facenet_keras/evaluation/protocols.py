"""Evaluation protocols on photos: the pairs protocol (1:1) and open-set identification (1:K).

Photos are embedded once through :mod:`.embedding_cache` (the main face of each photo, keyed by
file content and the pipeline), so a second run skips detection and encoding. A photo in which no
face is found makes its pairs *failed*: they count as errors and are reported. The figures come
from :mod:`.metrics`; the command line only formats them.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from facenet_keras.evaluation.embedding_cache import MISSING, EmbeddingCache, file_digest
from facenet_keras.evaluation.metrics import (
    accuracy_at,
    auc,
    dir_at_fpir,
    false_accept_vs_gallery_size,
    identity_distances,
    open_set_identification,
    threshold_for_gallery_size,
)
from facenet_keras.faces.pipeline import embedding_key, pipeline_for, primary_face, unusable_because
from facenet_keras.identity.recognition import DEFAULT_THRESHOLD
from facenet_keras.identity.search import pairwise_distances
from facenet_keras.images import ImageError, list_identities, load_image

__all__ = [
    "read_pairs",
    "pair_distances",
    "primary_embeddings",
    "primary_namespace",
    "photo_kind",
    "figures_by_kind",
    "open_set_report",
]

_TRUE = {"1", "true", "yes", "same", "y", "t"}
_FALSE = {"0", "false", "no", "different", "n", "f"}
_CROP_MAX_SIDE = 160  # photos no larger than this are tight face crops (e.g. 150x150 chips)


def read_pairs(csv_path: str | Path, root: str | Path | None = None):
    """A pairs file -> ``(paths1, paths2, same (n,) bool, folds (n,) str or None)``.

    Columns ``path1,path2,same`` (same: 1/0, true/false, yes/no), optional ``fold``; paths are
    relative to ``root`` (default: the CSV's folder) unless absolute. Every problem raises a
    ValueError / FileNotFoundError naming the line.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"pairs file not found: {csv_path}")
    base = Path(root) if root is not None else csv_path.parent
    if not base.is_dir():
        raise FileNotFoundError(f"--root is not a folder: {base}")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = {"path1", "path2", "same"} - set(columns)
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {', '.join(sorted(missing))} "
                f"(need path1,path2,same and optionally fold; found {columns})"
            )
        reader.fieldnames = columns
        has_fold = "fold" in columns
        p1, p2, same, folds = [], [], [], []
        for line, row in enumerate(reader, start=2):
            a, b = (row.get("path1") or "").strip(), (row.get("path2") or "").strip()
            s = (row.get("same") or "").strip().lower()
            if not a or not b:
                raise ValueError(f"{csv_path}:{line}: empty path")
            if s not in _TRUE | _FALSE:
                raise ValueError(f"{csv_path}:{line}: 'same' must be 1/0 (or true/false), got {row.get('same')!r}")
            p1.append(str(base / a))
            p2.append(str(base / b))
            same.append(s in _TRUE)
            if has_fold:
                fold = (row.get("fold") or "").strip()
                if not fold:
                    raise ValueError(f"{csv_path}:{line}: empty fold")
                folds.append(fold)
    if not p1:
        raise ValueError(f"{csv_path}: no pairs")
    absent = sorted({p for p in p1 + p2 if not Path(p).is_file()})
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise FileNotFoundError(f"{len(absent)} photo(s) listed in {csv_path} not found under {base}: {shown}")
    return p1, p2, np.array(same, dtype=bool), (np.array(folds) if has_fold else None)


def pair_distances(paths1, paths2, *, model=None, cache: bool = True, progress: bool | None = None):
    """Distances (n,) between the main faces of each pair (NaN where a photo had no usable face),
    and the dict photo -> reason for every photo that failed."""
    unique = sorted(set(paths1) | set(paths2))
    embeddings, problems = primary_embeddings(unique, model=model, cache=cache, progress=progress)
    by_path = dict(zip(unique, embeddings))
    d = np.full(len(paths1), np.nan)
    for i, (a, b) in enumerate(zip(paths1, paths2)):
        ea, eb = by_path[a], by_path[b]
        if ea is not None and eb is not None:
            d[i] = float(pairwise_distances(ea[None], eb[None])[0, 0])
    return d, problems


def photo_kind(path: str) -> str:
    """'crop' for a tight face crop (no side above 160 px), else 'photo'; reads the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return "crop" if max(im.size) <= _CROP_MAX_SIDE else "photo"
    except Exception:  # unreadable: it fails (and is reported) elsewhere
        return "photo"


def figures_by_kind(p1, p2, d, same, threshold) -> dict:
    """Figures per kind of pair: both photos tight face crops, both full photos, or one of each."""
    kind_of = {p: photo_kind(p) for p in set(p1) | set(p2)}
    kinds = np.array([kind_of[a] if kind_of[a] == kind_of[b] else "mixed" for a, b in zip(p1, p2)])
    out = {}
    for kind in ("crop", "photo", "mixed"):
        sel = kinds == kind
        if not sel.any():
            continue
        both = same[sel].any() and not same[sel].all()
        out[kind] = {
            "pairs": int(sel.sum()),
            "failed": int(np.isnan(d[sel]).sum()),
            "genuine_pairs": int(same[sel].sum()),
            "accuracy": accuracy_at(d[sel], same[sel], threshold),
            "auc": auc(d[sel], same[sel]) if both else None,
        }
    return out


def primary_namespace(key: str) -> str:
    """The cache namespace for "embedding of a photo's main face" under an embedding key
    (:func:`facenet_keras.faces.pipeline.embedding_key`: package version, encoder weights, alignment,
    mirroring and the source of the code, :func:`primary_face` included)."""
    return f"{key}|primary-face-v1"


def primary_embeddings(
    paths,
    *,
    model=None,
    cache: EmbeddingCache | bool = True,
    chunk: int = 16,
    progress: bool | None = None,
    detector=None,
):
    """The embedding of the main face of each photo file, through the cache.

    paths: photo files. Returns ``(embeddings, problems)``: a list with one (D,) float32 array per
    path, or None where no face was found or the file could not be read; and a dict path -> reason
    for every None ("no face found" or the image error's message). Misses are computed in chunks of
    ``chunk`` photos with :func:`facenet_keras.pipeline.encode_batch` (their chips encoded
    together) and the main face chosen with :func:`facenet_keras.pipeline.primary_face`.
    ``cache``: True = the default cache for this model, False = none, or an :class:`EmbeddingCache`.
    Unreadable files are not cached (the file may be fixed); "no face" is.
    """
    from tqdm.auto import tqdm

    paths = [os.fspath(p) for p in paths]
    store: EmbeddingCache | None
    if cache is True:
        store = EmbeddingCache(primary_namespace(embedding_key(model)))
    else:
        store = cache or None
    results: list = [None] * len(paths)
    problems: dict[str, str] = {}
    todo: list[tuple[int, str]] = []  # (index, digest) of the misses
    for i, p in enumerate(paths):
        try:
            digest = file_digest(p)
        except OSError as exc:
            problems[p] = f"cannot read file ({exc.strerror or exc})"
            continue
        if store is not None:
            value = store._read(digest)
            if value is not MISSING:
                store.hits += 1
                results[i] = value
                if value is None:
                    problems[p] = "no usable face found"
                continue
            store.misses += 1
        todo.append((i, digest))
    pipe = pipeline_for(model, detector=detector)
    show = progress if progress is not None else len(todo) >= 8
    bar = tqdm(total=len(todo), desc="embedding photos", unit="photo", disable=not show)
    for start in range(0, len(todo), chunk):
        batch = todo[start : start + chunk]
        images, kept = [], []
        for i, digest in batch:
            try:
                images.append(load_image(paths[i]))
                kept.append((i, digest))
            except ImageError as exc:
                problems[paths[i]] = str(exc)
        faces_per_image = pipe.encode_images(images) if images else []
        for (i, digest), image, faces in zip(kept, images, faces_per_image):
            face = primary_face(faces, image.shape)
            usable = face is not None and face.gated is None  # evaluated through the quality gate
            value = np.asarray(face.embedding, np.float32).reshape(-1) if face is not None and usable else None
            results[i] = value
            if value is None:
                why = "no face found" if face is None else f"no usable face ({unusable_because(face)})"
                problems[paths[i]] = why
            if store is not None:
                store.put(value, digest=digest)
        bar.update(len(batch))
    bar.close()
    return results, problems


def open_set_report(
    root,
    *,
    threshold: float | None = None,
    unenrolled: int = 0,
    exclude=(),
    fpir=(0.1,),
    target_far: float = 0.01,
    model=None,
    cache: bool = True,
) -> dict:
    """Open-set identification on a folder of identities (ROOT/<person>/<photo>).

    Enrols the first photo (with a face) of each person who has two or more, probes with their other
    photos and with the photos of people not enrolled (those with a single photo, plus ``unenrolled``
    more, evenly spaced by name); reports DIR, false alarms, correct "not recognised" answers, DIR at
    each FPIR, the false accept rate against gallery size K, and the 1:1 and 1:K thresholds that keep
    strangers' false accepts at ``target_far``. Returns a JSON-ready dict.
    """
    tau = float(threshold) if threshold is not None else float(DEFAULT_THRESHOLD)
    people = {name: [str(p) for p in photos] for name, photos in list_identities(root).items()}
    unknown = sorted(set(exclude) - set(people))
    if unknown:
        raise ValueError(f"exclude: no such person folder in {root}: {', '.join(unknown)}")
    people = {n: p for n, p in people.items() if n not in set(exclude)}
    multi = [n for n, photos in people.items() if len(photos) >= 2]
    if unenrolled < 0 or unenrolled >= len(multi):
        raise ValueError(f"unenrolled must be in [0, {len(multi) - 1}] (people with several photos)")
    held_out = set()
    if unenrolled:
        held_out = {multi[int(i)] for i in np.round(np.linspace(0, len(multi) - 1, unenrolled))}
    all_photos = [p for photos in people.values() for p in photos]
    embeddings, problems = primary_embeddings(all_photos, model=model, cache=cache)
    emb = dict(zip(all_photos, embeddings))

    # enrol the first photo with a face of each person with several photos (not held out)
    gallery, gallery_labels, probes = [], [], []  # probes: (path, person)
    skipped_enrolment = 0
    for name, photos in people.items():
        if len(photos) >= 2 and name not in held_out:
            first = next((p for p in photos if emb[p] is not None), None)
            if first is None:
                held_out.add(name)  # no usable photo: this person can only be a stranger
                probes += [(p, name) for p in photos]
                continue
            skipped_enrolment += photos.index(first)
            gallery.append(emb[first])
            gallery_labels.append(name)
            probes += [(p, name) for p in photos if p != first]
        else:
            probes += [(p, name) for p in photos]
    if len(gallery) < 2:
        raise ValueError(f"{root}: fewer than two people could be enrolled")
    enrolled = sorted(gallery_labels)
    templates = np.stack(gallery)
    template_labels = np.array(gallery_labels)
    probe_labels = np.array([name for _, name in probes])
    ok = np.array([emb[p] is not None for p, _ in probes])
    dim = templates.shape[1]
    probe_emb = np.stack([emb[p] if emb[p] is not None else np.zeros(dim, np.float32) for p, _ in probes])

    per_id, identities = identity_distances(templates, template_labels, probe_emb)
    per_id[~ok] = np.inf
    j = np.argmin(per_id, axis=1)
    nearest = np.where(ok, identities[j], "")
    nearest_d = np.where(ok, per_id[np.arange(len(j)), j], np.nan)  # NaN: no face, never accepted

    at_tau = open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau)
    mated = np.isin(probe_labels, enrolled)
    dir_at = {}
    for rate in fpir:
        dir_rate, t = dir_at_fpir(nearest, nearest_d, probe_labels, enrolled, rate)
        dir_at[f"{rate:g}"] = {"dir": dir_rate, "threshold": t}

    # impostor comparisons: strangers against everyone, enrolled people against everyone else
    impostor = per_id[ok]
    own = identities[None, :] == probe_labels[ok][:, None]  # a probe's own identity is no impostor
    K = len(enrolled)
    curve = false_accept_vs_gallery_size(impostor, tau, exclude=own)
    k_max = curve["sizes"][-1]
    target = float(target_far)
    # the same stranger false-accept target met by a 1:1 and by a 1:K threshold
    tau_1 = threshold_for_gallery_size(impostor, 1, target, exclude=own)
    tau_k = threshold_for_gallery_size(impostor, k_max, target, exclude=own)
    curve_1 = false_accept_vs_gallery_size(impostor, tau_1, exclude=own)
    curve_k = false_accept_vs_gallery_size(impostor, tau_k, exclude=own)
    at_tau_1 = open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau_1)
    at_tau_k = open_set_identification(nearest, nearest_d, probe_labels, enrolled, tau_k)

    kinds = np.array([photo_kind(p) for p, _ in probes])
    by_kind = {}
    for kind in ("crop", "photo"):
        sel = kinds == kind
        if sel.any():
            by_kind[kind] = open_set_identification(nearest[sel], nearest_d[sel], probe_labels[sel], enrolled, tau)
            by_kind[kind]["failed_probes"] = int(np.count_nonzero(sel & ~ok))

    return {
        "root": str(root),
        "threshold": tau,
        "enrolled": K,
        "people": len(people),
        "unenrolled_people": len(people) - K,
        "probes": len(probes),
        "failed_probes": int(np.count_nonzero(~ok)),
        "failed_mated_probes": int(np.count_nonzero(~ok & mated)),
        "enrolment_photos_skipped": skipped_enrolment,
        **{
            k: at_tau[k]
            for k in (
                "mated_probes",
                "non_mated_probes",
                "dir",
                "rank1",
                "false_reject_rate",
                "misidentification_rate",
                "fpir",
                "true_reject_rate",
            )
        },
        "dir_at_fpir": dir_at,
        "by_kind": by_kind,
        "false_accept_vs_k": curve,
        "calibrated": {
            "target_far": target,
            "gallery_size": k_max,
            "impostor_probes": curve["probes"],
            "threshold_1to1": tau_1,
            "threshold_1toK": tau_k,
            "curve_1to1": curve_1,
            "curve_1toK": curve_k,
            "at_1to1": {k: at_tau_1[k] for k in ("dir", "fpir", "true_reject_rate")},
            "at_1toK": {k: at_tau_k[k] for k in ("dir", "fpir", "true_reject_rate")},
        },
        "excluded": sorted(exclude),
        "failed_photos": problems,
    }
