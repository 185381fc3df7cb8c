"""The API's documentation pages in a real browser with no network beyond the server: Swagger UI
(``/docs``) lists every operation and ReDoc (``/redoc``) renders, from the server's own files,
under their Content-Security-Policy (no inline script), with no request anywhere else."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
from bounded_waits import busy_ms

CHROMIUM = os.environ.get("FACENET_KERAS_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None or not shutil.which(CHROMIUM),
    reason="needs playwright (pip) and chromium (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def offline_page(live_server):
    """A page of headless Chromium that reaches the server only: any other request is aborted and
    recorded; console errors (a CSP violation among them) are recorded too."""
    from playwright.sync_api import sync_playwright

    base = live_server[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(busy_ms(30))
        page.elsewhere, page.errors = [], []

        def route(r):
            if r.request.url.startswith(base + "/"):
                return r.continue_()
            page.elsewhere.append(r.request.url)
            return r.abort("internetdisconnected")

        context.route("**/*", route)
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page, base
        browser.close()


def test_swagger_ui_lists_every_operation_offline(offline_page, live_server):
    import httpx

    page, base = offline_page
    document = httpx.get(base + "/openapi.json", timeout=30).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    r = page.goto(base + "/docs")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    page.wait_for_selector(".opblock-summary-path")
    shown = page.locator(".opblock").count()
    assert shown == operations, f"{shown} of {operations} operations shown; errors: {page.errors}"
    assert page.locator(".opblock-summary-path[data-path='/v1/people/{name}']").count() == 3  # GET, PATCH, DELETE
    assert page.elsewhere == [] and page.errors == [], (page.elsewhere, page.errors)


def test_redoc_renders_offline(offline_page):
    page, base = offline_page
    page.elsewhere.clear()
    page.errors.clear()
    page.goto(base + "/redoc")
    page.wait_for_selector("h1:has-text('facenet-keras')")
    page.wait_for_selector("h2:has-text('enrol a new person from one or more photos')", state="attached")
    # ReDoc's sidebar always asks for Redocly's logo from their CDN: the page's CSP blocks it (so
    # the browser does not even try: nothing in page.elsewhere), and the logo hides itself.
    others = [e for e in page.errors if not ("cdn.redoc.ly/redoc/logo-mini.svg" in e and "img-src" in e)]
    assert page.elsewhere == [] and others == [], (page.elsewhere, page.errors)
