"""``/v1/faces/detect``, ``/v1/recognize`` (1:K), ``/v1/verify`` (1:1 against the gallery) and
``/v1/compare`` (two photos): transport only; every decision is :mod:`facenet_keras.identity.recognition`'s,
with the served encoder's own threshold and embedding space."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, UploadFile

from facenet_keras.service.budget import BudgetedRoute
from facenet_keras.service.deps import READ, EngineDep, known_person, photo_of, photos_of
from facenet_keras.service.schemas import CompareOut, DetectOut, RecognizeOut, VerifyOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[READ], route_class=BudgetedRoute)


@router.post(
    "/faces/detect", response_model=DetectOut, summary="every face in a photo: box, five landmarks, confidence"
)
def detect(e: EngineDep, photo: UploadFile = File(...)):
    image = photo_of(e, photo)
    faces = e.detect(image)
    return {"width": image.shape[1], "height": image.shape[0], "faces": [f.to_dict(embedding=False) for f in faces]}


@router.post(
    "/recognize",
    response_model=RecognizeOut,
    summary="1:K: who is each face in the photo (identity null when not recognised)",
)
def recognize(e: EngineDep, photo: UploadFile = File(...), threshold: float | None = Form(None, gt=0, le=10)):
    from facenet_keras.identity.recognition import check_gallery_space, recognize_faces, resolve_threshold

    image = photo_of(e, photo)
    check_gallery_space(e.gallery, e.model, space=e.space)
    tau = resolve_threshold(threshold, e.gallery, e.model)
    faces = e.encode([image])[0]
    results = recognize_faces(faces, e.gallery, tau)
    return {"width": image.shape[1], "height": image.shape[0], "faces": [r.to_dict() for r in results]}


@router.post("/verify", response_model=VerifyOut, summary="1:1: is the main face of the photo the enrolled identity?")
def verify(
    e: EngineDep,
    photo: UploadFile = File(...),
    identity: str = Form(..., min_length=1, max_length=200),
    threshold: float | None = Form(None, gt=0, le=10),
):
    from facenet_keras.faces.pipeline import main_face
    from facenet_keras.identity.recognition import check_gallery_space, resolve_threshold, verify_face

    image = photo_of(e, photo)
    name = known_person(e, identity)
    check_gallery_space(e.gallery, e.model, space=e.space)
    enrolled, _ = e.gallery.embeddings(name)
    tau = resolve_threshold(threshold, e.gallery, e.model)
    faces = e.encode([image])[0]
    face = main_face(faces, image.shape, "the photo")  # NoFaceError / UnusableFaceError -> 422
    return verify_face(face, name, enrolled, tau, faces_found=len(faces)).to_dict()


@router.post(
    "/compare", response_model=CompareOut, summary="are the main faces of two photos the same person? (no gallery)"
)
def compare(
    e: EngineDep,
    photo1: UploadFile = File(...),
    photo2: UploadFile = File(...),
    threshold: float | None = Form(None, gt=0, le=10),
):
    from facenet_keras.identity.recognition import compare_faces, resolve_threshold

    images = photos_of(e, [(photo1, "first photo"), (photo2, "second photo")])
    tau = resolve_threshold(threshold, None, e.model)
    per_image = e.encode(images)
    return compare_faces(per_image, [im.shape for im in images], tau).to_dict()
