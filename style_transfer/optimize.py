"""``stylize()``: Gatys neural style transfer by optimising the pixels of the generated image.

The generated image G (RGB in [0, 1]) minimises
``content_weight * J_content + style_weight * J_style + tv_weight * J_TV`` (see :mod:`.costs`).

Why it is fast on a CPU:
- the content activation and the style Gram matrices are computed ONCE per scale; each step runs
  only the generated image through the network, and the network stops at the deepest layer used
  (block5_conv1 by default), instead of stacking content, style and generated images through the
  whole VGG19 at every step (the Keras example's way, 3x the work and more);
- one compiled step (``tf.function``; ``jit=True`` adds XLA) does forward, costs, gradient, Adam
  and clipping in one graph call;
- the default schedule is coarse-to-fine: 80% of the steps at a quarter and half of the output
  size, where a step costs 1/16 and 1/4 as much, then 20% at full size to restore detail.

Several style images: their normalised Gram matrices are blended with the given weights and the
generated Gram is pulled towards the blend. This has the same gradient as the weighted sum of the
per-image style costs (it differs from it by a constant), at the cost of a single style term.

Colour preservation (Gatys et al. 2016, luminance-only transfer): the optimisation runs on the
luminance of the content and on the style luminance matched to the content's mean and spread, and
the result's luminance is recombined with the content's colours (YIQ).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import images as im
from .costs import (CONTENT_LAYER, STYLE_LAYERS, compute_content_cost, layer_style_cost_from_gram,
                    normalized_gram, total_variation_cost)
from .vgg import build_feature_extractor

DEFAULT_CONTENT_WEIGHT = 10.0   # the course's alpha
DEFAULT_STYLE_WEIGHT = 3e-4     # balances the course costs on 0-255 Keras VGG inputs (see README)
DEFAULT_TV_WEIGHT = 1e8
DEFAULT_STEPS = 150             # total over the scales of the default multi-scale schedule
DEFAULT_SIZE = 512

StepCallback = Callable[[int, np.ndarray, dict], None]


@dataclass
class StyleResult:
    """What :func:`stylize` returns.

    image: float32 RGB (H, W, 3) in [0, 1]; costs: the final weighted costs at full size
    (``total``, ``content``, ``style``, ``tv`` are the unweighted J values, ``total`` is weighted);
    history: one dict of costs per step (with ``scale`` and ``step``); schedule: (longest side,
    steps) per scale; seconds: wall time of the optimisation (network building included);
    weights_source: where the VGG weights came from.
    """

    image: np.ndarray
    costs: dict
    history: list[dict] = field(default_factory=list)
    schedule: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0
    weights_source: str = ""


def multiscale_schedule(size: int, steps: int = DEFAULT_STEPS, min_size: int = 64) -> list[tuple[int, int]]:
    """Coarse-to-fine: 50% of the steps at size/4, 30% at size/2, 20% (>= 1) at full size.

    A step at size/4 costs ~1/16 of a full-size step, so the schedule costs about
    steps * (0.5/16 + 0.3/4 + 0.2) ~= 0.31 * steps full-size steps (150 steps ~ 46). At equal
    compute this split reached a lower final cost than 60/30/10 and than a single-scale run.
    Scales below ``min_size`` are merged into the next one.
    """
    fractions = [(4, 0.5), (2, 0.3), (1, 0.2)]
    schedule: list[tuple[int, int]] = []
    carried = 0
    for div, frac in fractions:
        n = int(round(steps * frac)) + carried
        s = size // div
        if s < min_size and div != 1:
            carried = n
            continue
        carried = 0
        schedule.append((s, n))
    if schedule[-1][1] < 1:
        schedule[-1] = (size, 1)
    total = sum(n for _, n in schedule)
    if total != steps and steps > 0:  # rounding: fix the count on the coarsest scale
        s0, n0 = schedule[0]
        schedule[0] = (s0, max(0, n0 + steps - total))
    return [(s, n) for s, n in schedule if n > 0]


def _as_list(style) -> list:
    if isinstance(style, (list, tuple)) and not (len(style) and np.isscalar(style[0])):
        return list(style)
    return [style]


class _Objective:
    """Targets and compiled step for one scale: content activation and blended style Grams."""

    def __init__(self, extractor, content_layer, style_layers, weights, generated_shape):
        self.extractor = extractor
        self.content_layer = content_layer
        self.style_layers = style_layers
        self.alpha, self.beta, self.tv = weights
        self.shape = generated_shape

    def targets(self, content: np.ndarray, styles: list[np.ndarray], blend: np.ndarray):
        feats = self.extractor(tf.constant(content[None]), training=False)
        self.a_C = tf.identity(feats[self.content_layer])
        grams = {name: 0.0 for name, _ in self.style_layers}
        for s, w in zip(styles, blend):
            sf = self.extractor(tf.constant(s[None]), training=False)
            for name, _ in self.style_layers:
                grams[name] = grams[name] + float(w) * normalized_gram(sf[name])[0]
        self.grams = [tf.identity(grams[name]) for name, _ in self.style_layers]

    def costs(self, image):
        """Weighted total and the three unweighted costs of a batch-of-one image (1, H, W, 3)."""
        feats = self.extractor(image, training=False)
        J_content = compute_content_cost(self.a_C, feats[self.content_layer])
        J_style = tf.add_n([lam * layer_style_cost_from_gram(G, feats[name])
                            for (name, lam), G in zip(self.style_layers, self.grams)])
        J_tv = total_variation_cost(image)
        J = self.alpha * J_content + self.beta * J_style + self.tv * J_tv
        return J, J_content, J_style, J_tv


def _adam_runner(obj: _Objective, init: np.ndarray, lr: float, jit: bool):
    """A compiled Adam step on the pixels (written out, as in the course's update rule)."""
    x = tf.Variable(init[None], dtype=tf.float32)
    m = tf.Variable(tf.zeros_like(x))
    v = tf.Variable(tf.zeros_like(x))
    t = tf.Variable(0.0)
    b1, b2, eps = 0.9, 0.999, 1e-7

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            J, Jc, Js, Jtv = obj.costs(x)
        g = tape.gradient(J, x)
        t.assign_add(1.0)
        m.assign(b1 * m + (1 - b1) * g)
        v.assign(b2 * v + (1 - b2) * tf.square(g))
        m_hat = m / (1 - tf.pow(b1, t))
        v_hat = v / (1 - tf.pow(b2, t))
        x.assign(tf.clip_by_value(x - lr * m_hat / (tf.sqrt(v_hat) + eps), 0.0, 1.0))
        return J, Jc, Js, Jtv

    return x, step


def _lbfgs_run(obj: _Objective, init: np.ndarray, steps: int, on_step) -> np.ndarray:
    """L-BFGS-B over the pixels with box bounds [0, 1] (scipy), gradient from one compiled call."""
    from scipy.optimize import minimize

    shape = (1,) + init.shape

    @tf.function
    def value_and_grad(flat):
        image = tf.reshape(flat, shape)
        with tf.GradientTape() as tape:
            tape.watch(image)
            J, Jc, Js, Jtv = obj.costs(image)
        return J, tf.reshape(tape.gradient(J, image), [-1]), Jc, Js, Jtv

    last = {}

    def fun(flat64):
        J, g, Jc, Js, Jtv = value_and_grad(tf.constant(flat64, tf.float32))
        last.update(total=float(J), content=float(Jc), style=float(Js), tv=float(Jtv))
        return float(J), g.numpy().astype(np.float64)

    def cb(xk):
        on_step(np.asarray(xk, np.float32).reshape(init.shape), dict(last))

    res = minimize(fun, init.astype(np.float64).ravel(), jac=True, method="L-BFGS-B",
                   bounds=[(0.0, 1.0)] * init.size, callback=cb,
                   options={"maxiter": steps, "maxfun": steps * 2, "ftol": 0.0, "gtol": 0.0,
                            "maxcor": 20})
    return np.asarray(res.x, np.float32).reshape(init.shape)


def stylize(content, style, *, size: int = DEFAULT_SIZE, steps: int | None = None,
            schedule: str | Sequence[tuple[int, int]] = "multiscale", optimizer: str = "adam",
            learning_rate: float | None = None,
            content_weight: float = DEFAULT_CONTENT_WEIGHT, style_weight: float = DEFAULT_STYLE_WEIGHT,
            tv_weight: float = DEFAULT_TV_WEIGHT,
            content_layer: str = CONTENT_LAYER, style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
            style_blend: Sequence[float] | None = None, preserve_colors: bool = False,
            init: str | np.ndarray = "noise", noise: float = 0.25, seed: int | None = 0,
            weights=None, arch: str = "vgg19", pooling: str = "max", jit: bool = False,
            callback: StepCallback | None = None, save_every: int | None = None,
            save_dir: str | os.PathLike | None = None, progress: bool = True,
            extractor=None, add_detail: bool = True, lr_decay: float = 1.0) -> StyleResult:
    """Stylise ``content`` with one or several ``style`` images; returns a :class:`StyleResult`.

    content, style: paths, PIL images or arrays (style may be a list of them, blended with
    ``style_blend`` weights, default equal). size: longest side of the output in pixels.
    schedule: ``"multiscale"`` (default: coarse-to-fine, see :func:`multiscale_schedule`),
    ``"single"`` (all ``steps`` at ``size``) or an explicit list of (longest side, steps).
    steps: total steps (default 150 for multiscale, 400 single-scale Adam, 100 L-BFGS).
    optimizer: ``"adam"`` (the course's; learning rate 0.02, divided by ``lr_decay`` at each finer
    scale) or ``"lbfgs"`` (scipy L-BFGS-B, pixels bounded to [0, 1]).
    add_detail: when moving to a finer scale, add back the content detail the coarse scale lost
    (content minus its down- and up-sampled copy); it lowered the final cost in our runs.
    content_layer / style_layers: VGG layer names, the latter with weights lambda_l.
    init: ``"noise"`` (the course: content + uniform noise of amplitude ``noise``, clipped),
    ``"content"``, ``"random"`` (uniform noise) or an array. Later scales start from the upsampled
    result of the previous one.
    callback(step, image, costs) is called after every step; ``save_every=N`` writes
    ``save_dir/step_XXXXX.png`` every N steps (and needs ``save_dir``).
    weights / arch / pooling: see :func:`style_transfer.vgg.build_feature_extractor`; pass
    ``extractor`` to reuse a model built for the same layers.
    """
    t0 = time.perf_counter()
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError("optimizer must be 'adam' or 'lbfgs'")
    if save_every and save_dir is None:
        raise ValueError("save_every needs save_dir")
    content_img = im.load_image(content)
    style_imgs = [im.load_image(s) for s in _as_list(style)]
    blend = np.ones(len(style_imgs)) if style_blend is None else np.asarray(style_blend, float)
    if blend.shape != (len(style_imgs),) or (blend < 0).any() or blend.sum() <= 0:
        raise ValueError(f"style_blend needs {len(style_imgs)} non-negative weights, not all zero")
    blend = blend / blend.sum()
    style_layers = [(str(n), float(w)) for n, w in style_layers]

    original_content = content_img
    if preserve_colors:
        y_c = im.luminance(content_img)
        content_img = im.gray3(y_c)
        style_imgs = [im.gray3(im.match_luminance(im.luminance(s), y_c)) for s in style_imgs]

    if isinstance(schedule, str):
        if schedule == "multiscale":
            plan = multiscale_schedule(size, steps if steps is not None else
                                       (DEFAULT_STEPS if optimizer == "adam" else 100))
        elif schedule == "single":
            plan = [(size, steps if steps is not None else (400 if optimizer == "adam" else 100))]
        else:
            raise ValueError("schedule must be 'multiscale', 'single' or a list of (size, steps)")
    else:
        plan = [(int(s), int(n)) for s, n in schedule]
    if not plan:
        raise ValueError("empty schedule")

    if extractor is None:
        layers = [content_layer] + [n for n, _ in style_layers]
        extractor = build_feature_extractor(layers, weights, arch=arch, pooling=pooling)
    source = getattr(extractor, "weights_source", None)

    rng = np.random.default_rng(seed)
    history: list[dict] = []
    generated: np.ndarray | None = None
    total_steps = sum(n for _, n in plan)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, desc="stylize", unit="step", leave=False)
    done = 0
    obj = None
    try:
        for k, (longest, n_steps) in enumerate(plan):
            shape = im.scaled_shape(content_img.shape, longest)
            c = im.resize(content_img, *shape)
            styles = [im.resize_longest(s, longest) for s in style_imgs]
            obj = _Objective(extractor, content_layer, style_layers,
                             (content_weight, style_weight, tv_weight), shape)
            obj.targets(c, styles, blend)
            if generated is None:
                generated = _initial_image(c, init, noise, rng)
            else:
                # upsample the coarse result and add back the content detail the coarse scale
                # could not hold (content minus its down-and-up-sampled copy)
                detail = c - im.resize(im.resize(c, *generated.shape[:2]), *shape) if add_detail else 0.0
                generated = np.clip(im.resize(generated, *shape) + detail, 0.0, 1.0).astype(np.float32)

            def on_step(image_fn, costs, _scale=longest):
                nonlocal done
                done += 1
                costs = {**costs, "scale": _scale, "step": done}
                history.append(costs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(size=_scale, J=f"{costs['total']:.4g}",
                                    content=f"{costs['content']:.3g}", style=f"{costs['style']:.3g}")
                want_save = save_every and done % save_every == 0
                if callback is not None or want_save:
                    image = image_fn()
                    if want_save:
                        im.save_image(image, Path(save_dir) / f"step_{done:05d}.png")
                    if callback is not None:
                        callback(done, image, costs)

            if n_steps == 0:
                continue
            if optimizer == "adam":
                lr = (learning_rate if learning_rate is not None else 0.02) / (lr_decay ** k)
                x, step = _adam_runner(obj, generated, lr, jit)
                for _ in range(n_steps):
                    J, Jc, Js, Jtv = step()
                    on_step(lambda: x.numpy()[0],
                            {"total": float(J), "content": float(Jc), "style": float(Js), "tv": float(Jtv)})
                generated = x.numpy()[0]
            else:
                generated = _lbfgs_run(obj, generated, n_steps,
                                       lambda img, costs: on_step(lambda: img, costs))
    finally:
        if bar is not None:
            bar.close()

    final = {name: float(v) for name, v in
             zip(("total", "content", "style", "tv"), obj.costs(tf.constant(generated[None])))}
    image = generated
    if preserve_colors:
        image = im.recombine_colors(generated, original_content)
    return StyleResult(image=image, costs=final, history=history, schedule=plan,
                       seconds=time.perf_counter() - t0,
                       weights_source=source.describe() if source is not None else "")


def _initial_image(content: np.ndarray, init, noise: float, rng: np.random.Generator) -> np.ndarray:
    if isinstance(init, np.ndarray):
        return im.resize(im.to_float_rgb(init), *content.shape[:2])
    if init == "noise":
        return np.clip(content + rng.uniform(-noise, noise, content.shape), 0, 1).astype(np.float32)
    if init == "content":
        return content.astype(np.float32).copy()
    if init == "random":
        return rng.uniform(0, 1, content.shape).astype(np.float32)
    raise ValueError("init must be 'noise', 'content', 'random' or an image array")


def evaluate_costs(image, content, style, *, content_weight: float = DEFAULT_CONTENT_WEIGHT,
                   style_weight: float = DEFAULT_STYLE_WEIGHT, tv_weight: float = DEFAULT_TV_WEIGHT,
                   content_layer: str = CONTENT_LAYER,
                   style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
                   style_blend: Sequence[float] | None = None, extractor=None, weights=None) -> dict:
    """The costs of a finished ``image`` at its own size, with targets made as in :func:`stylize`."""
    image = im.load_image(image)
    content_img = im.resize(im.load_image(content), *image.shape[:2])
    style_imgs = [im.resize_longest(im.load_image(s), max(image.shape[:2])) for s in _as_list(style)]
    blend = np.ones(len(style_imgs)) if style_blend is None else np.asarray(style_blend, float)
    style_layers = [(str(n), float(w)) for n, w in style_layers]
    if extractor is None:
        extractor = build_feature_extractor([content_layer] + [n for n, _ in style_layers], weights)
    obj = _Objective(extractor, content_layer, style_layers, (content_weight, style_weight, tv_weight),
                     image.shape[:2])
    obj.targets(content_img, style_imgs, blend / blend.sum())
    return {name: float(v) for name, v in
            zip(("total", "content", "style", "tv"), obj.costs(tf.constant(image[None])))}
