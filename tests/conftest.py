"""Shared fixtures. Real data comes from ``../shared/data`` beside the repository (one fixture finds it)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    candidates = [os.environ.get("FACENET_KERAS_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "faces").is_dir():
            return Path(c)
    return None


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
