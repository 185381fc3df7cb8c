"""The audit trail of writes: one JSON line per request to an endpoint that needs a write or admin
key (enrol, add photos, rename, delete, export, library naming, merging and splitting, stylising),
whether it was allowed or not: when, from which address, which key id, which action on which path
parameters, and the answer's status. Never a photo, an embedding or a key. Its own file, created
0600, rotated by size; :class:`Audit` is the ASGI layer that writes it, from what
:func:`facenet_keras.service.deps.require` noted on the request."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import time
from pathlib import Path

from facenet_keras.files import private_dir

__all__ = ["AuditLog", "Audit", "PrivateRotatingFileHandler", "AUDITED_SCOPES"]

AUDITED_SCOPES = ("write", "admin")


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that only its owner can read (0600 when created, and made so if it was not)."""

    def _open(self):
        private_dir(Path(self.baseFilename).parent)
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding)


class AuditLog:
    """JSON lines into ``path`` (rotated at ``max_bytes``, ``backups`` old files kept); the file is
    made at the first write, so an app that is built but never written to leaves none."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = 10 * 2**20, backups: int = 5):
        self.path = Path(path).expanduser()
        self.handler = PrivateRotatingFileHandler(
            self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger = logging.Logger("facenet_keras.service.audit")  # not the global tree: this file only
        self.logger.addHandler(self.handler)

    def write(self, **fields) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.logger.info(json.dumps({"time": stamp, **fields}, ensure_ascii=False, default=str))

    def close(self) -> None:
        self.handler.close()


class Audit:
    """ASGI layer: after each request whose endpoint needed a write or admin key, an audit line."""

    def __init__(self, app, log: AuditLog):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            noted = scope.get("state") or {}
            if noted.get("key_scope_needed") in AUDITED_SCOPES:
                route = scope.get("route")
                self.log.write(
                    client=(scope.get("client") or ("", 0))[0],
                    key=noted.get("key_id"),
                    action=getattr(route, "name", None),
                    method=scope.get("method"),
                    route=getattr(route, "path", None),
                    params=scope.get("path_params") or {},
                    status=status["code"],
                )
