"""One builder function per architecture, Keras-applications style.

Each builder returns a ``keras.Model`` and resolves its own weights (``weights="pretrained"``,
``None`` or a path) in one place. Add a new architecture as ``models/<name>.py`` exporting one
builder, and one import line below.
"""

from __future__ import annotations

from facenet_keras.models.dlib_resnet import dlib_resnet
from facenet_keras.models.inception_resnet_v1 import inception_resnet_v1, load_inception_resnet_v1
from facenet_keras.models.nn4_small2 import nn4_small2
from facenet_keras.models.onnx_encoder import onnx_encoder
from facenet_keras.models.sface import load_sface, sface

__all__ = [
    "dlib_resnet",
    "inception_resnet_v1",
    "load_inception_resnet_v1",
    "load_sface",
    "nn4_small2",
    "onnx_encoder",
    "sface",
]
