"""Fixtures for the service's tests: an app on a temporary gallery and keys file (TestClient), a real
uvicorn server on a free loopback port, and real photos and video frames from ../shared/data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the [service] extra")
pytest.importorskip("httpx", reason="the service tests need httpx")

from service_helpers import REPO, server_env, serving, wait_ready  # noqa: E402


@pytest.fixture(scope="session")
def service_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="session")
def keys(service_dir):
    """One key of each scope, in the service's keys file."""
    from facenet_keras.service.auth import KeyStore

    store = KeyStore(service_dir / "keys.json")
    return {scope: store.create(scope, f"test {scope}") for scope in ("read", "write", "admin")}


@pytest.fixture(scope="session")
def settings(service_dir, keys, shared_data):
    from facenet_keras.service.app import Settings

    return Settings(
        gallery=str(service_dir / "gallery.sqlite"),
        keys=str(service_dir / "keys.json"),
        jobs=str(service_dir / "jobs"),
        styles=str(shared_data / "style" / "style"),
        max_upload_bytes=4 * 2**20,
        max_pixels=6_000_000,
        max_stylize_size=128,
    )


@pytest.fixture(scope="session")
def client(settings):
    """A TestClient on the app; the gallery starts empty."""
    from fastapi.testclient import TestClient

    from facenet_keras.service.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c.get)
        yield c


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, shared_data):
    """``facenet-keras serve`` in a subprocess on a free loopback port, with its own gallery and keys:
    (base URL, {scope: key}, log file)."""

    folder = tmp_path_factory.mktemp("live")
    env = server_env(folder)
    cli = [sys.executable, "-m", "facenet_keras.cli"]
    made = {}
    for scope in ("read", "write"):
        out = subprocess.run(
            cli + ["keys", "create", "--scope", scope, "--keys", str(folder / "keys.json"), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        import json

        made[scope] = json.loads(out.stdout)["key"]
    args = ["--gallery", str(folder / "gallery.sqlite"), "--keys", str(folder / "keys.json")]
    # many tests share this server from one address, some sending refused keys on purpose: the
    # per-address throttle (tested on servers of its own) must not turn their valid keys away
    args += ["--key-failures", "100000"]
    with serving(folder, env, args + ["--styles", str(shared_data / "style" / "style"), "--log-level", "info"]) as port:
        yield f"http://127.0.0.1:{port}", made, folder / "server.log"


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where screenshots go (not committed): $FACENET_KERAS_ARTEFACTS or test-artefacts/ in the repo."""
    path = Path(os.environ.get("FACENET_KERAS_ARTEFACTS", REPO / "test-artefacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
