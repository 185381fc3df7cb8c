"""style_transfer: Gatys neural style transfer in Keras 3 / TensorFlow, VGG weights loaded offline.

    from style_transfer import stylize
    result = stylize("photo.jpg", "painting.jpg", size=512)   # coarse-to-fine Adam, ~minutes on a CPU
    result.image                                               # float32 RGB (H, W, 3) in [0, 1]

    from style_transfer import stylize_fast, stylize_preset  # one forward pass (Magenta, offline)
    image = stylize_fast("photo.jpg", "painting.jpg")

The course's costs live in :mod:`style_transfer.costs` (``compute_content_cost``, ``gram_matrix``,
``compute_layer_style_cost``, ``compute_style_cost``, ``total_cost``). Names are imported lazily so
``import style_transfer.costs`` does not build a network. Never imports ``facenet_keras``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:  # one distribution ships both packages: one version
    __version__ = version("facenet-keras")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "stylize": "optimize",
    "StyleResult": "optimize",
    "multiscale_schedule": "optimize",
    "evaluate_costs": "optimize",
    "fast_stylize": "fast",
    "load_hub_model": "fast",
    "stylize_fast": "fast",
    "stylize_preset": "fast",
    "style_vector": "fast",
    "hub_model_path": "fast",
    "PRESETS": "presets",
    "build_feature_extractor": "vgg",
    "load_vgg19_weights": "weights",
    "load_vgg16_weights": "weights",
    "WeightsNotFoundError": "weights",
    "WeightsIntegrityError": "weights",
    "compute_content_cost": "costs",
    "gram_matrix": "costs",
    "compute_layer_style_cost": "costs",
    "compute_style_cost": "costs",
    "total_cost": "costs",
    "total_variation_cost": "costs",
    "STYLE_LAYERS": "costs",
    "load_image": "images",
    "save_image": "images",
    "ImageReadError": "images",
    "top_activating_patches": "visualize",
}

_SUBMODULES = {
    "costs",
    "images",
    "vgg",
    "weights",
    "optimize",
    "fast",
    "magenta",
    "onnx_graph",
    "visualize",
    "cli",
    "presets",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:  # st.images, st.costs, ... without an explicit import
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'style_transfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
