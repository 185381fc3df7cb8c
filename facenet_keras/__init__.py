"""facenet-keras: face verification and recognition with FaceNet-style embeddings in Keras 3.

The public API is small, in the spirit of face_recognition::

    import facenet_keras as fk
    faces = fk.encode("photo.jpg")                 # every face: box, landmarks, confidence, embedding
    gallery = fk.FaceGallery()                     # enrolled people, persisted in SQLite
    gallery.enroll("grace", "grace.jpg")           # one-shot enrolment, no retraining
    fk.verify("probe.jpg", "grace", gallery)       # 1:1  -> match, distance, threshold
    fk.recognize("group.jpg", gallery)             # 1:K  -> every face: identity or None

Names are imported lazily, so ``import facenet_keras.evaluation`` does not pay for TensorFlow.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_image": "images",
    "ImageError": "images",
    "detect_faces": "detection",
    "FaceDetector": "detection",
    "Detection": "detection",
    "NoFaceError": "detection",
    "align_faces": "alignment",
    "load_encoder": "encoder",
    "encode_chips": "encoder",
    "encode": "pipeline",
    "Face": "pipeline",
    "FaceGallery": "gallery",
    "verify": "recognition",
    "recognize": "recognition",
    "Verification": "recognition",
    "Recognition": "recognition",
    "DEFAULT_THRESHOLD": "recognition",
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
