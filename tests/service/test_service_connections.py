"""Slow and idle clients against ``facenet-keras serve`` on a loopback port (uvicorn with the
service's own h11 protocol): a request's headers have a deadline from the connection's accept,
connections beyond the cap make room by closing the one that has waited longest for its headers,
and a body sent too slowly is answered 408 and its connection closed."""

from __future__ import annotations

import socket
import time

import pytest
from service_helpers import server_env, serving

HEADER_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A server with small limits: 5 s for headers, 1 s (+1 s per KB) for a body, 20 connections."""
    folder = tmp_path_factory.mktemp("limited")
    env = server_env(folder)
    limits = ["--header-timeout", str(HEADER_TIMEOUT_S), "--body-timeout", "1", "--min-body-rate", "1000"]
    args = ["--gallery", str(folder / "g.sqlite"), "--keys", str(folder / "keys.json")]
    with serving(folder, env, args + limits + ["--max-connections", str(MAX_CONNECTIONS)]) as port:
        yield port, folder / "server.log"  # a quiet server (models loaded): timings are the limits'


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
    """500 of 100,000 bytes, then nothing: 408 after 1 s + 0.5 s (1 s per 1,000 bytes received), then
    the server closes. (The client stops sending: a server closing on unread bytes resets the
    connection, and the client may never read the 408.)"""
    from facenet_keras.service.auth import KeyStore

    port, log = limited_server
    key = KeyStore(log.parent / "keys.json").create("read")  # without one, 401 before the body is read
    with connect(port) as s:
        s.sendall(
            b"POST /v1/recognize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            + f"Authorization: Bearer {key}\r\n\r\n".encode()
            + b"x" * 500
        )
        t0 = time.monotonic()
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        seconds = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"slower than the limit" in answer and b"connection: close" in answer.lower()
    assert 1.4 <= seconds < 6.0
