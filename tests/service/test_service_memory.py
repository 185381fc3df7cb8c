"""The service's memory budget, by its mechanism (no memory figures: benchmarks/service_abuse.py
measures those): the key is checked before the body is read; every frame's size is read from its
header before the first is decoded; a request's decoded pixels are capped; the worker's pixels in
flight are shared out, the rest wait and then get 503 with Retry-After. Fast, no models."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time

import numpy as np
import pytest
from fastapi import UploadFile
from PIL import Image

from facenet_keras.service.budget import PixelBudget, budgeted, hold
from facenet_keras.service.errors import ServiceError


def _png(width: int, height: int) -> bytes:
    """A 1-bit blank PNG of width x height: a few hundred bytes, width x height x 3 bytes decoded."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _upload(data: bytes) -> UploadFile:
    return UploadFile(file=io.BytesIO(data), filename="f.png")


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """A worker's engine without its models (none is needed to decode), whose loader records what it decodes."""
    from facenet_keras.service import engine as engine_module

    decoded = []
    real = engine_module.load_image

    def load_image(data, **kw):
        decoded.append(kw["name"])
        return real(data, **kw)

    monkeypatch.setattr(engine_module, "load_image", load_image)
    e = engine_module.Engine(
        tmp_path / "g.sqlite",
        max_pixels=25_000_000,
        max_request_pixels=100_000_000,
        budget=PixelBudget(100_000_000, 0.2),
    )
    e.decoded = decoded
    yield e
    e.close()


# ------------------------------------------------------------------------------------ the key first
def _asgi_post(app, path: str, headers: dict[str, str], size: int = 9_900_000):
    """POST ``path`` straight through the ASGI app with a body of ``size`` bytes: (status, body, how
    many times the app asked for the body)."""
    asked, sent = [], []

    async def receive():
        asked.append(1)
        return {"type": "http.request", "body": b"\0" * size, "more_body": False}

    async def send(message):
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"content-length", str(size).encode()), (b"content-type", b"multipart/form-data; boundary=x")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, len(asked)


def test_an_upload_without_the_right_key_is_refused_before_its_body_is_read(tmp_path):
    from facenet_keras.service.app import Settings, create_app
    from facenet_keras.service.auth import KeyStore

    store = KeyStore(tmp_path / "keys.json")
    read, write = store.create("read"), store.create("write")
    app = create_app(Settings(keys=str(tmp_path / "keys.json"), max_upload_bytes=10 * 2**20))
    for headers, path, status in [
        ({}, "/v1/recognize", 401),
        ({"Authorization": "Bearer fk_00000000.forged"}, "/v1/recognize", 401),
        ({"X-API-Key": read}, "/v1/people", 403),  # enrolling needs write
        ({"Authorization": f"Basic {read}"}, "/v1/liveness", 401),  # not a bearer key
    ]:
        got, body, asked = _asgi_post(app, path, headers)
        assert (got, asked) == (status, 0), (headers, path, body)
        assert b'"error"' in body
    # the right key gets through the gate: the body is read (the models are not loaded: 503)
    got, body, asked = _asgi_post(app, "/v1/people", {"Authorization": f"Bearer {write}"})
    assert asked >= 1 and got != 401 and got != 403, body
    # a path without a key (the page) and an unknown path are not the gate's business
    assert _asgi_post(app, "/nowhere", {}, size=10)[0] == 404


# ------------------------------------------------------------------------------------ sizes first
def test_every_frame_is_sized_before_the_first_is_decoded(engine):
    from facenet_keras.service.deps import frames_stack

    frame, odd = _png(2000, 2000), _png(1999, 2000)
    assert len(frame) < 1000
    run = budgeted(frames_stack)
    with pytest.raises(ServiceError) as err:  # the 149 + 1 frames
        run(engine, [_upload(frame) for _ in range(149)] + [_upload(odd)])
    assert err.value.status == 422 and "frame 150 is 1999x2000" in err.value.message
    with pytest.raises(ServiceError) as err:  # 150 alike: 600 megapixels, over the request's limit
        run(engine, [_upload(frame) for _ in range(150)])
    assert err.value.status == 413 and "limit of 100,000,000 per request" in err.value.message
    assert engine.decoded == [] and engine.budget.in_flight == 0
    stack = run(engine, [_upload(_png(320, 240)) for _ in range(5)])
    assert stack.shape == (5, 240, 320, 3) and engine.decoded == [f"frame {i}" for i in range(1, 6)]
    assert engine.budget.in_flight == 0  # given back when the endpoint returned


def test_a_requests_photos_are_sized_together_before_any_is_decoded(engine):
    from facenet_keras.service.deps import photos_of

    big = _png(5000, 5000)  # 25 megapixels each, within the per-photo limit
    engine.max_request_pixels = 40_000_000
    with pytest.raises(ServiceError) as err:
        budgeted(photos_of)(engine, [(_upload(big), "first photo"), (_upload(big), "second photo")])
    assert err.value.status == 413 and "50,000,000 pixels" in err.value.message and "40,000,000" in err.value.message
    assert engine.decoded == [] and engine.budget.in_flight == 0


# ------------------------------------------------------------------------------------ the budget
def test_concurrent_requests_share_the_budget_the_rest_get_503_with_retry_after(engine):
    from facenet_keras.service.deps import photo_of

    big = _png(5000, 5000)
    engine.budget = PixelBudget(50_000_000, 0.3)  # two 25 MP photos at once
    inside, go = threading.Barrier(3), threading.Event()

    @budgeted
    def slow_request():
        image = photo_of(engine, _upload(big))
        inside.wait(5)
        go.wait(5)
        return image.shape

    threads = [threading.Thread(target=slow_request) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait(5)  # both hold 25 MP
    assert engine.budget.in_flight == 50_000_000
    t0 = time.monotonic()
    with pytest.raises(ServiceError) as err:
        budgeted(photo_of)(engine, _upload(big))
    assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}
    assert 0.25 < time.monotonic() - t0 < 3  # it waited its bounded time
    go.set()
    for t in threads:
        t.join(5)
    assert engine.budget.in_flight == 0
    assert budgeted(photo_of)(engine, _upload(big)).shape == (5000, 5000, 3)


def test_a_waiting_request_goes_ahead_when_pixels_are_given_back():
    budget = PixelBudget(10, 5.0)
    assert budget.acquire(8)
    threading.Timer(0.2, budget.release, (8,)).start()
    t0 = time.monotonic()
    assert budget.acquire(5) and 0.1 < time.monotonic() - t0 < 3
    assert budget.in_flight == 5


def test_what_an_endpoint_holds_is_given_back_whatever_it_does():
    budget = PixelBudget(100, 0.0)

    @budgeted
    def fails():
        hold(budget, 60, 100)
        raise ValueError("the endpoint's own error")

    with pytest.raises(ValueError):
        fails()
    assert budget.in_flight == 0
    with pytest.raises(RuntimeError, match="outside a budgeted endpoint"):
        hold(budget, 1, 100)
    with pytest.raises(ServiceError) as err:  # more than the whole budget: refused, never waits
        budgeted(hold)(budget, 101, 1000)
    assert err.value.status == 413 and budget.in_flight == 0
    assert np.all([budgeted(hold)(budget, 50, 100) is None for _ in range(3)]) and budget.in_flight == 0


def test_the_gate_knows_the_scope_of_every_keyed_endpoint(tmp_path):
    from starlette.routing import Match

    from facenet_keras.service.app import Settings, create_app

    app = create_app(Settings(keys=str(tmp_path / "keys.json")))
    gate = next(m for m in app.user_middleware if m.cls.__name__ == "Guard").kwargs["gate"]
    keyed = [
        (path, method.upper())
        for path, item in app.openapi()["paths"].items()
        for method, op in item.items()
        if op.get("security")
    ]
    assert len(keyed) > 20
    for path, method in keyed:
        scope = {"type": "http", "path": path.replace("{", "").replace("}", ""), "method": method, "root_path": ""}
        matched = [r for r in gate.routes if r.matches(scope)[0] == Match.FULL]
        assert len(matched) == 1 and gate._needs[id(matched[0])] in ("read", "write", "admin"), (path, method)


def test_serve_hands_its_memory_limits_to_the_app(tmp_path, monkeypatch, capsys):
    import uvicorn

    from facenet_keras.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(settings=app.state.settings))
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    base = ["serve", "--gallery", str(tmp_path / "g.sqlite"), "--keys", str(tmp_path / "keys.json")]
    limits = ["--max-frames", "7", "--max-request-pixels", "1000", "--max-pixels-in-flight", "2000"]
    assert main(base + limits) == 0
    s = seen["settings"]
    assert (s.max_frames, s.max_request_pixels, s.max_pixels_in_flight) == (7, 1000, 2000)
    assert os.environ["MALLOC_ARENA_MAX"] == "2"  # what worker processes start with
    assert main(base + ["--max-pixels-in-flight", "0"]) == 2
    assert "--max-pixels-in-flight must be at least 1" in capsys.readouterr().err
