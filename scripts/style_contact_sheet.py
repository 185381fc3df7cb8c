"""A contact sheet of style transfer on the content/style pairs of the shared data, default settings.

    python scripts/style_contact_sheet.py OUT.{png,jpg} [--pairs ../shared/data/style/pairs.csv]
                                          [--size 512] [--steps N] [--thumb 256] [--fast]
                                          [--public-domain] [--save-dir DIR]

One row per pair: content | style | [fast] | stylised (``style_transfer.stylize`` with its defaults,
at ``--size``), each scaled to ``--thumb`` pixels high, with the pair's names and the run's seconds.
``--fast`` adds Magenta's one-pass result (``stylize_fast``) before the optimised one.

``--public-domain`` keeps only the pairs whose pictures may be committed: a content photo that the
data's ``manifest.csv`` lists as coming from scikit-image (its photos are public domain or CC0) and
a painting from ``style/`` (all public domain). Pairs with any other photo (``tubingen.jpg``, whose
licence is not stated) are left out and named on stderr. The committed sheet in ``docs/images/`` is

    python benchmarks/style_quality.py --size 256 --skip c --save-dir /tmp/sq
    python scripts/style_contact_sheet.py docs/images/style_contact_sheet.jpg --public-domain \
        --from-dir /tmp/sq --thumb 120

``--from-dir DIR`` runs nothing: it lays out the images that ``benchmarks/style_quality.py
--save-dir DIR`` wrote (content | style | fast | default | Keras example, those present), so the
sheet shows exactly the results the benchmark's table scores.
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

DEFAULT_SIZE = 512  # = style_transfer.optimize.DEFAULT_SIZE, not imported: --from-dir needs no TensorFlow

DEFAULT_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "style" / "pairs.csv"


def public_domain_files(manifest: Path) -> set[str]:
    """Paths (relative to the pairs file) that may appear in a committed picture, from ``manifest.csv``.

    The manifest's ``file`` column reads ``style/<role dir>/<name>``; kept are scikit-image's photos
    (source starting ``PyPI scikit-image``) and every file with role ``style`` (the paintings).
    """
    keep = set()
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            rel = row["file"].split("/", 1)[1]  # drop the leading "style/"
            if row["role"] == "style" or row["source"].startswith("PyPI scikit-image"):
                keep.add(rel)
    return keep


def _thumb(image: np.ndarray, height: int) -> Image.Image:
    h, w = image.shape[:2]
    return Image.fromarray(im.to_uint8(im.resize(image, height, max(1, round(w * height / h)))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="path of the contact sheet (.png, or .jpg for a small file)")
    p.add_argument("--pairs", default=str(DEFAULT_PAIRS), help="CSV with content,style columns")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="longest side of each stylised image")
    p.add_argument("--steps", type=int, default=None, help="steps (default: stylize's default)")
    p.add_argument("--thumb", type=int, default=256, help="row height in the sheet")
    p.add_argument("--fast", action="store_true", help="add a column with the fast network's result")
    p.add_argument(
        "--public-domain", action="store_true", help="only pairs whose pictures are public domain (see manifest.csv)"
    )
    p.add_argument("--save-dir", default=None, help="also save each stylised image here")
    p.add_argument("--from-dir", default=None, help="lay out the images benchmarks/style_quality.py saved here")
    args = p.parse_args(argv)

    pairs_path = Path(args.pairs)
    if not pairs_path.is_file():
        print(f"pairs file not found: {pairs_path}", file=sys.stderr)
        return 2
    root = pairs_path.parent
    with open(pairs_path, newline="") as f:
        pairs = [(row["content"], row["style"]) for row in csv.DictReader(f)]
    if args.public_domain:
        manifest = root / "manifest.csv"
        if not manifest.is_file():
            print(f"--public-domain needs {manifest}", file=sys.stderr)
            return 2
        allowed = public_domain_files(manifest)
        for c, s in pairs:
            if c not in allowed or s not in allowed:
                print(f"left out (not public domain): {c} x {s}", file=sys.stderr)
        pairs = [(c, s) for c, s in pairs if c in allowed and s in allowed]
    if args.from_dir:
        rows, columns = saved_rows(Path(args.from_dir), pairs, args.thumb)
        if not rows:
            print(f"no saved images for these pairs in {args.from_dir}", file=sys.stderr)
            return 2
        return write_sheet(rows, columns, args.thumb, Path(args.output))
    from style_transfer.costs import CONTENT_LAYER, STYLE_LAYERS
    from style_transfer.optimize import stylize
    from style_transfer.vgg import build_feature_extractor

    extractor = build_feature_extractor([CONTENT_LAYER] + [n for n, _ in STYLE_LAYERS])
    rows = []
    for content_rel, style_rel in pairs:
        content = im.load_image(root / content_rel)
        style = im.load_image(root / style_rel)
        thumbs = [_thumb(content, args.thumb), _thumb(style, args.thumb)]
        if args.fast:
            from style_transfer.fast import stylize_fast

            thumbs.append(_thumb(stylize_fast(im.resize_longest(content, args.size), style, size=None), args.thumb))
        t0 = time.perf_counter()
        kwargs = {} if args.steps is None else {"steps": args.steps}
        r = stylize(content, style, size=args.size, extractor=extractor, progress=False, **kwargs)
        seconds = time.perf_counter() - t0
        print(
            f"{content_rel} x {style_rel}: {seconds:.1f} s, J={r.costs['total']:.4g} "
            f"(content {r.costs['content']:.4g}, style {r.costs['style']:.4g}), load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if args.save_dir:
            name = f"{Path(content_rel).stem}__{Path(style_rel).stem}.png"
            im.save_image(r.image, Path(args.save_dir) / name)
        rows.append((content_rel, style_rel, seconds, thumbs + [_thumb(r.image, args.thumb)]))

    columns = "content | style | " + ("fast | " if args.fast else "") + f"stylize() default, {args.size} px"
    return write_sheet(rows, columns, args.thumb, Path(args.output))


SAVED_COLUMNS = (
    ("content", "content"),
    ("style", "style"),
    ("fast", "(a) fast"),
    ("default", "(b) stylize() default"),
    ("init_fast", "(c) init=fast"),
    ("keras_example", "(d) Keras example, same time"),
)


def saved_rows(folder: Path, pairs, thumb: int):
    """Rows from ``NAME__LABEL.png`` files written by the quality benchmark (pairs without them skipped)."""
    rows, labels = [], []
    for content_rel, style_rel in pairs:
        name = f"{Path(content_rel).stem}+{Path(style_rel).stem}"
        present = [(key, text) for key, text in SAVED_COLUMNS if (folder / f"{name}__{key}.png").is_file()]
        if not any(key == "default" for key, _ in present):
            continue
        labels = [text for _, text in present]
        thumbs = [_thumb(im.load_image(folder / f"{name}__{key}.png"), thumb) for key, _ in present]
        rows.append((content_rel, style_rel, None, thumbs))
    return rows, " | ".join(labels)


def write_sheet(rows, columns: str, thumb: int, out: Path) -> int:
    """One labelled row of thumbnails per pair, written atomically (JPEG for .jpg/.jpeg, else PNG)."""
    label_h, gap = 14, 4
    width = max(sum(t.width + gap for t in thumbs) for *_, thumbs in rows)
    height = len(rows) * (thumb + label_h + gap)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for content_rel, style_rel, seconds, thumbs in rows:
        took = "" if seconds is None else f" ({seconds:.0f} s)"
        label = f"{Path(content_rel).stem} + {Path(style_rel).stem}{took}:  {columns}"
        draw.text((2, y + 1), label, fill="black")
        x = 0
        for t in thumbs:
            sheet.paste(t, (x, y + label_h))
            x += t.width + gap
        y += thumb + label_h + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    sheet.save(tmp, format="JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG", quality=85)
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
