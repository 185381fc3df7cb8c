"""File helpers shared by every layer: one sha256 of a file, one atomic write, one private folder.

Atomic: data goes to a temporary file in the target's folder, is flushed, then renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a crash never leaves a half-written file
under the final name. Private: biometric data (galleries, cached embeddings, face crops) lives in
folders only the user can open (0700) and files only the user can read (0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["sha256_file", "atomic_write", "private_dir", "PRIVATE_FILE_MODE", "PRIVATE_DIR_MODE"]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder, created 0700 if missing (existing folders keep their mode)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", permissions: int = PRIVATE_FILE_MODE) -> Iterator[IO]:
    """``with atomic_write(path) as f: f.write(...)``: ``path`` holds the new bytes or the old ones,
    never a mixture. The temporary file keeps ``path``'s suffix (for suffix-sensitive writers such as
    ``np.save``) and gets ``permissions`` before the rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
