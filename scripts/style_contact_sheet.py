"""A contact sheet of style transfer on the content/style pairs of the shared data, default settings.

    python scripts/style_contact_sheet.py OUT.png [--pairs ../shared/data/style/pairs.csv]
                                          [--size 512] [--steps N] [--thumb 256]

One row per pair: content | style | stylised (``style_transfer.stylize`` with its defaults, at
``--size``), each scaled to ``--thumb`` pixels high, with the pair's names and the run's seconds
and costs printed. The sheet is written to OUT.png; it is not committed (the paintings and photos
belong to the shared data), the README points to this script to regenerate it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from style_transfer import images as im  # noqa: E402
from style_transfer.costs import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from style_transfer.optimize import DEFAULT_SIZE, stylize  # noqa: E402
from style_transfer.vgg import build_feature_extractor  # noqa: E402

DEFAULT_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "style" / "pairs.csv"


def _thumb(image: np.ndarray, height: int) -> Image.Image:
    h, w = image.shape[:2]
    return Image.fromarray(im.to_uint8(im.resize(image, height, max(1, round(w * height / h)))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="PNG path of the contact sheet")
    p.add_argument("--pairs", default=str(DEFAULT_PAIRS), help="CSV with content,style columns")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="longest side of each stylised image")
    p.add_argument("--steps", type=int, default=None, help="steps (default: stylize's default)")
    p.add_argument("--thumb", type=int, default=256, help="row height in the sheet")
    p.add_argument("--save-dir", default=None, help="also save each stylised image here")
    args = p.parse_args(argv)

    pairs_path = Path(args.pairs)
    if not pairs_path.is_file():
        print(f"pairs file not found: {pairs_path}", file=sys.stderr)
        return 2
    root = pairs_path.parent
    with open(pairs_path, newline="") as f:
        pairs = [(row["content"], row["style"]) for row in csv.DictReader(f)]
    extractor = build_feature_extractor([CONTENT_LAYER] + [n for n, _ in STYLE_LAYERS])
    rows = []
    for content_rel, style_rel in pairs:
        content = im.load_image(root / content_rel)
        style = im.load_image(root / style_rel)
        t0 = time.perf_counter()
        kwargs = {} if args.steps is None else {"steps": args.steps}
        r = stylize(content, style, size=args.size, extractor=extractor, progress=False, **kwargs)
        seconds = time.perf_counter() - t0
        print(
            f"{content_rel} x {style_rel}: {seconds:.1f} s, J={r.costs['total']:.4g} "
            f"(content {r.costs['content']:.4g}, style {r.costs['style']:.4g})",
            flush=True,
        )
        if args.save_dir:
            name = f"{Path(content_rel).stem}__{Path(style_rel).stem}.png"
            im.save_image(r.image, Path(args.save_dir) / name)
        rows.append(
            (
                content_rel,
                style_rel,
                seconds,
                [_thumb(content, args.thumb), _thumb(style, args.thumb), _thumb(r.image, args.thumb)],
            )
        )

    label_h, gap = 18, 6
    width = max(sum(t.width for t in thumbs) + gap * 2 for *_, thumbs in rows)
    height = len(rows) * (args.thumb + label_h + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for content_rel, style_rel, seconds, thumbs in rows:
        draw.text((2, y + 2), f"{Path(content_rel).stem} + {Path(style_rel).stem} ({seconds:.0f} s)", fill="black")
        x = 0
        for t in thumbs:
            sheet.paste(t, (x, y + label_h))
            x += t.width + gap
        y += args.thumb + label_h + gap
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
