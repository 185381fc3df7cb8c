"""The README's screenshot of the web page: public-domain faces only.

The fake camera plays a clip made here from matplotlib's ``grace_hopper.jpg`` (Rear Admiral Grace
Hopper, public domain), swaying slightly; Grace is enrolled from a changed copy of the same portrait
(mirrored, darker), the page recognises her over the live video, and Chromium (Debian's, driven by
Playwright) saves ``docs/images/service_page.png``. Nothing from ../shared/data is used.

Run: ``.venv/bin/python scripts/service_screenshot.py [--out docs/images/service_page.png]``
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]


def camera_frames(portrait: np.ndarray, n: int = 30, size=(640, 360)) -> list[np.ndarray]:
    """The portrait on a dark backdrop, swaying a few pixels (a person at the door stands almost still)."""
    w, h = size
    im = Image.fromarray(portrait)
    im = im.resize((round(im.width * h * 0.95 / im.height), round(h * 0.95)))
    frames = []
    for i in range(n):
        canvas = Image.new("RGB", size, (28, 32, 40))
        dx = int(round((w - im.width) / 2 + 6 * np.sin(2 * np.pi * i / n)))
        canvas.paste(im, (dx, (h - im.height) // 2))
        frames.append(np.asarray(canvas))
    return frames


def write_y4m(frames: list[np.ndarray], fps: int, path: Path) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
            f.write(b"FRAME\n" + np.ascontiguousarray(yuv).tobytes())
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "service_page.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)

    import httpx
    from playwright.sync_api import sync_playwright

    from facenet_keras.demo import sample_portraits
    from facenet_keras.service.auth import KeyStore

    grace = sample_portraits()["Grace Hopper"]
    work = Path(tempfile.mkdtemp(prefix="service-shot-"))
    clip = write_y4m(camera_frames(grace), 10, work / "grace.y4m")
    enrol = ImageEnhance.Brightness(ImageOps.mirror(Image.fromarray(grace))).enhance(0.8)
    buf = io.BytesIO()
    enrol.save(buf, format="JPEG", quality=90)
    key = KeyStore(work / "keys.json").create("write", "screenshot")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facenet_keras.cli",
            "serve",
            "--port",
            str(port),
            "--gallery",
            str(work / "g.sqlite"),
            "--keys",
            str(work / "keys.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        r = httpx.post(
            base + "/v1/people",
            data={"name": "Grace Hopper"},
            timeout=120,
            files=[("photos", ("grace.jpg", buf.getvalue()))],
            headers={"Authorization": f"Bearer {key}"},
        )
        r.raise_for_status()
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium,
                headless=True,
                args=[
                    "--use-fake-device-for-media-stream",
                    "--use-fake-ui-for-media-stream",
                    f"--use-file-for-fake-video-capture={clip}",
                    "--no-sandbox",
                ],
            )
            page = browser.new_page(viewport={"width": 1000, "height": 560})
            page.goto(base + "/")
            page.fill("#api-key", key)
            page.click("#key-form button[type=submit]")
            page.click("#camera-start")
            page.wait_for_selector(".face-label:has-text('Grace Hopper')", timeout=120_000)
            time.sleep(1.0)
            page.wait_for_selector(".face-label:has-text('Grace Hopper')", timeout=60_000)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
