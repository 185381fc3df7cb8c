"""The gallery's people (``/v1/people``: list, enrol, add photos, rename, remove) and its export
(admin keys only). Enrolment is :func:`facenet_keras.identity.recognition.enroll_faces`'s decision,
as in ``facenet-keras enroll``: a photo with several faces is enrolled only when ``face`` says which
('largest', 'centre' or an index, largest first); otherwise 422 ``several_faces`` with the faces' boxes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse

from facenet_keras.service.budget import BudgetedRoute
from facenet_keras.service.deps import ADMIN, READ, WRITE, EngineDep, ReadKey, known_person, photos_of, shown_path
from facenet_keras.service.engine import Engine
from facenet_keras.service.errors import CONFLICT, ServiceError
from facenet_keras.service.schemas import EnrolledOut, PeopleOut, PersonOut, PersonPhotosOut, RemovedOut, RenameIn

__all__ = ["router"]

MAX_PHOTOS = 20  # per request
FACE_FIELD = Form(
    None,
    max_length=20,
    description="which face to enrol when a photo shows several: 'largest', 'centre' or an index "
    "(0 = the largest); without it such a photo is refused (422 several_faces, with the faces' boxes)",
)

router = APIRouter(prefix="/v1", tags=["gallery"], route_class=BudgetedRoute)


@router.get(
    "/people", response_model=PeopleOut, dependencies=[READ], summary="enrolled people and their number of photos"
)
def people(e: EngineDep):
    g = e.gallery
    return {
        "people": [{"name": n, "photos": k} for n, k in g.people().items()],
        "threshold": g.threshold,
        "model": g.model_id,
    }


def check_count(photos: list[UploadFile]) -> None:
    if len(photos) > MAX_PHOTOS:
        raise ServiceError(413, "too_large", f"{len(photos)} photos in one request; the limit is {MAX_PHOTOS}")


def enrol(e: Engine, name: str, photos: list[UploadFile], face: str | None) -> dict:
    """Decode, encode (the shared batch) and enrol; several faces without ``face``: 422 with their boxes."""
    from facenet_keras.identity.recognition import SeveralFacesError, check_gallery_space, enroll_faces

    images, digests = photos_of(e, [(upload, f"photo {i + 1}") for i, upload in enumerate(photos)]), []
    for upload in photos:
        upload.file.seek(0)
        digests.append(hashlib.sha256(upload.file.read()).hexdigest())  # the photo's bytes, as enroll keys it
    sources = [Path(upload.filename or f"upload-{i + 1}").name[:200] for i, upload in enumerate(photos)]
    space = check_gallery_space(e.gallery, e.model, space=e.space)
    per_image = e.encode(images)
    try:
        done = enroll_faces(e.gallery, name, sources, images, per_image, digests, model=e.model, face=face, space=space)
    except SeveralFacesError as exc:
        photo = next(i for i, faces in enumerate(per_image) if any(f is exc.faces[0] for f in faces))
        faces = [
            {
                "face": i,
                "box": [round(float(v), 1) for v in f.box],
                "confidence": round(float(f.confidence), 4),
                "gated": f.gated,
            }
            for i, f in enumerate(exc.faces)
        ]
        raise ServiceError(422, "several_faces", str(exc), details={"photo": photo, "faces": faces}) from None
    return {
        "name": done.name,
        "photo_ids": list(done.ids),
        "photos": e.gallery.people()[done.name],
        "warnings": done.warnings,
    }


@router.post(
    "/people",
    response_model=EnrolledOut,
    status_code=201,
    dependencies=[WRITE],
    responses=CONFLICT,
    summary="enrol a new person from one or more photos (one face each, or say which with 'face')",
)
def create_person(
    e: EngineDep,
    name: str = Form(..., min_length=1, max_length=200),
    photos: list[UploadFile] = File(...),
    face: str | None = FACE_FIELD,
):
    from facenet_keras.identity.rules import check_new_name

    check_count(photos)
    name = check_new_name(name)  # ValueError -> 422 with the reason (blank, '/', control characters)
    if name in e.gallery:
        raise ServiceError(
            409, "exists", f"{name!r} is already enrolled: add photos with POST /v1/people/{{name}}/photos"
        )
    return enrol(e, name, photos, face)


@router.get(
    "/people/{name}",
    response_model=PersonPhotosOut,
    summary="one person's enrolled photos (ids, file names, face boxes)",
)
def person(e: EngineDep, key: ReadKey, name: str):
    photos = e.gallery.photos(known_person(e, name))
    return {
        "name": name,
        "photos": [
            {"id": p.id, "source": shown_path(p.source, key), "box": None if p.box is None else list(p.box)}
            for p in photos
        ],
    }


@router.post(
    "/people/{name}/photos",
    response_model=EnrolledOut,
    status_code=201,
    dependencies=[WRITE],
    summary="add photos to an enrolled person (one face each, or say which with 'face')",
)
def add_photos(e: EngineDep, name: str, photos: list[UploadFile] = File(...), face: str | None = FACE_FIELD):
    check_count(photos)
    return enrol(e, known_person(e, name), photos, face)


@router.patch(
    "/people/{name}", response_model=PersonOut, dependencies=[WRITE], responses=CONFLICT, summary="rename a person"
)
def rename(e: EngineDep, name: str, body: RenameIn):
    from facenet_keras.identity.rules import check_new_name

    g = e.gallery
    new = check_new_name(body.name)  # ValueError -> 422 with the reason
    if new != name and new in g:
        raise ServiceError(409, "exists", f"{new!r} is already enrolled")
    g.rename(known_person(e, name), new)
    return {"name": new, "photos": g.people()[new]}


@router.delete(
    "/people/{name}", response_model=RemovedOut, dependencies=[WRITE], summary="remove a person and all their photos"
)
def remove(e: EngineDep, name: str):
    n = e.gallery.remove(known_person(e, name))
    return {"removed": name, "photos": n}


@router.delete(
    "/people/{name}/photos/{photo_id}",
    response_model=RemovedOut,
    dependencies=[WRITE],
    summary="remove one enrolled photo (a person left with none goes too)",
)
def remove_photo(e: EngineDep, name: str, photo_id: int):
    g = e.gallery
    if photo_id not in {p.id for p in g.photos(known_person(e, name))}:
        raise ServiceError(404, "not_found", f"{name!r} has no photo {photo_id}")
    g.remove_photo(photo_id)
    return {"removed": f"{name}#{photo_id}", "photos": 1}


@router.get(
    "/gallery/export",
    dependencies=[ADMIN],
    summary="the whole gallery with its embeddings (biometric data: admin keys only)",
)
def export(e: EngineDep):
    from facenet_keras.identity.portable import export_document

    return JSONResponse(
        e.gallery.call(export_document),
        headers={"content-disposition": 'attachment; filename="gallery-export.json"'},
    )
