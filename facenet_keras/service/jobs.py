"""Long work (style transfer) as jobs: submitted, run one at a time in a background thread, polled.

A job's state is a small JSON file in the jobs folder (written atomically) and its result a PNG
beside it, so any worker process on the host can answer ``GET /v1/jobs/{id}`` for a job another
worker runs. Job ids are 128 random bits. Inputs are kept in memory only, never written.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from facenet_keras.files import atomic_write, private_dir

log = logging.getLogger("facenet_keras.service")

__all__ = ["JobStore"]


class JobStore:
    """Jobs under ``folder``: ``<id>.json`` (status, progress 0..1, message) and ``<id>.png``."""

    def __init__(self, folder, *, max_queued: int = 8):
        self.folder = private_dir(folder)
        self.max_queued = int(max_queued)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jobs")
        self._queued = 0

    def _path(self, job_id: str, suffix: str) -> Path:
        if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
            raise KeyError(f"no job {job_id!r}")
        return self.folder / f"{job_id}{suffix}"

    def _write(self, job_id: str, **state) -> None:
        with atomic_write(self._path(job_id, ".json"), "w") as f:
            json.dump(dict(state, id=job_id, updated=time.time()), f)

    def get(self, job_id: str) -> dict:
        """The job's state; KeyError for an unknown id."""
        try:
            return json.loads(self._path(job_id, ".json").read_text())
        except FileNotFoundError:
            raise KeyError(f"no job {job_id!r}") from None

    def result(self, job_id: str) -> Path:
        path = self._path(job_id, ".png")
        if not path.is_file():
            raise KeyError(f"job {job_id!r} has no result (yet)")
        return path

    def submit(self, kind: str, work: Callable[[Callable[[float], None]], bytes]) -> str:
        """Queue ``work(report)`` (``report(fraction)`` updates the progress; returns PNG bytes)."""
        if self._queued >= self.max_queued:
            raise OverflowError(f"{self._queued} jobs are already queued; try again later")
        job_id = secrets.token_hex(16)
        self._write(job_id, kind=kind, status="queued", progress=0.0, message="")
        self._queued += 1
        self._pool.submit(self._run, job_id, kind, work)
        return job_id

    def _run(self, job_id: str, kind: str, work) -> None:
        self._queued -= 1
        started = time.time()
        last = [0.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5 or fraction >= 1.0:  # at most two file writes a second
                last[0] = now
                self._write(
                    job_id, kind=kind, status="running", progress=round(float(fraction), 4), message="", started=started
                )

        report(0.0)
        try:
            png = work(report)
            with atomic_write(self._path(job_id, ".png"), "wb") as f:
                f.write(png)
            self._write(
                job_id,
                kind=kind,
                status="done",
                progress=1.0,
                message="",
                started=started,
                seconds=round(time.time() - started, 2),
            )
        except Exception as exc:
            from facenet_keras.service.errors import classify

            known = classify(exc)
            message = known[2] if known else f"internal error ({type(exc).__name__})"
            if not known:
                log.error("job %s failed", job_id, exc_info=exc)
            self._write(job_id, kind=kind, status="failed", progress=0.0, message=message, started=started)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
