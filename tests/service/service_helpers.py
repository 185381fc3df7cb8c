"""Helpers of the service tests (imported by them and by conftest.py)."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from bounded_waits import startup_loads, wait_for

REPO = Path(__file__).resolve().parents[2]


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(image: np.ndarray, quality: int = 85) -> bytes:
    """What the page sends: a camera frame as a JPEG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def spoof_frames(shared_data: Path, seed: int, seconds: float, detector=None) -> tuple[np.ndarray, np.ndarray]:
    """A hand-held print of Lin-Manuel Miranda's portrait (tests/live_spoofs.py), 640x360 at 30 fps:
    frames and times (s)."""
    import live_spoofs

    photo = live_spoofs.load_photo(shared_data / "video" / "lin-manuel-miranda.png", detector)
    return live_spoofs.photo_attack(photo, seed, seconds, bend=0.0)


def clip_frames(
    path: Path, start: float, end: float, every: int = 1, width: int | None = None
) -> tuple[list[np.ndarray], float]:
    """RGB frames of a video between ``start`` and ``end`` seconds (every ``every``-th), optionally
    resized to ``width`` (even height); and their frame rate."""
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        for i, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else i / fps
            if t >= end:
                break
            if t >= start and i % every == 0:
                if width is not None:
                    frame = frame.reformat(width=width, height=int(round(frame.height * width / frame.width / 2)) * 2)
                out.append(frame.to_ndarray(format="rgb24"))
    return out, fps / every


# Seconds of short_hamilton_clip.mp4 where Lin-Manuel Miranda is the one face, facing the camera.
LIN_SECONDS = (3.0, 7.0)


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _probe(get, seen: dict, proc=None, log: Path | None = None):
    """One look at /readyz, recorded in ``seen['last']``; raises when the models failed or the server exited."""
    if proc is not None and proc.poll() is not None:
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.is_file() else ""
        raise AssertionError(
            f"the server exited with code {proc.returncode} before it was ready; its log ends:\n{tail}"
        )
    try:
        r = get("/readyz")
    except Exception as exc:  # not listening yet, or a kept-alive connection the busy server closed
        seen["last"] = f"no answer from /readyz ({type(exc).__name__}: {exc})"
        return None
    seen["last"] = f"/readyz {r.status_code} {r.text[:300]}"
    if r.status_code == 503 and r.headers.get("content-type", "").startswith("application/json"):
        error = r.json().get("error", {})
        if error.get("code") == "not_ready" and error.get("message") != "the models are still loading":
            raise AssertionError(f"the service reports its models failed to load: {error.get('message')}")
    return r


def wait_ready(get, *, proc=None, log: Path | None = None) -> None:
    """Until the service's own readiness signal (/readyz 200) says its models are loaded; fails at
    once when it reports their loading failed or (``proc``) the server exited, and otherwise after
    the bound of what this start-up loads (:func:`startup_loads`)."""
    seen: dict = {"last": "nothing yet"}

    def ready() -> bool:
        r = _probe(get, seen, proc, log)
        return r is not None and r.status_code == 200

    loads = startup_loads(process=proc is not None)
    wait_for(ready, "the service's readiness (/readyz 200)", loads, lambda: seen["last"])


def wait_engine(app) -> None:
    """Until an in-process app's engine is loaded: the event /readyz reports, read directly (for apps
    whose time limit would time out the probe itself); fails at once with the loading's failure."""

    def ready() -> bool:
        engine = getattr(app.state, "engine", None)
        if engine is not None and engine.failure:
            raise AssertionError(f"the service's models failed to load: {engine.failure}")
        return engine is not None and engine.ready.is_set()

    wait_for(ready, "the service's engine to load (the event behind /readyz)", startup_loads(), lambda: "not loaded")


def wait_liveness(get) -> None:
    """Until /readyz says the liveness landmark model is loaded too (converted on first use when the
    cache is empty; /readyz cannot tell its failure from its loading: the bound ends that wait)."""
    seen: dict = {"last": "nothing yet"}

    def ready() -> bool:
        r = _probe(get, seen)
        return r is not None and r.status_code == 200 and bool(r.json().get("liveness"))

    loads = startup_loads(liveness=True)
    wait_for(ready, "the liveness model (/readyz 'liveness': true)", loads, lambda: seen["last"], poll_s=1.0)


def wait_job(client, job: dict, headers: dict, loads: tuple[str, ...]) -> dict:
    """Until a job leaves 'queued' and 'running' (the job's own status); returns its last state."""
    state = {"job": job}

    def finished() -> bool:
        if state["job"]["status"] not in ("queued", "running"):
            return True
        state["job"] = client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
        return False

    wait_for(finished, f"job {job['id']} to finish", loads, lambda: str(state["job"]))
    return state["job"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_y4m(frames: list[np.ndarray], fps: int, path: Path) -> Path:
    """RGB frames -> a YUV4MPEG2 (4:2:0) file, the format Chromium's fake camera plays (in a loop)."""
    import av

    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
            f.write(b"FRAME\n" + np.ascontiguousarray(yuv).tobytes())
    return path


def index_faces(
    shared_data: Path, folder: Path, people: dict[str, list[int]], gallery: Path, library: Path, detector=None
):
    """Copy some photos of ../shared/data/faces (``{person: [1, 2, ...]}``) into ``folder`` and index
    them into ``library`` beside ``gallery``, with the library's own code (as 'facenet-keras index')."""
    import shutil

    from facenet_keras.identity.gallery import FaceGallery
    from facenet_keras.library.index import index_folder
    from facenet_keras.library.store import open_library

    for person, numbers in people.items():
        (folder / person).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            shutil.copyfile(shared_data / "faces" / person / f"{n}.png", folder / person / f"{n}.png")
    with FaceGallery(gallery) as g, open_library(library) as lib:
        return index_folder(folder, lib, g, detector=detector, progress=False)


def server_env(folder: Path) -> dict:
    """The environment of a ``facenet-keras`` subprocess: this checkout first, its user data in ``folder``."""
    return dict(
        os.environ,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        XDG_DATA_HOME=str(folder / "data"),
    )


@contextlib.contextmanager
def serving(folder: Path, env: dict, args: list[str]):
    """``facenet-keras serve --port PORT *args`` in a subprocess (its log in ``folder/server.log``),
    once ready (models loaded); yields the port, and stops it after."""
    import httpx

    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facenet_keras.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            wait_ready(c.get, proc=proc, log=folder / "server.log")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
