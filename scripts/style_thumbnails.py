"""A thumbnail of each of the 26 named built-in styles, for the docs' style-transfer page.

    python scripts/style_thumbnails.py [OUT_DIR] [--size 160] [--only NAME ...]

Each thumbnail is scikit-image's ``astronaut`` photo (NASA, public domain) run through one style
(:func:`style_transfer.fast.stylize_preset`) at ``--size`` pixels, saved as ``OUT_DIR/NAME.jpg``
(default ``docs/images/styles``). Nothing else goes into them: no photo from ../shared/data.
Prints one line per file with its seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from style_transfer.presets import PRESETS  # noqa: E402

DEFAULT_OUT = REPO / "docs" / "images" / "styles"


def content_photo():
    """The astronaut photo (512 x 512, public domain), cropped to her head and shoulders."""
    from skimage import data

    return data.astronaut()[0:400, 56:456]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="folder for NAME.jpg (default %(default)s)")
    p.add_argument("--size", type=int, default=160, help="side of each thumbnail in pixels (default 160)")
    p.add_argument("--only", nargs="+", choices=PRESETS, metavar="NAME", help="just these styles")
    args = p.parse_args(argv)

    from PIL import Image

    from style_transfer.fast import stylize_preset
    from style_transfer.images import to_uint8

    args.out.mkdir(parents=True, exist_ok=True)
    photo = content_photo()
    for name in args.only or PRESETS:
        t0 = time.perf_counter()
        image = to_uint8(stylize_preset(photo, name, size=args.size))
        path = args.out / f"{name}.jpg"
        Image.fromarray(image).save(path, quality=82, optimize=True)
        print(f"{path.name} ({time.perf_counter() - t0:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
