"""As root, a local PostgreSQL runs as its own user: binaries that user cannot reach are refused in one line."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from facenet_keras.identity.stores import pg_local


@pytest.fixture
def install():
    """A fake ``pginstall/bin/initdb`` inside a folder of its own under the temp dir."""
    root = Path(tempfile.mkdtemp(prefix="facenet-keras-test-pgbin-"))
    binary = root / "venv" / "pginstall" / "bin" / "initdb"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    for folder in (root, root / "venv", root / "venv" / "pginstall", binary.parent):
        folder.chmod(0o755)
    yield root, binary
    shutil.rmtree(root, ignore_errors=True)


def test_reachable_binaries_pass(install):
    _, binary = install
    pg_local.check_binaries_reachable(binary)


def test_a_private_parent_folder_is_named(install):
    root, binary = install
    (root / "venv").chmod(0o700)  # a clone inside a 0700 folder
    with pytest.raises(ValueError, match=r"cannot run the binaries .*/venv is mode 0o700"):
        pg_local.check_binaries_reachable(binary)


def test_a_binary_others_may_not_execute_is_refused(install):
    _, binary = install
    binary.chmod(0o750)
    with pytest.raises(ValueError, match="may not execute"):
        pg_local.check_binaries_reachable(binary)


def test_start_as_root_refuses_before_initdb(install, monkeypatch):
    root, binary = install
    (root / "venv").chmod(0o700)
    monkeypatch.setattr(pg_local, "_bin", lambda name: binary.parent / name)
    server = pg_local.LocalPostgres(root / "data")
    server._root = True  # the refusal comes before any user is created or any binary run
    with pytest.raises(ValueError, match="facenet-keras-pg"):
        server.start()
    assert not (root / "data" / "pgdata").exists()
