"""API keys and signed tokens.

Keys: ``facenet-keras keys create --scope read|write|admin`` prints a key once; the keys file keeps
only its SHA-256 (a key is 256 random bits, so a fast hash is enough: there is nothing to guess),
its id, scope and label, in a 0600 file written atomically. A request presents the key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Scopes are ordered: ``admin`` may do what
``write`` may, ``write`` what ``read`` may. Keys are never logged, and the file is re-read when it
changes, so keys created or revoked while the service runs take effect at once.

Tokens (liveness challenges): ``payload.signature``, both base64url, the signature an HMAC-SHA256
over the payload with the service's secret, so that any worker holding the secret can check a token
another worker issued, with no shared state; each token carries its expiry time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from facenet_keras.files import atomic_write, private_dir

__all__ = [
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "default_keys_path",
    "load_secret",
    "sign_token",
    "read_token",
    "TokenError",
    "allows",
]

SCOPES = ("read", "write", "admin")
_PREFIX = "fk_"


def allows(granted: str, needed: str) -> bool:
    """Does a key of scope ``granted`` allow an endpoint that needs ``needed``?"""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def _service_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "facenet-keras" / "service"


def default_keys_path() -> Path:
    """``$FACENET_KERAS_KEYS``, else ``$XDG_DATA_HOME/facenet-keras/service/keys.json``."""
    env = os.environ.get("FACENET_KERAS_KEYS")
    return Path(env).expanduser() if env else _service_dir() / "keys.json"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key: id (public, the part of the key before the dot), scope, label, creation time."""

    id: str
    scope: str
    label: str
    created: float


class KeyStore:
    """The keys file: ``{"keys": [{"id", "scope", "label", "created", "sha256"}]}``."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path).expanduser() if path is not None else default_keys_path()
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._rows: list[dict] = []

    # ------------------------------------------------------------------ file
    def _load(self) -> list[dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._rows = None, []
            return self._rows
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            data = json.loads(self.path.read_text())
            rows = data.get("keys", []) if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise ValueError(f"{self.path} is not a facenet-keras keys file")
            self._stamp, self._rows = stamp, rows
        return self._rows

    def _save(self, rows: list[dict]) -> None:
        private_dir(self.path.parent)
        with atomic_write(self.path, "w") as f:
            json.dump({"keys": rows}, f, indent=1)
        self._stamp = None

    # ------------------------------------------------------------------ keys
    def create(self, scope: str, label: str = "") -> str:
        """A new key of ``scope``; returns the key itself (shown once, stored only hashed)."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        with self._lock:
            rows = list(self._load())
            key_id = secrets.token_hex(4)
            while any(r["id"] == key_id for r in rows):
                key_id = secrets.token_hex(4)
            key = f"{_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
            rows.append(
                {"id": key_id, "scope": scope, "label": str(label), "created": time.time(), "sha256": _digest(key)}
            )
            self._save(rows)
        return key

    def revoke(self, key_id: str) -> None:
        with self._lock:
            rows = self._load()
            kept = [r for r in rows if r["id"] != key_id]
            if len(kept) == len(rows):
                raise KeyError(f"no key with id {key_id!r}")
            self._save(kept)

    def list(self) -> list[ApiKey]:
        with self._lock:
            return [ApiKey(r["id"], r["scope"], r.get("label", ""), r.get("created", 0.0)) for r in self._load()]

    def check(self, key: str | None) -> ApiKey | None:
        """The stored key that ``key`` is, or None. Constant-time in the secret part."""
        if not key or not key.startswith(_PREFIX) or "." not in key:
            return None
        key_id = key[len(_PREFIX) :].partition(".")[0]
        with self._lock:
            rows = self._load()
        digest = _digest(key)
        for r in rows:
            if r["id"] == key_id and hmac.compare_digest(r["sha256"], digest) and r["scope"] in SCOPES:
                return ApiKey(r["id"], r["scope"], r.get("label", ""), r.get("created", 0.0))
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())


# ---------------------------------------------------------------------------------------- tokens
class TokenError(ValueError):
    """A token that is malformed, forged, or expired."""


def load_secret(path: str | os.PathLike | None = None) -> bytes:
    """The signing secret: ``$FACENET_KERAS_SERVICE_SECRET`` (hex or text; share it between hosts),
    else a 32-byte file beside the keys file, created 0600 on first use (shared by workers on one host)."""
    env = os.environ.get("FACENET_KERAS_SERVICE_SECRET")
    if env:
        return env.encode("utf-8")
    path = Path(path).expanduser() if path is not None else default_keys_path().with_name("secret.key")
    if not path.exists():
        private_dir(path.parent)
        try:  # O_EXCL: two workers starting together keep one secret
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
    for _ in range(50):  # another worker may be writing it right now
        data = path.read_bytes()
        if len(data) >= 32:
            return data
        time.sleep(0.01)
    raise ValueError(f"{path}: signing secret shorter than 32 bytes")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(payload: dict, secret: bytes, ttl_s: float, *, now: float | None = None) -> str:
    """``payload`` (JSON-able) with an expiry ``ttl_s`` seconds from now, signed with ``secret``."""
    body = dict(payload, exp=round((time.time() if now is None else now) + ttl_s, 3), nonce=secrets.token_hex(8))
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    sig = hmac.new(secret, raw, hashlib.sha256).digest()
    return f"{_b64(raw)}.{_b64(sig)}"


def read_token(token: str, secret: bytes, *, now: float | None = None) -> dict:
    """The payload of a token this service signed and that has not expired; else :class:`TokenError`."""
    try:
        raw_b64, sig_b64 = token.split(".")
        raw, sig = _unb64(raw_b64), _unb64(sig_b64)
    except (ValueError, AttributeError):
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(sig, hmac.new(secret, raw, hashlib.sha256).digest()):
        raise TokenError("token signature does not match (not issued by this service)")
    body = json.loads(raw)
    if (time.time() if now is None else now) > float(body.get("exp", 0)):
        raise TokenError("token expired: ask for a new challenge")
    return body
