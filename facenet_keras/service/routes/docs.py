"""The API's documentation pages from local files: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

FastAPI's own pages load their scripts from a CDN (blank offline, no integrity check) and start
Swagger UI with an inline script. These load the assets that the ``fastapi-offline`` package ships
(MIT; mounted at ``/docs-assets``) and start Swagger UI from a static file (``/static/docs.js``),
so they work offline under a Content-Security-Policy that allows no inline script. Without that
package the pages answer 501 saying what to install; ``/openapi.json`` needs nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from facenet_keras.service.errors import ServiceError

__all__ = ["router", "assets", "DOCS_CSP"]

# Scripts only from this server; the two viewers set inline styles and ReDoc runs its search in a
# blob: worker, so those are allowed. Nothing is fetched from elsewhere (ReDoc's sidebar asks for
# Redocly's logo from their CDN: blocked here, the logo hides itself).
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Relative URLs: the pages keep working under a reverse proxy's path prefix.
SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facenet-keras API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="openapi.json"></div>
<script src="docs-assets/swagger-ui-bundle.js"></script>
<script src="static/docs.js"></script></body></html>
"""
REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facenet-keras API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="openapi.json"></redoc>
<script src="docs-assets/redoc.standalone.js"></script></body></html>
"""

router = APIRouter(include_in_schema=False)


def assets() -> Path | None:
    """The folder of Swagger UI's and ReDoc's files (from fastapi-offline), or None without it."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "static"


def _page(html: str) -> HTMLResponse:
    if assets() is None:
        raise ServiceError(
            501,
            "not_available",
            "the API docs pages need fastapi-offline (pip install fastapi-offline); "
            "the document itself is at /openapi.json",
        )
    return HTMLResponse(html, headers={"content-security-policy": DOCS_CSP})


@router.get("/docs")
def swagger() -> HTMLResponse:
    return _page(SWAGGER)


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return _page(REDOC)
