"""Selective recomputation: the cheap part of each block redone in the backward pass.

`remat="selective"` recomputes each block's attention half (projections, scores,
softmax, output projection, LayerNorm: about a third of the block's FLOPs at
ALBERT-base's shapes) and the feed-forward half's cheap operations (GELU and its
intermediates, the dropout mask, LayerNorm), and keeps the feed-forward matmul
outputs, whose recomputation would cost the most. The idea is Korthikanti et al.
2022 ("Reducing Activation Recomputation in Large Transformer Models"): most of a
block's activation memory is attention scores, probabilities and elementwise
intermediates, a small part of its FLOPs. `remat="full"` recomputes whole blocks
instead (the least memory, about one extra forward pass of time).

Each function here returns exactly what the plain computation returns, and its
gradient is exact: nothing random is redrawn (dropout is seeded).
"""

import tensorflow as tf


def after_gradient(tensor, gradient):
    """`tensor`, unchanged, but computed only once `gradient` exists.

    A recomputation written plainly in a backward function is the same graph as
    the forward computation, so grappler merges the two (and keeps the forward
    result alive, saving nothing) or runs it early. A data dependency on the
    incoming gradient prevents both; `tf.recompute_grad` does the same.
    """
    first = tf.reduce_max(tf.reshape(gradient, [-1])[:1])
    flag = tf.cast(first, tf.bool)
    zero = tf.where(tf.equal(flag, flag), 0.0, float("nan"))  # always 0, not foldable
    return tensor + tf.cast(zero, tensor.dtype)


def recomputed(function, *tensors):
    """`function(*tensors)`, keeping only `tensors` for the backward pass.

    A thin wrapper over `tf.recompute_grad`, which reruns `function` when gradients
    are needed. `function` may read Keras variables (a LayerNorm's gamma and beta):
    their gradients flow as usual.

    >>> x = tf.constant([1.0, 2.0])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = tf.reduce_sum(recomputed(tf.math.square, x))
    >>> tape.gradient(y, x).numpy().tolist()
    [2.0, 4.0]
    """
    return tf.recompute_grad(function)(*tensors)


def activation_then_dense(pre_activation, activation, kernel, bias):
    """`activation(pre_activation) @ kernel + bias`, keeping only `pre_activation`.

    Autodiff of the plain expression keeps the activation's output and, for the
    tanh GELU, several intermediates of the same (4H-wide) size. Here the backward
    pass recomputes the activation from `pre_activation` instead, which costs only
    elementwise work; the matmul is not redone.

    Args:
        pre_activation: `[..., intermediate]` tensor.
        activation: an elementwise function, e.g. a GELU.
        kernel: `[intermediate, hidden]` tensor (already in the compute dtype).
        bias: `[hidden]` tensor.

    >>> pre = tf.random.normal([2, 3, 8])
    >>> kernel, bias = tf.random.normal([8, 4]), tf.zeros([4])
    >>> activation_then_dense(pre, tf.nn.relu, kernel, bias).shape
    TensorShape([2, 3, 4])
    """

    @tf.custom_gradient
    def forward(pre, kernel, bias):
        flat = tf.reshape(activation(pre), [-1, tf.shape(kernel)[0]])
        output_shape = tf.concat([tf.shape(pre)[:-1], tf.shape(kernel)[1:]], axis=0)
        output = tf.reshape(tf.matmul(flat, kernel) + bias, output_shape)

        def backward(d_output):
            pre_again = after_gradient(pre, d_output)
            with tf.GradientTape() as tape:
                tape.watch(pre_again)
                activated = activation(pre_again)
            d_flat = tf.reshape(d_output, [-1, tf.shape(kernel)[1]])
            d_activated = tf.reshape(tf.matmul(d_flat, kernel, transpose_b=True), tf.shape(pre))
            d_pre = tape.gradient(activated, pre_again, output_gradients=d_activated)
            flat_activated = tf.reshape(activated, [-1, tf.shape(kernel)[0]])
            d_kernel = tf.matmul(flat_activated, d_flat, transpose_a=True)
            d_bias = tf.reduce_sum(d_flat, axis=0)
            return d_pre, d_kernel, d_bias

        return output, backward

    return forward(pre_activation, kernel, bias)
