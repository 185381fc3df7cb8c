"""Long work (style transfer) as jobs: submitted, run one at a time in a background thread, polled.

A job's state is a small JSON file in the jobs folder (written atomically) and its result a PNG
beside it, so any worker process on the host can answer ``GET /v1/jobs/{id}`` for a job another
worker runs. Job ids are 128 random bits. Inputs are kept in memory only, never written.

A job belongs to the API key that made it: asked for with another key it does not exist (404).
A finished job and its result are deleted ``ttl_s`` seconds after it ended (a sweep every minute
or so, and on every look). A job whose worker process on this host is gone (a restart) is marked failed
when the store opens, since nothing will ever finish it; another host's jobs are left to that host.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from facenet_keras.files import atomic_write, private_dir

log = logging.getLogger("facenet_keras.service")

__all__ = ["JobStore", "ORPHANED"]

ACTIVE = ("queued", "running")
ORPHANED = "the server restarted before this job finished; start it again"
HOST = socket.gethostname()  # a jobs folder on shared storage holds several hosts' jobs


def _alive(pid) -> bool:
    """Is process ``pid`` (on this host) still running?"""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():  # our pid: a new process, not the one that ran it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class JobStore:
    """Jobs under ``folder``: ``<id>.json`` (status, progress 0..1, message, owner) and ``<id>.png``."""

    def __init__(self, folder, *, max_queued: int = 8, ttl_s: float = 3600.0):
        if not ttl_s > 0:
            raise ValueError(f"a job's time to live must be positive, got {ttl_s}")
        self.folder = private_dir(folder)
        self.max_queued = int(max_queued)
        self.ttl_s = float(ttl_s)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jobs")
        self._queued = 0
        self.fail_orphans()
        self.sweep()
        self._stop = threading.Event()
        every = min(60.0, self.ttl_s / 2)
        threading.Thread(target=self._sweeper, args=(every,), name="jobs-sweep", daemon=True).start()

    def _path(self, job_id: str, suffix: str) -> Path:
        if len(job_id) != 32 or any(c not in "0123456789abcdef" for c in job_id):
            raise KeyError(f"no job {job_id!r}")
        return self.folder / f"{job_id}{suffix}"

    def _write(self, job_id: str, **state) -> None:
        with atomic_write(self._path(job_id, ".json"), "w") as f:
            json.dump(dict(state, id=job_id, updated=time.time()), f)

    def _read(self, job_id: str) -> dict:
        try:
            return json.loads(self._path(job_id, ".json").read_text())
        except FileNotFoundError:
            raise KeyError(f"no job {job_id!r}") from None

    def _expired(self, job: dict, now: float) -> bool:
        return job.get("status") not in ACTIVE and now - float(job.get("updated", 0)) > self.ttl_s

    def _delete(self, job_id: str) -> None:
        for suffix in (".png", ".json"):  # the result first: a state without its PNG is never "done"
            self._path(job_id, suffix).unlink(missing_ok=True)

    def get(self, job_id: str, owner: str) -> dict:
        """The job's state, when ``owner`` (an API key id) made it; KeyError otherwise, or once expired."""
        job = self._read(job_id)
        if not secrets.compare_digest(str(job.get("owner", "")).encode(), str(owner).encode()):
            raise KeyError(f"no job {job_id!r}")
        if self._expired(job, time.time()):
            self._delete(job_id)
            raise KeyError(f"no job {job_id!r}")
        return job

    def result(self, job_id: str, owner: str) -> Path:
        """The finished job's PNG (see :meth:`get` for who may have it)."""
        self.get(job_id, owner)
        path = self._path(job_id, ".png")
        if not path.is_file():
            raise KeyError(f"job {job_id!r} has no result (yet)")
        return path

    def _jobs(self):
        """(id, state) of every readable job in the folder."""
        for path in self.folder.glob("*.json"):
            try:
                yield path.stem, json.loads(path.read_text())
            except (OSError, ValueError, KeyError):  # deleted meanwhile, or being replaced
                continue

    def sweep(self) -> int:
        """Delete every job (state and result) that ended more than ``ttl_s`` ago; how many went."""
        now, gone = time.time(), 0
        for job_id, job in self._jobs():
            if self._expired(job, now):
                try:
                    self._delete(job_id)
                except KeyError:  # not a job's file name
                    continue
                gone += 1
        return gone

    def fail_orphans(self) -> int:
        """Mark failed the queued or running jobs whose worker process is gone; how many."""
        n = 0
        for job_id, job in self._jobs():
            if job.get("status") in ACTIVE and job.get("host", HOST) == HOST and not _alive(job.get("pid")):
                try:
                    self._write(job_id, **dict(job, status="failed", progress=0.0, message=ORPHANED))
                except KeyError:
                    continue
                n += 1
        if n:
            log.warning("%d job(s) left unfinished by a restart were marked failed", n)
        return n

    def _sweeper(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.sweep()
            except OSError as exc:  # the folder went away: say so, keep serving
                log.warning("sweeping expired jobs failed: %s", type(exc).__name__)

    def submit(self, kind: str, work: Callable[[Callable[[float], None]], bytes], owner: str) -> str:
        """Queue ``work(report)`` (``report(fraction)`` updates the progress; returns PNG bytes) for
        the API key ``owner``."""
        if self._queued >= self.max_queued:
            raise OverflowError(f"{self._queued} jobs are already queued; try again later")
        job_id = secrets.token_hex(16)
        self._write(
            job_id, kind=kind, status="queued", progress=0.0, message="", owner=owner, pid=os.getpid(), host=HOST
        )
        self._queued += 1
        self._pool.submit(self._run, job_id, kind, owner, work)
        return job_id

    def _run(self, job_id: str, kind: str, owner: str, work) -> None:
        self._queued -= 1
        started = time.time()
        last = [0.0]
        mine = {"kind": kind, "owner": owner, "pid": os.getpid(), "host": HOST, "started": started}

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5 or fraction >= 1.0:  # at most two file writes a second
                last[0] = now
                self._write(job_id, **mine, status="running", progress=round(float(fraction), 4), message="")

        report(0.0)
        try:
            png = work(report)
            with atomic_write(self._path(job_id, ".png"), "wb") as f:
                f.write(png)
            self._write(
                job_id, **mine, status="done", progress=1.0, message="", seconds=round(time.time() - started, 2)
            )
        except Exception as exc:
            from facenet_keras.service.errors import classify

            known = classify(exc)
            message = known[2] if known else f"internal error ({type(exc).__name__})"
            if not known:
                log.error("job %s failed", job_id, exc_info=exc)
            self._write(job_id, **mine, status="failed", progress=0.0, message=message)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
