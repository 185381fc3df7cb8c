"""Slow and idle clients against ``facenet-keras serve`` on a loopback port (uvicorn with the
service's own h11 protocol): a request's headers have a deadline from the connection's accept,
connections beyond the cap make room by closing the one that has waited longest for its headers,
and a body sent too slowly is answered 408 and its connection closed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from service_helpers import REPO, free_port, wait_ready

HEADER_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A server with small limits: 5 s for headers, 1 s (+1 s per KB) for a body, 20 connections."""
    folder = tmp_path_factory.mktemp("limited")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        XDG_DATA_HOME=str(folder / "data"),
    )
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facenet_keras.cli", "serve", "--port", str(port)]
        + ["--gallery", str(folder / "g.sqlite"), "--keys", str(folder / "keys.json")]
        + ["--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", "1", "--min-body-rate", "1"]
        + ["--max-connections", str(MAX_CONNECTIONS)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            wait_ready(c.get, proc=proc, log=folder / "server.log")  # a quiet server: timings are the limits'
        yield port, folder / "server.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_by_server(s: socket.socket) -> bool:
    """Has the server closed this connection (without waiting)?"""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        s.setblocking(True)


def healthz(port: int) -> tuple[bytes, float]:
    t0 = time.perf_counter()
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(4096), time.perf_counter() - t0


def test_headers_sent_too_slowly_close_the_connection(limited_server):
    port, _ = limited_server
    with connect(port) as s:
        t0 = time.monotonic()
        with pytest.raises(OSError):  # one byte every 0.2 s keeps no connection open past the deadline
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                s.sendall(bytes([byte]))
                time.sleep(0.2)
                if closed_by_server(s):
                    raise ConnectionResetError("closed by the server")
        assert HEADER_TIMEOUT_S - 0.5 <= time.monotonic() - t0 < HEADER_TIMEOUT_S + 5


def test_idle_connections_beyond_the_cap_make_room_for_a_real_request(limited_server):
    port, log = limited_server
    size = log.stat().st_size
    idle = []
    for _ in range(3 * MAX_CONNECTIONS):
        s = connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        idle.append(s)
    t0 = time.monotonic()
    answer, seconds = healthz(port)
    try:
        assert answer.startswith(b"HTTP/1.1 200") and seconds < 1.0
        closed = [closed_by_server(s) for s in idle]
        assert time.monotonic() - t0 < HEADER_TIMEOUT_S - 1  # what follows is the cap's doing, not the deadline's
        # the oldest were closed to make room; the newest wait for their headers (the cap counts /healthz's too)
        assert all(closed[: 2 * MAX_CONNECTIONS]) and sum(closed) <= 2 * MAX_CONNECTIONS + 1, closed
    finally:
        for s in idle:
            s.close()
    assert log.stat().st_size - size < 2_000  # no line per connection


def test_a_body_sent_too_slowly_is_answered_408_and_the_connection_closed(limited_server):
    from facenet_keras.service.auth import KeyStore

    port, log = limited_server
    key = KeyStore(log.parent / "keys.json").create("read")  # without one, 401 before the body is read
    with connect(port) as s:
        s.sendall(
            b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            + f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        t0 = time.monotonic()
        answer = b""
        while time.monotonic() - t0 < 15:
            try:
                s.sendall(b"x" * 10)  # 50 bytes a second
            except OSError:
                break
            s.settimeout(0.2)
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
        seconds = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"slower than the limit" in answer and b"connection: close" in answer.lower()
    assert 1.0 <= seconds < 6.0  # 1 s, plus 1 s per 1,000 bytes (a few hundred sent), then closed
