"""Face detection: speed and recall of our FaceDetector against plain MTCNN and dlib.

Speed (default): seconds per photo on the same photos - the group photos and the full photos of
../shared/data/faces (the 150x150 crops left out), each resized so its longer side is 512 px - for
  * ``FaceDetector()`` (facenet_keras.detection: compiled MTCNN stage loop, defaults),
  * plain ``mtcnn.MTCNN().detect_faces`` (the package as shipped),
  * dlib's HOG detector (``get_frontal_face_detector()(img, 1)``, the upsampling face_recognition
    and dlib's examples use; ``--hog-upsample 0`` for the faster, less sensitive setting).
Methods run interleaved photo by photo (the machine is shared, so load changes hit all three alike),
after one warm-up call each. Ratios are dlib/ours and MTCNN/ours.

Recall (``--recall``): faces found in each group photo at full resolution by FaceDetector (defaults,
and ``max_side=None``), plain MTCNN (its own 0.8 threshold, and at our 0.9), dlib HOG (upsample 1)
and dlib's CNN (mmod, upsample 1, on the photo downscaled to 1024 px, since it is slow).

Run: ``.venv/bin/python benchmarks/detection_speed.py [--recall] [--limit N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facenet_keras.images import iter_image_files, load_image  # noqa: E402


def resize_max(img: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) == side:
        return img
    f = side / max(h, w)
    return np.asarray(Image.fromarray(img).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR))


def photos(data: Path) -> list[Path]:
    from PIL import Image

    full = []
    for p in iter_image_files(data / "faces"):
        with Image.open(p) as im:
            if min(im.size) > 150:
                full.append(p)
    return sorted((data / "group").glob("*.jpg")) + full


def dlib_detectors():
    import dlib
    import face_recognition_models as frm

    models = Path(frm.__file__).parent / "models"
    cnn = dlib.cnn_face_detection_model_v1(str(models / "mmod_human_face_detector.dat"))
    return dlib.get_frontal_face_detector(), cnn


def speed(paths, side: int, hog_upsample: int) -> None:
    from mtcnn import MTCNN

    from facenet_keras.faces.detection import FaceDetector

    ours = FaceDetector()
    plain = MTCNN(device="CPU:0")
    hog, _ = dlib_detectors()
    images = [resize_max(load_image(p), side) for p in paths]
    methods = {
        "FaceDetector": lambda im: len(ours.detect(im)),
        "mtcnn.MTCNN": lambda im: sum(1 for f in plain.detect_faces(im) if f["confidence"] >= 0.9),
        f"dlib HOG (upsample {hog_upsample})": lambda im: len(hog(im, hog_upsample)),
    }
    for fn in methods.values():  # warm-up (graph tracing, first allocations)
        fn(images[0])
    times = {k: [] for k in methods}
    counts = {k: [] for k in methods}
    for im in images:
        for name, fn in methods.items():
            t = time.perf_counter()
            counts[name].append(fn(im))
            times[name].append(time.perf_counter() - t)
    print(f"{len(images)} photos (group + full photos of faces/), longer side {side} px, same run, interleaved")
    print(f"  {'method':26s} {'s/photo':>8s} {'median':>8s} {'faces':>6s}")
    for name in methods:
        t = np.array(times[name])
        print(f"  {name:26s} {t.mean():8.4f} {np.median(t):8.4f} {sum(counts[name]):6d}")
    base = np.array(times["FaceDetector"]).mean()
    for name in list(methods)[1:]:
        print(f"  speed-up of FaceDetector over {name}: {np.mean(times[name]) / base:.2f}x (mean s/photo)")


def recall(data: Path) -> None:
    from mtcnn import MTCNN

    from facenet_keras.faces.detection import FaceDetector

    ours = FaceDetector()
    ours_full = FaceDetector(max_side=None)
    plain = MTCNN(device="CPU:0")
    hog, cnn = dlib_detectors()
    header = ["photo", "size", "ours", "ours(full)", "mtcnn@0.8", "mtcnn@0.9", "HOG", "CNN"]
    print(" ".join(f"{h:>11s}" if i else f"{h:34s}" for i, h in enumerate(header)))
    totals = np.zeros(6, int)
    for p in sorted((data / "group").glob("*.jpg")):
        img = load_image(p)
        plain_faces = plain.detect_faces(img)
        small = resize_max(img, 1024) if max(img.shape[:2]) > 1024 else img
        n = [
            len(ours.detect(img)),
            len(ours_full.detect(img)),
            len(plain_faces),
            sum(1 for f in plain_faces if f["confidence"] >= 0.9),
            len(hog(img, 1)),
            len(cnn(small, 1)),
        ]
        totals += n
        print(f"{p.name:34s} {img.shape[1]:>5d}x{img.shape[0]:<5d} " + " ".join(f"{v:11d}" for v in n))
    print(f"{'total':34s} {'':11s} " + " ".join(f"{v:11d}" for v in totals))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--hog-upsample", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (speed)")
    ap.add_argument("--recall", action="store_true", help="face counts on the group photos instead")
    args = ap.parse_args(argv)
    if not (args.data / "group").is_dir():
        print(f"no data at {args.data}; pass --data", file=sys.stderr)
        return 2
    if args.recall:
        recall(args.data)
    else:
        speed(photos(args.data)[: args.limit], args.side, args.hog_upsample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
