"""The photo library's People endpoints (``/v1/library/...``), for the web page's People tab.

Thin edges over :mod:`facenet_keras.library`: list the clusters of unnamed faces and the named
people, (re)cluster, name a cluster (which enrols that person in the served gallery, as
``facenet-keras people name`` does), merge, split, search a person's photos, and a small JPEG of one
indexed face. The face index is the library file beside the gallery (``Settings.library`` or
:func:`~facenet_keras.library.store.library_path_for`), filled on the server with
``facenet-keras index DIR``; the API never indexes folders itself.

Each request opens the index in its own thread (SQLite connections are per thread; WAL lets the
indexer write meanwhile) and uses the gallery through the engine's gallery thread. Writes of one
process are serialised by a lock. Reading needs a ``read`` key, changing a ``write`` key; thumbnails
are biometric data: answered only with a key, ``Cache-Control: no-store`` and never logged (the
access log names the route template, not the face id).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from facenet_keras.service.deps import READ, WRITE, EngineDep, ReadKey, SettingsDep, ready_engine, shown_path
from facenet_keras.service.errors import ServiceError
from facenet_keras.service.people_schemas import (
    ClusterIn,
    ClusteringOut,
    LibraryClustersOut,
    LibraryPeopleOut,
    LibraryPhotosOut,
    MergedOut,
    MergeIn,
    NameClusterIn,
    NamedClusterOut,
    SplitIn,
    SplitOut,
)

__all__ = ["router", "library_path"]

MAX_ID = 2**31 - 1  # ids beyond SQLite's comfortable range are simply unknown (404), never a 500
NO_LIBRARY = "this server has no photo library index yet: run 'facenet-keras index DIR' on the server"


def library_path(settings) -> Path | None:
    """Where the served gallery's face index is: ``settings.library``, else beside the gallery; None
    for a gallery that has no such place (an in-memory one)."""
    from facenet_keras.library.store import library_path_for

    if settings.library:
        return Path(settings.library).expanduser()
    try:
        return library_path_for(settings.gallery)
    except ValueError:
        return None


router = APIRouter(prefix="/v1/library", tags=["library"])
lock = threading.Lock()  # one write at a time in this process


@contextmanager
def opened(settings, *, need: bool) -> Iterator:
    """The face index, opened for this request; None when there is none yet (``need``: 404 then)."""
    from facenet_keras.library.store import open_library

    path = library_path(settings)
    if path is None or not path.is_file():
        if need:
            raise ServiceError(404, "no_library", NO_LIBRARY)
        yield None
        return
    try:
        lib = open_library(path)
    except ValueError as exc:  # not an index, or another schema version: the server's set-up
        raise ServiceError(503, "library_unavailable", str(exc).splitlines()[0]) from None
    try:
        yield lib
    finally:
        lib.close()


def known_cluster(lib, cluster: int) -> int:
    if not lib.faces(cluster=cluster):
        raise ServiceError(404, "unknown_cluster", f"no cluster {cluster} (GET /v1/library/clusters lists them)")
    return cluster


def clusters_and_people(lib, request: Request) -> dict:
    """The library's summary; the engine (its gallery) is needed only when there is a library."""
    from facenet_keras.library.people import summary

    if lib is None:
        return {"people": [], "clusters": [], "unclustered": 0, "threshold": None, "method": None}
    return summary(lib, ready_engine(request).gallery)


# ------------------------------------------------------------------ reading
@router.get(
    "/clusters",
    response_model=LibraryClustersOut,
    dependencies=[READ],
    summary="groups of unnamed faces (largest first) and the clustering threshold they were cut at",
)
def clusters(request: Request, settings: SettingsDep):
    with opened(settings, need=False) as lib:
        s = clusters_and_people(lib, request)
    return {
        "clusters": [{k: c[k] for k in ("cluster", "faces", "sample")} for c in s["clusters"]],
        "unclustered": s["unclustered"],
        "threshold": None if s["threshold"] is None else round(float(s["threshold"]), 4),
        "method": s["method"],
    }


@router.get(
    "/people",
    response_model=LibraryPeopleOut,
    dependencies=[READ],
    summary="named people with their numbers of faces and photos in the library",
)
def people(request: Request, settings: SettingsDep):
    with opened(settings, need=False) as lib:
        s = clusters_and_people(lib, request)
    return {"people": s["people"]}


@router.get(
    "/people/{name}/photos",
    response_model=LibraryPhotosOut,
    summary="every photo of a named person, nearest first, with the distance",
)
def photos(
    e: EngineDep, key: ReadKey, settings: SettingsDep, name: str, threshold: float | None = Query(None, gt=0, le=2)
):
    from facenet_keras.identity.recognition import resolve_threshold
    from facenet_keras.library.search import photos_of

    gallery = e.gallery
    if name not in gallery:
        raise ServiceError(404, "unknown_person", f"{name!r} is not enrolled")
    tau = resolve_threshold(threshold, gallery, e.model)
    with opened(settings, need=False) as lib:
        found = [] if lib is None else photos_of(lib, gallery, name, tau, model=e.model)
    return {"person": name, "threshold": tau, "photos": [dict(p, photo=shown_path(p["photo"], key)) for p in found]}


@router.get(
    "/faces/{face_id}/thumbnail",
    dependencies=[READ],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the face, cut from its photo (JPEG)"}},
    summary="a small JPEG of one indexed face (biometric data: never cached, never logged)",
)
def thumbnail(settings: SettingsDep, face_id: int = PathParam(ge=0, le=MAX_ID), size: int = Query(128, ge=32, le=256)):
    from facenet_keras.images import ImageError, load_image
    from facenet_keras.library.people import face_crop

    with opened(settings, need=True) as lib:
        found = lib.faces(ids=[face_id])
    if not found or found[0].path is None:
        raise ServiceError(404, "not_found", f"no indexed face {face_id}")
    try:
        image = load_image(found[0].path)  # as the indexer read it: the box is in these pixels
    except (FileNotFoundError, ImageError, OSError):
        raise ServiceError(
            404, "photo_gone", "the face's photo can no longer be read: run 'facenet-keras index' again"
        ) from None
    buf = io.BytesIO()
    face_crop(image, found[0].box, size).save(buf, format="JPEG", quality=85)
    return Response(buf.getvalue(), media_type="image/jpeg")  # the app's Guard adds Cache-Control: no-store


# ------------------------------------------------------------------ changing
@router.post(
    "/cluster",
    response_model=ClusteringOut,
    dependencies=[WRITE],
    summary="group every unnamed face into clusters again (replaces the last clustering)",
)
def cluster(settings: SettingsDep, body: ClusterIn | None = None):
    from facenet_keras.library.people import run_clustering

    body = body or ClusterIn()
    with lock, opened(settings, need=True) as lib:
        try:
            return run_clustering(lib, method=body.method, threshold=body.threshold)
        except ImportError as exc:
            raise ServiceError(
                501, "not_available", f"clustering needs the [library] extra (scipy, scikit-learn): {exc}"
            ) from None


@router.post(
    "/clusters/{cluster_id}/name",
    response_model=NamedClusterOut,
    dependencies=[WRITE],
    summary="name a cluster: enrols that person with all its faces (an existing name: adds them)",
)
def name(e: EngineDep, settings: SettingsDep, body: NameClusterIn, cluster_id: int = PathParam(ge=0, le=MAX_ID)):
    from facenet_keras.identity.rules import check_new_name
    from facenet_keras.library.people import name_cluster

    who = check_new_name(body.name)  # ValueError -> 422 with the reason
    gallery = e.gallery
    with lock, opened(settings, need=True) as lib:
        n = name_cluster(lib, gallery, known_cluster(lib, cluster_id), who)
    return {"cluster": cluster_id, "name": who, "faces": n}


@router.post(
    "/merge",
    response_model=MergedOut,
    dependencies=[WRITE],
    summary="merge 'merge' into 'into': two clusters, a cluster and a name (names it), or two people",
)
def merge(e: EngineDep, settings: SettingsDep, body: MergeIn):
    from facenet_keras.identity.store import normalize_name
    from facenet_keras.library.people import merge as merge_targets

    gallery = e.gallery
    targets = [t if isinstance(t, int) else normalize_name(t) for t in (body.into, body.merge)]
    with lock, opened(settings, need=True) as lib:
        for t in targets:
            if isinstance(t, int):
                known_cluster(lib, t)
            elif t not in gallery:
                raise ServiceError(404, "unknown_person", f"{t!r} is not enrolled")
        if targets[0] == targets[1]:
            raise ServiceError(422, "invalid_request", "merge needs two different clusters or people")
        return {"message": merge_targets(lib, gallery, targets[0], targets[1])}


@router.post(
    "/clusters/{cluster_id}/split",
    response_model=SplitOut,
    dependencies=[WRITE],
    summary="re-cluster one cluster at a stricter cut; its parts get new ids",
)
def split(settings: SettingsDep, body: SplitIn | None = None, cluster_id: int = PathParam(ge=0, le=MAX_ID)):
    from facenet_keras.library.people import split as split_cluster

    body = body or SplitIn()
    with lock, opened(settings, need=True) as lib:
        return split_cluster(lib, known_cluster(lib, cluster_id), body.threshold)
