"""Failed API key attempts, counted per client address: after ``limit`` failures within ``window_s``
seconds the address is refused (429 with Retry-After) until its window ends, whatever key it sends,
so keys cannot be guessed at speed. The table of addresses is bounded (the least recently failed
are forgotten first), so a flood of addresses cannot grow it. Per process: with N workers an
address may fail up to N x ``limit`` times per window."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """Per-address failure counts in fixed windows, in a table of at most ``max_addresses`` rows."""

    def __init__(self, limit: int, window_s: float, max_addresses: int = 10_000, clock=time.monotonic):
        if limit < 1 or window_s <= 0:
            raise ValueError("the key failure limit must be at least 1 in a window longer than 0 s")
        self.limit, self.window_s, self.max_addresses, self.clock = limit, window_s, max_addresses, clock
        self._lock = threading.Lock()
        self._table: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address -> (window start, failures)

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try a key again (0: it may now)."""
        now = self.clock()
        with self._lock:
            start, failures = self._table.get(address, (now, 0))
        left = start + self.window_s - now
        return math.ceil(left) if failures >= self.limit and left > 0 else 0

    def failed(self, address: str) -> None:
        """Count a failed key attempt from ``address``."""
        now = self.clock()
        with self._lock:
            start, failures = self._table.pop(address, (now, 0))
            if now - start >= self.window_s:
                start, failures = now, 0
            self._table[address] = (start, failures + 1)  # most recent last
            while len(self._table) > self.max_addresses:
                self._table.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._table)
