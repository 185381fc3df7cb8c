"""What an encoder carries besides its weights: its decision threshold, stored inside its ``.keras`` file.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``); Keras
ignores other members, so ``facenet_keras.json`` travels inside the same file: the distance
threshold chosen for this encoder (by ``train`` on its validation identities, or by ``calibrate
--save-model``), and how it was chosen. A threshold belongs to an encoder: 0.6 is right for dlib's
pretrained ResNet only, so an encoder without one must not decide "same person" until calibrated.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from facenet_keras.files import atomic_write

__all__ = ["PRETRAINED_THRESHOLD", "MEMBER", "read_metadata", "write_metadata"]

# dlib's own rule for its pretrained ResNet's raw 128-D descriptors (see docs/performance.md, "How the
# default threshold was chosen"): same person when the Euclidean distance is <= 0.6.
PRETRAINED_THRESHOLD = 0.6
MEMBER = "facenet_keras.json"


def read_metadata(path: str | os.PathLike) -> dict:
    """The facenet-keras metadata stored in a ``.keras`` file ({} when it has none)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            if MEMBER not in z.namelist():
                return {}
            data = json.loads(z.read(MEMBER).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the metadata of the model file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"the model file {path} holds malformed facenet-keras metadata")
    return data


def write_metadata(path: str | os.PathLike, **fields) -> dict:
    """Merge ``fields`` into a ``.keras`` file's metadata (atomically: the file is rewritten aside and
    renamed over the original). Returns the new metadata."""
    path = Path(path)
    data = {**read_metadata(path), **fields}
    mode = path.stat().st_mode & 0o777
    with zipfile.ZipFile(path) as src, atomic_write(path, "wb", permissions=mode) as f:
        with zipfile.ZipFile(f, "w") as dst:
            for item in src.infolist():
                if item.filename != MEMBER:
                    with src.open(item) as a, dst.open(item, "w") as b:
                        shutil.copyfileobj(a, b)
            dst.writestr(MEMBER, json.dumps(data, indent=1, sort_keys=True))
    return data
