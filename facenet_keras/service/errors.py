"""Every error the service answers is JSON ``{"error": {"code": ..., "message": ...}}``, never a
stack trace: 4xx when the client's request is at fault, 5xx only for ours.

:class:`ServiceError` is raised by the endpoints; :func:`install` maps it, FastAPI's validation
errors, and the library's own exceptions (bad image -> 422, no face -> 422, unknown person -> 404)
to that shape. Anything else is a 500 whose body says only that it was logged, with an id; the log
line carries the exception type and traceback but no request data (no photos, names or keys).
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("facenet_keras.service")

__all__ = ["ServiceError", "ErrorBody", "error_response", "install", "ERROR_RESPONSES", "CONFLICT"]


class ServiceError(Exception):
    """An answer other than success: HTTP ``status``, a stable machine ``code`` and a one-line ``message``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, details: dict | None = None
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers
        self.details = details or {}  # more fields of the error body, e.g. the faces a client must choose from


class ErrorDetail(BaseModel):
    code: str
    message: str
    photo: int | None = Field(None, description="several_faces: which uploaded photo (0-based)")
    faces: list[dict] | None = Field(
        None, description="several_faces: the photo's faces, largest first (their 'face' index), with boxes"
    )


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


# What the OpenAPI document lists for every endpoint besides its success answer.
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorBody, "description": text, "content": {"application/json": {}}}
    for status, text in [
        (400, "bad request"),
        (401, "missing or unknown API key"),
        (403, "the key's scope does not allow this"),
        (404, "not found"),
        (413, "upload too large"),
        (422, "invalid input (bad image, no face, bad field)"),
        (429, "too many unknown API keys from this address lately (see Retry-After)"),
        (500, "internal error"),
        (501, "not available in this installation"),
        (503, "not ready, timed out, or busy (see Retry-After)"),
    ]
}

# Only on the endpoints where a name can already be taken (enrol, rename).
CONFLICT: dict[int | str, dict] = {
    409: {"model": ErrorBody, "description": "the name is already taken", "content": {"application/json": {}}}
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    408: "timeout",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, details: dict | None = None
) -> JSONResponse:
    body = {"code": code, "message": message, **(details or {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _first_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def classify(exc: BaseException) -> tuple[int, str, str] | None:
    """The client's faults among the library's exceptions: (status, code, message), or None (ours)."""
    from facenet_keras.faces.detection import NoFaceError
    from facenet_keras.faces.pipeline import UnusableFaceError
    from facenet_keras.images import ImageError
    from facenet_keras.live.frames import VideoError, VideoLimitError

    if isinstance(exc, ServiceError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, VideoLimitError):
        return 413, "too_large", _first_line(exc)
    if isinstance(exc, VideoError):
        return 422, "bad_video", _first_line(exc)
    if isinstance(exc, UnusableFaceError):  # found, but the quality gate turned it away: the reason says why
        return 422, "unusable_face", _first_line(exc)
    if isinstance(exc, NoFaceError):
        return 422, "no_face", _first_line(exc)
    if isinstance(exc, ImageError):
        return 422, "bad_image", _first_line(exc)
    if isinstance(exc, KeyError):  # the gallery's "unknown person", which names who is enrolled
        return 404, "not_found", _first_line(exc)
    if isinstance(exc, ValueError):  # names, thresholds, ... validated by the library
        return 422, "invalid_request", _first_line(exc)
    return None


def internal_error(exc: BaseException) -> JSONResponse:
    """A 500 for our own fault: logged with an id (type and traceback only), answered with that id."""
    ref = secrets.token_hex(4)
    log.error("internal error %s: %s", ref, type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", f"internal error (logged as {ref})")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path (for a 405's ``Allow``):
    each method is tried against the routes, as the router itself would match it."""
    from starlette.routing import Match

    routes = request.app.router.routes
    found = [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        if any(route.matches(dict(request.scope, method=method))[0] == Match.FULL for route in routes)
    ]
    return found or ["GET", "HEAD"]  # none: a mounted folder of static files (its scope is the mount's)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the JSON error shape."""

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first route's methods; the path may have more
            headers = dict(headers or {}, Allow=", ".join(allowed_methods(request)))
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def _library(request: Request, exc: Exception):
        known = classify(exc)
        if known is not None:
            return error_response(*known)
        return internal_error(exc)

    # ValueError covers ImageError and NoFaceError; handled here, they never reach the server's
    # last-resort handler. Anything else is ours: a 500 with a log id.
    for kind in (ValueError, KeyError, Exception):
        app.add_exception_handler(kind, _library)
