"""Photo -> embeddings throughput, ours against dlib's classic pipeline, and gallery search time.

Ours: MTCNN (FaceDetector) + 5-point similarity alignment + the Keras dlib ResNet (with the mirrored
chip averaged in, as the default pipeline does). The anchor, measured in the same run on the same
photos: dlib-bin's HOG detector + 5-point shape predictor + the same ResNet, as face_recognition does
it. Then search time per query for 10k, 100k and 1M enrolled embeddings, exact and FAISS.

Run: ``.venv/bin/python benchmarks/pipeline_throughput.py [--photos N] [--side 512]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = Path(os.environ.get("FACENET_KERAS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def benchmark_photos(n: int, side: int) -> list[np.ndarray]:
    """Full photos from the shared data (group photos and the full photos of faces/), resized so
    their longer side is ``side`` pixels; the bundled portraits where the shared data is missing."""
    paths = sorted((SHARED / "group").glob("*.jpg"))
    paths += [p for p in sorted((SHARED / "faces").glob("*/*.jpg")) if "dlib_john" not in str(p)]
    images = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        if min(im.size) < 200:
            continue
        scale = side / max(im.size)
        images.append(np.asarray(im.resize((round(im.width * scale), round(im.height * scale)))))
        if len(images) == n:
            break
    if not images:
        from facenet_keras.demo import sample_portraits

        images = list(sample_portraits().values())
    return images


def time_ours(images) -> tuple[float, int]:
    from facenet_keras.faces.pipeline import encode_batch

    encode_batch(images[:2], progress=False)  # build and trace once
    t0 = time.perf_counter()
    faces = encode_batch(images, progress=False)
    return time.perf_counter() - t0, sum(len(f) for f in faces)


def time_dlib(images) -> tuple[float, int]:
    import dlib
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    t0 = time.perf_counter()
    n = 0
    for image in images:
        rects = detector(image, 1)  # one upsampling, face_recognition's default
        shapes = dlib.full_object_detections()
        for r in rects:
            shapes.append(shape(image, r))
        if len(shapes):
            encoder.compute_face_descriptor(image, shapes)
        n += len(rects)
    return time.perf_counter() - t0, n


def time_search(sizes=(10_000, 100_000, 1_000_000), queries: int = 20) -> None:
    from facenet_keras.identity.search import make_index

    rng = np.random.default_rng(0)
    q = rng.normal(size=(queries, 128)).astype(np.float32)
    for m in sizes:
        emb = rng.normal(size=(m, 128)).astype(np.float32)
        row = [f"{m:>9,d} enrolled:"]
        for backend in ("exact", "faiss", "faiss-hnsw"):
            if backend == "faiss-hnsw" and m > 100_000:
                row.append(f"{backend} (build skipped)")
                continue
            try:
                t0 = time.perf_counter()
                index = make_index(emb, backend)
                build = time.perf_counter() - t0
            except ImportError:
                row.append(f"{backend} n/a")
                continue
            index.search(q[:1], 2)
            t0 = time.perf_counter()
            for i in range(queries):
                index.search(q[i : i + 1], 2)
            per = (time.perf_counter() - t0) / queries
            row.append(f"{backend} {per * 1e3:7.2f} ms/query (build {build:.1f} s)")
        print("  " + " | ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--side", type=int, default=512, help="longer side of each photo, pixels")
    parser.add_argument("--no-search", action="store_true")
    args = parser.parse_args()
    images = benchmark_photos(args.photos, args.side)
    print(f"photo -> embeddings, {len(images)} photos, longer side {args.side} px, {os.cpu_count()} CPU cores")
    t_ours, n_ours = time_ours(images)
    t_dlib, n_dlib = time_dlib(images)
    print(
        f"  facenet-keras (MTCNN + ResNet, mirrored TTA): {len(images) / t_ours:6.2f} photos/s "
        f"({t_ours / len(images) * 1e3:.0f} ms/photo, {n_ours} faces)"
    )
    print(
        f"  dlib-bin classic (HOG + 5-point + ResNet):    {len(images) / t_dlib:6.2f} photos/s "
        f"({t_dlib / len(images) * 1e3:.0f} ms/photo, {n_dlib} faces)"
    )
    print(f"  ratio (ours / dlib): {t_dlib / t_ours:.2f}x")
    if not args.no_search:
        print("gallery search, time per query (the 2 nearest enrolled rows of one query):")
        time_search()


if __name__ == "__main__":
    main()
