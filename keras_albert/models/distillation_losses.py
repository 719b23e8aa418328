"""DistilBERT's three loss terms (Sanh et al. 2019, arXiv:1910.01108) as TensorFlow.

The soft-target loss `ce` (T^2 * KL at temperature T), the `hard` loss on the true
labels (masked-LM or task) and the cosine loss `cos` between last hidden states.
`Distiller` weighs and sums them; `distillation_losses` gives them for one batch.

Example:

    terms = distillation_losses(teacher_logits, student_logits, labels,
                                teacher_hidden, student_hidden, mask, temperature=2.0)
    loss = 5.0 * terms["ce"] + 2.0 * terms["hard"] + 1.0 * terms["cos"]
"""

import tensorflow as tf

__all__ = ["LOSS_TERMS", "distillation_losses"]

LOSS_TERMS = ("ce", "hard", "cos")


def _loss_sums_and_counts(
    teacher_logits,
    student_logits,
    labels,
    teacher_hidden,
    student_hidden,
    mask,
    temperature,
    label_weights=None,
):
    """Sums and denominators of the three terms (`distillation_losses` divides them).

    Kept apart so that `Distiller` can divide by denominators summed over all replicas,
    which makes data-parallel training equal to one device on the global batch even
    when replicas hold different numbers of masked positions or real tokens.
    """
    teacher_logits = tf.cast(teacher_logits, tf.float32)
    student_logits = tf.cast(student_logits, tf.float32)
    prediction_shape = tf.shape(student_logits)[:-1]
    if label_weights is None:
        weights = tf.ones(prediction_shape, tf.float32)
    else:
        weights = tf.reshape(tf.cast(label_weights, tf.float32), prediction_shape)
    predicted = tf.cast(weights > 0, tf.float32)

    regression = student_logits.shape.rank == 2 and student_logits.shape[-1] == 1
    if regression:
        # One output: softmax is constant, so the soft-target term is the squared
        # difference to the teacher's prediction (no temperature) and the hard term
        # the squared error to the label.
        ce_each = tf.square(student_logits[:, 0] - teacher_logits[:, 0])
        labels = tf.reshape(tf.cast(labels, tf.float32), prediction_shape)
        hard_each = tf.square(student_logits[:, 0] - labels)
    else:
        temperature = tf.cast(temperature, tf.float32)
        teacher_log_probs = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
        student_log_probs = tf.nn.log_softmax(student_logits / temperature, axis=-1)
        kl = tf.reduce_sum(
            tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1
        )
        ce_each = temperature**2 * kl
        labels = tf.reshape(tf.cast(labels, tf.int32), prediction_shape)
        hard_each = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=student_logits
        )

    token_mask = tf.cast(mask, tf.float32)
    if teacher_hidden is None or student_hidden is None:
        cos_each = tf.zeros_like(token_mask)
    else:
        teacher_unit = tf.math.l2_normalize(tf.cast(teacher_hidden, tf.float32), axis=-1)
        student_unit = tf.math.l2_normalize(tf.cast(student_hidden, tf.float32), axis=-1)
        cos_each = 1.0 - tf.reduce_sum(teacher_unit * student_unit, axis=-1)

    sums = {
        "ce": tf.reduce_sum(ce_each * predicted),
        "hard": tf.reduce_sum(hard_each * weights),
        "cos": tf.reduce_sum(cos_each * token_mask),
    }
    counts = {
        "ce": tf.reduce_sum(predicted),
        "hard": tf.reduce_sum(weights),
        "cos": tf.reduce_sum(token_mask),
    }
    return sums, counts


def distillation_losses(
    teacher_logits,
    student_logits,
    labels,
    teacher_hidden,
    student_hidden,
    mask,
    temperature,
    label_weights=None,
):
    """DistilBERT's three loss terms, in float32.

    Args:
        teacher_logits, student_logits: masked-LM logits [B, M, V] or task logits
            [B, C] (C = 1: regression).
        labels: true labels: token ids [B, M] (masked-LM), class ids [B] (task) or
            targets [B] / [B, 1] (regression).
        teacher_hidden, student_hidden: last hidden states [B, S, H].
        mask: [B, S], 1 for real tokens, 0 for padding.
        temperature: the softmax temperature T of the soft targets.
        label_weights: [B, M] masked-LM weights or [B] example weights; None: all 1.

    Returns:
        A dict of scalars:
        - `ce`: `T^2 * KL(softmax(teacher / T) || softmax(student / T))`, the mean over
          predictions with weight > 0 (masked positions, or examples). For regression
          (one output) it is the squared difference to the teacher's output instead,
          since a softmax over one output is constant.
        - `hard`: the student's cross-entropy (T = 1) with the labels, the
          `label_weights`-weighted mean (sum(w * loss) / sum(w): with 0/1 weights the
          mean over masked positions, like DistilBERT's masked-LM loss); mean squared
          error for regression.
        - `cos`: the mean over real tokens of `1 - cosine(teacher_hidden,
          student_hidden)`, DistilBERT's cosine embedding loss with target 1.
    """
    sums, counts = _loss_sums_and_counts(
        teacher_logits,
        student_logits,
        labels,
        teacher_hidden,
        student_hidden,
        mask,
        temperature,
        label_weights,
    )
    return {name: tf.math.divide_no_nan(sums[name], counts[name]) for name in LOSS_TERMS}
