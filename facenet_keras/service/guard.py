"""The outermost ASGI layer of the service: the API key checked from the headers (:mod:`.keygate`),
then the request body's size limit (read and bounded before anything parses it) and its read
deadline, the time limit, metrics, the access log (route templates only, never a name or a photo;
junk requests on their own throttled logger) and the safety headers of every answer."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from facenet_keras.service.errors import error_response
from facenet_keras.service.keygate import KeyGate
from facenet_keras.service.logthrottle import JUNK_LOG
from facenet_keras.service.metrics import OTHER, Metrics, request_labels
from facenet_keras.service.settings import Settings

__all__ = ["Guard"]

access_log = logging.getLogger("facenet_keras.service.access")
junk_log = logging.getLogger(JUNK_LOG)


class Guard:
    """Outermost ASGI layer: key from the headers, body size limit and deadline, time limit, metrics,
    access log, safety headers."""

    def __init__(self, app, settings: Settings, metrics: Metrics, gate: KeyGate | None = None):
        self.app, self.settings, self.metrics, self.gate = app, settings, metrics, gate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                headers.append((b"x-worker", str(os.getpid()).encode("ascii")))  # the pid of the worker answering
                if scope["path"].startswith("/v1/"):
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        try:
            refused = self.gate.refusal(scope) if self.gate is not None else None
            if refused is not None:  # no key, or too low a scope: refused before the body is read
                return await self._error(send_wrapper, refused.status, refused.code, refused.message, refused.headers)
            limit = self.settings.max_upload_bytes
            declared = dict(scope.get("headers", [])).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await self._error(
                    send_wrapper, 413, "too_large", f"request body larger than the limit of {limit:,} bytes"
                )
            body, more = bytearray(), True
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                while more:  # read (and bound) the whole body before anything parses it
                    try:
                        message = await asyncio.wait_for(receive(), self._body_time_left(t0, len(body)))
                    except asyncio.TimeoutError:  # a body sent too slowly: refused, and the connection closed
                        return await self._error(
                            send_wrapper,
                            408,
                            "timeout",
                            f"the request body arrived slower than the limit ({self.settings.body_timeout_s:g} s "
                            f"plus 1 s per {self.settings.min_body_rate:,} bytes)",
                            {"Connection": "close"},
                        )
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > limit:
                        return await self._error(
                            send_wrapper, 413, "too_large", f"request body larger than the limit of {limit:,} bytes"
                        )
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            try:
                await asyncio.wait_for(self.app(scope, replay, send_wrapper), self.settings.request_timeout_s)
            except asyncio.TimeoutError:
                if not state["started"]:
                    await self._error(
                        send_wrapper,
                        503,
                        "timeout",
                        f"the request took longer than {self.settings.request_timeout_s:g} s",
                    )
        finally:
            method, template = request_labels(scope)
            seconds = time.perf_counter() - t0
            self.metrics.observe_request(method, template, state["status"], seconds)
            log = junk_log if OTHER in (method, template) else access_log
            log.info("%s %s %d %.1f ms", method, template, state["status"], seconds * 1e3)

    def _body_time_left(self, t0: float, received: int) -> float:
        """Seconds until the body's deadline: body_timeout_s after the start, 1 s more per min_body_rate bytes."""
        s = self.settings
        return max(0.0, t0 + s.body_timeout_s + received / max(1, s.min_body_rate) - time.perf_counter())

    @staticmethod
    async def _error(send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        await error_response(status, code, message, headers)({"type": "http"}, None, send)
