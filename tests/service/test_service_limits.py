"""The service under a hostile client's load, in process (no models loaded): bounded metric series and
junk logging, a slow body refused 408, probes answered with the worker threads all busy, unknown
keys throttled per address, and the audit log of writes. The same limits on a real uvicorn server
(header deadline, connection cap) are in test_service_connections.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import threading
from contextlib import contextmanager
from dataclasses import replace

import pytest
from service_helpers import auth


@pytest.fixture()
def app_settings(service_dir, keys, tmp_path):
    from facenet_keras.service.app import Settings

    return Settings(
        gallery=str(tmp_path / "g.sqlite"),
        keys=str(service_dir / "keys.json"),
        jobs=str(tmp_path / "jobs"),
        audit_log=str(tmp_path / "audit" / "audit.log"),
    )


def bare_client(settings):
    """A TestClient on the app whose start-up (model loading) is left out: the limits under test
    stand before any model. Requests share one event loop (and its worker-thread limiter)."""
    from contextlib import asynccontextmanager

    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    app = create_app(settings)

    @asynccontextmanager
    async def no_models(app):
        yield

    app.router.lifespan_context = no_models
    return TestClient(app, raise_server_exceptions=False)


def series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_junk_methods_and_paths_add_no_series_and_collapse_in_the_log(app_settings, keys, caplog):
    with bare_client(app_settings) as c:
        for i in range(10):  # one of each kind: unknown method on a route, on no route; unknown path
            c.request(f"JUNK{i}", "/v1/people")
            c.request(f"JUNK{i}", f"/x{i}")
            c.get(f"/no/such/path/{i}")
        c.get("/metrics", headers=auth(keys["read"]))  # its own series, counted after it answers
        first = c.get("/metrics", headers=auth(keys["read"])).text
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="facenet_keras.service.access"):
            for i in range(10, 400):
                assert c.request(f"MADE-UP-{i}", "/v1/people").status_code == 405
                assert c.request(f"MADE-UP-{i}", f"/x{i}").status_code == 404
                assert c.get(f"/no/such/path/{i}").status_code == 404
        later = c.get("/metrics", headers=auth(keys["read"])).text
    assert series(later) == series(first), "junk requests added series"
    assert 'method="other",route="other",status="404"' in later
    assert 'method="other",route="/v1/people",status="405"' in later
    assert "JUNK" not in later and "MADE-UP" not in later and "/no/such" not in later
    assert len(later) - len(first) < 2_000  # the counts' digits only
    junk = [r for r in caplog.records if r.name.endswith(".junk")]
    assert 1 <= len(junk) <= 10, f"{len(junk)} log lines for 1,170 junk requests"
    assert all("MADE-UP" not in r.getMessage() for r in caplog.records)


def test_metrics_are_summed_over_worker_processes(tmp_path):
    """prometheus_client's multiprocess mode, as ``serve --workers N`` sets it up: two processes count
    requests, a third (any worker answering /metrics) reports their sum."""
    import subprocess
    import sys

    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    count = (
        "from facenet_keras.service.metrics import Metrics\n"
        "m = Metrics()\n"
        "for _ in range({n}): m.observe_request('POST', '/v1/recognize', 200, 0.02)\n"
        "m.observe_batch(4)\n"
    )
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", count.format(n=n)], env=env, check=True)
    text = subprocess.run(
        [sys.executable, "-c", "from facenet_keras.service.metrics import Metrics; print(Metrics().render())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert 'facenet_requests_total{method="POST",route="/v1/recognize",status="200"} 7.0' in text
    assert "facenet_encoder_batch_size_count 2.0" in text


def test_a_slow_body_is_refused_408_and_the_connection_closed(app_settings):
    """The body's deadline: body_timeout_s, plus 1 s per min_body_rate bytes received."""
    from facenet_keras.service.guard import Guard
    from facenet_keras.service.metrics import Metrics

    settings = replace(app_settings, body_timeout_s=0.3, min_body_rate=1000)
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    async def slow_client():  # 500 bytes at once (0.5 s more), then nothing
        yield {"type": "http.request", "body": b"x" * 500, "more_body": True}
        await asyncio.sleep(30)

    async def run():
        chunks = slow_client()
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/recognize", "headers": [(b"content-length", b"9000")]}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(Guard(app, settings, Metrics())(scope, chunks.__anext__, send), 5)
        return sent, loop.time() - t0

    sent, seconds = asyncio.run(run())
    start = sent[0]
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    assert "slower than the limit" in json.loads(sent[1]["body"])["error"]["message"]
    assert 0.7 <= seconds < 2.0 and not reached  # 0.3 s + 0.5 s for the 500 bytes; the app never saw it


@contextmanager
def every_worker_thread_taken(c):
    """All the tokens of the app's thread limiter held (as if every worker thread were busy)."""
    import anyio.to_thread

    limiter = c.portal.call(anyio.to_thread.current_default_thread_limiter)
    holders: list = []

    async def take():
        while limiter.available_tokens:
            holders.append(object())
            limiter.acquire_on_behalf_of_nowait(holders[-1])

    async def give_back():
        for h in holders:
            limiter.release_on_behalf_of(h)

    c.portal.call(take)
    try:
        yield
    finally:
        c.portal.call(give_back)


def ask(c, answers: dict, path: str, headers=None, wait_s: float = 5.0) -> threading.Thread:
    """GET ``path`` in a thread, its answer into ``answers[path]``; waits up to ``wait_s`` for it."""

    def one():
        r = c.get(path, headers=headers)
        answers[path] = (r.status_code, r.headers.get("retry-after"))

    t = threading.Thread(target=one, daemon=True)
    t.start()
    t.join(wait_s)
    return t


def test_probes_answer_while_every_worker_thread_is_busy(app_settings, keys):
    """/healthz and /readyz are answered on the event loop: with all the worker threads taken, they
    still answer, while an endpoint that needs a thread waits."""
    answers: dict = {}
    with bare_client(app_settings) as c:
        with every_worker_thread_taken(c):
            for path in ("/healthz", "/readyz"):
                ask(c, answers, path)
                assert path in answers, f"{path} waited for a worker thread"
            blocked = ask(c, answers, "/v1/people", auth(keys["read"]), wait_s=1.0)
            assert "/v1/people" not in answers, "the thread pool was not saturated: the test proves nothing"
        blocked.join(10)
    assert answers["/healthz"][0] == 200 and answers["/readyz"][0] == 503  # no models here: not ready, but answering
    assert answers["/v1/people"][0] == 503


def test_requests_beyond_the_cap_in_flight_are_refused_at_once(app_settings, keys):
    answers: dict = {}
    with bare_client(replace(app_settings, max_in_flight=1)) as c:
        with every_worker_thread_taken(c):
            blocked = ask(c, answers, "/v1/people", auth(keys["read"]), wait_s=1.0)  # in flight, waiting
            assert "/v1/people" not in answers
            ask(c, answers, "/v1/people/x", auth(keys["read"]))
            ask(c, answers, "/healthz")
        blocked.join(10)
    assert answers["/v1/people/x"] == (503, "1")  # busy: refused without waiting
    assert answers["/healthz"][0] == 200  # the probes are never refused
    assert answers["/v1/people"][0] == 503  # the one in flight was answered (not ready: no models here)


def test_unknown_keys_are_throttled_per_address(app_settings, keys):
    settings = replace(app_settings, key_failures=3, key_window_s=60)
    with bare_client(settings) as c:
        assert c.get("/v1/people", headers=auth(keys["read"])).status_code == 503  # a good key: only not ready
        for _ in range(3):
            assert c.get("/v1/people", headers=auth("fk_0000.guess")).status_code == 401
        r = c.get("/v1/people", headers=auth("fk_0000.guess"))
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
        assert "try again in" in r.json()["error"]["message"]
        # while throttled, even the right key is not looked at from that address
        assert c.get("/v1/people", headers=auth(keys["read"])).status_code == 429
        assert c.get("/healthz").status_code == 200  # the probes need no key


def test_the_failure_table_is_bounded_and_forgets_old_windows():
    from facenet_keras.service.throttle import FailureThrottle

    now = [0.0]
    t = FailureThrottle(limit=2, window_s=10, max_addresses=100, clock=lambda: now[0])
    for i in range(10_000):
        t.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 100  # the least recently failed are forgotten
    t.failed("a")
    assert t.retry_after("a") == 0
    t.failed("a")
    assert t.retry_after("a") == 10
    now[0] = 9.5
    assert t.retry_after("a") == 1
    now[0] = 10.0
    assert t.retry_after("a") == 0
    t.failed("a")  # a new window: one failure so far
    assert t.retry_after("a") == 0


def test_writes_are_audited_in_a_private_file(app_settings, keys):
    """Every request to a write or admin endpoint, allowed or not: when, key id, action, path
    parameters, status; never the key itself, a photo or an embedding; reads are not audited."""
    from facenet_keras.service.auth import KeyStore

    ids = {k.scope: k.id for k in KeyStore(app_settings.keys).list() if k.label.startswith("test")}
    with bare_client(app_settings) as c:
        c.get("/v1/people", headers=auth(keys["read"]))
        c.delete("/v1/people/Grace Hopper", headers=auth(keys["write"]))
        c.delete("/v1/people/Grace Hopper", headers=auth(keys["read"]))
        c.patch("/v1/people/Grace Hopper", json={"name": "G"}, headers=auth("fk_0000.guess"))
        c.get("/v1/gallery/export", headers=auth(keys["admin"]))
    path = app_settings.audit_log
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(r["action"], r["key"], r["status"]) for r in lines] == [
        ("remove", ids["write"], 503),  # allowed; no models here, so not done
        ("remove", ids["read"], 403),
        ("rename", None, 401),
        ("export", ids["admin"], 503),
    ]
    assert lines[0]["params"] == {"name": "Grace Hopper"} and lines[0]["route"] == "/v1/people/{name}"
    assert all(r["time"].endswith("Z") and r["method"] for r in lines)
    for key in keys.values():
        assert key not in text and key.partition(".")[2] not in text


@contextmanager
def counted_lookups(monkeypatch):
    """Every lookup of a presented key in a keys file, counted (the list fills as they happen)."""
    from facenet_keras.service.auth import KeyStore

    looked, check = [], KeyStore.check
    monkeypatch.setattr(KeyStore, "check", lambda self, key: looked.append(key) or check(self, key))
    yield looked


def test_a_request_is_judged_once(app_settings, keys, monkeypatch):
    """The key gate hands the key it admitted to the endpoint's dependency: one lookup and one
    throttle count per request, the answers and the audit line's key id as before."""
    from facenet_keras.service.auth import KeyStore

    ids = {k.scope: k.id for k in KeyStore(app_settings.keys).list() if k.label.startswith("test")}
    with bare_client(app_settings) as c, counted_lookups(monkeypatch) as looked:
        for method, path, key, status in [
            ("DELETE", "/v1/people/Ada", keys["write"], 503),  # admitted (no models here: not ready)
            ("GET", "/v1/people", keys["admin"], 503),
            ("DELETE", "/v1/people/Ada", keys["read"], 403),
            ("DELETE", "/v1/people/Ada", "fk_0000.guess", 401),
        ]:
            looked.clear()
            r = c.request(method, path, headers=auth(key))
            assert (r.status_code, looked) == (status, [key]), (method, path, status)
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]["code"] == "unauthorized"
        throttle = c.app.state.key_throttle
        assert throttle._table["testclient"][1] == 1  # the unknown key counted once
    lines = [json.loads(line) for line in open(app_settings.audit_log)]
    assert [(r["action"], r["key"], r["status"]) for r in lines] == [
        ("remove", ids["write"], 503),
        ("remove", ids["read"], 403),
        ("remove", None, 401),
    ]


def test_the_dependency_judges_every_key_the_gate_did_not(tmp_path, keys, service_dir, monkeypatch):
    """An app built without the gate (or a request the gate did not see) still has each key judged
    by the endpoint's own dependency, and a value in the request's state that is not the app's
    gate's verdict is ignored."""
    from fastapi import FastAPI, Request
    from fastapi.testclient import TestClient

    from facenet_keras.service.auth import KeyStore
    from facenet_keras.service.deps import WRITE
    from facenet_keras.service.errors import install
    from facenet_keras.service.keygate import VERDICT, Verdict
    from facenet_keras.service.throttle import FailureThrottle

    store = KeyStore(service_dir / "keys.json")
    app = FastAPI()
    app.state.keystore, app.state.key_throttle = store, FailureThrottle(100, 60)
    install(app)

    @app.get("/w")
    def written(key=WRITE):  # the key the dependency admitted
        return {"key": key.id}

    forged: list = [None]

    @app.middleware("http")
    async def plant(request: Request, call_next):  # what a client cannot do, done from inside
        if forged[0] is not None:
            request.scope.setdefault("state", {})[VERDICT] = forged[0]
        return await call_next(request)

    write_id = next(k.id for k in store.list() if k.label == "test write")
    other_store = KeyStore(tmp_path / "other.json")
    admitted_elsewhere = Verdict(next(k for k in store.list() if k.label == "test admin"), "admin", other_store)
    with TestClient(app) as c, counted_lookups(monkeypatch) as looked:
        for verdict in (None, "admin", admitted_elsewhere):
            forged[0] = verdict
            assert c.get("/w").status_code == 401
            assert c.get("/w", headers=auth("fk_0000.guess")).status_code == 401
            assert c.get("/w", headers=auth(keys["read"])).status_code == 403
            looked.clear()
            r = c.get("/w", headers=auth(keys["write"]))
            assert (r.status_code, r.json(), looked) == (200, {"key": write_id}, [keys["write"]])


def test_the_audit_log_rotates_and_every_file_stays_private(tmp_path):
    from facenet_keras.service.audit import AuditLog

    log = AuditLog(tmp_path / "a" / "audit.log", max_bytes=400, backups=2)
    for i in range(40):
        log.write(key="abcd", action="remove", params={"name": f"person {i}"}, status=200)
    log.close()
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(stat.S_IMODE(os.stat(tmp_path / "a" / f).st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    assert "person 39" in (tmp_path / "a" / "audit.log").read_text()


def test_serve_shares_a_private_metrics_folder_between_workers_and_removes_it(tmp_path, monkeypatch):
    from facenet_keras.cli.serve import _shared_metrics_dir
    from facenet_keras.service.metrics import MULTIPROC_ENV

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with _shared_metrics_dir():
        folder = os.environ[MULTIPROC_ENV]
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        open(os.path.join(folder, "counter_1.db"), "wb").close()  # what a worker leaves there
    assert MULTIPROC_ENV not in os.environ and not os.path.exists(folder)
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))  # the user's own: used, and kept
    with _shared_metrics_dir():
        assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    assert tmp_path.is_dir()


def test_serve_options_reach_the_server(tmp_path, monkeypatch, capsys):
    """The limits' options become the app's settings and the protocol's limits; bad values exit 2."""
    import uvicorn

    from facenet_keras.cli import main

    served: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    common = ["serve", "--gallery", str(tmp_path / "g.sqlite"), "--keys", str(tmp_path / "keys.json")]
    limits = ["--header-timeout", "3", "--max-connections", "7", "--keep-alive", "2", "--key-failures", "4"]
    assert main(common + limits + ["--audit-log", str(tmp_path / "a.log")]) == 0
    (app, kw) = served[0]
    s = app.state.settings
    assert (s.header_timeout_s, s.max_connections, s.key_failures, s.audit_log) == (3, 7, 4, str(tmp_path / "a.log"))
    assert kw["http"].bound == (3.0, 7) and kw["timeout_keep_alive"] == 2
    for bad in (["--header-timeout", "0"], ["--max-in-flight", "0"], ["--min-body-rate", "-1"]):
        assert main(common + bad) == 2
        assert "must be" in capsys.readouterr().err


def test_floods_of_one_log_message_collapse(caplog):
    """asyncio's accept() errors (one per connection when file descriptors run out) and uvicorn's
    malformed-request warnings: at most 5 per kind per 10 s, then a count of the rest."""
    from facenet_keras.service.logthrottle import Throttle, throttle

    throttle()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(1000):
            logging.getLogger("asyncio").error("socket.accept() out of system resource", exc_info=OSError(24, "EMFILE"))
    assert len(caplog.records) == 5
    now = [0.0]
    f = Throttle(burst=2, window_s=10, clock=lambda: now[0])
    records = [logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Invalid HTTP request received.", (), None)]
    passed = [f.filter(logging.makeLogRecord(records[0].__dict__)) for _ in range(50)]
    assert sum(passed) == 2
    now[0] = 10.0
    later = logging.makeLogRecord(records[0].__dict__)
    assert f.filter(later) and "[and 48 more like this in the previous 10 s]" in later.getMessage()


def test_the_open_file_limit_bounds_connections_and_the_accept_burst(monkeypatch):
    """Connections plus two accept bursts (a backlog each) fit under the soft open-file limit."""
    from facenet_keras.service import connections

    monkeypatch.setattr(connections, "_soft_limit", lambda: 1100)
    conns, backlog = connections.fd_budget(1000)
    assert conns + 2 * backlog + connections.FD_RESERVE <= 1100 and conns >= 400
    monkeypatch.setattr(connections, "_soft_limit", lambda: 1_048_576)
    assert connections.fd_budget(1000) == (1000, connections.BACKLOG)
