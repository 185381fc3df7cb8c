"""Pretrained weights as named arrays onto a freshly built model, or a ``.weights.h5`` file: one place
for the builders whose converted weights are cached as ``{"<layer>:<variable>": array}``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

__all__ = ["build_with_weights", "set_named_weights"]


def set_named_weights(model: keras.Model, arrays: dict[str, np.ndarray], what: str) -> keras.Model:
    """Set every layer's variables from ``arrays`` keyed ``"<layer name>:<variable name>"``; raises
    ValueError naming ``what`` when a key is missing or left over."""
    expected = {f"{layer.name}:{v.name}" for layer in model.layers for v in layer.weights}
    missing, extra = expected - set(arrays), set(arrays) - expected
    if missing or extra:
        raise ValueError(f"weights do not fit {what}: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([arrays[f"{layer.name}:{v.name}"] for v in layer.weights])
    return model


def build_with_weights(
    build: Callable[[], keras.Model],
    weights: str | os.PathLike[str] | None,
    pretrained: Callable[[], dict[str, np.ndarray]],
    what: str,
) -> keras.Model:
    """``build()`` with ``weights``: ``"pretrained"`` (``pretrained()``'s named arrays, resolved
    first so a missing package fails before anything is built), ``None`` (random initialisation) or
    the path of a Keras ``.weights.h5`` file. Never falls back to random weights."""
    if isinstance(weights, str) and weights == "pretrained":
        arrays = pretrained()
        return set_named_weights(build(), arrays, what)
    model = build()
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file() or not path.name.lower().endswith(".weights.h5"):
            raise FileNotFoundError(
                f"not a Keras '.weights.h5' file: {path} (use weights='pretrained' for the installed ones)"
            )
        model.load_weights(str(path))
    return model
