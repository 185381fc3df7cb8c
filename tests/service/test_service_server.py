"""``facenet-keras serve`` as a real server on a loopback port: concurrent clients share batches and
get the same answers; the log names routes, not people."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from bounded_waits import startup_loads, wait_for
from service_helpers import LIN_SECONDS, REPO, auth, clip_frames, png_bytes

LIN = "Lin-Manuel Miranda"


def test_served_over_http_to_concurrent_clients(live_server, shared_data):
    base, keys, log_file = live_server
    video = shared_data / "video"
    frames, _ = clip_frames(video / "short_hamilton_clip.mp4", LIN_SECONDS[0] + 2.0, LIN_SECONDS[0] + 2.1)
    frame = png_bytes(frames[0])
    with httpx.Client(base_url=base, timeout=120) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.post(
            "/v1/people",
            data={"name": LIN},
            files=[("photos", ("portrait.png", (video / "lin-manuel-miranda.png").read_bytes()))],
            headers=auth(keys["write"]),
        )
        if r.status_code == 409:  # the browser test enrolled him first
            r = c.get(f"/v1/people/{LIN}", headers=auth(keys["read"]))
        assert r.status_code in (200, 201), r.text

        def one(_):
            return c.post("/v1/recognize", files={"photo": ("f.png", frame)}, headers=auth(keys["read"]))

        def batches() -> dict[str, float]:
            text = c.get("/metrics", headers=auth(keys["read"])).text
            return {
                line.split()[0]: float(line.split()[1])
                for line in text.splitlines()
                if line.startswith("facenet_encoder_batch_size_")
            }

        before = batches()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(16)))
        after = batches()
    assert [a.status_code for a in answers] == [200] * 16
    identities = {tuple(f["identity"] for f in a.json()["faces"]) for a in answers}
    distances = [a.json()["faces"][0]["distance"] for a in answers]
    assert identities == {(LIN,)} and max(distances) - min(distances) < 1e-4
    # each request's one face went through the shared encoder queue exactly once, in at most 16 batches
    # (how many were shared depends on the timing: benchmarks/service_load.py reports the mean)
    assert after["facenet_encoder_batch_size_sum"] - before["facenet_encoder_batch_size_sum"] == 16
    assert after["facenet_encoder_batch_size_count"] - before["facenet_encoder_batch_size_count"] <= 16
    log = log_file.read_text()
    assert "POST /v1/recognize 200" in log
    assert "Miranda" not in log and keys["read"] not in log and keys["write"] not in log


def test_serve_speaks_tls_and_refuses_bad_options(tmp_path):
    """--tls-cert/--tls-key serve https (a self-signed pair made here); option mistakes exit 2."""
    import os
    import shutil
    import ssl
    import subprocess
    import sys

    import pytest
    from service_helpers import free_port

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "data"))
    cli = [sys.executable, "-m", "facenet_keras.cli", "serve", "--gallery", str(tmp_path / "g.sqlite")]
    bad = subprocess.run(cli + ["--workers", "2"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "one worker" in bad.stderr
    bad = subprocess.run(cli + ["--tls-cert", str(tmp_path / "cert.pem")], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "go together" in bad.stderr
    bad = subprocess.run(cli[:-2] + ["--gallery", "nosuch://db/x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown gallery URL scheme" in bad.stderr
    trust = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    port = free_port()
    proc = subprocess.Popen(
        cli + ["--port", str(port), "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen: dict = {"last": "nothing yet"}

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the TLS server exited with code {proc.returncode} before it answered")
            try:  # the self-signed certificate is the one trusted authority here
                seen["answer"] = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trust)
                return True
            except httpx.ConnectError as exc:
                seen["last"] = f"no answer ({exc})"
                return False

        wait_for(answers, "the TLS server to answer /healthz", ("tensorflow",), lambda: seen["last"], poll_s=0.3)
        assert seen["answer"].json() == {"status": "ok"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # plain http is not spoken
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_two_workers_share_one_postgresql_gallery(pg, tmp_path, shared_data):
    """``serve --workers 2 --gallery postgresql://...``: a person enrolled through one worker is
    recognised by both (each answer names the worker's pid in X-Worker)."""
    import json
    import os
    import subprocess
    import sys

    import psycopg
    from service_helpers import free_port

    with psycopg.connect(pg.url_for("postgres", pg.info["password"], "postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE served OWNER facenet TEMPLATE template1")
    url = pg.url_for("facenet", pg.info["password"], "served")
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_DATA_HOME=str(tmp_path / "data"), TF_CPP_MIN_LOG_LEVEL="2")
    cli = [sys.executable, "-m", "facenet_keras.cli"]
    made = {}
    for scope in ("read", "write"):
        out = subprocess.run(cli + ["keys", "create", "--scope", scope, "--json"], env=env, capture_output=True)
        made[scope] = json.loads(out.stdout)["key"]
    from facenet_keras.faces.landmarks import load_shape_predictor_68

    load_shape_predictor_68()  # into the session's cache once, rather than by both workers at once
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        cli + ["serve", "--workers", "2", "--port", str(port), "--gallery", url],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    frames, _ = clip_frames(shared_data / "video" / "short_hamilton_clip.mp4", 5.0, 5.1)
    frame = png_bytes(frames[0])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120, headers={"Connection": "close"}) as c:

            def answers(method: str, path: str, n: int, **kw) -> list[httpx.Response]:
                try:
                    with ThreadPoolExecutor(4) as pool:
                        # a new connection each (a kept-alive one stays with the worker that accepted it)
                        return list(pool.map(lambda _: c.request(method, path, **kw), range(n)))
                except httpx.TransportError:  # not listening yet
                    return []

            ready: set = set()

            def both_ready() -> bool:  # both workers loaded their models
                # (liveness's landmark model too: its first conversion holds a worker's GIL for minutes)
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited with code {proc.returncode}")
                ready.update(
                    r.headers["x-worker"]
                    for r in answers("GET", "/readyz", 8)
                    if r.status_code == 200 and r.json()["liveness"]
                )
                return len(ready) == 2

            def last() -> str:
                return f"workers ready: {sorted(ready)}; the log ends: {(tmp_path / 'server.log').read_text()[-2000:]}"

            # two workers load at once on the same cores: twice what one loads
            wait_for(
                both_ready,
                "both workers' readiness with liveness",
                2 * startup_loads(process=True, liveness=True),
                last,
            )
            r = c.post(
                "/v1/people",
                data={"name": LIN},
                files=[("photos", ("p.png", (shared_data / "video" / "lin-manuel-miranda.png").read_bytes()))],
                headers=auth(made["write"]),
            )
            assert r.status_code == 201, r.text
            seen: dict[str, set] = {}
            recognised = 0
            for _ in range(5):
                for a in answers(
                    "POST", "/v1/recognize", 8, files={"photo": ("f.png", frame)}, headers=auth(made["read"])
                ):
                    assert a.status_code == 200, a.text
                    seen.setdefault(a.headers["x-worker"], set()).add(a.json()["faces"][0]["identity"])
                    recognised += 1
                if len(seen) == 2:
                    break
            # /metrics from either worker counts both workers' requests (prometheus_client's multiprocess mode)
            line = 'facenet_requests_total{method="POST",route="/v1/recognize",status="200"}'
            for m in answers("GET", "/metrics", 4, headers=auth(made["read"])):
                counts = [float(x.split()[-1]) for x in m.text.splitlines() if x.startswith(line)]
                assert counts == [recognised], (m.headers["x-worker"], counts, recognised)
        assert seen.keys() == ready and all(names == {LIN} for names in seen.values()), seen
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
