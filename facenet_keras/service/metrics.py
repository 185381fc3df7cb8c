"""Request counts, a latency histogram and encoder batch sizes for Prometheus (``prometheus_client``).

Labels are bounded, so a hostile client cannot add series: the HTTP method only when it is a known
one, the route *template* (``/v1/people/{name}``, never the path a client sent, so no name reaches
the metrics) only when a route matched; anything else is the one ``other`` series. Under
``serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set before the workers start) each worker writes
its values into that folder and a scrape of any worker answers for all of them, summed.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = [
    "Metrics",
    "LATENCY_BUCKETS",
    "BATCH_BUCKETS",
    "KNOWN_METHODS",
    "OTHER",
    "MULTIPROC_ENV",
    "CONTENT_TYPE",
    "request_labels",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"  # the one label of every unknown method and every path no route matched
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch to its multiprocess mode
CONTENT_TYPE = CONTENT_TYPE_LATEST


def request_labels(scope) -> tuple[str, str]:
    """(method, route) labels of an ASGI request: known methods and matched route templates only."""
    method = scope.get("method", "")
    template = getattr(scope.get("route"), "path", None)
    return (method if method in KNOWN_METHODS else OTHER), (template if isinstance(template, str) else OTHER)


class Metrics:
    """The service's metrics in a registry of their own; :meth:`render` gives the exposition text."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facenet_requests",
            "Requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facenet_request_seconds",
            "Time to answer a request, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batches = Histogram(
            "facenet_encoder_batch_size",
            "Face chips per encoder batch (shared across requests).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request; an unknown method is counted as ``other``."""
        method = method if method in KNOWN_METHODS else OTHER
        self.requests.labels(method, route, str(int(status))).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int) -> None:
        self.batches.observe(size)

    def render(self) -> str:
        """The exposition text: this process's, or every worker's summed in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry).decode("utf-8")
        return generate_latest(self.registry).decode("utf-8")
