"""Dropout whose mask is a pure function of a seed tensor.

Keras's `Dropout` layer draws its mask from a stateful seed generator. Inside
`tf.recompute_grad` the forward pass runs twice (once forward, once while computing
gradients), so a stateful draw produces two different masks and wrong gradients.
Here the mask depends only on an explicit `[2]` int32 seed, so a recomputation draws
exactly the same mask.
"""

import tensorflow as tf

from keras_albert.layers.recompute import after_gradient


def derive_seed(seed, index):
    """Returns a new stateless seed for sub-site `index` of `seed` (both int32)."""
    return tf.random.experimental.stateless_fold_in(seed, index)


def _keep_mask(shape, rate, seed, dtype):
    uniform = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
    return tf.cast(uniform >= rate, dtype) * tf.cast(1.0 / (1.0 - rate), dtype)


def stateless_dropout(inputs, rate, seed, recompute_mask=False):
    """Applies inverted dropout with a mask drawn from `seed`.

    Args:
        inputs: a float tensor.
        rate: the fraction of units to drop, a Python float in [0, 1).
        seed: an int32 tensor of shape [2], or None for no dropout.
        recompute_mask: if True, the backward pass redraws the mask from `seed`
            instead of keeping it (one input-sized tensor less in memory; used by
            `remat="selective"`). The result and its gradient are the same.

    Example:

    >>> x = tf.ones([2, 4])
    >>> a = stateless_dropout(x, 0.5, tf.constant([1, 2]))
    >>> b = stateless_dropout(x, 0.5, tf.constant([1, 2]), recompute_mask=True)
    >>> bool(tf.reduce_all(a == b))
    True
    """
    if seed is None or rate == 0.0:
        return inputs
    if not recompute_mask:
        return inputs * _keep_mask(tf.shape(inputs), rate, seed, inputs.dtype)

    @tf.custom_gradient
    def dropout(values):
        shape = tf.shape(values)  # the backward pass keeps this, not `values`

        def backward(d_output):
            seed_again = after_gradient(seed, d_output)  # so grappler cannot reuse the mask
            return d_output * _keep_mask(shape, rate, seed_again, d_output.dtype)

        return values * _keep_mask(shape, rate, seed, values.dtype), backward

    return dropout(inputs)
