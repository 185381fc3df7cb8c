"""Request counts, a latency histogram and encoder batch sizes, in Prometheus' text format (0.0.4).

Per process: with several workers each answers for itself (scrape each, or sum them in Prometheus).
Labels are the route *template* (``/v1/people/{name}``), never the path a client sent, so no name
or other personal data reaches the metrics.
"""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["Metrics", "LATENCY_BUCKETS", "BATCH_BUCKETS"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = tuple(float(b) for b in buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        lab = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{lab} {self.sum:.6f}", f"{name}_count{lab} {self.total}"]
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters and histograms; :meth:`render` gives the exposition text."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.batches = _Histogram(BATCH_BUCKETS)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, int(status))] += 1
            hist = self.latency.get(route)
            if hist is None:
                hist = self.latency[route] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batches.observe(size)

    def mean_batch_size(self) -> float:
        with self._lock:
            return self.batches.sum / self.batches.total if self.batches.total else 0.0

    def render(self) -> str:
        with self._lock:
            out = [
                "# HELP facenet_requests_total Requests answered, by method, route template and status.",
                "# TYPE facenet_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    f'facenet_requests_total{{method="{method}",route="{_escape(route)}",status="{status}"}} {n}'
                )
            out += [
                "# HELP facenet_request_seconds Time to answer a request, by route template.",
                "# TYPE facenet_request_seconds histogram",
            ]
            for route, hist in sorted(self.latency.items()):
                out += hist.lines("facenet_request_seconds", f'route="{_escape(route)}"')
            out += [
                "# HELP facenet_encoder_batch_size Face chips per encoder batch (shared across requests).",
                "# TYPE facenet_encoder_batch_size histogram",
            ]
            out += self.batches.lines("facenet_encoder_batch_size", "")
        return "\n".join(out) + "\n"
