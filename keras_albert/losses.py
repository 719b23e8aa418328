"""Losses that Keras does not ship."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_albert")
class ZLPRLoss(keras.losses.Loss):
    """Zero-bounded log-sum-exp & pairwise rank loss for multi-label classification.

    Softmax cross-entropy generalised to several true labels (Su et al., ZLPR):

        log(1 + sum_{neg} exp(s_j)) + log(1 + sum_{pos} exp(-s_i))

    `y_true` is a multi-hot [batch, labels] tensor, `y_pred` the logits. A label is
    predicted when its logit is > 0, so no threshold needs tuning.

    Example:

    >>> loss = ZLPRLoss()
    >>> float(loss([[1.0, 0.0]], [[0.0, 0.0]]))  # log 2 + log 2
    1.3862943649291992
    """

    def __init__(self, name="zlpr", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        y_true = tf.cast(y_true, tf.float32)
        # Masked-out terms get -inf; the appended 0 is the "1 +" inside each log.
        negative_inf = tf.fill(tf.shape(y_pred), -float("inf"))
        positives = tf.where(y_true > 0.5, -y_pred, negative_inf)
        negatives = tf.where(y_true > 0.5, negative_inf, y_pred)
        zeros = tf.zeros_like(y_pred[..., :1])
        positive_term = tf.reduce_logsumexp(tf.concat([zeros, positives], -1), axis=-1)
        negative_term = tf.reduce_logsumexp(tf.concat([zeros, negatives], -1), axis=-1)
        return positive_term + negative_term
