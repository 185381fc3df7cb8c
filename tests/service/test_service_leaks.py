"""The service's smaller leaks, closed: style jobs expire and do not stay "running" after a restart
(that a job belongs to the key that made it: test_service_api.py's style job); read keys and
keyless probes learn no server paths or counts; names a URL cannot carry back are refused; the
OpenAPI document says what the server does (a 405's ``Allow``, 409, a boolean is not a number)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from service_helpers import auth

from facenet_keras.service.jobs import ORPHANED, JobStore

PNG = b"\x89PNG\r\n\x1a\n not really, but the store does not look"


# ------------------------------------------------------------------ jobs
def _finished(store: JobStore, job_id: str, owner: str) -> dict:
    """The job's state once it ran (a job that returns at once: seconds at most, however busy)."""
    deadline = time.monotonic() + 60
    while (job := store.get(job_id, owner))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_finished_jobs_expire_and_their_files_go(tmp_path):
    store = JobStore(tmp_path / "jobs", ttl_s=0.5)
    try:
        job_id = store.submit("stylize", lambda report: PNG, owner="k1")
        assert _finished(store, job_id, "k1")["status"] == "done"
        assert store.result(job_id, "k1").read_bytes() == PNG
        with pytest.raises(KeyError):
            store.get(job_id, "k2")  # another key's: unknown
        time.sleep(0.6)
        with pytest.raises(KeyError):  # expired: unknown, and deleted on the way
            store.get(job_id, "k1")
        assert list((tmp_path / "jobs").iterdir()) == []

        other = store.submit("stylize", lambda report: PNG, owner="k1")
        _finished(store, other, "k1")
        assert sorted(p.suffix for p in (tmp_path / "jobs").iterdir()) == [".json", ".png"]
        deadline = time.monotonic() + 30  # nobody asks: the store's sweeper deletes it (every ttl / 2)
        while list((tmp_path / "jobs").iterdir()):
            assert time.monotonic() < deadline, "an expired job's files stayed on disk"
            time.sleep(0.1)
    finally:
        store.close()
    with pytest.raises(ValueError, match="positive"):
        JobStore(tmp_path / "jobs", ttl_s=0)


def test_jobs_a_restart_left_unfinished_are_marked_failed(tmp_path):
    """A job whose worker process is gone fails at start-up; one whose worker still runs (another
    worker of the same server), or that another host runs, is left alone."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = tmp_path / "jobs"
    store = JobStore(folder)
    store._write("a" * 32, kind="stylize", status="running", progress=0.4, message="", owner="k1", pid=gone.pid)
    store._write("b" * 32, kind="stylize", status="queued", progress=0.0, message="", owner="k1")  # before pids
    store._write("c" * 32, kind="stylize", status="running", progress=0.1, message="", owner="k1", pid=os.getppid())
    elsewhere = dict(kind="stylize", status="running", progress=0.2, message="", owner="k1", host="another-host")
    store._write("d" * 32, **elsewhere, pid=gone.pid)  # a shared jobs folder: that host judges its own
    store.close()

    again = JobStore(folder)  # the restart
    try:
        for job_id in ("a" * 32, "b" * 32):
            job = again.get(job_id, "k1")
            assert job["status"] == "failed" and job["message"] == ORPHANED, job
        assert again.get("c" * 32, "k1")["status"] == again.get("d" * 32, "k1")["status"] == "running"
    finally:
        again.close()


# ------------------------------------------------------------------ what read keys and probes learn
def test_a_style_job_keeps_only_its_small_inputs_counted_until_it_ends(tmp_path, service_dir, keys, monkeypatch):
    """While a style job waits its turn it holds no decoded upload, only the small copies it works
    on, counted in the worker's pixel budget; when it ends the budget is back to zero."""
    import gc
    import threading
    import weakref
    from contextlib import asynccontextmanager

    import matplotlib.cbook
    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image
    from service_helpers import png_bytes, wait_job
    from skimage import data

    from facenet_keras.service import engine as engine_module
    from facenet_keras.service.app import Settings, create_app
    from facenet_keras.service.budget import PixelBudget

    decoded: list = []  # weak references to every image the worker decodes
    real = engine_module.load_image
    monkeypatch.setattr(
        engine_module, "load_image", lambda d, **kw: decoded.append(weakref.ref(a := real(d, **kw))) or a
    )
    settings = Settings(
        gallery=str(tmp_path / "g.sqlite"), keys=str(service_dir / "keys.json"), jobs=str(tmp_path / "j")
    )
    app = create_app(settings)

    @asynccontextmanager
    async def no_face_models(app):  # a style job needs none
        app.state.engine = engine_module.Engine(settings.gallery, budget=PixelBudget(50_000_000, 1.0))
        app.state.engine.ready.set()
        app.state.jobs = JobStore(settings.jobs)
        yield
        app.state.jobs.close()
        app.state.engine.close()

    app.router.lifespan_context = no_face_models
    grace = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    release = threading.Event()
    with TestClient(app) as c:
        budget = app.state.engine.budget
        busy = app.state.jobs.submit("stylize", lambda report: release.wait(120) and PNG, owner="other")
        r = c.post(
            "/v1/stylize",
            data={"size": "64", "steps": "2"},
            files={"content": ("grace.png", png_bytes(grace)), "style": ("astronaut.png", png_bytes(data.astronaut()))},
            headers=auth(keys["write"]),
        )
        assert r.status_code == 202 and r.json()["status"] == "queued", r.text
        gc.collect()
        assert len(decoded) == 2 and all(ref() is None for ref in decoded)  # the uploads went with the request
        assert budget.in_flight == (64 * 55 + 64 * 64) * 4  # two float copies at 64 px, 4 decoded pixels each
        release.set()
        _finished(app.state.jobs, busy, "other")
        job = wait_job(c, r.json(), auth(keys["write"]), ("vgg19",))
        assert job["status"] == "done", job
        assert budget.in_flight == 0  # given back before the job is marked done
        png = Image.open(io.BytesIO(c.get(job["result"], headers=auth(keys["write"])).content))
        assert png.size == (55, 64)


def test_a_style_jobs_small_inputs_are_what_its_method_makes_of_the_full_images():
    """The copies a job keeps, made from the decoded uint8 images a channel at a time, are exactly
    what each method's own first step makes of the whole image as floats (so the job's answer does
    not change), and the method leaves them as they are."""
    import numpy as np
    from skimage import data

    from facenet_keras.service.routes.styles import job_inputs
    from style_transfer.fast import STYLE_SIZE, prepare_style
    from style_transfer.images import load_image, resize

    content, style = data.coffee(), data.astronaut()[:, 40:]  # 400x600 and 512x472: crops and shrinks
    full = load_image(content), load_image(style)
    for method, own_model, expected_style in [
        ("optimize", False, load_image(full[1], 96)),
        ("fast", False, prepare_style(full[1])),
        ("fast", True, resize(full[1], STYLE_SIZE, STYLE_SIZE)),
    ]:
        small = job_inputs(method, content, style, size=96, own_model=own_model)
        assert small[0].dtype == np.float32 and max(small[0].shape) == 96
        np.testing.assert_array_equal(small[0], load_image(full[0], 96))
        np.testing.assert_array_equal(small[1], expected_style)
        np.testing.assert_array_equal(load_image(small[0], 96), small[0])  # taken as they are
        again = load_image(small[1], 96) if method == "optimize" else prepare_style(small[1])
        np.testing.assert_array_equal(again, small[1])
    assert job_inputs("fast", content, None, size=96, own_model=False)[1] is None  # a preset: no style


def test_readyz_says_ready_and_nothing_about_the_gallery(client):
    body = client.get("/readyz").json()
    assert set(body) == {"ready", "liveness"} and body["ready"] is True


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["a/b", "/", "..", ".", " ../ "])
def test_names_a_url_cannot_carry_back_are_refused(client, keys, shared_data, name):
    photo = (shared_data / "faces" / "alex_lacamoire" / "1.jpg").read_bytes()
    w = auth(keys["write"])
    r = client.post("/v1/people", data={"name": name}, files=[("photos", ("1.jpg", photo))], headers=w)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    assert "must not contain '/' nor be '.' or '..'" in r.json()["error"]["message"]
    assert all("/" not in p["name"] for p in client.get("/v1/people", headers=w).json()["people"])
    # the library's naming refuses it before looking for the library (this app has none: 404 otherwise)
    r = client.post("/v1/library/clusters/0/name", json={"name": name}, headers=w)
    assert r.status_code == 422, r.text


def test_names_with_url_characters_round_trip_when_encoded(client, keys, shared_data):
    """'?', '#' and '%' are a person's name as any other character: percent-encoded, they come back."""
    photo = (shared_data / "faces" / "alex_lacamoire" / "1.jpg").read_bytes()
    w = auth(keys["write"])
    name = "Alex ?#% 100%"
    r = client.post("/v1/people", data={"name": name}, files=[("photos", ("1.jpg", photo))], headers=w)
    assert r.status_code == 201, r.text
    url = "/v1/people/" + quote(name, safe="")
    try:
        assert client.get(url, headers=w).json()["name"] == name
        r = client.patch(url, json={"name": "Alex/L"}, headers=w)  # renaming into an unreachable name: refused
        assert r.status_code == 422 and "'/'" in r.json()["error"]["message"]
    finally:
        assert client.delete(url, headers=w).status_code == 200


# ------------------------------------------------------------------ the OpenAPI document
def test_a_405_allows_every_method_of_the_path(client):
    for method, path, allowed in [
        ("POST", "/v1/people/somebody", "GET, PATCH, DELETE"),
        ("PUT", "/v1/people", "GET, POST"),
        ("DELETE", "/v1/stylize", "POST"),
        ("POST", "/static/app.js", "GET, HEAD"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allowed, (method, path, r.headers.get("allow"))


def test_409_is_documented_where_a_name_can_be_taken(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "409" in paths["/v1/people"]["post"]["responses"]
    assert "409" in paths["/v1/people/{name}"]["patch"]["responses"]
    assert "409" not in paths["/v1/recognize"]["post"]["responses"]  # only where it can happen


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v1/library/cluster", {"threshold": True}),
        ("/v1/library/clusters/0/split", {"threshold": True}),
        ("/v1/library/merge", {"into": True, "merge": 0}),
        ("/v1/library/clusters/0/name", {"name": 7}),
        ("/v1/people/somebody", {"name": 7}),
    ],
)
def test_a_boolean_is_not_a_number_nor_a_number_a_name(client, keys, path, body):
    """Request bodies take JSON types as they are (without a library, a valid body would be 404)."""
    method = client.patch if path.startswith("/v1/people") else client.post
    r = method(path, json=body, headers=auth(keys["write"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
