"""The main job end to end, on public-domain portraits that ship inside installed packages.

matplotlib's ``grace_hopper.jpg`` (Rear Admiral Grace Hopper) and scikit-image's ``astronaut``
(NASA astronaut Eileen Collins): enrol Grace from one photo, recognise her in a changed copy,
answer "not recognised" for Eileen, enrol Eileen, recognise both in one picture, verify a claim,
and write an annotated image. Run: ``python -m facenet_keras.demo --out demo-output``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def sample_portraits() -> dict[str, np.ndarray]:
    """The two bundled public-domain portraits as RGB uint8 arrays."""
    import importlib.util

    from skimage import data

    # matplotlib ships the photo as package data; find it without importing matplotlib
    mpl = importlib.util.find_spec("matplotlib")
    path = Path(mpl.submodule_search_locations[0]) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    grace = np.asarray(Image.open(path).convert("RGB"))
    return {"Grace Hopper": grace, "Eileen Collins": data.astronaut()}


def changed_copy(
    image: np.ndarray, crop: float = 0.08, scale: float = 0.7, brightness: float = 1.3, mirror: bool = True
) -> np.ndarray:
    """The same photo made harder: cropped at the edges, rescaled, brighter, mirrored."""
    im = Image.fromarray(image)
    w, h = im.size
    im = im.crop((int(w * crop), int(h * crop / 2), int(w * (1 - crop)), int(h * (1 - crop))))
    im = im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))), Image.BICUBIC)
    im = ImageEnhance.Brightness(im).enhance(brightness)
    return np.asarray(ImageOps.mirror(im) if mirror else im)


def side_by_side(*images: np.ndarray, height: int = 400) -> np.ndarray:
    """Photos resized to one height and placed in a row (a made-up 'group photo')."""
    tiles = [Image.fromarray(i).resize((round(i.shape[1] * height / i.shape[0]), height)) for i in images]
    canvas = Image.new("RGB", (sum(t.width for t in tiles), height), (255, 255, 255))
    x = 0
    for t in tiles:
        canvas.paste(t, (x, 0))
        x += t.width
    return np.asarray(canvas)


def shared_data() -> Path | None:
    """The project's development data (``faces/``, ``lfw-dev/``, ``video/``, ``style/``), or None.

    ``$FACENET_KERAS_SHARED_DATA`` when set (and nothing else then), else ``../shared/data`` beside
    the repository (or beside the working folder's parent, for a notebook opened from a clone);
    ``FACENET_KERAS_NO_SHARED_DATA=1`` ignores it, to run as a fresh clone without it would.
    """
    if os.environ.get("FACENET_KERAS_NO_SHARED_DATA") == "1":
        return None
    chosen = os.environ.get("FACENET_KERAS_SHARED_DATA")
    beside = [Path(__file__).resolve().parents[2], Path.cwd().parent, Path.cwd().parent.parent]
    for candidate in [Path(chosen)] if chosen else [folder / "shared" / "data" for folder in beside]:
        if (candidate / "faces").is_dir():
            return candidate.resolve()
    return None


def notebook_setup() -> tuple[bool, Path | None]:
    """What each course notebook's first cell needs: ``(FAST, SHARED)`` and small inline figures.

    FAST is the test suite's small-size switch (``FACENET_KERAS_FAST=1``: every long step shrinks);
    SHARED is :func:`shared_data`. Both are printed, so a stored notebook says how it was run.
    """
    import warnings

    import matplotlib.pyplot as plt

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72})  # stored outputs stay small
    fast, shared = os.environ.get("FACENET_KERAS_FAST") == "1", shared_data()
    print(f"FAST={fast}; shared data: {shared or 'not found (bundled public-domain images only)'}")
    return fast, shared


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for the gallery and the annotated image")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import facenet_keras as fk
    from facenet_keras.faces.annotate import annotate

    t0 = time.perf_counter()
    people = sample_portraits()
    grace, eileen = people["Grace Hopper"], people["Eileen Collins"]
    gallery_path = out / "demo-gallery.sqlite"
    gallery_path.unlink(missing_ok=True)
    gallery = fk.FaceGallery(gallery_path)
    ok = True

    def check(condition: bool, text: str) -> None:
        nonlocal ok
        ok &= bool(condition)
        print(("  ok    " if condition else "  FAIL  ") + text)

    print(f"1. one-shot enrolment: 'Grace Hopper' from one photo -> {gallery_path}")
    gallery.enroll("Grace Hopper", grace)
    print(f"   threshold tau = {fk.recognition.resolve_threshold(None, gallery, None):.3f} (Euclidean distance)")

    print("2. recognise her in a changed copy (cropped, scaled 0.7x, 30% brighter, mirrored)")
    (r,) = fk.recognize(changed_copy(grace), gallery)
    check(r.identity == "Grace Hopper", f"recognised as {r.identity!r}, distance {r.distance:.3f}")

    print("3. someone not enrolled: the astronaut")
    (r,) = fk.recognize(eileen, gallery)
    check(r.identity is None, f"not recognised (nearest: {r.nearest!r} at distance {r.distance:.3f})")

    print("4. enrol 'Eileen Collins' and recognise both in one picture")
    gallery.enroll("Eileen Collins", eileen)
    picture = side_by_side(changed_copy(eileen, mirror=False, brightness=0.8), changed_copy(grace))
    results = fk.recognize(picture, gallery)
    found = sorted(r.identity or "?" for r in results)
    check(found == ["Eileen Collins", "Grace Hopper"], f"faces: {found}")

    print("5. verification (1:1): claims checked against the gallery")
    v = fk.verify(changed_copy(grace, mirror=False, scale=0.5), "Grace Hopper", gallery)
    check(v.match, f"'this is Grace Hopper' -> match={v.match}, distance {v.distance:.3f}")
    v = fk.verify(eileen, "Grace Hopper", gallery)
    check(not v.match, f"'the astronaut is Grace Hopper' -> match={v.match}, distance {v.distance:.3f}")

    annotated = out / "demo-annotated.jpg"
    annotate(
        picture,
        [r.box for r in results],
        [f"{r.identity or '?'} ({r.distance:.2f})" for r in results],
        known=[r.identity is not None for r in results],
    ).save(annotated, quality=92)
    print(f"6. annotated picture written to {annotated}")
    print(f"done in {time.perf_counter() - t0:.1f} s: " + ("all checks passed" if ok else "SOME CHECKS FAILED"))
    gallery.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
