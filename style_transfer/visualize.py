"""What the layers of a ConvNet learn (Zeiler & Fergus 2013), with the VGG feature extractor.

For a chosen layer and a few of its units (channels), over a set of images, find the image
patches that activate each unit most: the unit's receptive field around the spatial position of
each of its strongest activations (at most one position per image, so the 9 patches come from
different images when there are enough). Shallow layers pick colours and edges, deeper layers
textures and object parts.

Computation (pure arrays) is separate from drawing: ``top_activating_patches`` returns arrays,
``patch_grid`` tiles them with numpy, and ``plot_top_patches`` / ``plot_feature_maps`` draw
matplotlib figures (matplotlib is imported only inside them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from . import images as im
from .vgg import build_feature_extractor, receptive_field


@dataclass
class UnitPatches:
    """The top patches of one unit: patches (k, P, P, 3) float [0, 1], activations (k,),
    and where they came from: image index, (row, col) of the unit in the layer's map."""

    unit: int
    patches: np.ndarray
    activations: np.ndarray
    image_index: np.ndarray
    positions: np.ndarray


def _patch(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """Crop (size, size) at (top, left), zero-padding what falls outside the image."""
    h, w = image.shape[:2]
    out = np.zeros((size, size, 3), np.float32)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, h), min(left + size, w)
    if r1 > r0 and c1 > c0:
        out[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]
    return out


def top_activating_patches(
    images: Sequence,
    layer: str,
    units: Sequence[int],
    *,
    k: int = 9,
    size: int = 224,
    extractor=None,
    weights=None,
    one_per_image: bool = True,
) -> list[UnitPatches]:
    """For each unit of ``layer``, the ``k`` receptive-field patches that activate it most.

    images: paths or arrays (resized so the longest side is ``size``). Activations are the ReLU
    outputs of the layer; positions whose receptive field lies partly outside the image are
    allowed (the outside is black).
    """
    if extractor is None:
        extractor = build_feature_extractor([layer], weights)
    rf, stride, pad = receptive_field(layer)
    imgs = [im.load_image(x, size) for x in images]
    candidates = {u: [] for u in units}  # unit -> list of (activation, image, row, col)
    for idx, img in enumerate(imgs):
        a = extractor(tf.constant(img[None]), training=False)[layer][0].numpy()  # (h, w, C)
        for u in units:
            fmap = a[..., u]
            if one_per_image:
                r, c = np.unravel_index(np.argmax(fmap), fmap.shape)
                candidates[u].append((float(fmap[r, c]), idx, int(r), int(c)))
            else:
                flat = np.argsort(fmap, axis=None)[::-1][:k]
                for f in flat:
                    r, c = np.unravel_index(f, fmap.shape)
                    candidates[u].append((float(fmap[r, c]), idx, int(r), int(c)))
    result = []
    for u in units:
        best = sorted(candidates[u], key=lambda t: -t[0])[:k]
        patches = np.stack([_patch(imgs[i], r * stride - pad, c * stride - pad, rf) for _, i, r, c in best])
        result.append(
            UnitPatches(
                unit=int(u),
                patches=patches,
                activations=np.array([b[0] for b in best], np.float32),
                image_index=np.array([b[1] for b in best]),
                positions=np.array([(b[2], b[3]) for b in best]),
            )
        )
    return result


def patch_grid(unit_patches: Sequence[UnitPatches], cols: int = 3, gap: int = 2) -> np.ndarray:
    """Tile each unit's patches in a cols x rows block, blocks side by side: float RGB image."""
    blocks = []
    for up in unit_patches:
        n, p = len(up.patches), up.patches.shape[1]
        rows = int(np.ceil(n / cols))
        block = np.ones((rows * (p + gap) - gap, cols * (p + gap) - gap, 3), np.float32)
        for i, patch in enumerate(up.patches):
            r, c = divmod(i, cols)
            block[r * (p + gap) : r * (p + gap) + p, c * (p + gap) : c * (p + gap) + p] = patch
        blocks.append(block)
    h = max(b.shape[0] for b in blocks)
    sep = np.ones((h, 3 * gap, 3), np.float32)
    padded = [np.pad(b, ((0, h - b.shape[0]), (0, 0), (0, 0)), constant_values=1.0) for b in blocks]
    out = padded[0]
    for b in padded[1:]:
        out = np.concatenate([out, sep, b], axis=1)
    return out


def feature_maps(image, layer: str, *, size: int = 224, extractor=None, weights=None) -> np.ndarray:
    """The activation maps of ``layer`` for one image: (h, w, C) float32."""
    if extractor is None:
        extractor = build_feature_extractor([layer], weights)
    img = im.load_image(image, size)
    return extractor(tf.constant(img[None]), training=False)[layer][0].numpy()


def plot_top_patches(unit_patches: Sequence[UnitPatches], layer: str = "", cols: int = 3):
    """A matplotlib figure: one 3x3 grid of top patches per unit. Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(unit_patches)
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.6), squeeze=False)
    for ax, up in zip(axes[0], unit_patches):
        ax.imshow(patch_grid([up], cols=cols))
        ax.set_title(f"unit {up.unit}", fontsize=9)
        ax.axis("off")
    if layer:
        fig.suptitle(f"{layer}: the 9 patches that activate each unit most")
    fig.tight_layout()
    return fig


def plot_feature_maps(maps: np.ndarray, n: int = 16, cols: int = 8, title: str = ""):
    """A matplotlib figure of the first ``n`` channels of (h, w, C) feature maps."""
    import matplotlib.pyplot as plt

    n = min(n, maps.shape[-1])
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(maps[..., i], cmap="viridis")
            ax.set_title(str(i), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
