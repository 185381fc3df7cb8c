"""What the routes depend on: the API key of a scope (:func:`require`), the ready engine
(:func:`ready_engine`), the settings, and the decoding of uploads (photos, clips) under the limits.

The app keeps its shared state on ``app.state``: ``settings``, ``keystore``, ``metrics`` (at
creation) and ``engine``, ``secret``, ``jobs`` (at start-up, see :mod:`.app`).
"""

from __future__ import annotations

import importlib.util
from typing import Annotated

import numpy as np
from fastapi import Depends, Request, Security, UploadFile
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from facenet_keras.service.auth import ApiKey, allows
from facenet_keras.service.engine import Engine
from facenet_keras.service.errors import ServiceError
from facenet_keras.service.settings import Settings

__all__ = [
    "require",
    "READ",
    "WRITE",
    "ADMIN",
    "ready_engine",
    "EngineDep",
    "settings_of",
    "SettingsDep",
    "photo_of",
    "known_person",
    "decode_clip_upload",
]

bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer KEY")
header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def require(scope: str):
    """The dependency that admits a request only with a known key of ``scope`` or above (401 / 403);
    an address with too many unknown keys lately is refused first (429). It notes the scope needed
    and the key's id on the request, for the audit log (:mod:`.audit`)."""

    def check(
        request: Request,
        b: HTTPAuthorizationCredentials | None = Security(bearer),
        h: str | None = Security(header),
    ) -> ApiKey:
        request.state.key_scope_needed = scope
        address = request.client.host if request.client else ""
        throttle = request.app.state.key_throttle
        wait = throttle.retry_after(address)
        if wait:
            raise ServiceError(
                429,
                "too_many_requests",
                f"too many unknown API keys from this address: try again in {wait} s",
                {"Retry-After": str(wait)},
            )
        key = h or (b.credentials if b is not None else None)
        if not key:
            raise ServiceError(
                401,
                "unauthorized",
                "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                {"WWW-Authenticate": "Bearer"},
            )
        found = request.app.state.keystore.check(key)
        if found is None:
            throttle.failed(address)
            raise ServiceError(401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
        request.state.key_id = found.id
        if not allows(found.scope, scope):
            raise ServiceError(
                403,
                "forbidden",
                f"this endpoint needs a key of scope {scope!r}; this key's scope is {found.scope!r}",
            )
        return found

    return check


READ, WRITE, ADMIN = Depends(require("read")), Depends(require("write")), Depends(require("admin"))


def ready_engine(request: Request) -> Engine:
    """The worker's engine once its models are loaded; 503 (with why) until then or when they failed."""
    e: Engine | None = getattr(request.app.state, "engine", None)
    if e is None or not e.ready.is_set():
        why = e.failure if e is not None and e.failure else "the models are still loading"
        raise ServiceError(503, "not_ready", why, {"Retry-After": "2"})
    return e


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(ready_engine)]
SettingsDep = Annotated[Settings, Depends(settings_of)]


def photo_of(e: Engine, upload: UploadFile, what: str = "photo") -> np.ndarray:
    """An uploaded photo decoded under the pixel limit (422 when empty or not a picture)."""
    data = upload.file.read()
    if not data:
        raise ServiceError(422, "bad_image", f"the {what} is empty")
    return e.load_image(data, name=f"the {what}")


def known_person(e: Engine, name: str) -> str:
    if name not in e.gallery:
        raise ServiceError(404, "unknown_person", f"{name!r} is not enrolled")
    return name


def decode_clip_upload(data: bytes, max_frames: int, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded clip's frames and times (:func:`facenet_keras.live.frames.decode_clip`), its
    refusals as the API's: 413 beyond a limit, 422 not a video, 501 without PyAV."""
    from facenet_keras.live.frames import VideoError, VideoLimitError, decode_clip

    if importlib.util.find_spec("av") is None:
        raise ServiceError(
            501, "not_available", "reading video clips needs PyAV (pip install av); send still frames instead"
        )
    try:
        return decode_clip(data, max_frames, max_pixels)
    except VideoLimitError as exc:
        raise ServiceError(413, "too_large", str(exc)) from None
    except VideoError as exc:
        raise ServiceError(422, "bad_video", str(exc)) from None
