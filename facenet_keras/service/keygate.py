"""The API key checked from the request's headers and route before its body is read.

An upload without a key (or with a key of too low a scope) is refused by :class:`.guard.Guard` from
:meth:`KeyGate.refusal` before the body is received, so 64 keyless 10 MB uploads cost the server
nothing. A key the gate admits is handed to the routes' dependency :func:`.deps.require` as a
:class:`Verdict` in the request's state, so each request is judged once (one lookup, one throttle
count); the dependency judges the key itself, with the same :func:`check_key`, wherever the gate did
not (a route it does not cover, an app built without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import Match

from facenet_keras.service.auth import SCOPES, ApiKey, KeyStore, allows
from facenet_keras.service.errors import ServiceError
from facenet_keras.service.throttle import FailureThrottle

__all__ = ["KeyGate", "Verdict", "VERDICT", "check_key", "key_from_headers"]

_NO_KEY = "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"


def key_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: ``X-API-Key``, else the credentials of ``Authorization: Bearer``."""
    if api_key:
        return api_key
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


@dataclass(frozen=True)
class Verdict:
    """A key the gate of ``keystore`` admitted for an endpoint of scope ``needed``. Only this module
    makes one and only into the ASGI scope's state, which no part of a request (headers, path, query,
    body) can write to, so a client cannot forge it."""

    key: ApiKey
    needed: str
    keystore: KeyStore


VERDICT = "key_verdict"  # the name of the gate's Verdict in the request's state


def check_key(
    keystore: KeyStore, key: str | None, needed: str, throttle: FailureThrottle | None = None, address: str = ""
) -> ApiKey:
    """The stored key ``key`` is, when it may call an endpoint of scope ``needed``; else the 401 / 403,
    or 429 for an address with too many unknown keys lately (``throttle``, which counts this one)."""
    found, refused = _judge(keystore, key, needed, throttle, address)
    if refused is not None:
        raise refused
    assert found is not None
    return found


def _judge(
    keystore: KeyStore, key: str | None, needed: str, throttle: FailureThrottle | None, address: str
) -> tuple[ApiKey | None, ServiceError | None]:
    """:func:`check_key`'s judgement with one lookup of the key: the stored key when found (so a 403
    can name it), and the refusal or None."""
    wait = throttle.retry_after(address) if throttle is not None else 0
    if wait:
        return None, ServiceError(
            429,
            "too_many_requests",
            f"too many unknown API keys from this address: try again in {wait} s",
            {"Retry-After": str(wait)},
        )
    if not key:
        return None, ServiceError(401, "unauthorized", _NO_KEY, {"WWW-Authenticate": "Bearer"})
    found = keystore.check(key)
    if found is None:
        if throttle is not None:
            throttle.failed(address)
        return None, ServiceError(401, "unauthorized", "unknown or revoked API key", {"WWW-Authenticate": "Bearer"})
    if not allows(found.scope, needed):
        return found, ServiceError(
            403, "forbidden", f"this endpoint needs a key of scope {needed!r}; this key's scope is {found.scope!r}"
        )
    return found, None


class KeyGate:
    """The scope each of ``routes`` needs (read off its dependencies once) and the refusal of a
    request to one of them. The routes are the API routers' own (their paths whole, their router's
    dependencies included), as they are included in the app."""

    def __init__(self, routes, keystore: KeyStore, throttle: FailureThrottle | None = None):
        self.routes, self.keystore, self.throttle = list(routes), keystore, throttle
        self._needs = {id(route): _scope_needed(getattr(route, "dependant", None)) for route in self.routes}

    def refusal(self, scope) -> ServiceError | None:
        """401 / 403 for an ASGI ``scope`` whose route needs a key it does not carry; None otherwise
        (no such route, a route without a key, or a good key, which is left in the state as a
        :class:`Verdict` for the dependency). A refused request's route is recorded in
        ``scope["route"]``, as the router would, so the access log names its template."""
        for route in self.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                break
        else:
            return None
        needed = self._needs[id(route)]
        if needed is None:
            return None
        state = scope.setdefault("state", {})
        state["key_scope_needed"] = needed  # for the audit log of writes, refused ones included
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        key = key_from_headers(
            headers.get(b"authorization", b"").decode("latin-1") or None,
            headers.get(b"x-api-key", b"").decode("latin-1") or None,
        )
        address = (scope.get("client") or ("",))[0]
        found, refused = _judge(self.keystore, key, needed, self.throttle, address)
        state["key_id"] = found.id if found is not None else None
        if refused is not None:
            scope.update(child, route=route)
            return refused
        assert found is not None
        state[VERDICT] = Verdict(found, needed, self.keystore)
        return None


def _scope_needed(dependant) -> str | None:
    """The highest key scope any of a route's dependencies requires (see :func:`.deps.require`)."""
    if dependant is None:
        return None
    found = [getattr(dependant.call, "key_scope", None)]
    found += [_scope_needed(d) for d in dependant.dependencies]
    scopes = [s for s in found if s is not None]
    return max(scopes, key=SCOPES.index) if scopes else None
