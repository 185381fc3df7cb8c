"""A numpy-only reader of dlib's binary serialisation, enough for a DNN ``.dat`` file.

dlib (``dlib/serialize.h``, ``dlib/dnn/*``) writes, in the form used by
``dlib_face_recognition_resnet_model_v1.dat``:

* integers of any width: one control byte whose low nibble is the number of magnitude bytes and
  whose bit 0x80 marks a negative value, then the magnitude little-endian in that many bytes;
* bools: the ASCII byte ``'1'`` or ``'0'``;
* floats and doubles: a mantissa (an integer as above, int64) then an exponent (int16);
  value = mantissa * 2**exponent, with exponents 32000/32001/32002 meaning +inf/-inf/nan;
* strings: the length as an integer, then the raw bytes;
* tensors: version 2, four integer dimensions (num_samples, k, nr, nc), then the values as raw
  little-endian float32; an "alias tensor" (a shape only) is version 1 and four integers.

A network is a nest of wrappers. The loss wrapper (version 1) writes its loss details, then its
sub-network. A layer wrapper (version 2) writes its sub-network first, then its own layer
details, three bools and three bookkeeping tensors. The innermost layer wrapper (version 3)
writes the input layer's details where the others write their sub-network, and ends with its
sample expansion factor (an integer, 1). Tag and skip wrappers (version 1) write only their
sub-network. So a file reads as a run of wrapper versions going down the network, the input
layer, then layer details going back up from the input to the output.

Nothing here knows about Keras: :func:`read_dlib_net` returns plain numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = [
    "DlibFormatError",
    "DlibReader",
    "DlibLayer",
    "DlibNet",
    "read_dlib_net",
    "parse_dlib_net",
]

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes are not what dlib's serialisation (or the expected network) would have written."""


class DlibReader:
    """Sequential reader over the bytes of a dlib serialisation stream.

    Each ``read_*`` method consumes one serialised object and returns it as a Python or numpy
    value; errors name the byte offset so a corrupt file is easy to locate.
    """

    def __init__(self, data: bytes | bytearray | memoryview):
        self._buf = memoryview(data).cast("B")
        self.pos = 0

    @property
    def remaining(self) -> int:
        """Number of bytes not consumed yet."""
        return len(self._buf) - self.pos

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self._buf):
            raise DlibFormatError(
                f"truncated dlib stream: needed {n} bytes for {what} at offset {self.pos}, only {self.remaining} left"
            )
        out = self._buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def peek_int(self) -> int:
        """The next integer, without consuming it."""
        pos = self.pos
        try:
            return self.read_int()
        finally:
            self.pos = pos

    def read_int(self) -> int:
        """An integer: control byte (low nibble = byte count, 0x80 = negative), LE magnitude."""
        start = self.pos
        control = self._take(1, "an integer's control byte")[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at offset {start}")
        value = int.from_bytes(self._take(size, "an integer"), "little")
        return -value if control & 0x80 else value

    def read_bool(self) -> bool:
        """A bool, written by dlib as the ASCII character '1' or '0'."""
        start = self.pos
        c = self._take(1, "a bool")[0]
        if c not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte 0x{c:02x} at offset {start}")
        return c == ord("1")

    def read_float(self) -> float:
        """A float/double: mantissa (int64) * 2**exponent (int16); special exponents for inf/nan."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent == _FLOAT_NAN:
            return math.nan
        if not -(2**15) <= exponent < 2**15 or not -(2**63) <= mantissa < 2**63:
            raise DlibFormatError(f"float out of range before offset {self.pos}")
        return math.ldexp(mantissa, exponent)

    def read_string(self) -> str:
        """A string: its length as an integer, then that many bytes (decoded as latin-1)."""
        n = self.read_int()
        return bytes(self._take(n, "a string")).decode("latin-1")

    def _read_dims(self) -> tuple[int, int, int, int]:
        dims = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in dims):
            raise DlibFormatError(f"negative tensor dimension {dims} before offset {self.pos}")
        return dims  # type: ignore[return-value]

    def read_tensor(self) -> np.ndarray:
        """A tensor (version 2): dims (num_samples, k, nr, nc), then float32 LE values.

        Returns a float32 array of shape (num_samples, k, nr, nc) (a copy, native byte order).
        """
        start = self.pos
        version = self.read_int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at offset {start}")
        dims = self._read_dims()
        count = int(np.prod(dims, dtype=np.int64))
        raw = self._take(4 * count, "tensor values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """An alias tensor: version 1 and the four dimensions of the view it describes."""
        start = self.pos
        version = self.read_int()
        if version != 1:
            raise DlibFormatError(f"unsupported alias tensor version {version} at offset {start}")
        return self._read_dims()


@dataclass
class DlibLayer:
    """One computational layer of a dlib network, as stored.

    ``kind`` is the type string without its version suffix (``con``, ``affine``, ``relu``,
    ``max_pool``, ``avg_pool``, ``add_prev``, ``fc``); ``tag`` is the full type string.
    ``params`` holds named numpy arrays in dlib's layouts (documented per kind in
    :func:`_read_layer_details`), ``config`` the scalar settings.
    """

    tag: str
    kind: str
    params: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib network.

    ``wrappers``: wrapper versions from the output down to the input (2 = computational layer,
    1 = tag or skip wrapper, 3 = the computational layer around the input layer).
    ``layers``: computational layers from the input up to the output.
    ``input``: the input layer's settings. ``loss``: the loss layer's tag and settings.
    """

    loss: dict[str, object]
    wrappers: list[int]
    input: dict[str, object]
    layers: list[DlibLayer]


def _read_layer_details(r: DlibReader) -> DlibLayer:
    """Read one layer's details, dispatching on its type string."""
    start = r.pos
    tag = r.read_string()
    kind = tag.rstrip("0123456789").rstrip("_")
    layer = DlibLayer(tag=tag, kind=kind)
    if kind == "con":
        # params: filters (num_filters, k, nr, nc) row-major, then biases (num_filters).
        params = r.read_tensor()
        cfg = layer.config
        for key in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            cfg[key] = r.read_int()
        filters_shape = r.read_alias_tensor()
        biases_shape = r.read_alias_tensor()
        for key in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            cfg[key] = r.read_float()
        if tag == "con_5":
            cfg["use_bias"] = r.read_bool()
        elif tag != "con_4":
            raise DlibFormatError(f"unsupported convolution version {tag!r} at offset {start}")
        flat = params.reshape(-1)
        n_f = int(np.prod(filters_shape))
        n_b = int(np.prod(biases_shape)) if cfg.get("use_bias", True) else 0
        if n_f + n_b != flat.size:
            raise DlibFormatError(
                f"convolution at offset {start}: {flat.size} params for filters {filters_shape} "
                f"and biases {biases_shape}"
            )
        layer.params["filters"] = flat[:n_f].reshape(filters_shape)
        if n_b:
            layer.params["biases"] = flat[n_f : n_f + n_b].copy()
    elif kind == "affine":
        # params: gamma then beta; mode 0 = CONV_MODE (one pair per channel), 1 = FC_MODE.
        params = r.read_tensor().reshape(-1)
        gamma_shape = r.read_alias_tensor()
        beta_shape = r.read_alias_tensor()
        layer.config["mode"] = r.read_int()
        n_g, n_b = int(np.prod(gamma_shape)), int(np.prod(beta_shape))
        if n_g + n_b != params.size:
            raise DlibFormatError(f"affine layer at offset {start}: params do not match shapes")
        layer.params["gamma"] = params[:n_g].copy()
        layer.params["beta"] = params[n_g : n_g + n_b].copy()
        layer.config["gamma_shape"] = gamma_shape
    elif kind in ("relu", "add_prev"):
        pass
    elif kind in ("max_pool", "avg_pool"):
        for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.config[key] = r.read_int()
    elif kind == "fc":
        # params: weights (num_inputs, num_outputs) row-major, then biases unless bias_mode is 1
        # (dlib's FC_HAS_BIAS = 0, FC_NO_BIAS = 1).
        cfg = layer.config
        cfg["num_outputs"] = r.read_int()
        cfg["num_inputs"] = r.read_int()
        params = r.read_tensor().reshape(-1)
        weights_shape = r.read_alias_tensor()
        biases_shape = r.read_alias_tensor()
        cfg["bias_mode"] = r.read_int()
        for key in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            cfg[key] = r.read_float()
        n_w = int(np.prod(weights_shape))
        n_b = int(np.prod(biases_shape)) if cfg["bias_mode"] == 0 else 0
        if params.size != n_w + n_b or n_w != cfg["num_inputs"] * cfg["num_outputs"]:
            raise DlibFormatError(f"fc layer at offset {start}: params do not match shapes")
        layer.params["weights"] = params[:n_w].reshape(cfg["num_inputs"], cfg["num_outputs"])
        if n_b:
            layer.params["biases"] = params[n_w:].copy()
    else:
        raise DlibFormatError(f"unsupported dlib layer type {tag!r} at offset {start}")
    return layer


def _read_input_layer(r: DlibReader) -> dict[str, object]:
    start = r.pos
    tag = r.read_string()
    if tag not in ("input_rgb_image_sized", "input_rgb_image"):
        raise DlibFormatError(f"unsupported dlib input layer {tag!r} at offset {start}")
    info: dict[str, object] = {"tag": tag}
    info["mean_rgb"] = tuple(r.read_float() for _ in range(3))
    if tag == "input_rgb_image_sized":
        info["nr"] = r.read_int()
        info["nc"] = r.read_int()
    return info


def parse_dlib_net(data: bytes | bytearray | memoryview) -> DlibNet:
    """Parse a whole dlib DNN serialisation (loss wrapper at the top) from bytes.

    Raises :class:`DlibFormatError` on anything unexpected, including trailing bytes.
    """
    r = DlibReader(data)
    if r.read_int() != 1:
        raise DlibFormatError("not a dlib network: the loss wrapper's version is not 1")
    loss_tag = r.read_string()
    if loss_tag != "loss_metric_2":
        raise DlibFormatError(f"unsupported dlib loss layer {loss_tag!r}")
    loss = {"tag": loss_tag, "margin": r.read_float(), "distance_threshold": r.read_float()}

    # Wrapper versions going down, until the innermost layer wrapper (the one around the input
    # layer), which dlib writes with version 3 and follows with the input layer's details.
    wrappers: list[int] = []
    while True:
        start = r.pos
        version = r.read_int()
        if version not in (1, 2, 3):
            raise DlibFormatError(f"unexpected wrapper version {version} at offset {start}")
        wrappers.append(version)
        if version == 3:
            break
    input_info = _read_input_layer(r)

    layers: list[DlibLayer] = []
    for version in reversed(wrappers):
        if version == 1:
            continue  # tag / skip wrappers carry no details
        layers.append(_read_layer_details(r))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, ...disabled
            r.read_bool()
        for _ in range(3):  # x_grad, cached_output, params_grad (bookkeeping)
            r.read_tensor()
        if version == 3:  # the input wrapper also stores its sample expansion factor
            expansion = r.read_int()
            if expansion != 1:
                raise DlibFormatError(f"unsupported sample expansion factor {expansion}")
    if r.remaining:
        raise DlibFormatError(f"{r.remaining} unexpected trailing bytes at offset {r.pos}")
    return DlibNet(loss=loss, wrappers=wrappers, input=input_info, layers=layers)


def read_dlib_net(path: str | PathLike[str]) -> DlibNet:
    """Read and parse a dlib DNN ``.dat`` file (e.g. the face recognition ResNet)."""
    return parse_dlib_net(Path(path).read_bytes())
