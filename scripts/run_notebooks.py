"""Execute the course notebooks from their jupytext sources and store them with their outputs.

Each notebook is kept as ``notebooks/NN_name.py`` (jupytext percent format: the reviewed, linted
source) paired with ``notebooks/NN_name.ipynb`` (the same cells with the outputs of a full run, for
reading on GitHub and on the docs site). ``make notebooks`` runs this script: every ``.py`` is
executed at full settings (``FACENET_KERAS_FAST`` unset, the shared data used), its ``.ipynb``
written, and the picture of its cell tagged ``readme-figure`` saved to ``docs/images/NN_name.png``.
``--check`` exits 1 when a stored ``.ipynb`` is not a full run of its current ``.py``.

Stored outputs show only public-domain pictures and figures of numbers: a cell that draws photos of
``../shared/data`` (which may not be redistributed) is tagged ``private-photos`` in the ``.py``
(``# %% tags=["private-photos"]``) and stored without its pictures (its text output is kept);
stderr (progress bars) and timings are not stored either.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
IMAGES = ROOT / "docs" / "images"
PRIVATE_TAG = "private-photos"
README_TAG = "readme-figure"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def sources() -> list[Path]:
    """The notebooks' jupytext sources, in course order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cells(nb) -> list[tuple[str, str, list[str]]]:
    """What the source decides about a notebook: each cell's type, source and tags."""
    return [(c.cell_type, c.source, tags(c)) for c in nb.cells]


def from_source(py: Path) -> nbformat.NotebookNode:
    """The notebook a ``.py`` source describes (no outputs), with stable cell ids and a kernel."""
    nb = jupytext.read(py)
    nb.metadata = nbformat.NotebookNode(
        kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
        language_info={"name": "python"},
    )
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives identical files
        cell.id = f"cell-{i:02d}"
    return nb


def out_of_sync(py: Path, ipynb: Path) -> str | None:
    """Why ``ipynb`` does not hold exactly the cells of ``py`` (None when it does)."""
    if not ipynb.is_file():
        return f"{ipynb.name} is missing"
    stored, source = cells(nbformat.read(ipynb, as_version=4)), cells(jupytext.read(py))
    if stored == source:
        return None
    if len(stored) != len(source):
        return f"{ipynb.name} has {len(stored)} cells, {py.name} {len(source)}"
    first = next(i for i, (a, b) in enumerate(zip(stored, source)) if a != b)
    return f"cell {first} of {ipynb.name} differs from {py.name}"


def run_problems(nb) -> list[str]:
    """Why a stored notebook is not one full-settings run with the shared data ([] if it is)."""
    out = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    if [c.execution_count for c in code] != list(range(1, len(code) + 1)):
        out.append("not executed top to bottom in one run")
    first = "".join(o.get("text", "") for o in code[0].outputs) if code else ""
    if "FAST=False" not in first:
        out.append("not executed at full settings (FAST=False)")
    if "shared data: not found" in first:
        out.append("executed without ../shared/data")
    for c in code:
        if PRIVATE_TAG in tags(c) and any(t in o.get("data", {}) for o in c.outputs for t in IMAGE_TYPES):
            out.append(f"cell {c.id} is tagged {PRIVATE_TAG} but stores a picture")
        if any(o.output_type == "error" for o in c.outputs):
            out.append(f"cell {c.id} stored an error")
    return out


def problems(py: Path) -> list[str]:
    """Everything wrong with the stored ``.ipynb`` of one source ([] when it is a full run of it)."""
    ipynb = py.with_suffix(".ipynb")
    why = out_of_sync(py, ipynb)
    return [why] if why else run_problems(nbformat.read(ipynb, as_version=4))


def scrub(nb) -> None:
    """Keep what a reader needs: no stderr (progress bars), no timings, no pictures in private cells."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        private = PRIVATE_TAG in tags(cell)
        cell.outputs = [
            out
            for out in cell.outputs
            if not (out.output_type == "stream" and out.name == "stderr")
            and not (private and any(t in out.get("data", {}) for t in IMAGE_TYPES))
        ]


def readme_png(nb) -> bytes | None:
    """The first PNG of the cell tagged ``readme-figure`` (never one of a private cell)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and README_TAG in tags(cell) and PRIVATE_TAG not in tags(cell):
            for out in cell.outputs:
                if "image/png" in out.get("data", {}):
                    return base64.b64decode(out["data"]["image/png"])
    return None


def execute(py: Path, timeout: int) -> nbformat.NotebookNode:
    """Run one source at full settings (FAST off, the shared data used) and scrub the outputs."""
    import nbclient

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("FACENET_KERAS_FAST", None)
    env.pop("FACENET_KERAS_NO_SHARED_DATA", None)
    nb = from_source(py)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env=env)
    scrub(nb)
    nbformat.validate(nb)
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a stored .ipynb is not a full run of its .py")
    parser.add_argument("--only", nargs="*", default=None, metavar="NN", help="only these notebooks (01 04 ...)")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell time limit, seconds")
    args = parser.parse_args(argv)
    chosen = [py for py in sources() if not args.only or any(py.name.startswith(o) for o in args.only)]
    if not chosen:
        print("no notebook source matches --only", file=sys.stderr)
        return 2
    if args.check:
        stale = [f"{py.stem} ({'; '.join(why)})" for py in chosen if (why := problems(py))]
        if stale:
            print("out of date (run make notebooks):", ", ".join(stale))
        return 1 if stale else 0
    from facenet_keras.demo import shared_data  # the one rule the notebooks use to find the data

    if shared_data() is None:
        print("make notebooks stores full runs, which need ../shared/data beside the repository", file=sys.stderr)
        return 2
    for py in chosen:
        t0 = time.perf_counter()
        nb = execute(py, args.timeout)
        py.with_suffix(".ipynb").write_text(nbformat.writes(nb) + "\n")
        png = readme_png(nb)
        if png is not None:
            IMAGES.mkdir(parents=True, exist_ok=True)
            (IMAGES / f"{py.stem}.png").write_bytes(png)
        figure = f"; figure docs/images/{py.stem}.png" if png is not None else ""
        print(f"executed {py.name} in {time.perf_counter() - t0:.0f} s -> {py.stem}.ipynb{figure}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
