"""A logging filter that collapses floods: at most a few records of one kind (logger and message
template) per time window; the rest are counted, and the next record of that kind that passes says
how many were left out. So junk requests, malformed requests and asyncio's per-connection
tracebacks cannot grow the log with the attacker's request rate."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["Throttle", "throttle", "NOISY_LOGGERS", "JUNK_LOG"]

# uvicorn's warnings ("Invalid HTTP request received.") and asyncio's accept() errors, one per connection
NOISY_LOGGERS = ("asyncio", "uvicorn.error")
JUNK_LOG = "facenet_keras.service.access.junk"  # access lines of unknown methods and unmatched paths


class Throttle(logging.Filter):
    """Pass at most ``burst`` records of each (logger, template) per ``window_s``; count the rest."""

    def __init__(self, burst: int = 5, window_s: float = 10.0, max_kinds: int = 512, clock=time.monotonic):
        super().__init__()
        self.burst, self.window_s, self.max_kinds, self.clock = burst, window_s, max_kinds, clock
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], list] = {}  # kind -> [window start, passed, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg)[:200])
        now = self.clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None:
                if len(self._kinds) >= self.max_kinds:  # bounded: a flood of distinct messages starts afresh
                    self._kinds.clear()
                state = self._kinds[kind] = [now, 0, 0]
            if now - state[0] >= self.window_s:
                dropped = state[2]
                state[:] = [now, 0, 0]
                if dropped:
                    record.msg = f"{record.msg} [and {dropped} more like this in the previous {self.window_s:g} s]"
            if state[1] >= self.burst:
                state[2] += 1
                return False
            state[1] += 1
            return True


def throttle(names=NOISY_LOGGERS + (JUNK_LOG,)) -> None:
    """Give each named logger a :class:`Throttle` (once; safe to call again)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, Throttle) for f in logger.filters):
            logger.addFilter(Throttle())
