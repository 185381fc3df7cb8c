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
from facenet_keras.service.keygate import VERDICT, Verdict, check_key
from facenet_keras.service.settings import Settings

__all__ = [
    "require",
    "READ",
    "WRITE",
    "ADMIN",
    "ReadKey",
    "WriteKey",
    "shown_path",
    "ready_engine",
    "EngineDep",
    "settings_of",
    "SettingsDep",
    "photo_of",
    "photos_of",
    "frames_stack",
    "known_person",
    "decode_clip_upload",
]

bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer KEY")
header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def require(scope: str):
    """The dependency that admits a request only with a known key of ``scope`` or above (401 / 403);
    tagged with its scope, which the guard reads to refuse a request before its body is read; an
    address with too many unknown keys lately is refused first (429). A key the app's own gate
    admitted for this scope or above (:class:`.keygate.Verdict`) is not judged again; any other is.
    It notes the scope needed and the key's id on the request, for the audit log (:mod:`.audit`)."""

    def check(
        request: Request,
        b: HTTPAuthorizationCredentials | None = Security(bearer),
        h: str | None = Security(header),
    ) -> ApiKey:
        request.state.key_scope_needed = scope
        keystore = request.app.state.keystore
        verdict = getattr(request.state, VERDICT, None)
        if isinstance(verdict, Verdict) and verdict.keystore is keystore and allows(verdict.needed, scope):
            found = verdict.key
        else:
            address = request.client.host if request.client else ""
            key = h or (b.credentials if b is not None else None)
            found = check_key(keystore, key, scope, request.app.state.key_throttle, address)
        request.state.key_id = found.id
        return found

    check.key_scope = scope  # type: ignore[attr-defined]
    return check


READ, WRITE, ADMIN = Depends(require("read")), Depends(require("write")), Depends(require("admin"))
# The key itself, for endpoints whose answer depends on whose key it is (jobs, server paths).
ReadKey = Annotated[ApiKey, READ]
WriteKey = Annotated[ApiKey, WRITE]


def shown_path(path: str | None, key: ApiKey) -> str | None:
    """A server path as ``key`` may see it: whole for write and admin keys (who run the server's
    library), only the file name for read keys (where the server keeps its photos is not theirs)."""
    if path is None or allows(key.scope, "write"):
        return path
    return str(path).replace("\\", "/").rsplit("/", 1)[-1]


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


def photos_of(e: Engine, uploads: list[tuple[UploadFile, str]]) -> list[np.ndarray]:
    """Uploaded photos decoded under the limits: every one's size read from its header (and the
    request's total reserved in the worker's pixel budget) before the first is decoded. 422 when
    one is empty or not a picture, 413 beyond a limit, 503 while the budget stays full."""
    data = [_bytes_of(upload, what) for upload, what in uploads]
    sizes = [e.image_size(d, f"the {what}") for d, (_, what) in zip(data, uploads)]
    e.hold(sum(w * h for w, h in sizes))
    return [e.load_image(d, f"the {what}") for d, (_, what) in zip(data, uploads)]


def photo_of(e: Engine, upload: UploadFile, what: str = "photo") -> np.ndarray:
    """One uploaded photo, as :func:`photos_of`."""
    return photos_of(e, [(upload, what)])[0]


def frames_stack(e: Engine, uploads: list[UploadFile]) -> np.ndarray:
    """Still frames (T, H, W, 3) uint8: every frame's size read from its header (all the same, the
    total reserved) before the first is decoded, each decoded straight into the stack."""
    data = [_bytes_of(upload, f"frame {i + 1}") for i, upload in enumerate(uploads)]
    sizes = [e.image_size(d, f"frame {i + 1}") for i, d in enumerate(data)]
    if len(set(sizes)) != 1:
        first, odd = sizes[0], next(i for i, size in enumerate(sizes) if size != sizes[0])
        raise ServiceError(
            422,
            "bad_image",
            f"the frames must all have the same size: frame 1 is {first[0]}x{first[1]}, "
            f"frame {odd + 1} is {sizes[odd][0]}x{sizes[odd][1]}",
        )
    width, height = sizes[0]
    e.hold(len(data) * width * height)
    out = np.empty((len(data), height, width, 3), np.uint8)
    for i, d in enumerate(data):
        out[i] = e.load_image(d, f"frame {i + 1}")
    return out


def _bytes_of(upload: UploadFile, what: str) -> bytes:
    data = upload.file.read()
    if not data:
        raise ServiceError(422, "bad_image", f"the {what} is empty")
    return data


def known_person(e: Engine, name: str) -> str:
    if name not in e.gallery:
        raise ServiceError(404, "unknown_person", f"{name!r} is not enrolled")
    return name


def decode_clip_upload(e: Engine, data: bytes, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded clip's frames and times (:func:`facenet_keras.live.frames.decode_clip`: refused from
    the container's frame count x size, the pixels reserved before they are decoded), its refusals
    as the API's: 413 beyond a limit, 422 not a video, 501 without PyAV."""
    from facenet_keras.live.frames import VideoError, VideoLimitError, decode_clip

    if importlib.util.find_spec("av") is None:
        raise ServiceError(
            501, "not_available", "reading video clips needs PyAV (pip install av); send still frames instead"
        )
    try:
        return decode_clip(data, max_frames, e.max_pixels, e.max_request_pixels, e.hold)
    except VideoLimitError as exc:
        raise ServiceError(413, "too_large", str(exc)) from None
    except VideoError as exc:
        raise ServiceError(422, "bad_video", str(exc)) from None
