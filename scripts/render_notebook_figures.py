"""Execute the notebooks with their default (non-CI) settings and save one PNG each for the README.

Each notebook has exactly one code cell tagged ``readme-figure``; its first PNG output is written
to ``docs/images/<notebook stem>.png``. Only figures made from bundled public-domain images (or
from numbers, never from the shared data's photos) may be committed, so each notebook runs with
the data it is allowed to use:

* 01: the figure is the annotated group photo of the bundled portraits (the shared data is only
  used for the 1:K curves further down);
* 02: scikit-learn's digits only;
* 03: the figure is a reliability diagram (numbers only, no photo);
* 04: runs with ``FACENET_KERAS_NO_SHARED_DATA=1``: scikit-image's public-domain images only.
* 05: the figure is the door camera's timeline (numbers only; the clip's frames are never drawn in it).

Usage: ``python scripts/render_notebook_figures.py [--only 02 04] [--executed-dir DIR] [--fast]``
(``--executed-dir`` keeps the executed notebooks, with outputs, for inspection; never commit them).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IMAGES = ROOT / "docs" / "images"
# notebooks whose README figure must come from bundled images only
BUNDLED_ONLY = {"04_neural_style_transfer"}


def readme_png(nb) -> bytes:
    """The first PNG output of the cell tagged ``readme-figure``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "readme-figure" in cell.metadata.get("tags", []):
            for out in cell.outputs:
                data = out.get("data", {})
                if "image/png" in data:
                    return base64.b64decode(data["image/png"])
            raise RuntimeError("the readme-figure cell drew no PNG")
    raise RuntimeError("no cell tagged readme-figure")


def render(path: Path, fast: bool, executed_dir: Path | None, timeout: int) -> Path:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("FACENET_KERAS_FAST", None)
    if fast:
        env["FACENET_KERAS_FAST"] = "1"
    if path.stem in BUNDLED_ONLY:
        env["FACENET_KERAS_NO_SHARED_DATA"] = "1"
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    finally:
        if executed_dir is not None:
            executed_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, executed_dir / path.name)
    IMAGES.mkdir(parents=True, exist_ok=True)
    out = IMAGES / f"{path.stem}.png"
    out.write_bytes(readme_png(nb))
    print(f"{path.name}: {time.perf_counter() - t0:.0f} s -> {out.relative_to(ROOT)}", flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="notebook number prefixes, e.g. 01 04")
    parser.add_argument("--fast", action="store_true", help="FACENET_KERAS_FAST=1 (quick check, small figures)")
    parser.add_argument("--executed-dir", type=Path, default=None, help="also write the executed notebooks here")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in args.only)]
    if not paths:
        print("no notebooks selected", file=sys.stderr)
        return 2
    for path in paths:
        render(path, args.fast, args.executed_dir, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
