"""The web page at ``/`` (its static files are mounted by the app) and the probes: ``/healthz``,
``/readyz`` and ``/metrics``. The first two are coroutines with no blocking dependency, so they are
answered on the event loop even when every worker thread is busy with heavy requests."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response

from facenet_keras.service.deps import READ, ready_engine
from facenet_keras.service.errors import ERROR_RESPONSES
from facenet_keras.service.metrics import CONTENT_TYPE

__all__ = ["router", "STATIC"]

STATIC = Path(__file__).resolve().parents[1] / "static"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)

router = APIRouter()


@router.get("/", include_in_schema=False)
def page():
    return FileResponse(STATIC / "index.html", headers={"content-security-policy": PAGE_CSP})


@router.get("/healthz", tags=["probes"], summary="the process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["probes"],
    summary="the models are loaded (503 until then); 'liveness': its landmark model too",
    responses={503: ERROR_RESPONSES[503]},
)
async def readyz(request: Request) -> dict:
    """Ready or not, and nothing about the gallery: anyone may ask, with no key (and no gallery query,
    which would block the event loop)."""
    e = ready_engine(request)
    return {"ready": True, "liveness": e.liveness_ready.is_set() and not e.liveness_failure}


@router.get(
    "/metrics",
    tags=["probes"],
    response_class=PlainTextResponse,
    dependencies=[READ],
    summary="requests, latency and encoder batch sizes (Prometheus text format)",
)
def prometheus(request: Request):
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
