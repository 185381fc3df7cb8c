"""The sets that judge the face-quality gate (tests/test_quality.py, benchmarks/face_quality_gate.py).

- :func:`group_detections`: the by-eye list of every detection in ../shared/data/group
  (tests/data/group_detections.csv: photo, box, face yes/no, note), and :func:`match` to find a
  detection's row in it.
- :func:`face_free_images`: held-out sets of face-free photos: every face the detector finds on
  them is a false detection, and the gate must refuse it. Set "A" was the first held-out set; it
  showed a false detection the defaults passed (a shelf in the 2 x 2 tiled motorcycle photo), the
  gate was changed for it (the detector's own scale), so set "B" is the held-out set now.

scikit-image's bundled ``skimage.data`` photos without people (the astronaut, the cameraman and
the animated GIF are left out) and matplotlib's sample data (minus grace_hopper; the elevation and
MRI arrays rendered as grey images), each also upscaled 2x, downscaled 2x and tiled 2 x 2 to give
the detector more chances at more scales. These images played no part in choosing the gate's defaults.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE = (
    "brick.png", "cell.png", "chelsea.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png",
    "coins.png", "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png",
    "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
    "page.png", "phantom.png", "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
# set B: PyWavelets' ascent (public domain) and aero, scikit-learn's china and flower (CC BY 2.0)
PYWT = ("ascent", "aero")
SKLEARN = ("china.jpg", "flower.jpg")
VARIANTS_B = (
    "as is", "2x up", "3x up", "1.5x up", "0.75x", "2x down", "2x2 tiled", "3x3 tiled", "4x4 tiled",
    "turned 90", "turned 180", "turned 270",
)  # fmt: skip
MATPLOTLIB = ("logo2.png", "Minduka_Present_Blue_Pack.png", "topobathy.npz", "jacksboro_fault_dem.npz", "s1045.ima.gz")
VARIANTS = ("as is", "2x up", "2x down", "2x2 tiled")
_MAX_SIDE = 1600  # variants are capped to this (the detector downscales above 1024 anyway)
GROUP_CSV = Path(__file__).resolve().parent / "data" / "group_detections.csv"


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / max(aw * ah + bw * bh - inter, 1e-9)


def group_detections(path: Path = GROUP_CSV) -> list[dict]:
    """The by-eye list of group/'s detections: photo, box (x, y, w, h), face (bool), note."""
    with open(path, newline="") as f:
        return [
            {
                "photo": r["photo"],
                "box": tuple(float(r[k]) for k in ("x", "y", "w", "h")),
                "face": {"yes": True, "no": False}[r["face"]],
                "note": r["note"],
            }
            for r in csv.DictReader(f)
        ]


def match(photo: str, box, listed: list[dict]) -> dict | None:
    """The listed row of a detection (same photo, IoU >= 0.5), or None."""
    best = max((r for r in listed if r["photo"] == photo), key=lambda r: iou(box, r["box"]), default=None)
    return best if best is not None and iou(box, best["box"]) >= 0.5 else None


def _rgb(array: np.ndarray) -> np.ndarray:
    """Any 2-D / RGB / RGBA array -> (H, W, 3) uint8."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        a = np.uint8(np.round(255 * (np.nan_to_num(a, nan=lo) - lo) / max(hi - lo, 1e-12)))
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def base_images() -> Iterator[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) for each face-free photo, as shipped."""
    import matplotlib
    import skimage.data

    for name in SKIMAGE:
        yield f"skimage/{name}", _rgb(np.asarray(Image.open(Path(skimage.data.data_dir) / name)))
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB:
        path = sample / name
        if name.endswith(".png"):
            yield f"matplotlib/{name}", _rgb(np.asarray(Image.open(path)))
        elif name.endswith(".npz"):
            with np.load(path) as z:
                yield f"matplotlib/{name}", _rgb(z["elevation"] if "elevation" in z else z[z.files[0]])
        else:  # s1045.ima.gz: a 256 x 256 16-bit MRI slice
            with gzip.open(path) as f:
                yield f"matplotlib/{name}", _rgb(np.frombuffer(f.read(), "<u2").reshape(256, 256))


def variant(image: np.ndarray, how: str) -> np.ndarray:
    """One of :data:`VARIANTS` of an image (capped at _MAX_SIDE px)."""
    img = Image.fromarray(image)
    scales = {"2x up": 2.0, "3x up": 3.0, "1.5x up": 1.5, "0.75x": 0.75}
    if how in scales:
        f = scales[how]
        img = img.resize((round(img.width * f), round(img.height * f)), Image.BICUBIC if f > 1 else Image.BOX)
    elif how == "2x down":
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.BOX)
    elif how.endswith(" tiled"):
        n = int(how[0])
        img = Image.fromarray(np.tile(image, (n, n, 1)))
    elif how.startswith("turned "):
        img = img.rotate(int(how.split()[1]), expand=True)
    elif how != "as is":
        raise ValueError(f"unknown variant {how!r}")
    if max(img.size) > _MAX_SIDE:
        f = _MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * f), round(img.height * f)), Image.BOX)
    return np.asarray(img)


def base_images_b() -> Iterator[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) for each face-free photo of set B."""
    import pywt.data
    import sklearn.datasets

    for name in PYWT:
        yield f"pywt/{name}", _rgb(getattr(pywt.data, name)())
    folder = Path(sklearn.datasets.__file__).parent / "images"
    for name in SKLEARN:
        yield f"sklearn/{name}", _rgb(np.asarray(Image.open(folder / name)))


GNOME_BACKGROUNDS = Path("/usr/share/backgrounds/gnome")  # Debian's gnome-backgrounds (benchmark only)


def base_images_c() -> Iterator[tuple[str, np.ndarray]]:
    """Set C, where Debian's gnome-backgrounds is installed: its face-free renders and photos."""
    for path in sorted(GNOME_BACKGROUNDS.glob("*.webp")):
        yield f"gnome-backgrounds/{path.name}", _rgb(np.asarray(Image.open(path).convert("RGB")))


def face_free_images(which: str = "B") -> Iterator[tuple[str, np.ndarray]]:
    """(name, image) for every face-free photo of set ``which`` ("A", "B" or "C") in every variant."""
    sets = {"A": (base_images, VARIANTS), "B": (base_images_b, VARIANTS_B), "C": (base_images_c, VARIANTS_B)}
    bases, variants = sets[which]
    for name, image in bases():
        for how in variants:
            yield f"{name} ({how})", variant(image, how)
