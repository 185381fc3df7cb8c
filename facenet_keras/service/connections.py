"""What slow and idle clients cannot exhaust: connections and requests in flight.

:class:`GuardedH11Protocol` is uvicorn's HTTP/1.1 protocol (h11) with what no ASGI middleware can
do, since a middleware sees a request only once its headers are complete: a deadline from a
connection's accept (or a kept-alive connection's next byte) to its request's last header, and a cap
on open connections, beyond which the connection that has waited longest for its headers is closed
to make room (so idle connections cannot lock out a client that sends its request at once). uvicorn
loads it by name (``http=PROTOCOL``) in every worker, with its limits from the settings in
``$FACENET_KERAS_SERVICE_SETTINGS`` (which ``serve --workers N`` sets); one in-process server takes
:func:`protocol_for` its settings instead. :class:`InFlightLimit` answers 503 beyond
``max_in_flight`` requests being answered at once, but never holds back ``/healthz`` or ``/readyz``.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from facenet_keras.service.errors import error_response
from facenet_keras.service.settings import SETTINGS_ENV, Settings

__all__ = [
    "GuardedH11Protocol",
    "PROTOCOL",
    "ConnectionLimits",
    "InFlightLimit",
    "fd_budget",
    "raise_open_file_limit",
    "protocol_for",
    "PROBES",
]

PROTOCOL = f"{__name__}:GuardedH11Protocol"  # how uvicorn's ``http=`` names it
PROBES = ("/healthz", "/readyz")
FD_RESERVE = 128  # file descriptors kept for the process's own files (models, gallery, logs)
BACKLOG = 2048  # the listen queue (uvicorn's default), and how many connections asyncio accepts at once


class ConnectionLimits(NamedTuple):
    header_timeout_s: float
    max_connections: int


def _soft_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def fd_budget(max_connections: int) -> tuple[int, int]:
    """(connections, backlog) that the open-file limit holds: asyncio accepts up to a backlog of
    connections before the ones they push out are closed, so two backlogs are kept free besides."""
    soft = _soft_limit()
    if soft is None:
        return max_connections, BACKLOG
    free = soft - FD_RESERVE
    backlog = min(BACKLOG, max(16, free // 4))
    return max(1, min(max_connections, free - 2 * backlog)), backlog


def raise_open_file_limit(max_connections: int) -> tuple[int, int]:
    """Raise this process's soft open-file limit (within its hard limit) to fit ``max_connections``
    (its workers inherit it); then :func:`fd_budget`."""
    try:
        import resource
    except ImportError:
        return max_connections, BACKLOG
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + 2 * BACKLOG + 2 * FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
            )
        except (ValueError, OSError):
            pass
    return fd_budget(max_connections)


def limits_of(s: Settings) -> ConnectionLimits:
    return ConnectionLimits(s.header_timeout_s, fd_budget(s.max_connections)[0])


@functools.lru_cache(maxsize=4)
def _limits_from(env: str) -> ConnectionLimits:
    return limits_of(Settings.from_env() if env else Settings())


def protocol_for(settings: Settings) -> type[GuardedH11Protocol]:
    """The protocol class bound to ``settings``' limits (for a server in this process)."""
    return type("BoundGuardedH11Protocol", (GuardedH11Protocol,), {"bound": limits_of(settings)})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections."""

    bound: ConnectionLimits | None = None  # set by protocol_for; else the limits come from the environment

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = self.bound or _limits_from(os.environ.get(SETTINGS_ENV, ""))
        self._header_timer = None
        # connections waiting for their headers, oldest first (shared by this server's connections)
        waiting = getattr(self.server_state, "waiting_for_headers", None)
        if waiting is None:
            waiting = self.server_state.waiting_for_headers = {}  # type: ignore[attr-defined]
        self._waiting: dict = waiting

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_headers()
        if len(self.connections) > self.limits.max_connections:
            victim = next(iter(self._waiting))  # the oldest waiting (this one, when it is the only one)
            self._close(victim)

    def connection_lost(self, exc) -> None:
        self._headers_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._wait_for_headers()  # a kept-alive connection begins its next request
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are complete
            self._headers_done()

    def handle_websocket_upgrade(self, event) -> None:
        self._headers_done()  # the request's headers are complete; the connection is the WebSocket's now
        super().handle_websocket_upgrade(event)

    def _wait_for_headers(self) -> None:
        self._headers_done()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._close, self)
        self._waiting[self] = None

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._waiting.pop(self, None)

    @staticmethod
    def _close(protocol: GuardedH11Protocol) -> None:
        """Close a connection still waiting for its headers (no request of it is being answered)."""
        protocol._headers_done()
        if not protocol.transport.is_closing():
            protocol.transport.close()


class InFlightLimit:
    """ASGI layer: at most ``limit`` requests answered at once in this process; beyond, 503 with
    Retry-After. The probes always pass, so a saturated server still says it is alive."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.in_flight = app, limit, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in PROBES:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:
            response = error_response(
                503,
                "busy",
                f"the server is answering {self.limit} requests already: try again shortly",
                {"Retry-After": "1", "Connection": "close"},
            )
            return await response(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
