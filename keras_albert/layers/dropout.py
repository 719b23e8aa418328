"""Dropout whose mask is a pure function of a seed tensor.

Keras's `Dropout` layer draws its mask from a stateful seed generator. Inside
`tf.recompute_grad` the forward pass runs twice (once forward, once while computing
gradients), so a stateful draw produces two different masks and wrong gradients.
Here the mask depends only on an explicit `[2]` int32 seed, so a recomputation draws
exactly the same mask.
"""

import tensorflow as tf


def derive_seed(seed, index):
    """Returns a new stateless seed for sub-site `index` of `seed` (both int32)."""
    return tf.random.experimental.stateless_fold_in(seed, index)


def stateless_dropout(inputs, rate, seed):
    """Applies inverted dropout with a mask drawn from `seed`.

    Args:
        inputs: a float tensor.
        rate: the fraction of units to drop, a Python float in [0, 1).
        seed: an int32 tensor of shape [2], or None for no dropout.

    Example:

    >>> x = tf.ones([2, 4])
    >>> a = stateless_dropout(x, 0.5, tf.constant([1, 2]))
    >>> b = stateless_dropout(x, 0.5, tf.constant([1, 2]))
    >>> bool(tf.reduce_all(a == b))
    True
    """
    if seed is None or rate == 0.0:
        return inputs
    uniform = tf.random.stateless_uniform(tf.shape(inputs), seed=seed, dtype=tf.float32)
    keep = tf.cast(uniform >= rate, inputs.dtype)
    return inputs * keep * tf.cast(1.0 / (1.0 - rate), inputs.dtype)
