"""Converted weights as named numpy arrays, cached and checked against a pinned content digest.

:func:`facenet_keras.weights.cache.cached_file` already rebuilds a cached file that is damaged or
was made from another source. This adds the check that the *weights themselves* are the ones the
code was written for: the sha256 of the arrays' contents (names, dtypes, shapes and values, see
:func:`arrays_digest`) must equal a digest pinned in the code. It is checked twice: on the freshly
converted arrays before they are written (another version of the source package is refused, not
cached), and on every load (a cache edited behind the sidecar's back is refused, never used).
The digest covers contents, not a file, so it does not depend on how numpy lays out the ``.npz``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from facenet_keras.weights.cache import PINNED, arrays_digest, cached_file, sha256_file

__all__ = ["WeightsDigestError", "arrays_digest", "cached_arrays", "load_arrays", "save_arrays"]


class WeightsDigestError(ValueError):
    """Weights whose contents do not match the pinned digest: refused rather than used."""


def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write named arrays to an uncompressed ``.npz`` (no pickled objects)."""
    with open(path, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the named arrays of an ``.npz`` written by :func:`save_arrays` (pickles refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsDigestError(f"cannot read the cached weights {path}: {exc}") from exc


def _check(arrays: Mapping[str, np.ndarray], expected: str, what: str, remedy: str) -> None:
    got = arrays_digest(arrays)
    if got != expected:
        raise WeightsDigestError(f"{what}: the weights' sha256 is {got}, not the pinned {expected}; refused. {remedy}")


def cached_arrays(
    name: str,
    source: str | os.PathLike[str],
    convert: Callable[[Path], Mapping[str, np.ndarray]],
    expected_digest: str,
    *,
    tag: str = "1",
    directory: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """Named arrays converted from ``source`` by ``convert``, cached as ``name`` (an ``.npz``).

    ``convert(source_path)`` returns the arrays; they must match ``expected_digest`` (see
    :func:`arrays_digest`) before they are cached and every time they are loaded. Raises
    :class:`WeightsDigestError` when they do not (another source version, or a cache edited
    consistently with its sidecar record): such weights are never used.
    """
    source = Path(source)
    # pinned for cached_file too, so a cache edited together with its sidecar is refused and rebuilt
    PINNED.setdefault(tag, {})[sha256_file(source)] = expected_digest

    def build(src: Path, out: Path) -> None:
        arrays = convert(src)
        _check(
            arrays,
            expected_digest,
            f"converted from {src}",
            "This package version is not the one the model was written for.",
        )
        save_arrays(out, arrays)

    path = cached_file(name, source, build, tag=tag, directory=directory)
    arrays = load_arrays(path)
    _check(
        arrays,
        expected_digest,
        f"cached file {path}",
        f"The cache was altered; delete {path} (and its .json) to rebuild it from {source}.",
    )
    return arrays
