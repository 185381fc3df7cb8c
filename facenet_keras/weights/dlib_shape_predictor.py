"""dlib's ``shape_predictor`` (.dat) read into numpy arrays, converted once and cached as ``.npz``.

dlib (``dlib/image_processing/shape_predictor.h``) serialises a shape predictor, an ensemble of
regression trees (Kazemi & Sullivan 2014), with the primitives of :mod:`.dlib_dat`, as:

* ``version`` (an integer, 1);
* ``initial_shape``: a column matrix of 2 * num_parts floats (x0, y0, x1, y1, ...), the mean shape
  in the normalised face-box frame ([0, 1]^2 = the box). A dlib matrix is written as its rows and
  columns (both negated by current dlib, positive by older versions), then its elements row-major;
* ``forests``: a vector (length, then elements) of cascade levels, each a vector of regression
  trees. A tree is ``splits`` (a vector of ``(idx1, idx2, thresh)``: two integers and a float, the
  internal nodes in breadth-first order, children of node i at 2i+1 / 2i+2) then ``leaf_values``
  (a vector of column matrices, one shape increment of 2 * num_parts floats per leaf);
* ``anchor_idx``: per level, a vector of integers: the part each feature pixel is anchored to;
* ``deltas``: per level, a vector of 2-D float vectors (x, y): each feature pixel's offset from
  its anchor, in the normalised frame of the initial shape.

The vectorised predictor needs every tree to be complete and of the same depth (true of dlib's
trained models); anything else raises :class:`DlibFormatError`. Reading the 9 MB 5-point model
element by element takes seconds, so :func:`load_shape_predictor_arrays` keeps the arrays in the
checksummed user cache (:mod:`.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from facenet_keras.weights.cache import cached_file
from facenet_keras.weights.dlib_dat import DlibFormatError, DlibReader

from . import DLIB_RESNET_PIP, MissingWeightsError, packaged_model_path

__all__ = [
    "SHAPE_PREDICTOR_5_FILE",
    "SHAPE_PREDICTOR_68_FILE",
    "ShapePredictorArrays",
    "shape_predictor_dat_path",
    "parse_shape_predictor",
    "read_shape_predictor",
    "load_shape_predictor_arrays",
]

SHAPE_PREDICTOR_5_FILE = "shape_predictor_5_face_landmarks.dat"
# dlib's 68-point model (iBUG 300-W layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth
# 48-67), same format; 100 MB, so its first conversion takes about a minute. Used for liveness.
SHAPE_PREDICTOR_68_FILE = "shape_predictor_68_face_landmarks.dat"
_NPZ_TAG = "shape-predictor-npz-1"
_FIELDS = ("initial_shape", "split_idx", "split_thresh", "leaf_values", "anchor_idx", "deltas")


@dataclass(frozen=True)
class ShapePredictorArrays:
    """A dlib shape predictor as dense arrays.

    L cascade levels, T trees per level of depth D, P parts, F feature pixels per level.

    * ``initial_shape``: (P, 2) float32, mean shape in the box-normalised frame.
    * ``split_idx``: (L, T, 2**D - 1, 2) int32, the two feature pixels each internal node compares.
    * ``split_thresh``: (L, T, 2**D - 1) float32; go to the left child (2i+1) when
      ``f[idx1] - f[idx2] > thresh``, else to the right one (2i+2).
    * ``leaf_values``: (L, T, 2**D, P, 2) float32, the shape increment of each leaf.
    * ``anchor_idx``: (L, F) int32, the part each feature pixel hangs from.
    * ``deltas``: (L, F, 2) float32, its offset from that part in the initial shape's frame.
    """

    initial_shape: np.ndarray
    split_idx: np.ndarray
    split_thresh: np.ndarray
    leaf_values: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray

    @property
    def num_parts(self) -> int:
        return int(self.initial_shape.shape[0])

    @property
    def depth(self) -> int:
        return int(np.log2(self.leaf_values.shape[2]))

    def to_npz(self, path: str | PathLike[str]) -> None:
        """Write the arrays to an uncompressed ``.npz`` (no pickled objects)."""
        with open(path, "wb") as f:
            np.savez(f, **{k: getattr(self, k) for k in _FIELDS})

    @classmethod
    def from_npz(cls, path: str | PathLike[str]) -> ShapePredictorArrays:
        """Read arrays written by :meth:`to_npz` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in _FIELDS})


def shape_predictor_dat_path(name: str = SHAPE_PREDICTOR_5_FILE) -> Path:
    """Path of a dlib shape predictor ``.dat`` inside the installed ``face_recognition_models``."""
    return packaged_model_path(name, f"dlib's shape predictor {name}")


def _read_column(r: DlibReader, what: str) -> list[float]:
    """A dlib column matrix of floats: rows, columns (maybe negated), then row-major values."""
    start = r.pos
    nr, nc = r.read_int(), r.read_int()
    nr, nc = abs(nr), abs(nc)
    if nc != 1:
        raise DlibFormatError(f"{what} at offset {start}: expected a column matrix, got {nr}x{nc}")
    return [r.read_float() for _ in range(nr)]


def _read_length(r: DlibReader, what: str, limit: int = 1 << 24) -> int:
    start = r.pos
    n = r.read_int()
    if not 0 <= n <= limit:
        raise DlibFormatError(f"bad length {n} for {what} at offset {start}")
    return n


def parse_shape_predictor(data: bytes | bytearray | memoryview) -> ShapePredictorArrays:
    """Parse the bytes of a serialised dlib ``shape_predictor`` into :class:`ShapePredictorArrays`.

    Raises :class:`DlibFormatError` on an unknown version, ragged trees, indices out of range or
    trailing bytes.
    """
    r = DlibReader(data)
    version = r.read_int()
    if version != 1:
        raise DlibFormatError(f"unsupported shape_predictor version {version}")
    init = _read_column(r, "initial_shape")
    if not init or len(init) % 2:
        raise DlibFormatError(f"initial_shape has {len(init)} values, not 2 per part")
    n_values = len(init)

    levels: list[tuple[list, list, list]] = []
    n_splits = None
    for level in range(_read_length(r, "forests")):
        idx, thresh, leaves = [], [], []
        for _ in range(_read_length(r, f"level {level}'s trees")):
            ns = _read_length(r, "a tree's splits")
            if n_splits is None:
                n_splits = ns
            if ns != n_splits or ns & (ns + 1):
                raise DlibFormatError(f"tree with {ns} splits at offset {r.pos}: need complete trees of one depth")
            splits = [(r.read_int(), r.read_int(), r.read_float()) for _ in range(ns)]
            nl = _read_length(r, "a tree's leaves")
            if nl != ns + 1:
                raise DlibFormatError(f"tree with {ns} splits but {nl} leaves at offset {r.pos}")
            tree_leaves = [_read_column(r, "a leaf value") for _ in range(nl)]
            if any(len(v) != n_values for v in tree_leaves):
                raise DlibFormatError(f"leaf value of the wrong size before offset {r.pos}")
            idx.append([s[:2] for s in splits])
            thresh.append([s[2] for s in splits])
            leaves.append(tree_leaves)
        levels.append((idx, thresh, leaves))
    n_levels = len(levels)
    if n_levels == 0 or len({len(lv[0]) for lv in levels}) != 1:
        raise DlibFormatError("need at least one cascade level, all with the same number of trees")

    if _read_length(r, "anchor_idx") != n_levels:
        raise DlibFormatError("anchor_idx does not have one entry per cascade level")
    anchors = [[r.read_int() for _ in range(_read_length(r, "anchors"))] for _ in range(n_levels)]
    if _read_length(r, "deltas") != n_levels:
        raise DlibFormatError("deltas does not have one entry per cascade level")
    deltas = [[(r.read_float(), r.read_float()) for _ in range(_read_length(r, "deltas"))] for _ in range(n_levels)]
    if r.remaining:
        raise DlibFormatError(f"{r.remaining} unexpected trailing bytes at offset {r.pos}")
    if len({len(a) for a in anchors} | {len(d) for d in deltas}) != 1:
        raise DlibFormatError("anchor_idx and deltas must have the same length at every level")

    n_parts = n_values // 2
    arrays = ShapePredictorArrays(
        initial_shape=np.asarray(init, np.float32).reshape(n_parts, 2),
        split_idx=np.asarray([lv[0] for lv in levels], np.int64).astype(np.int32),
        split_thresh=np.asarray([lv[1] for lv in levels], np.float32),
        leaf_values=np.asarray([lv[2] for lv in levels], np.float32).reshape(n_levels, -1, n_splits + 1, n_parts, 2),
        anchor_idx=np.asarray(anchors, np.int64).astype(np.int32),
        deltas=np.asarray(deltas, np.float32),
    )
    n_pixels = arrays.anchor_idx.shape[1]
    if arrays.split_idx.size and (arrays.split_idx.min() < 0 or arrays.split_idx.max() >= n_pixels):
        raise DlibFormatError("a split compares a feature pixel that does not exist")
    if arrays.anchor_idx.min() < 0 or arrays.anchor_idx.max() >= n_parts:
        raise DlibFormatError("a feature pixel is anchored to a part that does not exist")
    return arrays


def read_shape_predictor(path: str | PathLike[str]) -> ShapePredictorArrays:
    """Read and parse a dlib shape predictor ``.dat`` (slow: seconds; prefer the cached loader)."""
    return parse_shape_predictor(Path(path).read_bytes())


def load_shape_predictor_arrays(
    path: str | PathLike[str] | None = None, *, cache_directory: str | PathLike[str] | None = None
) -> ShapePredictorArrays:
    """The arrays of a shape predictor ``.dat`` (default: dlib's 5-point model), via the cache.

    The converted ``.npz`` lives in the user cache (:func:`~.cache.cache_dir`, or
    ``cache_directory``) and is rebuilt whenever it or the source no longer match their checksums.
    """
    source = Path(path) if path is not None else shape_predictor_dat_path()
    if not source.is_file():
        raise MissingWeightsError(f"{source} does not exist. Install it with: {DLIB_RESNET_PIP}")

    def build(src: Path, out: Path) -> None:
        read_shape_predictor(src).to_npz(out)

    npz = cached_file(f"{source.stem}.npz", source, build, tag=_NPZ_TAG, directory=cache_directory)
    return ShapePredictorArrays.from_npz(npz)
