"""Measure what enrolment's quality limits should be: face size and chip sharpness on real photos.

For the main face of each photo in faces/ and lfw-dev/ (and of blurred and shrunk copies of LFW
photos) prints the distribution of the face's eye distance in the photo's pixels, of its chip's
sharpness (:func:`facenet_keras.identity.recognition.chip_sharpness`), and how many photos show more
than one face. The limits in ``recognition.py`` (MIN_EYE_DISTANCE, MIN_SHARPNESS) come from here.

    PYTHONPATH=. python scripts/measure_enrolment_quality.py /work/shared/data [--lfw 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--lfw", type=int, default=300, help="LFW photos to measure (evenly spaced)")
    args = ap.parse_args()

    from facenet_keras.faces.detection import shared_detector
    from facenet_keras.faces.pipeline import face_chips, primary_face
    from facenet_keras.identity.recognition import chip_sharpness, eye_distance
    from facenet_keras.images import load_image

    det = shared_detector()
    faces_dir = sorted(p for p in (args.data / "faces").glob("*/*") if p.suffix.lower() in (".jpg", ".png"))
    lfw = sorted((args.data / "lfw-dev" / "images").glob("*/*"))
    lfw = [lfw[int(i)] for i in np.linspace(0, len(lfw) - 1, min(args.lfw, len(lfw)))]

    def measure(image):
        dets = det.detect(image)
        face = primary_face(dets, image.shape)
        if face is None:
            return None
        chip = face_chips(image, [face])[0]
        comparable = sum(d.area >= face.area / 3 for d in dets)
        return eye_distance(face), chip_sharpness(chip), len(dets), comparable

    variants = {
        "faces/ 150x150 chips": [p for p in faces_dir if Image.open(p).size == (150, 150)],
        "faces/ photos": [p for p in faces_dir if Image.open(p).size != (150, 150)],
        "lfw-dev 250x250": lfw,
    }
    rows = {}
    for label, paths in variants.items():
        rows[label] = [m for m in (measure(load_image(p)) for p in paths) if m is not None]
        print(f"{label}: {len(paths)} photos, {len(rows[label])} with a face", file=sys.stderr)
    lfw_sub = lfw[:: max(1, len(lfw) // 60)]
    for sigma in (1.5, 3.0):
        label = f"lfw-dev blurred (Gaussian sigma {sigma} px)"
        rows[label] = [
            m
            for m in (
                measure(np.asarray(Image.open(p).convert("RGB").filter(ImageFilter.GaussianBlur(sigma))))
                for p in lfw_sub
            )
            if m is not None
        ]
    for scale in (0.5, 0.3, 0.2):
        label = f"lfw-dev shrunk to {int(250 * scale)} px"
        rows[label] = [
            m
            for m in (
                measure(np.asarray(Image.open(p).convert("RGB").resize((int(250 * scale),) * 2, Image.BILINEAR)))
                for p in lfw_sub
            )
            if m is not None
        ]

    print(
        f"{'set':44s} {'n':>4s}  eye distance px: min  p1   p5  median | sharpness: min   p1   p5  median"
        " | >1 face  >1 comparable"
    )
    for label, ms in rows.items():
        if not ms:
            print(f"{label:44s} {0:4d}")
            continue
        eye, sharp, n, comp = (np.array(c, float) for c in zip(*ms))

        def q(a):
            return " ".join(f"{v:6.3f}" for v in (a.min(), *np.percentile(a, [1, 5, 50])))

        print(f"{label:44s} {len(ms):4d}  {q(eye)} | {q(sharp)} | {int((n > 1).sum()):7d}  {int((comp > 1).sum()):7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
