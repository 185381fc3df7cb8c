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

Normalised costs (the default): a painting with strong, high-contrast texture has Gram matrices
orders of magnitude larger than a pale one, so with the course's costs a style weight that suits
one pair leaves another barely stylised or destroys its content. Dividing each layer's style cost
by the squared Frobenius norm of the style image's own Gram matrix (and the content cost by the
squared norm of the content activation) makes every term a relative error, about 1 at the start
and 0 at a perfect match, whatever the painting; one set of weights then fits every pair
(``normalize=False`` restores the course's absolute costs, with weights of that scale).

Colour preservation (Gatys et al. 2016, luminance-only transfer): the optimisation runs on the
luminance of the content and on the style luminance matched to the content's mean and spread, and
the result's luminance is recombined with the content's colours (YIQ).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import images as im
from .costs import (
    CONTENT_LAYER,
    STYLE_LAYERS,
    compute_content_cost,
    layer_style_cost_from_gram,
    normalized_gram,
    total_variation_cost,
)
from .vgg import build_feature_extractor

# Weights of the normalised costs (the default): chosen on the pairs of the shared data, judged by
# VGG16 distances the optimiser does not see (benchmarks/style_quality.py). Both terms are relative
# errors (~1 at the start), so the ratio style/content is the whole balance: at 10 (content 1) the
# faces of astronaut + The Scream and chelsea + The Great Wave dissolved (VGG16 content distance
# 0.99 and 1.05, worse than the Keras example's); at 2 (content 5) the face stays and the style
# distance rises only from 0.48 to 0.55 on astronaut + The Scream (the example's: 0.72).
DEFAULT_CONTENT_WEIGHT = 5.0
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_TV_WEIGHT = 10.0
DEFAULT_WEIGHTS = (DEFAULT_CONTENT_WEIGHT, DEFAULT_STYLE_WEIGHT, DEFAULT_TV_WEIGHT)
# Weights for the course's unnormalised costs (normalize=False) on 0-255 Keras VGG inputs.
COURSE_SCALE_WEIGHTS = (10.0, 3e-4, 1e8)
DEFAULT_STEPS = 150  # total over the scales of the default multi-scale schedule
DEFAULT_SIZE = 512
INITS = ("noise", "content", "random", "fast")

StepCallback = Callable[[int, np.ndarray, dict], None]


@dataclass
class StyleResult:
    """What :func:`stylize` returns.

    image: float32 RGB (H, W, 3) in [0, 1]; costs: the final weighted costs at full size
    (``total``, ``content``, ``style``, ``tv`` are the unweighted J values, ``total`` is weighted);
    history: one dict of costs per step (with ``scale`` and ``step``); schedule: (longest side,
    steps) per scale; seconds: wall time of the optimisation (network building included);
    weights_source: where the VGG weights came from; options: the :class:`StyleOptions` used.
    """

    image: np.ndarray
    costs: dict
    history: list[dict] = field(default_factory=list)
    schedule: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0
    weights_source: str = ""
    options: object = None


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


@dataclass(frozen=True)
class StyleOptions:
    """Everything that decides the result of :func:`stylize` (what it computes, not how it reports).

    size: longest side of the output (px). schedule: ``"multiscale"`` (see :func:`multiscale_schedule`),
    ``"single"`` or explicit (longest side, steps) pairs; steps: their total (default 150 multiscale
    Adam, 400 single-scale Adam, 100 L-BFGS). optimizer: ``"adam"`` (learning rate 0.02, divided by
    ``lr_decay`` at each finer scale) or ``"lbfgs"``. Weights: None takes the defaults of the chosen
    ``normalize`` mode. normalize: ``True`` divides each style layer's cost by the style image's own
    Gram magnitude and the content cost by the content activation's magnitude, so one set of
    weights fits every painting (see the module docstring); ``False`` uses the course's costs as
    they are. init: ``"noise"``, ``"content"``, ``"random"``, ``"fast"`` (Magenta's one-pass result)
    or an array. add_detail: when moving to a finer scale, add back the content detail the coarse
    scale could not hold.
    """

    size: int = DEFAULT_SIZE
    steps: int | None = None
    schedule: str | tuple = "multiscale"
    optimizer: str = "adam"
    learning_rate: float | None = None
    lr_decay: float = 1.0
    content_weight: float | None = None
    style_weight: float | None = None
    tv_weight: float | None = None
    content_layer: str = CONTENT_LAYER
    style_layers: tuple = tuple(STYLE_LAYERS)
    normalize: bool = True
    style_blend: tuple | None = None
    preserve_colors: bool = False
    init: str | np.ndarray = "noise"
    noise: float = 0.25
    seed: int | None = 0
    add_detail: bool = True
    jit: bool = False

    def weights(self) -> tuple[float, float, float]:
        """(content, style, TV) weights, the defaults of the ``normalize`` mode where not given."""
        d = DEFAULT_WEIGHTS if self.normalize else COURSE_SCALE_WEIGHTS

        def pick(v, i):
            return float(d[i] if v is None else v)

        return pick(self.content_weight, 0), pick(self.style_weight, 1), pick(self.tv_weight, 2)

    def layers(self) -> list[tuple[str, float]]:
        return [(str(n), float(w)) for n, w in self.style_layers]

    def check(self) -> None:
        """Raise ValueError for an option that cannot work (before any image is read)."""
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError("optimizer must be 'adam' or 'lbfgs'")
        if isinstance(self.init, str) and self.init not in INITS:
            raise ValueError(f"init must be one of {INITS} or an image array")
        if self.size < 16:
            raise ValueError("size must be >= 16")
        if self.steps is not None and self.steps < 0:
            raise ValueError("steps must be >= 0")
        if isinstance(self.schedule, str) and self.schedule not in ("multiscale", "single"):
            raise ValueError("schedule must be 'multiscale', 'single' or a list of (size, steps)")
        if not self.style_layers:
            raise ValueError("style_layers is empty")

    def plan(self) -> list[tuple[int, int]]:
        """The (longest side, steps) of each scale."""
        if isinstance(self.schedule, str):
            if self.schedule == "multiscale":
                plan = multiscale_schedule(
                    self.size,
                    self.steps if self.steps is not None else (DEFAULT_STEPS if self.optimizer == "adam" else 100),
                )
            else:
                plan = [
                    (self.size, self.steps if self.steps is not None else (400 if self.optimizer == "adam" else 100))
                ]
        else:
            plan = [(int(s), int(n)) for s, n in self.schedule]
        if not plan:
            raise ValueError("empty schedule")
        return plan


class _Objective:
    """Targets and costs for one scale: content activation and blended style Grams.

    With ``normalize`` each style layer's course cost is multiplied by 4 n_C^2 / sum(G_S^2), i.e.
    it becomes sum((G_S - G_G)^2) / sum(G_S^2), and the content cost by 4 n_H n_W n_C / sum(a_C^2);
    the course functions in :mod:`.costs` compute the unnormalised parts.
    """

    def __init__(self, extractor, content_layer, style_layers, weights, generated_shape, normalize=False):
        self.extractor = extractor
        self.content_layer = content_layer
        self.style_layers = style_layers
        self.alpha, self.beta, self.tv = weights
        self.shape = generated_shape
        self.normalize = normalize

    def targets(self, content: np.ndarray, styles: list[np.ndarray], blend: np.ndarray):
        feats = self.extractor(tf.constant(content[None]), training=False)
        self.a_C = tf.identity(feats[self.content_layer])
        grams = {name: 0.0 for name, _ in self.style_layers}
        for s, w in zip(styles, blend):
            sf = self.extractor(tf.constant(s[None]), training=False)
            for name, _ in self.style_layers:
                grams[name] = grams[name] + float(w) * normalized_gram(sf[name])[0]
        self.grams = [tf.identity(grams[name]) for name, _ in self.style_layers]
        if self.normalize:
            energy = max(float(tf.reduce_sum(self.a_C**2)), 1e-12)
            self.content_scale = float(4.0 * np.prod(self.a_C.shape[1:]) / energy)
            self.layer_scales = [
                float(4.0 * int(G.shape[0]) ** 2 / max(float(tf.reduce_sum(G**2)), 1e-12)) for G in self.grams
            ]
        else:
            self.content_scale, self.layer_scales = 1.0, [1.0] * len(self.grams)

    def costs(self, image):
        """Weighted total and the three unweighted costs of a batch-of-one image (1, H, W, 3)."""
        feats = self.extractor(image, training=False)
        J_content = self.content_scale * compute_content_cost(self.a_C, feats[self.content_layer])
        J_style = tf.add_n(
            [
                lam * f * layer_style_cost_from_gram(G, feats[name])
                for (name, lam), G, f in zip(self.style_layers, self.grams, self.layer_scales)
            ]
        )
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
        on_step(lambda: np.asarray(xk, np.float32).reshape(init.shape), dict(last))

    res = minimize(
        fun,
        init.astype(np.float64).ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, 1.0)] * init.size,
        callback=cb,
        options={"maxiter": steps, "maxfun": steps * 2, "ftol": 0.0, "gtol": 0.0, "maxcor": 20},
    )
    return np.asarray(res.x, np.float32).reshape(init.shape)


def run_scale(
    obj: _Objective,
    generated: np.ndarray,
    n_steps: int,
    opts: StyleOptions,
    scale_index: int,
    on_step: Callable[[Callable[[], np.ndarray], dict], None],
) -> np.ndarray:
    """Optimise ``generated`` (H, W, 3) for ``n_steps`` at one scale; ``on_step(image_fn, costs)`` per step."""
    if n_steps <= 0:
        return generated
    if opts.optimizer == "lbfgs":
        return _lbfgs_run(obj, generated, n_steps, on_step)
    lr = (opts.learning_rate if opts.learning_rate is not None else 0.02) / (opts.lr_decay**scale_index)
    x, step = _adam_runner(obj, generated, lr, opts.jit)
    for _ in range(n_steps):
        J, Jc, Js, Jtv = step()
        on_step(lambda: x.numpy()[0], {"total": float(J), "content": float(Jc), "style": float(Js), "tv": float(Jtv)})
    return x.numpy()[0]


class EtaModel:
    """Remaining-time estimate across coarse-to-fine scales whose steps cost differently.

    Each scale costs a set-up (content and style targets: two forward passes, so proportional to its
    pixels), a start-up on its first step (the step's graph is traced and compiled: a fixed time) and
    its steps (``per_pixel * pixels`` each); the run ends with one more forward pass at full size (the
    final costs, half a set-up). All three are measured as the run goes, from the latest scale: the
    per-pixel step cost from its steps after the first, the start-up from the first step's excess,
    the set-up per pixel from its set-up. Until a second step is timed it says nothing (None). Pure:
    feed it timings, ask for estimates.
    """

    def __init__(self, plan_pixels: Sequence[tuple[int, int]]):
        self.plan = [(int(p), int(n)) for p, n in plan_pixels]  # (pixels, steps) per scale
        self.per_pixel: float | None = None
        self.startup = 0.0
        self.setup_per_pixel = 0.0
        self._scale = 0
        self._done = 0  # steps done in the current scale
        self._steady: list[float] = []
        self._first: float | None = None

    def _enter(self, scale: int) -> None:
        if scale != self._scale:
            self._scale, self._done, self._steady, self._first = scale, 0, [], None

    def setup(self, scale: int, seconds: float) -> None:
        """The scale's set-up (targets, resizing) took ``seconds``."""
        self._enter(scale)
        self.setup_per_pixel = seconds / self.plan[scale][0]

    def step(self, scale: int, seconds: float) -> None:
        self._enter(scale)
        self._done += 1
        pixels = self.plan[scale][0]
        if self._first is None:  # traced and compiled: says nothing about the steps after it
            self._first = seconds
        else:
            self._steady.append(seconds)
            typical = float(np.median(self._steady))
            self.per_pixel = typical / pixels
            self.startup = max(0.0, self._first - typical)

    def remaining(self) -> float | None:
        if self.per_pixel is None:
            return None
        pixels, steps = self.plan[self._scale]
        left = (steps - self._done) * self.per_pixel * pixels
        for p, n in self.plan[self._scale + 1 :]:
            if n > 0:
                left += self.setup_per_pixel * p + self.startup + n * self.per_pixel * p
        left += 0.5 * self.setup_per_pixel * self.plan[-1][0]  # the final costs at full size
        return max(0.0, left)


class _Progress:
    """The progress bar (steps, current size, costs, an ETA from :class:`EtaModel`) and --verbose lines."""

    def __init__(self, plan, shapes, show_bar: bool, verbose: bool):
        self.plan, self.shapes, self.verbose = plan, shapes, verbose
        self.eta = EtaModel([(h * w, n) for (h, w), (_, n) in zip(shapes, plan)])
        self.bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=sum(n for _, n in plan),
                desc="stylize",
                unit="step",
                leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
        self.t_last = time.perf_counter()
        self.t_scale = self.t_last

    def start_scale(self, k: int) -> None:
        """Called before the scale's targets are computed: its set-up counts towards its time."""
        self.t_last = self.t_scale = time.perf_counter()
        if self.verbose:
            (h, w), (longest, n) = self.shapes[k], self.plan[k]
            print(f"scale {k + 1}/{len(self.plan)}: {longest} px ({h}x{w}), {n} steps", file=sys.stderr, flush=True)

    def setup_done(self, k: int) -> None:
        now = time.perf_counter()
        self.eta.setup(k, now - self.t_last)
        self.t_last = now

    def end_scale(self, k: int) -> None:
        if self.verbose:
            took = time.perf_counter() - self.t_scale
            n = self.plan[k][1]
            print(
                f"  scale {k + 1} done in {took:.1f} s ({1000 * took / max(n, 1):.0f} ms/step)",
                file=sys.stderr,
                flush=True,
            )

    def step(self, k: int, costs: dict) -> None:
        now = time.perf_counter()
        self.eta.step(k, now - self.t_last)
        self.t_last = now
        if self.bar is not None:
            left = self.eta.remaining()
            # the postfix first, so the redraw that update() makes shows this step's estimate
            self.bar.set_postfix_str(
                f"<{'?' if left is None else f'{left:.0f}s'} left, size={self.plan[k][0]}, J={costs['total']:.4g}",
                refresh=False,
            )
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_OPTION_FIELDS = {f.name for f in dataclasses.fields(StyleOptions)}


def stylize(
    content,
    style,
    options: StyleOptions | None = None,
    *,
    weights=None,
    arch: str = "vgg19",
    pooling: str = "max",
    extractor=None,
    callback: StepCallback | None = None,
    save_every: int | None = None,
    save_dir: str | os.PathLike | None = None,
    progress: bool = True,
    verbose: bool = False,
    **overrides,
) -> StyleResult:
    """Stylise ``content`` with one or several ``style`` images; returns a :class:`StyleResult`.

    content, style: paths, PIL images or arrays (style may be a list of them, blended with
    ``style_blend`` weights, default equal). What is computed is a :class:`StyleOptions`, given
    whole (``options=``) and/or field by field as keywords (``size=256, steps=50, optimizer="lbfgs",
    content_weight=..., style_layers=[(name, lambda), ...], init="fast", ...``).
    weights / arch / pooling: see :func:`style_transfer.vgg.build_feature_extractor`; pass
    ``extractor`` to reuse a model built for the same layers. callback(step, image, costs) is called
    after every step; ``save_every=N`` writes ``save_dir/step_XXXXX.png`` every N steps. progress:
    a bar with an ETA across scales; verbose: one line per scale on stderr.
    """
    t0 = time.perf_counter()
    unknown = set(overrides) - _OPTION_FIELDS
    if unknown:
        raise TypeError(f"stylize() got unexpected keyword arguments {sorted(unknown)}")
    if "style_layers" in overrides:
        overrides["style_layers"] = tuple((str(n), float(w)) for n, w in overrides["style_layers"])
    if overrides.get("style_blend") is not None:
        overrides["style_blend"] = tuple(float(b) for b in overrides["style_blend"])
    if isinstance(overrides.get("schedule"), list):
        overrides["schedule"] = tuple(tuple(p) for p in overrides["schedule"])
    opts = dataclasses.replace(options or StyleOptions(), **overrides)
    opts.check()
    if save_every and save_dir is None:
        raise ValueError("save_every needs save_dir")
    plan = opts.plan()

    content_img = im.load_image(content)
    style_imgs = [im.load_image(s) for s in _as_list(style)]
    blend = _blend(opts.style_blend, len(style_imgs))
    original_content, original_styles = content_img, style_imgs
    if opts.preserve_colors:
        y_c = im.luminance(content_img)
        content_img = im.gray3(y_c)
        style_imgs = [im.gray3(im.match_luminance(im.luminance(s), y_c)) for s in style_imgs]

    layers = opts.layers()
    if extractor is None:
        extractor = build_feature_extractor(
            [opts.content_layer] + [n for n, _ in layers], weights, arch=arch, pooling=pooling
        )
    source = getattr(extractor, "weights_source", None)
    shapes = [im.scaled_shape(content_img.shape, longest) for longest, _ in plan]

    rng = np.random.default_rng(opts.seed)
    history: list[dict] = []
    generated: np.ndarray | None = None
    reporter = _Progress(plan, shapes, progress, verbose)
    done = 0
    obj = None
    try:
        for k, ((longest, n_steps), shape) in enumerate(zip(plan, shapes)):
            reporter.start_scale(k)
            c = im.resize(content_img, *shape)
            obj = _Objective(extractor, opts.content_layer, layers, opts.weights(), shape, normalize=opts.normalize)
            obj.targets(c, [im.resize_longest(s, longest) for s in style_imgs], blend)
            if generated is None:
                generated = _initial_image(c, opts, rng, original_content, original_styles, blend)
            else:
                # upsample the coarse result and add back the content detail the coarse scale
                # could not hold (content minus its down-and-up-sampled copy)
                detail = c - im.resize(im.resize(c, *generated.shape[:2]), *shape) if opts.add_detail else 0.0
                generated = np.clip(im.resize(generated, *shape) + detail, 0.0, 1.0).astype(np.float32)

            def on_step(image_fn, costs, _scale=longest, _k=k):
                nonlocal done
                done += 1
                costs = {**costs, "scale": _scale, "step": done}
                history.append(costs)
                reporter.step(_k, costs)
                want_save = save_every and done % save_every == 0
                if callback is not None or want_save:
                    image = image_fn()
                    if want_save:
                        im.save_image(image, Path(save_dir) / f"step_{done:05d}.png")
                    if callback is not None:
                        callback(done, image, costs)

            reporter.setup_done(k)
            generated = run_scale(obj, generated, n_steps, opts, k, on_step)
            reporter.end_scale(k)
    finally:
        reporter.close()

    final = {
        name: float(v) for name, v in zip(("total", "content", "style", "tv"), obj.costs(tf.constant(generated[None])))
    }
    image = generated
    if opts.preserve_colors:
        image = im.recombine_colors(generated, original_content)
    return StyleResult(
        image=image,
        costs=final,
        history=history,
        schedule=plan,
        seconds=time.perf_counter() - t0,
        weights_source=source.describe() if source is not None else "",
        options=opts,
    )


def _blend(style_blend, n: int) -> np.ndarray:
    blend = np.ones(n) if style_blend is None else np.asarray(style_blend, float)
    if blend.shape != (n,) or (blend < 0).any() or blend.sum() <= 0:
        raise ValueError(f"style_blend needs {n} non-negative weights, not all zero")
    return blend / blend.sum()


def _initial_image(
    content: np.ndarray,
    opts: StyleOptions,
    rng: np.random.Generator,
    original_content=None,
    original_styles=None,
    blend=None,
) -> np.ndarray:
    """The first scale's starting image (H, W, 3) for ``opts.init``."""
    init = opts.init
    if isinstance(init, np.ndarray):
        return im.resize(im.to_float_rgb(init), *content.shape[:2])
    if init == "noise":
        return np.clip(content + rng.uniform(-opts.noise, opts.noise, content.shape), 0, 1).astype(np.float32)
    if init == "content":
        return content.astype(np.float32).copy()
    if init == "random":
        return rng.uniform(0, 1, content.shape).astype(np.float32)
    if init == "fast":  # Magenta's one-pass stylisation at this scale's size
        from .fast import stylize_fast

        photo = im.resize(original_content, *content.shape[:2])
        out = stylize_fast(photo, list(original_styles), style_blend=list(blend), size=None)
        return im.gray3(im.luminance(out)) if opts.preserve_colors else out
    raise ValueError(f"init must be one of {INITS} or an image array")


def evaluate_costs(
    image,
    content,
    style,
    *,
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    content_layer: str = CONTENT_LAYER,
    style_layers: Sequence[tuple[str, float]] = STYLE_LAYERS,
    normalize: bool = True,
    style_blend: Sequence[float] | None = None,
    extractor=None,
    weights=None,
) -> dict:
    """The costs of a finished ``image`` at its own size, with targets made as in :func:`stylize`."""
    opts = StyleOptions(
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, normalize=normalize
    )
    image = im.load_image(image)
    content_img = im.resize(im.load_image(content), *image.shape[:2])
    style_imgs = [im.resize_longest(im.load_image(s), max(image.shape[:2])) for s in _as_list(style)]
    style_layers = [(str(n), float(w)) for n, w in style_layers]
    if extractor is None:
        extractor = build_feature_extractor([content_layer] + [n for n, _ in style_layers], weights)
    obj = _Objective(extractor, content_layer, style_layers, opts.weights(), image.shape[:2], normalize=normalize)
    obj.targets(content_img, style_imgs, _blend(style_blend, len(style_imgs)))
    return {name: float(v) for name, v in zip(("total", "content", "style", "tv"), obj.costs(tf.constant(image[None])))}
