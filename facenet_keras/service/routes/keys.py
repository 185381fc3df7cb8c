"""``/v1/keys/me``: the key a request presents, as the service sees it (its id, scope and label),
so that a client (the web page) can tell its user what the key may do before it is refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from facenet_keras.service.auth import ApiKey
from facenet_keras.service.deps import READ
from facenet_keras.service.schemas import KeyOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/keys/me", response_model=KeyOut, summary="the scope of the key in use (any valid key)")
def me(key: Annotated[ApiKey, READ]) -> dict:
    return {"id": key.id, "scope": key.scope, "label": key.label}
