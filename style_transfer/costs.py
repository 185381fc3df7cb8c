"""Neural style transfer costs with the course's names and normalisations (Gatys et al. 2015).

All functions are pure TensorFlow (numpy arrays are accepted) and differentiable. Activations
have the Keras layout ``(m, n_H, n_W, n_C)`` with m = 1 image, as in the course.

- ``compute_content_cost(a_C, a_G)``: J_content = 1/(4 n_H n_W n_C) * sum((a_C - a_G)^2)
- ``gram_matrix(A)``: G = A A^T for A of shape (n_C, n_H*n_W)
- ``compute_layer_style_cost(a_S, a_G)``: 1/(4 n_C^2 (n_H n_W)^2) * sum((G_S - G_G)^2)
- ``compute_style_cost(style_outputs, generated_outputs, STYLE_LAYERS)``: sum_l lambda_l J_l
- ``total_cost(J_content, J_style, alpha=10, beta=40)``: alpha J_content + beta J_style
- ``total_variation_cost(image)``: smoothness prior on the generated pixels

The ``*_from_gram`` helpers take a precomputed style Gram matrix so an optimiser computes the
style targets once, not at every step; they return the same numbers as the course functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

STYLE_LAYERS = [
    ("block1_conv1", 0.2),
    ("block2_conv1", 0.2),
    ("block3_conv1", 0.2),
    ("block4_conv1", 0.2),
    ("block5_conv1", 0.2),
]
# Gatys et al.'s conv4_2 (the course's first edition); its TF2 edition used block5_conv4, which would
# make the network run three layers deeper for one content term.
CONTENT_LAYER = "block4_conv2"


def compute_content_cost(a_C, a_G):
    """J_content = 1/(4 n_H n_W n_C) * sum((a_C - a_G)^2); a_C, a_G: (1, n_H, n_W, n_C)."""
    a_C = tf.convert_to_tensor(a_C, tf.float32)
    a_G = tf.convert_to_tensor(a_G, tf.float32)
    _, n_H, n_W, n_C = tf.unstack(tf.cast(tf.shape(a_G), tf.float32))
    return tf.reduce_sum(tf.square(a_C - a_G)) / (4.0 * n_H * n_W * n_C)


def gram_matrix(A):
    """G_A = A A^T, A of shape (n_C, n_H*n_W) -> (n_C, n_C): correlations between channels."""
    A = tf.convert_to_tensor(A, tf.float32)
    return tf.matmul(A, A, transpose_b=True)


def _unroll(a):
    """(1, n_H, n_W, n_C) -> (n_C, n_H*n_W), the course's unrolling (channels as rows)."""
    n_C = tf.shape(a)[-1]
    return tf.transpose(tf.reshape(a, (-1, n_C)))


def gram_from_activation(a):
    """Gram matrices of a batch of activations: (m, n_H, n_W, n_C) -> (m, n_C, n_C).

    Equal to ``gram_matrix`` of each image's unrolled activation, computed without a transpose.
    """
    a = tf.convert_to_tensor(a, tf.float32)
    shape = tf.shape(a)
    flat = tf.reshape(a, (shape[0], shape[1] * shape[2], shape[3]))
    return tf.matmul(flat, flat, transpose_a=True)


def normalized_gram(a):
    """Gram matrices divided by n_H n_W: (m, n_H, n_W, n_C) -> (m, n_C, n_C), size-independent."""
    a = tf.convert_to_tensor(a, tf.float32)
    shape = tf.shape(a)
    return gram_from_activation(a) / tf.cast(shape[1] * shape[2], tf.float32)


def layer_style_cost_from_gram(G_S_normalized, a_G):
    """The layer style cost against a precomputed ``normalized_gram`` of the style (n_C, n_C).

    1/(4 n_C^2) * sum((G_S / (n_H n_W)_S - G_G / (n_H n_W)_G)^2): the course's formula, written
    so that the style and generated images may have different sizes; a_G: (1, n_H, n_W, n_C).
    """
    G_G = normalized_gram(a_G)[0]
    n_C = tf.cast(tf.shape(G_G)[0], tf.float32)
    return tf.reduce_sum(tf.square(G_S_normalized - G_G)) / (4.0 * n_C * n_C)


def compute_layer_style_cost(a_S, a_G):
    """J_style^[l] = 1/(4 n_C^2 (n_H n_W)^2) * sum((G_S - G_G)^2); a_S, a_G: (1, n_H, n_W, n_C).

    Computed as in the course (unroll to (n_C, n_H*n_W), Gram, squared difference). When a_S and
    a_G differ in spatial size (style and content images of different shapes) each Gram is first
    divided by its own n_H n_W, which is the same formula when the sizes agree.
    """
    a_S = tf.convert_to_tensor(a_S, tf.float32)
    a_G = tf.convert_to_tensor(a_G, tf.float32)
    G_S = gram_matrix(_unroll(a_S))
    G_G = gram_matrix(_unroll(a_G))
    s_S = tf.cast(tf.shape(a_S), tf.float32)
    s_G = tf.cast(tf.shape(a_G), tf.float32)
    n_C = s_G[3]
    diff = G_S / (s_S[1] * s_S[2]) - G_G / (s_G[1] * s_G[2])
    return tf.reduce_sum(tf.square(diff)) / (4.0 * n_C * n_C)


def _by_layer(outputs, names: Sequence[str]):
    if isinstance(outputs, Mapping):
        return [outputs[n] for n in names]
    outputs = list(outputs)
    if len(outputs) < len(names):
        raise ValueError(f"{len(outputs)} outputs for {len(names)} style layers")
    return outputs[: len(names)]


def compute_style_cost(style_image_output, generated_image_output, STYLE_LAYERS=STYLE_LAYERS):
    """J_style = sum over (layer, lambda) in STYLE_LAYERS of lambda * J_style^[layer].

    The outputs are dicts keyed by layer name, or sequences in STYLE_LAYERS order (the course
    passes lists whose last element is the content layer; extra trailing entries are ignored).
    """
    names = [name for name, _ in STYLE_LAYERS]
    a_S = _by_layer(style_image_output, names)
    a_G = _by_layer(generated_image_output, names)
    J_style = tf.constant(0.0)
    for (_, weight), s, g in zip(STYLE_LAYERS, a_S, a_G):
        J_style += float(weight) * compute_layer_style_cost(s, g)
    return J_style


def total_cost(J_content, J_style, alpha=10, beta=40):
    """J(G) = alpha * J_content(C, G) + beta * J_style(S, G)."""
    return alpha * J_content + beta * J_style


def total_variation_cost(image):
    """Mean squared difference between vertically and horizontally neighbouring pixels.

    image: (m, H, W, 3) in [0, 1]. Returns mean((x[i+1, j] - x[i, j])^2) + mean((x[i, j+1] -
    x[i, j])^2) over all pixels and channels, so its scale does not depend on the image size.
    """
    x = tf.convert_to_tensor(image, tf.float32)
    dy = x[:, 1:, :, :] - x[:, :-1, :, :]
    dx = x[:, :, 1:, :] - x[:, :, :-1, :]
    return tf.reduce_mean(tf.square(dy)) + tf.reduce_mean(tf.square(dx))
