"""A small queue that lets concurrent requests share encoder batches.

Each request thread submits its face chips (n, S, S, 3) and waits on a future. One worker thread
takes the first waiting submission, then keeps collecting for at most ``max_wait_s`` (a few
milliseconds) or until ``max_batch`` chips are in hand, runs the batch function once on all of
them, and hands each submitter its own rows. A request announces itself with :meth:`expect` when
it starts (before its detection stage); the worker waits only while such announced requests have
not yet submitted, so a lone request pays nothing, and with 32 clients the encoder sees batches
close to 32 instead of 32 calls of one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

__all__ = ["BatchQueue"]


class BatchQueue:
    """``fn(items (N, ...)) -> (N, ...)`` run on batches gathered from concurrent :meth:`submit` calls.

    ``on_batch(n)`` is told the size of every batch run (for the metrics).
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
        name: str = "encoder-batches",
    ):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.fn, self.max_batch, self.max_wait_s, self.on_batch = fn, int(max_batch), float(max_wait_s), on_batch
        self._queue: queue.Queue = queue.Queue()
        self._expected = 0  # requests announced with expect() that have not submitted yet
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def expect(self) -> _Ticket:
        """``with queue.expect() as ticket: ... ticket.submit(chips)``: tells the worker a submission is
        coming (worth waiting a few ms for); leaving the block without submitting withdraws it."""
        with self._lock:
            self._expected += 1
        return _Ticket(self)

    def _withdraw(self) -> None:
        with self._lock:
            self._expected -= 1

    def submit(self, items: np.ndarray) -> Future:
        """Queue ``items`` (n, ...); the future gives ``fn``'s n rows for them."""
        if self._closed:
            raise RuntimeError("the batch queue is closed")
        fut: Future = Future()
        self._queue.put((np.asarray(items), fut))
        return fut

    def __call__(self, items: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Submit and wait: the rows of ``fn`` for ``items``."""
        return self.submit(items).result(timeout)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ the worker
    def _gather(self, first) -> list:
        batch, size = [first], len(first[0])
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:  # take whatever is already queued without waiting
                item = self._queue.get_nowait()
            except queue.Empty:
                with self._lock:
                    others = self._expected
                left = deadline - time.monotonic()
                if others <= 0 or left <= 0:  # nobody else on the way, or waited long enough
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
            size += len(item[0])
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            sizes = [len(items) for items, _ in batch]
            try:
                nonempty = [items for items, _ in batch if len(items)]
                out = self.fn(np.concatenate(nonempty)) if nonempty else None
                if self.on_batch is not None and nonempty:
                    self.on_batch(sum(sizes))
                start = 0
                for (items, fut), n in zip(batch, sizes):
                    if out is None or n == 0:
                        fut.set_result(self.fn(items) if out is None else out[:0])
                    else:
                        fut.set_result(out[start : start + n])
                    start += n
            except BaseException as exc:  # every waiter hears of the failure
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)


class _Ticket:
    """One announced submission (see :meth:`BatchQueue.expect`)."""

    def __init__(self, owner: BatchQueue):
        self._owner, self._open = owner, True

    def __enter__(self) -> _Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._owner._withdraw()

    def __call__(self, items: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Submit (withdrawing the announcement in the same step) and wait for the rows."""
        fut = self._owner.submit(items)
        self.close()
        return fut.result(timeout)
