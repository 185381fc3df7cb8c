"""A checksummed user cache for converted weight files.

Converting a foreign weight file (e.g. dlib's ``.dat``) takes a few seconds, so it is done once and
the result is kept in the cache folder: ``$FACENET_KERAS_HOME`` if set, else
``~/.cache/facenet-keras``. Beside each cached file ``NAME`` lies ``NAME.json`` recording the
sha256 of the cached file and of the source it was made from (and a format tag). A cached file is
used only if both checksums still match; otherwise (missing, truncated, corrupt, or made from a
different source) it is rebuilt. Files are written atomically: to a temporary file in the same
folder, then ``os.replace``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from facenet_keras.files import atomic_write, private_dir, sha256_file

__all__ = ["cache_dir", "sha256_file", "cached_file", "CacheRecord"]

def cache_dir() -> Path:
    """The cache folder (created if needed).

    ``$FACENET_KERAS_HOME`` if set, else ``~/.cache/facenet-keras``; created 0700 (it holds cached
    embeddings of people's photos as well as weights).
    """
    root = os.environ.get("FACENET_KERAS_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "facenet-keras"
    return private_dir(path)


class CacheRecord(dict):
    """The sidecar record of a cached file: ``sha256``, ``source_sha256``, ``tag``."""


def _read_record(path: Path) -> CacheRecord | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return CacheRecord(data) if isinstance(data, dict) else None


def is_valid(path: Path, source_sha256: str, tag: str) -> bool:
    """Whether ``path`` exists and its record matches its bytes, the source and the tag."""
    record = _read_record(path.with_name(path.name + ".json"))
    if record is None or not path.is_file():
        return False
    if record.get("source_sha256") != source_sha256 or record.get("tag") != tag:
        return False
    return record.get("sha256") == sha256_file(path)


def cached_file(
    name: str,
    source: str | os.PathLike[str],
    build: Callable[[Path, Path], None],
    *,
    tag: str = "1",
    directory: str | os.PathLike[str] | None = None,
) -> Path:
    """Path of a verified cached file ``name`` made from ``source``, building it if needed.

    ``build(source_path, out_path)`` must write the converted file to ``out_path`` (a temporary
    path in the cache folder whose name ends like ``name``, so suffix-sensitive writers work).
    ``tag`` names the conversion's format; change it to invalidate caches written by older code.
    Returns the final path; raises whatever ``build`` raises (leaving no partial file behind).
    """
    source = Path(source)
    folder = Path(directory) if directory is not None else cache_dir()
    private_dir(folder)
    target = folder / name
    source_sha = sha256_file(source)
    if is_valid(target, source_sha, tag):
        return target

    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=f"-{name}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # let the writer create it (some refuse to overwrite)
        build(source, tmp)
        record = {"sha256": sha256_file(tmp), "source_sha256": source_sha, "tag": tag,
                  "source": str(source)}
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    with atomic_write(target.with_name(target.name + ".json"), "w") as f:
        f.write(json.dumps(record, indent=1))
    return target
