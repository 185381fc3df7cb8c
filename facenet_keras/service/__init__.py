"""The face recognition service: a FastAPI app (:func:`create_app`), API keys (:mod:`.auth`), the
batch queue that lets concurrent requests share encoder batches (:mod:`.batching`), JSON errors
(:mod:`.errors`), Prometheus metrics (:mod:`.metrics`) and the web page (``static/``).

Run it with ``facenet-keras serve``; see docs/deploy.md. Needs the ``[service]`` extra.
"""

from __future__ import annotations

__all__ = ["create_app", "Settings"]


def __getattr__(name: str):
    if name in __all__:
        from facenet_keras.service import app

        return getattr(app, name)
    raise AttributeError(f"module 'facenet_keras.service' has no attribute {name!r}")
