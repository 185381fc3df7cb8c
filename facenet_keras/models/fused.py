"""The "accurate" profile's encoder: dlib's ResNet and FaceNet's Inception-ResNet-v1 fused into one model.

One face goes in as two chips stacked in the channels of a (N, 160, 160, 6) input (pixels 0..255):

* channels 0-2: FaceNet's own crop for Inception-ResNet-v1 (the MTCNN box grown by 32 px, 160 px;
  :func:`facenet_keras.faces.facenet_chips.facenet_chips` with ``method="box"``);
* channels 3-5: dlib's 150 px aligned chip for the ResNet, padded with 5 black pixels on every side
  (so mirroring the whole input mirrors both chips in place).

Each encoder's embedding is scaled to unit length and weighted, and the two are concatenated:

    f = [sqrt(1 - w) * a / |a|,  sqrt(w) * b]        (N, 640), a unit vector

so the squared distance between two faces is ``(1 - w) d_dlib^2 + w d_inception^2`` on the unit
sphere: one vector per face that any gallery backend searches like another embedding. ``w`` is
:data:`facenet_keras.faces.fusion.FUSION_WEIGHT`, chosen on ``../shared/data/faces`` only; the
pretrained model is built by :func:`facenet_keras.faces.pipeline.resolve_model` (``"accurate"``).
Keras layers only (no ``Lambda``).
"""

from __future__ import annotations

import math

import keras

from facenet_keras.models.layers import ChannelSlice, L2Normalize

__all__ = ["DLIB_PAD", "FUSED_INPUT_SHAPE", "FUSED_NAME", "fused_encoder"]

FUSED_NAME = "fused_dlib_inception"
#: Black border around dlib's 150 px chip inside the 160 px input: (160 - 150) / 2 on each side.
DLIB_PAD = 5
FUSED_INPUT_SHAPE = (160, 160, 6)


def fused_encoder(dlib: keras.Model, inception: keras.Model, weight: float) -> keras.Model:
    """(N, 160, 160, 6) stacked chips -> (N, 128 + 512) fused unit embeddings (see the module docstring).

    ``dlib``: the dlib ResNet at any scale ((N, 150, 150, 3) -> (N, 128)); ``inception``:
    Inception-ResNet-v1 ((N, 160, 160, 3) -> (N, 512) unit vectors); ``weight`` in [0, 1]: Inception's share.
    """
    w = float(weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    inputs = keras.Input(shape=FUSED_INPUT_SHAPE, name="chips")
    box_chip = ChannelSlice(0, 3, name="inception_chip")(inputs)
    dlib_chip = keras.layers.Cropping2D(DLIB_PAD, name="dlib_chip")(ChannelSlice(3, 6, name="dlib_channels")(inputs))
    a = L2Normalize(name="dlib_unit")(dlib(dlib_chip))
    b = L2Normalize(name="inception_unit")(inception(box_chip))
    a = keras.layers.Rescaling(math.sqrt(1.0 - w), name="dlib_weight")(a)
    b = keras.layers.Rescaling(math.sqrt(w), name="inception_weight")(b)
    outputs = keras.layers.Concatenate(axis=-1, name="fused")([a, b])
    return keras.Model(inputs, outputs, name=FUSED_NAME)
