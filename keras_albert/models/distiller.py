"""`Distiller`: DistilBERT-style distillation with plain `model.fit`.

A `keras.Model` that trains a student task model against a frozen teacher task model
(Sanh et al. 2019, arXiv:1910.01108), also under `tf.distribute.MirroredStrategy`,
`MultiWorkerMirroredStrategy` (through `keras_albert.models.distributed`'s mixin) and
mixed precision; `distiller.student` is then the trained model, usable alone.

Example (masked-LM distillation of a BERT teacher into a 6-layer student):

    teacher = PretrainingModel(Encoder.from_preset("bert_base"), sentence_order=False)
    student = PretrainingModel(student_from_teacher(teacher), sentence_order=False)
    distiller = Distiller(teacher, student)          # T=2, alphas 5 / 2 / 1
    distiller.compile(optimizer=keras.optimizers.AdamW(5e-4))
    distiller.fit(dataset)    # (features with masked_positions, {"mlm_logits": ids},
                              #  {"mlm_logits": weights}) batches
    student.save("student.keras")
"""

import keras
import tensorflow as tf

from keras_albert.models.distillation_losses import LOSS_TERMS, _loss_sums_and_counts
from keras_albert.models.distributed import MultiWorkerFitMixin
from keras_albert.models.tasks import PretrainingModel, SequenceClassifier

__all__ = ["Distiller"]


def _replica_sum(values):
    """Sums a dict of scalars over the replicas of the current strategy (if any)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    names = sorted(values)
    summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [values[name] for name in names])
    return dict(zip(names, summed))


def _num_replicas():
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def _task_kind(model):
    if isinstance(model, PretrainingModel):
        return "masked_lm"
    if isinstance(model, SequenceClassifier):
        return "classification"
    return None


def _first(structure, key):
    """`structure[key]` for a dict (None if absent), the structure itself otherwise."""
    if isinstance(structure, dict):
        return structure.get(key)
    return structure


@keras.saving.register_keras_serializable(package="keras_albert")
class Distiller(MultiWorkerFitMixin, keras.Model):
    """Trains a student task model to imitate a frozen teacher (DistilBERT's recipe).

    The loss of a batch is `alpha_ce * ce + alpha_hard * hard + alpha_cos * cos`
    (see `distillation_losses`), DistilBERT's defaults: T = 2, alpha_ce = 5,
    alpha_hard = 2 (DistilBERT's `alpha_mlm`; `alpha_mlm=` is accepted as another name)
    and alpha_cos = 1.

    `teacher` and `student` are task models of the same kind:
    - two `PretrainingModel`s: masked-LM distillation. Batches are
      `(x, y, sample_weight)` with `x` the encoder inputs plus `masked_positions`,
      `y = {"mlm_logits": ids [B, M], ...}` and `sample_weight = {"mlm_logits":
      weights [B, M]}` (the batches the student would train on by itself); the
      sentence-order outputs, if any, are ignored.
    - two `SequenceClassifier`s: task distillation from a fine-tuned teacher;
      batches `(x, y)` with `y` class ids [B] (targets for `num_classes=1`) and optional
      example weights.

    The teacher is frozen (`trainable=False`) and runs with `training=False`; only the
    student's trainable variables get gradients. Each step calls the models' encoders
    and heads directly, so the hidden states for the cosine term come from the same
    forward pass as the logits. Encoders without token types ignore
    `input_type_ids`; encoders with them get zeros when the batch has none.

    `call` returns the student's outputs, so `predict` gives the student's logits;
    `fit` / `evaluate` log `loss`, `ce_loss`, `hard_loss`, `cos_loss` and the
    student's `accuracy` (not for regression). Loss scaling happens when the optimizer
    is a `keras.optimizers.LossScaleOptimizer` (`compile` wraps it by itself when the
    student's policy is `"mixed_float16"`). Under `tf.distribute` strategies each term
    is divided by its denominator summed over the replicas, so data-parallel training
    equals one device on the global batch.

    After training, `distiller.student` is the trained task model.
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha_ce=5.0,
        alpha_hard=2.0,
        alpha_cos=1.0,
        alpha_mlm=None,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(**kwargs)
        kind = _task_kind(teacher)
        if kind is None or _task_kind(student) != kind:
            raise TypeError(
                "Distiller needs a teacher and a student of the same kind: two "
                "PretrainingModels or two SequenceClassifiers; got "
                f"{type(teacher).__name__} and {type(student).__name__}."
            )
        if teacher is student:
            raise ValueError("The teacher and the student must be different models.")
        if alpha_mlm is not None:
            if alpha_hard not in (2.0, alpha_mlm):
                raise ValueError(
                    f"alpha_mlm ({alpha_mlm}) and alpha_hard ({alpha_hard}) name the same "
                    "weight; pass one of them."
                )
            alpha_hard = alpha_mlm
        if kind == "masked_lm":
            teacher_vocabulary = teacher.encoder.vocabulary_size
            if teacher_vocabulary != student.encoder.vocabulary_size:
                raise ValueError(
                    "Masked-LM distillation needs one vocabulary: the teacher has "
                    f"{teacher_vocabulary} tokens, the student "
                    f"{student.encoder.vocabulary_size}."
                )
        else:
            classes = (teacher.head.num_outputs, student.head.num_outputs)
            if classes[0] != classes[1]:
                raise ValueError(
                    f"The teacher predicts {classes[0]} classes, the student {classes[1]}."
                )
        self.use_cosine = teacher.encoder.hidden_dim == student.encoder.hidden_dim
        if alpha_cos and not self.use_cosine:
            raise ValueError(
                "The cosine loss compares hidden states, so it needs the same hidden "
                f"size (teacher {teacher.encoder.hidden_dim}, student "
                f"{student.encoder.hidden_dim}); pass alpha_cos=0."
            )

        # Keras's TF-backend attribute tracking skips `x.trainable = False` when
        # `x.trainable` is already False (`getattr(x, name) is value`), so a teacher
        # rebuilt from a config with trainable=False would keep trainable sublayers:
        # set True first so that False reaches every sublayer and variable.
        teacher.trainable = True
        teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.kind = kind
        self.regression = kind == "classification" and student.head.num_outputs == 1
        self.temperature = float(temperature)
        self.alpha_ce = float(alpha_ce)
        self.alpha_hard = float(alpha_hard)
        self.alpha_cos = float(alpha_cos)
        # The student's policy: `compile` adds loss scaling for "mixed_float16".
        self.dtype_policy = student.dtype_policy

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.term_trackers = {
            name: keras.metrics.Mean(name=f"{name}_loss") for name in LOSS_TERMS
        }
        self.accuracy_metric = None
        if not self.regression:
            self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.built = True

    @property
    def alpha_mlm(self):
        """DistilBERT's name for `alpha_hard`."""
        return self.alpha_hard

    @property
    def metrics(self):
        metrics = [self.loss_tracker] + [self.term_trackers[name] for name in LOSS_TERMS]
        if self.accuracy_metric is not None:
            metrics.append(self.accuracy_metric)
        return metrics

    # === Forward ===

    def _model_inputs(self, model, x):
        keys = list(model.encoder.input_keys)
        inputs = {}
        for key in keys:
            if key in x:
                inputs[key] = x[key]
            elif key == "input_type_ids":
                inputs[key] = tf.zeros_like(x["input_word_ids"])
            else:
                raise ValueError(
                    f"The batch lacks {key!r}; it has {sorted(x)} (expected the encoder "
                    "inputs" + (" and masked_positions)." if self.kind == "masked_lm" else ").")
                )
        if self.kind == "masked_lm":
            if "masked_positions" not in x:
                raise ValueError("Masked-LM distillation needs 'masked_positions' in x.")
            inputs["masked_positions"] = x["masked_positions"]
        return inputs

    def _forward(self, model, x, training):
        """Logits and last hidden states of one task model, in one pass."""
        inputs = self._model_inputs(model, x)
        encoded = model.encoder(
            {key: inputs[key] for key in model.encoder.input_keys}, training=training
        )
        hidden = encoded["sequence_output"]
        if self.kind == "masked_lm":
            logits = model.mlm_head(hidden, inputs["masked_positions"])
        else:
            logits = model.head(model.pool(encoded, inputs["input_mask"]), training=training)
        return logits, hidden

    def call(self, inputs, training=None):
        if not isinstance(inputs, dict):
            raise TypeError(f"Distiller expects a dict of inputs; got {type(inputs).__name__}.")
        return self.student(self._model_inputs(self.student, inputs), training=training)

    def _teacher_outputs(self, x):
        """The frozen teacher's logits and last hidden states (training=False)."""
        logits, hidden = self._forward(self.teacher, x, training=False)
        return tf.stop_gradient(logits), tf.stop_gradient(hidden)

    def _terms(self, x, y, sample_weight, teacher_outputs, training):
        """Per-replica loss contributions (they sum to the global batch's losses over
        replicas), the student's logits, labels and label weights."""
        teacher_logits, teacher_hidden = teacher_outputs
        student_logits, student_hidden = self._forward(self.student, x, training=training)
        labels = _first(y, "mlm_logits")
        weights = _first(sample_weight, "mlm_logits") if sample_weight is not None else None
        if labels is None:
            raise ValueError("Distillation needs labels: y = {'mlm_logits': ids [B, M]} for "
                             "masked-LM, class ids [B] for tasks.")
        mask = x["input_mask"]
        sums, counts = _loss_sums_and_counts(
            teacher_logits,
            student_logits,
            labels,
            teacher_hidden if self.use_cosine else None,
            student_hidden if self.use_cosine else None,
            mask,
            self.temperature,
            weights,
        )
        counts = _replica_sum(counts)
        terms = {name: tf.math.divide_no_nan(sums[name], counts[name]) for name in LOSS_TERMS}
        terms["loss"] = (
            self.alpha_ce * terms["ce"]
            + self.alpha_hard * terms["hard"]
            + self.alpha_cos * terms["cos"]
        )
        return terms, student_logits, labels, weights

    def _update_metrics(self, terms, student_logits, labels, weights):
        # Metrics are kept per replica and averaged over replicas when read: record each
        # replica's contribution times the number of replicas, whose mean is the sum.
        replicas = float(_num_replicas())
        self.loss_tracker.update_state(terms["loss"] * replicas)
        for name in LOSS_TERMS:
            self.term_trackers[name].update_state(terms[name] * replicas)
        if self.accuracy_metric is not None:
            self.accuracy_metric.update_state(labels, student_logits, sample_weight=weights)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # The teacher runs before the tape opens: nothing of it is kept for gradients.
        teacher_outputs = self._teacher_outputs(x)
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            terms, student_logits, labels, weights = self._terms(
                x, y, sample_weight, teacher_outputs, training=True
            )
            loss = terms["loss"]
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)  # LossScaleOptimizer: times scale
        gradients = tape.gradient(loss, variables)
        # Variables that do not reach the distillation outputs (a sentence-order head,
        # an unused pooler) get no gradient and are left alone.
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        if not pairs:
            raise ValueError("No student variable received a gradient.")
        # `apply` sums gradients over replicas and, for a LossScaleOptimizer, unscales
        # them and skips the step when they are not finite.
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self._update_metrics(terms, student_logits, labels, weights)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        terms, student_logits, labels, weights = self._terms(
            x, y, sample_weight, self._teacher_outputs(x), training=False
        )
        return self._update_metrics(terms, student_logits, labels, weights)

    def distillation_losses(self, x, y, sample_weight=None, training=False):
        """The loss terms of one batch (`ce`, `hard`, `cos`, `loss`), outside `fit`."""
        terms, _, _, _ = self._terms(
            x, y, sample_weight, self._teacher_outputs(x), training=training
        )
        return terms

    # === Config ===

    def get_config(self):
        config = super().get_config()
        # The distiller runs under the student's dtype policy and takes no `dtype`.
        config.pop("dtype", None)
        config.update(
            {
                "teacher": keras.saving.serialize_keras_object(self.teacher),
                "student": keras.saving.serialize_keras_object(self.student),
                "temperature": self.temperature,
                "alpha_ce": self.alpha_ce,
                "alpha_hard": self.alpha_hard,
                "alpha_cos": self.alpha_cos,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("teacher", "student"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
