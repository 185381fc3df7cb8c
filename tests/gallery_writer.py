"""A gallery writer run as a separate process by tests/test_gallery_backends.py (no TensorFlow).

    python tests/gallery_writer.py URL MODE PREFIX COUNT SIZE SEED

MODE ``batches``: enrol COUNT people PREFIX-i with SIZE photos each, one ``add`` per person,
printing "begin i" / "end i SECONDS" around each (the kill -9 test kills it between the two).
MODE ``photos``: enrol COUNT photos one by one (one ``add`` each) under SIZE shared names, sources
PREFIX-j (the concurrent-writers test counts them).
"""

import sys
import time

import numpy as np

from facenet_keras.identity.gallery import FaceGallery


def main(url, mode, prefix, count, size, seed):
    rng = np.random.default_rng(int(seed))
    count, size = int(count), int(size)
    with FaceGallery(url) as g:
        print("open", flush=True)
        for i in range(count):
            if mode == "batches":
                emb = rng.normal(size=(size, 128)).astype(np.float32)
                print(f"begin {i}", flush=True)
                t = time.perf_counter()
                g.add(f"{prefix}-{i}", emb, sources=[f"{prefix}-{i}-{j}" for j in range(size)])
                print(f"end {i} {time.perf_counter() - t:.4f}", flush=True)
            else:
                g.add(f"p{i % size}", rng.normal(size=(1, 128)).astype(np.float32), sources=[f"{prefix}-{i}"])
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
