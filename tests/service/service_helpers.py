"""Helpers of the service tests (imported by them and by conftest.py)."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 300  # a cold start on 2 busy cores: TensorFlow import, weights, first traces


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


def wait_ready(get, timeout: float = READY_TIMEOUT_S) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if get("/readyz").status_code == 200:
                return
        except Exception:  # the server is not listening yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"the service was not ready after {timeout} s")


def wait_liveness(get, timeout: float = 600) -> None:
    """Until /readyz says the liveness landmark model is loaded (converted on first use: minutes on a
    busy machine with an empty cache)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            r = get("/readyz")
            if r.status_code == 200 and r.json().get("liveness"):
                return
        except Exception:  # a kept-alive connection the busy server closed meanwhile: ask again
            pass
        time.sleep(1.0)
    raise AssertionError(f"the liveness model was not loaded after {timeout} s")


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
