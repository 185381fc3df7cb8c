"""What the face-quality gate (``facenet_keras.faces.quality.DEFAULT_GATE``) refuses, and what it costs.

On ``../shared/data``: every detection of lfw-dev (the 807 photos of fold 1), faces/ (44 people),
group/ and video/ (the two portraits and every 5th frame of the clip), counted per reason; the main
face (:func:`primary_face`) of every lfw-dev and faces/ photo, none of which may be gated; LFW fold 1
evaluated through the gate (a pair with a gated main face counts as failed); group/'s detections
against the by-eye list ``tests/data/group_detections.csv`` (real faces gated, non-faces passed);
the jacket button of faces/barack_obama/3.jpg; and the face-free sets of ``tests/quality_sets.py``
(photos that played no part in choosing the defaults; set A was the first held-out set and changed
the gate, B and C were held out after), where every detection must be gated. Every refused
detection on the shared photos is listed with its reason; ``--sheet PNG`` also draws them as a
contact sheet (never inside the repository: the photos are not ours to commit).

Run: ``nice .venv/bin/python benchmarks/face_quality_gate.py [--sheet /tmp/quality_refused.png]``.

Measured (DEFAULT_GATE: 12 px between the eyes, score 0.89, sharpness 0.10, |yaw| 1.0):

         set  photos  faces  usable  too small  not a face?  low quality
     lfw-dev     807    969     918         24           12           15
       faces     185    193     186          2            3            2
       group      12     45      44          1            0            0
       video  2 + 55 frames  92  85          4            3            0

    main faces gated: lfw-dev 0 of 807, faces/ 0 of 185
    LFW fold 1: 0 failed pairs, 10-fold accuracy 0.9950 without and through the gate
    group/ against the by-eye list (45 detections, 44 faces): 0 faces gated, 0 non-faces passed
    the jacket button: "too small" (eyes 11.2 px apart; 4.9 where the detector saw it; score 0.86)
    face-free A (first held-out; 112 images): 8 detections, 8 gated once the gate was changed
    (before: 3 passed, a shelf in the tiled motorcycle photo); B (48 images): 2 of 2 gated;
    C (192 images): 8 of 8 gated
    assess(): 0.76 ms per face median, p95 2.7 ms (2 shared cores under load)

By eye (contact sheet), the 69 refusals on the shared photos are non-main detections, background
or cut-off faces, and non-faces (a lace pattern, a button, a curtain, furniture, a cross pendant, a
turban, tops of heads, a hand on a microphone, a table reflection). Real faces among them: the
"too small" and "low quality" ones are mostly small or blurred real faces (as intended); about 9
of the 18 "not a face?" are real faces, partly hidden or very dark, whose detector score is below
0.89; the clip's performer in frames 10 and 15 is "too small" (eyes 11.6 px apart).
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from quality_sets import face_free_images, group_detections, iou, match  # noqa: E402

from facenet_keras.faces.detection import FaceDetector  # noqa: E402
from facenet_keras.faces.pipeline import encoder_threshold, primary_face  # noqa: E402
from facenet_keras.faces.quality import DEFAULT_GATE, REASONS, assess  # noqa: E402
from facenet_keras.images import load_image  # noqa: E402

DATA = REPO.parent / "shared" / "data"
BUTTON = ("faces/barack_obama/3.jpg", (812, 1295, 23, 28))


def shared_photos() -> dict[str, list[str]]:
    """Set name -> photo paths relative to the data folder."""
    lfw = set()
    with open(DATA / "lfw-dev" / "pairs.csv") as f:
        for r in csv.DictReader(f):
            lfw.update(("lfw-dev/" + r["path1"], "lfw-dev/" + r["path2"]))

    def under(sub):
        return sorted(str(p.relative_to(DATA)) for p in (DATA / sub).rglob("*") if p.suffix.lower() in (".jpg", ".png"))

    return {"lfw-dev": sorted(lfw), "faces": under("faces"), "group": under("group"), "video": under("video")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheet", help="write the refused detections' contact sheet to this PNG (outside the repo)")
    args = ap.parse_args(argv)
    if args.sheet and Path(args.sheet).resolve().is_relative_to(REPO):
        print("--sheet must be outside the repository (the shared photos are not ours to commit)", file=sys.stderr)
        return 2
    gate = DEFAULT_GATE
    print(f"gate: {gate}")
    detector = FaceDetector()
    timings: list[float] = []
    refused = []  # (name, image, face, quality)
    mains: dict[str, tuple] = {}  # photo -> (main face quality or None)

    def judge(name: str, image: np.ndarray, kind: str):
        faces = detector.detect(image)
        t = time.perf_counter()
        qualities = assess(image, faces, gate)
        if faces:
            timings.append((time.perf_counter() - t) / len(faces))
        main = primary_face(faces, image.shape)
        for f, q in zip(faces, qualities):
            if not q.usable:
                refused.append((name, image, f, q))
            yield f, q, f is main

    print("\n== detections on the shared photos, per reason")
    print(f"{'set':>8} {'photos':>6} {'faces':>6} {'usable':>6} " + " ".join(f"{r:>12}" for r in REASONS))
    group_rows = group_detections()
    group_errors = {"faces gated": [], "non-faces passed": [], "not in the CSV": []}
    button = None
    sets = shared_photos()
    for name, photos in sets.items():
        counts = collections.Counter()
        for rel in photos:
            image = load_image(str(DATA / rel))
            for f, q, is_main in judge(rel, image, name):
                counts[q.reason] += 1
                if is_main and name in ("lfw-dev", "faces"):
                    mains[rel] = q
                if name == "group":
                    row = match(Path(rel).name, f.box, group_rows)
                    if row is None:
                        group_errors["not in the CSV"].append((rel, f.box, q.reason))
                    elif row["face"] and not q.usable:
                        group_errors["faces gated"].append((rel, f.box, q.reason))
                    elif not row["face"] and q.usable:
                        group_errors["non-faces passed"].append((rel, f.box, row["note"]))
                if rel == BUTTON[0] and iou(f.box, BUTTON[1]) >= 0.5:
                    button = q
        if name == "video":  # the clip, every 5th frame
            from facenet_keras.live.frames import read_frames

            frames, _, _ = read_frames(str(DATA / "video" / "short_hamilton_clip.mp4"), step=5)
            for i, frame in enumerate(frames):
                for _f, q, _ in judge(f"video/short_hamilton_clip.mp4 frame {5 * i}", frame, name):
                    counts[q.reason] += 1
            photos = [*photos, *(f"frame {5 * i}" for i in range(len(frames)))]
        total = sum(counts.values())
        print(
            f"{name:>8} {len(photos):>6} {total:>6} {counts[None]:>6} " + " ".join(f"{counts[r]:>12}" for r in REASONS)
        )

    print("\n== main faces (primary_face) of lfw-dev and faces/")
    for name in ("lfw-dev", "faces"):
        photos = [p for p in sets[name]]
        found = [p for p in photos if p in mains]
        gated = [(p, mains[p].reason) for p in found if not mains[p].usable]
        print(f"{name:>8}: {len(photos)} photos, {len(found)} main faces, {len(gated)} gated {gated or ''}")

    print("\n== LFW fold 1 through the gate (a gated main face fails its pair)")
    from facenet_keras.evaluation.metrics import kfold_accuracy
    from facenet_keras.evaluation.protocols import pair_distances, read_pairs

    p1, p2, same, _ = read_pairs(DATA / "lfw-dev" / "pairs.csv", DATA / "lfw-dev")
    d, problems = pair_distances(p1, p2, progress=False)
    rel = [(str(Path(a).relative_to(DATA)), str(Path(b).relative_to(DATA))) for a, b in zip(p1, p2)]
    gated_pair = np.array([not (mains.get(a) and mains[a].usable and mains.get(b) and mains[b].usable) for a, b in rel])
    thr = encoder_threshold()
    for label, dist in (("without the gate", d), ("through the gate", np.where(gated_pair, np.nan, d))):
        failed = int(np.isnan(dist).sum())
        decided = np.where(np.isnan(dist), ~same, dist < thr)  # a failed pair answers "not the same"
        folds = kfold_accuracy(np.where(np.isnan(dist), 9.0, dist), same)
        print(
            f"{label:>17}: {failed} failed pairs, accuracy at {thr} {np.mean(decided == same):.4f}, "
            f"10-fold {folds['accuracy']:.4f}"
        )

    print("\n== group/ against tests/data/group_detections.csv (by eye)")
    n_faces = sum(r["face"] for r in group_rows)
    print(f"listed: {len(group_rows)} detections, {n_faces} faces, {len(group_rows) - n_faces} non-faces")
    for what, items in group_errors.items():
        print(f"{what}: {len(items)}")
        for rel, box, extra in items:
            print(f"    {rel} box {[int(round(float(v))) for v in box]}: {extra}")

    print("\n== the jacket button on faces/barack_obama/3.jpg")
    print("not detected" if button is None else f"{button.reason or 'PASSED'}: {button.to_dict()}")

    print("\n== face-free sets (tests/quality_sets.py): every detection must be gated")
    print("A: the first held-out set (skimage, matplotlib); it found the gate's one miss, which changed the gate")
    print("B: held out after that change (PyWavelets, scikit-learn); C: Debian's gnome-backgrounds, if installed")
    for which in ("A", "B", "C"):
        counts, n_images, passed = collections.Counter(), 0, []
        for name, image in face_free_images(which):
            n_images += 1
            faces = detector.detect(image)
            for f, q in zip(faces, assess(image, faces, gate)):
                counts[q.reason] += 1
                if q.usable:
                    passed.append((name, f.box, q.to_dict()))
        total = sum(counts.values())
        per = ", ".join(f"{r}: {counts[r]}" for r in REASONS)
        print(
            f"{which}: {n_images} images, {total} detections, {total - len(passed)} gated ({per}); "
            f"passed: {len(passed)}"
        )
        for name, box, q in passed:
            print(f"    PASSED {name} box {[int(v) for v in box]} {q}")

    print("\n== every refused detection on the shared photos")
    for name, _, f, q in refused:
        print(f"    {q.reason:>12}  {name} box {[int(round(float(v))) for v in f.box]}  {q.to_dict()}")
    t = np.array(timings) * 1e3
    print(f"\nassess(): {np.median(t):.2f} ms per face (median over photos; p95 {np.percentile(t, 95):.2f} ms)")
    if args.sheet:
        _sheet(refused, Path(args.sheet))
        print(f"contact sheet: {args.sheet}")
    return 0


def _sheet(refused, path: Path) -> None:
    """Each refused detection with a margin, its photo and reason, 8 to a row."""
    from PIL import Image, ImageDraw

    tiles = []
    for name, image, f, q in refused:
        x, y, w, h = (float(v) for v in f.box)
        m = 0.3 * max(w, h)
        crop = Image.fromarray(image).crop((int(x - m), int(y - m), int(x + w + m), int(y + h + m))).resize((160, 160))
        tile = Image.new("RGB", (160, 196), "white")
        tile.paste(crop, (0, 0))
        draw = ImageDraw.Draw(tile)
        draw.text((2, 160), name.split("/")[-1][:26], fill="black")
        draw.text((2, 172), f"E{q.eye_distance:.0f} s{q.score:.2f} sh{q.sharpness:.2f} y{q.yaw:.2f}", fill="black")
        draw.text((2, 184), q.reason, fill="red")
        tiles.append(tile)
    cols = 8
    rows = max(1, (len(tiles) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * 160, rows * 196), "grey")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * 160, (i // cols) * 196))
    sheet.save(path)


if __name__ == "__main__":
    sys.exit(main())
