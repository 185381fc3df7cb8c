"""The worker's budget of decoded pixels in flight, so that N concurrent requests cannot multiply the
per-request limit (40 uploads of 3 KB, each claiming 25 megapixels, would otherwise ask for 3 GB).

A request reserves the pixels it is about to decode (sizes read from the headers first, see
:func:`facenet_keras.images.image_size`) with :func:`hold`: beyond the per-request limit it is
refused (413); while other requests hold the budget it waits, a bounded time, then gets 503 with
``Retry-After``. What a request holds is given back when its endpoint function returns, in the
thread that ran it (so a request cut off by the time limit keeps its share until its work really
stops): the routers that decode uploads use :class:`BudgetedRoute`.
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from contextvars import ContextVar

from fastapi.routing import APIRoute

from facenet_keras.service.errors import ServiceError

__all__ = ["PixelBudget", "BudgetedRoute", "budgeted", "hold", "take"]

# What the running endpoint holds: [(budget, pixels), ...]; None outside a budgeted endpoint.
_held: ContextVar[list[tuple[PixelBudget, int]] | None] = ContextVar("pixels_held", default=None)


class PixelBudget:
    """A weighted semaphore of ``capacity`` pixels; :meth:`acquire` waits at most ``wait_s`` seconds."""

    def __init__(self, capacity: int, wait_s: float):
        if capacity <= 0 or wait_s < 0:
            raise ValueError(f"the pixel budget needs capacity > 0 and wait >= 0, got {capacity}, {wait_s}")
        self.capacity, self.wait_s = int(capacity), float(wait_s)
        self.in_flight = 0
        self._cond = threading.Condition()

    def acquire(self, pixels: int) -> bool:
        """Take ``pixels`` once they fit (True), or False after ``wait_s`` seconds."""
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.in_flight + pixels > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self.in_flight += pixels
            return True

    def release(self, pixels: int) -> None:
        with self._cond:
            self.in_flight -= pixels
            self._cond.notify_all()


def hold(budget: PixelBudget, pixels: int, request_limit: int) -> None:
    """Reserve ``pixels`` for the running request until its endpoint returns; 413 beyond
    ``request_limit`` (all it holds counted), 503 with Retry-After when the budget stays full."""
    held = _held.get()
    if held is None:
        raise RuntimeError("hold() outside a budgeted endpoint: give its router route_class=BudgetedRoute")
    total = sum(n for _, n in held) + pixels
    limit = min(request_limit, budget.capacity)
    if total > limit:
        raise ServiceError(
            413,
            "too_large",
            f"this request would decode {total:,} pixels, more than the server's limit of {limit:,} per request",
        )
    take(budget, pixels)
    held.append((budget, pixels))


def take(budget: PixelBudget, pixels: int) -> None:
    """Acquire ``pixels`` of ``budget`` for the caller to release, or 503 with Retry-After when it
    stays full (:func:`hold` uses it; so does work that outlives its request, e.g. a queued job)."""
    if not budget.acquire(pixels):
        raise ServiceError(
            503,
            "busy",
            f"the server is decoding its limit of {budget.capacity:,} pixels for other requests; try again shortly",
            {"Retry-After": str(max(1, math.ceil(budget.wait_s)))},
        )


def budgeted(endpoint):
    """``endpoint`` run with an empty holding that is given back when it returns or raises."""
    if inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__name__}: a budgeted endpoint must be a plain def (it runs in a thread)")

    @functools.wraps(endpoint)
    def run(*args, **kwargs):
        token = _held.set([])
        try:
            return endpoint(*args, **kwargs)
        finally:
            for budget, pixels in _held.get() or []:
                budget.release(pixels)
            _held.reset(token)

    # FastAPI reads the parameters from the signature: resolve the annotations in the endpoint's module
    run.__signature__ = inspect.signature(endpoint, eval_str=True)  # type: ignore[attr-defined]
    return run


class BudgetedRoute(APIRoute):
    """A route whose endpoint may :func:`hold` pixels, given back when it returns."""

    def __init__(self, path: str, endpoint, **kwargs):
        super().__init__(path, budgeted(endpoint), **kwargs)
