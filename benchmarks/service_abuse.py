"""The service under hostile load: each case runs against its own fresh ``facenet-keras serve``
(models loaded and warmed by a few real requests), so one case's high-water mark cannot hide the
next. The server's resident memory is sampled every 50 ms; the figure is its peak growth over the
RSS measured just before the case (the baseline, in the same run). The limits are the defaults,
stated on the command line so the figures say what they were measured under.

Cases (targets from the issue that filed them):
  1-frames  149 frames of a ~0.5 KB 2000x2000 1-bit PNG + one 1999x2000 frame to /v1/liveness: < 1 GB
  1-clip    a ~20 KB H.264 clip of 160 frames at 2000x2000 to /v1/liveness: < 1 GB
  2         40 concurrent /v1/recognize of a ~3 KB 5000x5000 PNG: < 1 GB
  3         64 concurrent keyless 9.9 MB uploads: < 300 MB
  4         2,000 requests with made-up HTTP methods: /metrics grows < 50 KB
  5         5,000 idle connections with unfinished headers: /healthz < 1 s, log < 1 MB

Run: ``.venv/bin/python benchmarks/service_abuse.py [--cases 1-frames 2 ...] [--json OUT]``;
``--quick`` runs a small case 3 (4 keyless 1 MB uploads, no model needed) in about a minute.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
LIMITS = [
    "--max-upload-mb",
    "10",
    "--max-pixels",
    "25000000",
    "--max-frames",
    "150",
    "--max-request-pixels",
    "50000000",
    "--max-pixels-in-flight",
    "50000000",
]
MB = 2**20
TARGETS = {  # case: (what is measured, the most it may be)
    "1-frames": ("rss_growth_mb", 1024),
    "1-clip": ("rss_growth_mb", 1024),
    "2": ("rss_growth_mb", 1024),
    "3": ("rss_growth_mb", 300),
    "4": ("metrics_growth_kb", 50),
    "5": ("healthz_s", 1.0),
}


# ------------------------------------------------------------------------------------ payloads
def png_1bit(width: int, height: int) -> bytes:
    """A blank 1-bit PNG: a few hundred bytes or KB that decode to width x height x 3 bytes."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def h264_clip(width: int, height: int, frames: int) -> bytes:
    """A grey H.264 mp4 (tiny: every frame repeats the first); needs PyAV with libx264."""
    import av

    if "libx264" not in av.codecs_available:
        raise SystemExit("this PyAV has no libx264: case 1-clip cannot be made")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51"}
        grey = av.VideoFrame.from_ndarray(np.full((height, width, 3), 128, np.uint8), format="rgb24")
        for _ in range(frames):
            out.mux(stream.encode(grey))
        out.mux(stream.encode())
    return buf.getvalue()


# ------------------------------------------------------------------------------------ the server
class Server:
    """``facenet-keras serve`` in a subprocess on a free port, with its own keys, gallery and log."""

    def __init__(self, work: Path, log_level: str = "info"):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            XDG_DATA_HOME=str(work / "data"),
        )
        cli = [sys.executable, "-m", "facenet_keras.cli"]
        keys = str(work / "keys.json")
        made = subprocess.run(
            cli + ["keys", "create", "--scope", "read", "--keys", keys, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = json.loads(made.stdout)["key"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = work / "server.log"
        self.command = cli + ["serve", "--port", str(self.port), "--gallery", str(work / "g.sqlite"), "--keys", keys]
        self.command += LIMITS + ["--log-level", log_level]
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(self.command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, path: str, ok, seconds: float = 600.0) -> None:
        import httpx

        t0 = time.monotonic()
        with httpx.Client(base_url=self.base, timeout=5) as c:
            while True:
                try:
                    r = c.get(path)
                    if ok(r):
                        return
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None or time.monotonic() - t0 > seconds:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise SystemExit(f"the server did not get ready ({path}); its log ends:\n{tail}")
                time.sleep(0.25)

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


class PeakRss:
    """The peak of a server's RSS, sampled every 50 ms in a thread while the block runs."""

    def __init__(self, server: Server):
        self.server, self.peak, self._stop = server, 0, threading.Event()

    def __enter__(self):
        self.base = self.peak = self.server.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.server.rss())
            except OSError:
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.base) / MB, 1)


def warm(server: Server, liveness: bool) -> None:
    """A few real requests, so that first-use allocations are in the baseline, not in the figure."""
    import httpx

    rng = np.random.default_rng(0)
    photo = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), np.uint8)).save(photo, "JPEG")
    h = {"Authorization": f"Bearer {server.key}"}
    with httpx.Client(base_url=server.base, timeout=120, headers=h) as c:
        for _ in range(2):
            c.post("/v1/recognize", files={"photo": ("w.jpg", photo.getvalue())})
        if liveness:
            frames = [("frames", (f"{i}.jpg", photo.getvalue())) for i in range(12)]
            c.post("/v1/liveness", files=frames)


# ------------------------------------------------------------------------------------ the cases
def _post_all(server: Server, n: int, make_request) -> list[str]:
    """``n`` concurrent requests, each ``make_request(client)``; their status codes (or error names)."""
    import httpx

    def one(_):
        with httpx.Client(base_url=server.base, timeout=300) as c:
            try:
                return str(make_request(c).status_code)
            except httpx.HTTPError as exc:
                return type(exc).__name__

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def case_frames(server: Server, _quick: bool) -> dict:
    frame, odd = png_1bit(2000, 2000), png_1bit(1999, 2000)
    files = [("frames", (f"{i}.png", frame, "image/png")) for i in range(149)]
    files.append(("frames", ("149.png", odd, "image/png")))
    h = {"Authorization": f"Bearer {server.key}"}
    codes = _post_all(server, 1, lambda c: c.post("/v1/liveness", files=files, headers=h))
    return {"codes": codes, "upload_kb": round((149 * len(frame) + len(odd)) / 1024, 1)}


def case_clip(server: Server, _quick: bool) -> dict:
    clip = h264_clip(2000, 2000, 160)
    h = {"Authorization": f"Bearer {server.key}"}
    codes = _post_all(server, 1, lambda c: c.post("/v1/liveness", files={"clip": ("c.mp4", clip)}, headers=h))
    return {"codes": codes, "upload_kb": round(len(clip) / 1024, 1)}


def case_big_photos(server: Server, _quick: bool) -> dict:
    photo = png_1bit(5000, 5000)
    h = {"Authorization": f"Bearer {server.key}"}
    codes = _post_all(server, 40, lambda c: c.post("/v1/recognize", files={"photo": ("p.png", photo)}, headers=h))
    return {"codes": codes, "upload_kb": round(len(photo) / 1024, 1)}


def case_keyless(server: Server, quick: bool) -> dict:
    n, size = (4, 1 * MB) if quick else (64, int(9.9 * MB))
    body = os.urandom(size)
    codes = _post_all(server, n, lambda c: c.post("/v1/recognize", files={"photo": ("p.jpg", body)}))
    return {
        "codes": codes,
        "upload_kb": round(size / 1024, 1),
        "what": f"{n} concurrent keyless {size / MB:.1f} MB uploads",
    }


def _metrics_size(server: Server) -> int:
    import httpx

    h = {"Authorization": f"Bearer {server.key}"}
    return len(httpx.get(f"{server.base}/metrics", headers=h, timeout=60).content)


def case_methods(server: Server, _quick: bool) -> dict:
    before = _metrics_size(server)

    def junk(i: int) -> str:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(f"M{i:05d}X / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            reply = s.recv(64)
        return reply.split(b" ")[1].decode() if reply.startswith(b"HTTP/") else "no answer"

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(junk, range(2000)))
    return {"codes": codes, "metrics_growth_kb": round((_metrics_size(server) - before) / 1024, 1)}


def case_idle(server: Server, _quick: bool) -> dict:
    import httpx

    held = []
    try:
        for _ in range(5000):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            held.append(s)
        time.sleep(5)
        latencies, codes = [], []
        for _ in range(5):
            t0 = time.monotonic()
            try:
                codes.append(str(httpx.get(f"{server.base}/healthz", timeout=30).status_code))
            except httpx.HTTPError as exc:
                codes.append(type(exc).__name__)
            latencies.append(time.monotonic() - t0)
    finally:
        for s in held:
            s.close()
    time.sleep(2)
    return {"codes": codes, "healthz_s": round(max(latencies), 3), "idle_connections": len(held)}


CASES = {
    "1-frames": (case_frames, "149 frames of a 2000x2000 1-bit PNG + one 1999x2000 to /v1/liveness", True),
    "1-clip": (case_clip, "an H.264 clip, 160 frames of 2000x2000, to /v1/liveness", True),
    "2": (case_big_photos, "40 concurrent /v1/recognize of a 5000x5000 1-bit PNG", False),
    "3": (case_keyless, "64 concurrent keyless 9.9 MB uploads", False),
    "4": (case_methods, "2,000 requests with made-up HTTP methods", False),
    "5": (case_idle, "5,000 idle connections with unfinished headers", False),
}


def run_case(name: str, work: Path, quick: bool) -> dict:
    """One case on its own fresh, warmed server: its figures, and whether each meets its target."""
    fn, what, liveness = CASES[name]
    server = Server(work / f"case-{name}")
    try:
        if quick:  # the keyless case needs no model: the process answering is enough
            server.wait("/healthz", lambda r: r.status_code == 200)
        else:
            server.wait("/readyz", lambda r: r.status_code == 200 and (not liveness or r.json().get("liveness")))
            warm(server, liveness)
        time.sleep(1.0)
        log_before = server.log.stat().st_size
        t0 = time.monotonic()
        with PeakRss(server) as rss:
            out = fn(server, quick)
        out["seconds"] = round(time.monotonic() - t0, 1)
        out["rss_growth_mb"] = rss.growth_mb
        out["log_growth_kb"] = round((server.log.stat().st_size - log_before) / 1024, 1)
        out["server_alive"] = server.proc.poll() is None
    finally:
        server.close()
    figure, target = TARGETS[name]
    out.setdefault("what", what)
    out.update(case=name, figure=figure, target=target, command=" ".join(server.command[1:]))
    out["met"] = out["server_alive"] and out[figure] < target and (name != "5" or out["log_growth_kb"] < 1024)
    return out


def counts(codes: list[str]) -> str:
    """``["401", "401", "503"]`` -> ``"401 x2, 503 x1"``."""
    return ", ".join(f"{c} x{codes.count(c)}" for c in sorted(set(codes)))


def table(rows: list[dict]) -> str:
    """The results as a Markdown table (what docs/deploy.md shows)."""
    lines = [
        "| case | what | answers | peak RSS growth | other figure | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        other = "" if r["figure"] == "rss_growth_mb" else f"{r['figure']} = {r[r['figure']]}"
        if r["case"] == "5":
            other += f"; log +{r['log_growth_kb']} KB"
        unit = {"rss_growth_mb": "MB", "metrics_growth_kb": "KB", "healthz_s": "s"}[r["figure"]]
        lines.append(
            f"| {r['case']} | {r['what']} | {counts(r['codes'])} | {r['rss_growth_mb']} MB | {other} "
            f"| < {r['target']} {unit} | {'yes' if r['met'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--quick", action="store_true", help="only a small keyless case (no model needed)")
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file ('-': stdout only)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="service-abuse-"))
    cases = ["3"] if args.quick else args.cases
    rows = []
    for name in cases:
        print(f"case {name}: {CASES[name][1]} ...", file=sys.stderr, flush=True)
        rows.append(run_case(name, work, args.quick))
    if args.json == "-":
        print(json.dumps(rows, indent=1))
    else:
        print(f"server: {rows[0]['command']}  ({os.cpu_count()} CPUs)")
        print(table(rows))
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
