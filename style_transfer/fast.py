"""Fast arbitrary-style stylisation with a TensorFlow Hub model (one forward pass, no optimisation).

The model follows Magenta's arbitrary-image-stylization signature: called with a content image
and a style image, both float32 (1, H, W, 3) in [0, 1], it returns a list/tuple whose first element
is the stylised image (1, H', W', 3) in [0, 1]. The style image is best at 256x256 (the size the
Magenta model was trained with).

Offline: pass the path of a local SavedModel directory (for example the unpacked Magenta
``arbitrary-image-stylization-v1-256`` download); nothing is fetched at run time unless the caller
passes a URL handle and has a network. ``tensorflow_hub.load`` is called directly: ``hub.KerasLayer``
fails inside Keras 3 functional models.
"""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from . import images as im

MAGENTA_HANDLE = "https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2"
STYLE_SIZE = 256


def load_hub_model(handle_or_path: str | os.PathLike):
    """``tensorflow_hub.load`` of a handle or a local SavedModel directory.

    A local path that does not exist raises FileNotFoundError (rather than a network attempt).
    """
    import tensorflow_hub as hub

    handle = os.fspath(handle_or_path)
    if "://" not in handle and not os.path.isdir(handle):
        raise FileNotFoundError(
            f"no SavedModel directory at {handle}: download and unpack Magenta's "
            f"arbitrary-image-stylization model ({MAGENTA_HANDLE}) and pass its folder")
    return hub.load(handle)


def fast_stylize(content, style, model, *, size: int | None = 512,
                 style_size: int = STYLE_SIZE, preserve_colors: bool = False) -> np.ndarray:
    """Stylise ``content`` with ``style`` in one pass of ``model`` (a loaded module, handle or path).

    content, style: paths, PIL images or arrays. size: longest side of the content fed to the
    model (None keeps it). Returns float32 RGB (H, W, 3) in [0, 1].
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_hub_model(model)
    c = im.load_image(content, size)
    s = im.resize(im.load_image(style), style_size, style_size)
    if preserve_colors:
        y = im.luminance(c)
        s = im.gray3(im.match_luminance(im.luminance(s), y))
    outputs = model(tf.constant(c[None]), tf.constant(s[None]))
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    out = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    out = np.asarray(out)[0].astype(np.float32).clip(0, 1)
    if preserve_colors:
        out = im.recombine_colors(out, c)
    return out
