"""The FastAPI application: ``create_app(Settings(...))``, wired from its parts.

A versioned JSON API (``/v1/...``, OpenAPI document at ``/openapi.json``), the web page at ``/``,
and ``/healthz``, ``/readyz``, ``/metrics``. Every ``/v1`` endpoint needs an API key of the scope it
names (read < write < admin, see :mod:`.auth` and :mod:`.deps`). Uploads are limited in bytes (by
:mod:`.guard`, before any parsing, after the key is checked from the headers) and in decoded pixels
(from the headers, per photo, per request and for the worker as a whole: :mod:`.budget`); each
request has a time limit; slow and idle clients meet the limits of :mod:`.connections`; failed
keys are throttled per address (:mod:`.throttle`) and writes audited (:mod:`.audit`). Errors are
JSON with a code and a message (:mod:`.errors`). Photos, embeddings, names and keys are never
logged: the access log names the route template, the status and the time only. The endpoints are
in :mod:`.routes`, one router per area.
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from facenet_keras.faces.profiles import get_profile
from facenet_keras.service.audit import Audit, AuditLog
from facenet_keras.service.auth import KeyStore, load_secret
from facenet_keras.service.budget import PixelBudget
from facenet_keras.service.connections import InFlightLimit
from facenet_keras.service.engine import Engine
from facenet_keras.service.errors import ERROR_RESPONSES
from facenet_keras.service.errors import install as install_errors
from facenet_keras.service.guard import Guard
from facenet_keras.service.jobs import JobStore
from facenet_keras.service.keygate import KeyGate
from facenet_keras.service.logthrottle import throttle
from facenet_keras.service.metrics import Metrics
from facenet_keras.service.routes import docs, faces, gallery, keys, library, liveness, pages, styles
from facenet_keras.service.settings import SETTINGS_ENV, Settings, configure_logging
from facenet_keras.service.throttle import FailureThrottle

__all__ = ["Settings", "create_app", "create_app_from_env", "configure_logging", "SETTINGS_ENV"]

log = logging.getLogger("facenet_keras.service")

DESCRIPTION = (
    "Face detection, verification (1:1), recognition (1:K), liveness and a gallery of enrolled people; "
    "plus neural style transfer as jobs. Every /v1 endpoint needs an API key (`Authorization: Bearer KEY` "
    "or `X-API-Key: KEY`) of the scope it names."
)


def create_app_from_env() -> FastAPI:
    """The app from the settings in ``$FACENET_KERAS_SERVICE_SETTINGS`` (how uvicorn's workers get them)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service: endpoints, security, batching; models load in the background at start-up."""
    settings = settings or Settings()
    keystore = KeyStore(settings.keys)
    state_dir = keystore.path.parent
    metrics = Metrics()
    throttle()  # floods of junk requests and per-connection errors collapse in the log
    audit = AuditLog(settings.audit_log or state_dir / "audit.log")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = Engine(
            settings.gallery,
            model=settings.model if settings.profile is None else get_profile(settings.profile),
            max_pixels=settings.max_pixels,
            max_request_pixels=settings.max_request_pixels,
            budget=PixelBudget(settings.max_pixels_in_flight, settings.pixel_wait_s),
            max_batch=settings.max_batch,
            batch_wait_s=settings.batch_wait_ms / 1e3,
            detect_workers=settings.detect_workers,
            on_batch=metrics.observe_batch,
        )
        app.state.engine = engine
        app.state.secret = load_secret(settings.secret or state_dir / "secret.key")
        app.state.jobs = JobStore(settings.jobs or state_dir / "jobs", ttl_s=settings.job_ttl_s)
        if len(keystore) == 0:
            log.warning(
                "no API keys in %s: every /v1 endpoint answers 401 until one is made with "
                "'facenet-keras keys create --scope write' (read: recognise only; admin: also export)",
                keystore.path,
            )
        threading.Thread(target=engine.load, name="load-models", daemon=True).start()
        yield
        app.state.jobs.close()
        engine.close()
        audit.close()

    app = FastAPI(
        title="facenet-keras",
        version="1",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        description=DESCRIPTION,
        docs_url=None,  # served from local files by routes.docs instead of a CDN
        redoc_url=None,
    )
    app.state.settings, app.state.keystore, app.state.metrics = settings, keystore, metrics
    app.state.key_throttle = FailureThrottle(settings.key_failures, settings.key_window_s)
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
    areas = (faces, liveness, gallery, library, styles, keys)
    routes = [route for area in (pages, *areas) for route in area.router.routes]
    gate = KeyGate(routes, keystore, throttle=app.state.key_throttle)
    app.add_middleware(Guard, settings=settings, metrics=metrics, gate=gate)
    app.add_middleware(Audit, log=audit)  # outside the guard: it audits what the key gate refuses too
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight)  # outermost

    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.include_router(docs.router)
    if docs.assets() is not None:
        app.mount("/docs-assets", StaticFiles(directory=docs.assets()), name="docs-assets")
    for area in areas:
        app.include_router(area.router)
    return app
