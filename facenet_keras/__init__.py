"""facenet-keras: face verification and recognition with FaceNet-style embeddings in Keras 3.

The public API is small, in the spirit of face_recognition::

    import facenet_keras as fk
    faces = fk.encode("photo.jpg")                 # every face: box, landmarks, confidence, embedding
    gallery = fk.FaceGallery()                     # enrolled people, persisted in SQLite
    gallery.enroll("grace", "grace.jpg")           # one-shot enrolment, no retraining
    fk.verify("probe.jpg", "grace", gallery)       # 1:1  -> match, distance, threshold
    fk.recognize("group.jpg", gallery)             # 1:K  -> every face: identity or None
    fk.compare("photo1.jpg", "photo2.jpg")         # two photos, no gallery -> match, distance, threshold

Names are imported lazily, so ``import facenet_keras.evaluation`` does not pay for TensorFlow.
The layout and its import rule are described in docs/development.md, "Architecture".
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from facenet_keras import _moved, tf_env

tf_env.configure()  # before anything imports TensorFlow: no oneDNN/absl/cuInit lines (see tf_env)

try:
    __version__ = version("facenet-keras")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_moved.install()  # the 0.1 module paths (facenet_keras.gallery, ...) keep working for one release

# public name -> module that defines it
_EXPORTS = {
    "load_image": "images",
    "ImageError": "images",
    "detect_faces": "faces.detection",
    "FaceDetector": "faces.detection",
    "Detection": "faces.detection",
    "NoFaceError": "faces.detection",
    "align_faces": "faces.pipeline",
    "FacePipeline": "faces.pipeline",
    "UnusableFaceError": "faces.pipeline",
    "load_encoder": "models.encoder",
    "encode_chips": "models.encoder",
    "encode": "faces.pipeline",
    "Face": "faces.face",
    "FaceGallery": "identity.gallery",
    "GalleryError": "identity.stores.base",
    "EmbeddingSpaceError": "identity.stores.base",
    "verify": "identity.recognition",
    "recognize": "identity.recognition",
    "Verification": "identity.recognition",
    "Recognition": "identity.recognition",
    "compare": "identity.recognition",
    "Comparison": "identity.recognition",
    "DEFAULT_THRESHOLD": "identity.recognition",
    "index": "library.index",
    "watch": "live.watch",
    "check_liveness": "live.liveness",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # a sub-module, e.g. facenet_keras.evaluation
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'facenet_keras' has no attribute {name!r}") from None
        globals()[name] = value
        return value
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
