"""Style-transfer speed: our compiled step against the Keras example's step, and stylize() wall time.

1. Seconds per optimisation step at 256 and 512 px (longest side) for
   - ours: content/style targets precomputed once, only the generated image through a VGG19
     truncated after block5_conv1, costs + Adam in one ``tf.function``;
   - the Keras example's way (keras-io ``neural_style_transfer.py``): content, style and generated
     images concatenated and sent through the whole VGG19 feature extractor (every layer's output,
     up to block5_pool) at every step, Grams of the style image recomputed each time;
   same weights, same content/style layers, same size, same Adam update, in the same run.
2. Wall time of the default ``stylize`` at 512 px and its final costs, against a single-scale
   400-step run at the same size (``--reference-steps``; 0 skips it).

    python benchmarks/style_speed.py [--sizes 256 512] [--steps 5] [--reference-steps 400]

Prints one line per measurement and a JSON summary at the end (``--json PATH`` also writes it).
Uses the first pair of the shared style data if present, else scikit-image's sample images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from style_transfer import images as im  # noqa: E402
from style_transfer.costs import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from style_transfer.optimize import (  # noqa: E402
    COURSE_SCALE_WEIGHTS,
    DEFAULT_WEIGHTS,
    _adam_runner,
    _Objective,
    evaluate_costs,
    stylize,
)
from style_transfer.vgg import build_feature_extractor  # noqa: E402
from style_transfer.weights import load_vgg19_weights  # noqa: E402


def test_images():
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "style"
    if (shared / "pairs.csv").is_file():
        first = (shared / "pairs.csv").read_text().splitlines()[1].split(",")
        return im.load_image(shared / first[0]), im.load_image(shared / first[1]), first
    from skimage import data

    return im.to_float_rgb(data.astronaut()), im.to_float_rgb(data.coffee()), ["astronaut", "coffee"]


def keras_example_step(weights, content, style, init, lr=0.02):
    """The keras-io way: one batch of (content, style, generated) through the whole VGG19."""
    ref = keras.applications.VGG19(include_top=False, weights=None)
    for name, (k, b) in weights.layers.items():
        ref.get_layer(name).set_weights([k, b])
    outputs = {layer.name: layer.output for layer in ref.layers}
    extractor = keras.Model(ref.inputs, outputs)
    c = tf.constant(keras.applications.vgg19.preprocess_input(content[None] * 255.0))
    s = tf.constant(keras.applications.vgg19.preprocess_input(style[None] * 255.0))
    x = tf.Variable(init[None])
    m, v, t = tf.Variable(tf.zeros_like(x)), tf.Variable(tf.zeros_like(x)), tf.Variable(0.0)

    def gram(a):
        flat = tf.reshape(a, (-1, tf.shape(a)[-1]))
        return tf.matmul(flat, flat, transpose_a=True) / tf.cast(tf.shape(flat)[0], tf.float32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            g = keras.applications.vgg19.preprocess_input(x * 255.0)
            feats = extractor(tf.concat([c, s, g], axis=0))
            a = feats[CONTENT_LAYER]
            n = tf.cast(tf.reduce_prod(tf.shape(a)[1:]), tf.float32)
            J_c = tf.reduce_sum(tf.square(a[0] - a[2])) / (4.0 * n)
            J_s = 0.0
            for name, lam in STYLE_LAYERS:
                f = feats[name]
                ch = tf.cast(tf.shape(f)[-1], tf.float32)
                J_s += lam * tf.reduce_sum(tf.square(gram(f[1]) - gram(f[2]))) / (4.0 * ch * ch)
            dy = x[:, 1:] - x[:, :-1]
            dx = x[:, :, 1:] - x[:, :, :-1]
            J_tv = tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))
            alpha, beta, tv = COURSE_SCALE_WEIGHTS  # the step's cost is what is timed, not its weights
            J = alpha * J_c + beta * J_s + tv * J_tv
        grad = tape.gradient(J, x)
        t.assign_add(1.0)
        m.assign(0.9 * m + 0.1 * grad)
        v.assign(0.999 * v + 0.001 * tf.square(grad))
        update = lr * (m / (1 - 0.9**t)) / (tf.sqrt(v / (1 - 0.999**t)) + 1e-7)
        x.assign(tf.clip_by_value(x - update, 0.0, 1.0))
        return J

    return step


def our_step(extractor, content, style, init, lr=0.02):
    obj = _Objective(extractor, CONTENT_LAYER, STYLE_LAYERS, DEFAULT_WEIGHTS, content.shape[:2], normalize=True)
    obj.targets(content, [style], np.ones(1))
    _, step = _adam_runner(obj, init, lr, jit=False)
    return step


def seconds_per_step(step, n):
    step()  # trace
    step()  # warm up
    t0 = time.perf_counter()
    for _ in range(n):
        out = step()
    float(out[0] if isinstance(out, tuple) else out)
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--stylize-size", type=int, default=512)
    p.add_argument("--reference-steps", type=int, default=400)
    p.add_argument("--skip-step-timing", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    content_full, style_full, names = test_images()
    weights = load_vgg19_weights()
    layers = [CONTENT_LAYER] + [n for n, _ in STYLE_LAYERS]
    extractor = build_feature_extractor(layers, weights)
    summary = {
        "pair": names,
        "cpu_count": os.cpu_count(),
        "weights": weights.source.describe(),
        "load_average_start": os.getloadavg(),
    }
    print(f"pair {names}; {os.cpu_count()} CPUs; load average {os.getloadavg()}", flush=True)

    if not args.skip_step_timing:
        for size in args.sizes:
            c = im.resize_longest(content_full, size)
            s = im.resize(style_full, *c.shape[:2])
            init = np.clip(c + np.random.default_rng(0).uniform(-0.25, 0.25, c.shape), 0, 1).astype(np.float32)
            ours = seconds_per_step(our_step(extractor, c, s, init), args.steps)
            theirs = seconds_per_step(keras_example_step(weights, c, s, init), args.steps)
            summary[f"step_{size}"] = {
                "shape": list(c.shape[:2]),
                "ours_s": ours,
                "keras_example_s": theirs,
                "speedup": theirs / ours,
            }
            print(
                f"{size} px {c.shape[:2]}: ours {ours:.3f} s/step, keras example {theirs:.3f} s/step, "
                f"speed-up x{theirs / ours:.2f}",
                flush=True,
            )

    size = args.stylize_size
    t0 = time.perf_counter()
    r = stylize(content_full, style_full, size=size, extractor=extractor, progress=False)
    wall = time.perf_counter() - t0
    summary["stylize_default"] = {"size": size, "schedule": r.schedule, "seconds": wall, "costs": r.costs}
    print(f"default stylize at {size} px: {wall:.1f} s, schedule {r.schedule}, final costs {r.costs}", flush=True)
    if args.reference_steps:
        t0 = time.perf_counter()

        def report(step, image, costs):
            if step % 50 == 0:
                print(
                    f"  single-scale step {step}: J={costs['total']:.4g} ({time.perf_counter() - t0:.0f} s)", flush=True
                )

        ref = stylize(
            content_full,
            style_full,
            size=size,
            schedule="single",
            steps=args.reference_steps,
            extractor=extractor,
            progress=False,
            callback=report,
        )
        wall_ref = time.perf_counter() - t0
        summary["stylize_single_scale"] = {
            "size": size,
            "steps": args.reference_steps,
            "seconds": wall_ref,
            "costs": ref.costs,
        }
        print(f"single-scale {args.reference_steps} steps at {size} px: {wall_ref:.1f} s, final costs {ref.costs}")
        print(f"ratio of total costs (default / single-scale): {r.costs['total'] / ref.costs['total']:.3f}")
        check = evaluate_costs(r.image, content_full, style_full, extractor=extractor)
        summary["stylize_default"]["costs_rechecked"] = check
    summary["load_average_end"] = os.getloadavg()
    print(json.dumps(summary, indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
