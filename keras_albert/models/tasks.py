"""Task models: an `Encoder` plus a head, as functional Keras models.

Every task takes the encoder's input dict (plus `masked_positions` for masked-LM)
and returns float32 logits, so it trains with `model.fit` and plain Keras losses.
Each task owns its training defaults, as keras-hub's tasks: `compile()` with
`optimizer`, `loss` or `metrics` left at `"auto"` picks what the task needs (see
`keras_albert.models.task_kinds` for the table); a value you pass wins.
`get_config` holds the serialized encoder and the head's arguments, so tasks round-trip
through `from_config` and `.keras` files.
"""

import keras
import tensorflow as tf

from keras_albert.heads.classification import ClassificationHead, SpanHead
from keras_albert.heads.masked_lm import MaskedLMHead
from keras_albert.losses import ZLPRLoss
from keras_albert.metrics import IGNORE_LABEL, TokenAccuracy, task_metrics
from keras_albert.models.distributed import MultiWorkerFitMixin
from keras_albert.optimizers.weight_decay import AdamW

# What `SequenceClassifier` can be trained for (its `task` argument).
SEQUENCE_TASKS = ("classification", "regression", "multilabel")


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def _sparse_cross_entropy(**kwargs):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)


def _accuracy():
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def _encoder_inputs(encoder, extra_dims=()):
    shape = tuple(extra_dims) + (None,)
    return {key: keras.Input(shape=shape, dtype="int32", name=key) for key in encoder.input_keys}


class EncoderTask(MultiWorkerFitMixin, keras.Model):
    """Base class: keeps the encoder and the task arguments for `get_config`.

    `MultiWorkerFitMixin` lets every task train with `fit` under
    `MultiWorkerMirroredStrategy` (see `keras_albert.models.distributed`). A subclass
    names its `task` and gives its "auto" loss and metrics (`_default_loss`,
    `_default_metrics`)."""

    task = None

    def __init__(self, encoder, inputs, outputs, task_config, **kwargs):
        # The task computes in the encoder's dtype policy; with "mixed_float16",
        # `compile` then wraps the optimizer in a LossScaleOptimizer by itself.
        kwargs.pop("dtype", None)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.dtype_policy = encoder.dtype_policy
        self.encoder = encoder
        self._task_config = dict(task_config)
        self._input_keys = tuple(inputs)

    def __call__(self, inputs, *args, **kwargs):
        # One packer serves every encoder: drop keys this model does not read (type
        # ids for an encoder without token types) instead of letting Keras fall back
        # to matching inputs by position.
        if isinstance(inputs, dict):
            inputs = {key: value for key, value in inputs.items() if key in self._input_keys}
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            **self._task_config,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """`keras.Model.compile` with the task's defaults for what is left at "auto".

        `optimizer="auto"` is `keras_albert.optimizers.AdamW` at 5e-5 with weight decay
        0.01 (LayerNorm and bias excluded); `loss` and `metrics` default to the task's
        own (see `keras_albert.models.task_kinds`). Anything else you pass, and every
        other `keras.Model.compile` argument (`jit_compile`, `steps_per_execution`,
        ...), goes to Keras unchanged.

            model.compile()  # the task's loss and metrics, AdamW 5e-5
            model.compile(optimizer=keras.optimizers.Adam(2e-5), jit_compile=True)
        """
        if _is_auto(optimizer):
            optimizer = AdamW(learning_rate=5e-5, weight_decay=0.01)
        if _is_auto(loss):
            loss = self._default_loss()
        if _is_auto(metrics):
            metrics = self._default_metrics()
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras does not compile a loaded model whose class overrides `compile`; ours
        # takes Keras's arguments, and the saved ones are explicit, so "auto" never
        # replaces them.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if hasattr(self, "optimizer") and self.built:  # as Keras: optimizer state loads next
            self.optimizer.build(self.trainable_variables)

    def _default_loss(self):
        raise NotImplementedError(f"{type(self).__name__} has no default loss; pass `loss`.")

    def _default_metrics(self):
        return None


def _head_initializer(encoder):
    return keras.initializers.TruncatedNormal(stddev=encoder.initializer_range)


POOLING = ("pooled", "mean", "first")


def pool_sequence(encoded, input_mask, pooling="pooled"):
    """One vector per sequence from an encoder's outputs.

    `"pooled"`: `pooled_output` (BERT/ALBERT's tanh pooler on the first token);
    `"first"`: the first token's last hidden state; `"mean"`: the mean of the last
    hidden states over real tokens (`input_mask`), computed in float32 - what
    sentence-embedding checkpoints (e.g. all-MiniLM-L6-v2) were trained to produce.
    """
    if pooling == "pooled":
        return encoded["pooled_output"]
    sequence = encoded["sequence_output"]
    if pooling == "first":
        return sequence[:, 0]
    mask = keras.ops.expand_dims(keras.ops.cast(input_mask, "float32"), -1)
    total = keras.ops.sum(keras.ops.cast(sequence, "float32") * mask, axis=1)
    return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="keras_albert")
class SequenceClassifier(EncoderTask):
    """Classifies single texts or text pairs from `pooled_output`.

    Outputs logits [batch, num_classes]. `task` says what they are trained for, and
    so what `compile()` uses by default: `"classification"` (sparse cross-entropy
    from logits; accuracy, plus F1 for two classes, and MCC), `"regression"`
    (`num_classes=1`, STS-B; mean squared error, Pearson's r) or `"multilabel"`
    (`keras_albert.losses.ZLPRLoss`, micro F1). The default, None, is regression for
    `num_classes=1` and classification otherwise. With `hidden_dim` it adds
    DistilBERT's pre-classifier dense + ReLU. `pooling` picks the sequence vector the
    head reads (see `pool_sequence`): `"pooled"` (default), `"first"` or `"mean"` (for
    sentence-embedding checkpoints).

    Example:

    >>> from keras_albert import Encoder
    >>> model = SequenceClassifier(Encoder.from_preset("bert_tiny"), num_classes=2)
    >>> ids = tf.constant([[2, 15, 3]])
    >>> model({"input_word_ids": ids, "input_mask": tf.ones_like(ids),
    ...        "input_type_ids": tf.zeros_like(ids)}).shape
    TensorShape([1, 2])
    >>> model.compile()  # sparse cross-entropy; accuracy, F1, MCC; AdamW 5e-5
    """

    def __init__(self, encoder, num_classes, dropout=0.1, hidden_dim=None, pooling="pooled",
                 task=None, **kwargs):
        if pooling not in POOLING:
            raise ValueError(f"`pooling` must be one of {POOLING}; got {pooling!r}.")
        if task is None:
            task = "regression" if num_classes == 1 else "classification"
        if task not in SEQUENCE_TASKS:
            raise ValueError(f"`task` must be one of {SEQUENCE_TASKS} or None; got {task!r}.")
        if task == "regression" and num_classes != 1:
            raise ValueError(f"A regressor has num_classes=1; got {num_classes}.")
        if task == "classification" and num_classes < 2:
            raise ValueError(f"task='classification' needs num_classes >= 2; got {num_classes}.")
        inputs = _encoder_inputs(encoder)
        head = ClassificationHead(
            num_classes,
            dropout=dropout,
            hidden_dim=hidden_dim,
            kernel_initializer=_head_initializer(encoder),
            dtype=encoder.dtype_policy,
            name="classifier",
        )
        logits = head(pool_sequence(encoder(inputs), inputs["input_mask"], pooling))
        config = {"num_classes": num_classes, "dropout": dropout, "hidden_dim": hidden_dim,
                  "pooling": pooling, "task": task}
        super().__init__(encoder, inputs, logits, config, **kwargs)
        self.head = head
        self.pooling = pooling
        self.num_classes = num_classes
        self.task = task

    def pool(self, encoded, input_mask):
        """The head's input from the encoder's outputs (see `pool_sequence`)."""
        return pool_sequence(encoded, input_mask, self.pooling)

    def _default_loss(self):
        if self.task == "regression":
            return keras.losses.MeanSquaredError()
        if self.task == "multilabel":
            return ZLPRLoss()
        return _sparse_cross_entropy()

    def _default_metrics(self):
        return task_metrics(self.task, self.num_classes)


@keras.saving.register_keras_serializable(package="keras_albert")
class TokenClassifier(EncoderTask):
    """Per-token logits [batch, seq, num_classes] (NER, tagging) from `sequence_output`.

    `compile()` defaults to sparse cross-entropy and accuracy over labelled tokens:
    label `keras_albert.metrics.IGNORE_LABEL` (-100; special tokens, continuation
    pieces) counts in neither.
    """

    task = "token"

    def __init__(self, encoder, num_classes, dropout=0.1, **kwargs):
        inputs = _encoder_inputs(encoder)
        head = ClassificationHead(
            num_classes,
            dropout=dropout,
            kernel_initializer=_head_initializer(encoder),
            dtype=encoder.dtype_policy,
            name="token_classifier",
        )
        logits = head(encoder(inputs)["sequence_output"])
        super().__init__(
            encoder, inputs, logits, {"num_classes": num_classes, "dropout": dropout}, **kwargs
        )
        self.head = head

    def _default_loss(self):
        return _sparse_cross_entropy(ignore_class=IGNORE_LABEL)

    def _default_metrics(self):
        return [TokenAccuracy(name="accuracy")]


@keras.saving.register_keras_serializable(package="keras_albert")
class SpanQuestionAnswerer(EncoderTask):
    """Extractive QA: `{"start_logits", "end_logits"}`, each [batch, seq], padding at -1e9.

    `compile()` defaults to sparse cross-entropy on each of the start and end token
    (labels `{"start_logits": [batch], "end_logits": [batch]}`; the loss is their
    sum) and their accuracies.
    """

    task = "span"

    def __init__(self, encoder, **kwargs):
        inputs = _encoder_inputs(encoder)
        head = SpanHead(
            kernel_initializer=_head_initializer(encoder),
            dtype=encoder.dtype_policy,
            name="span",
        )
        outputs = head(encoder(inputs)["sequence_output"], inputs["input_mask"])
        super().__init__(encoder, inputs, outputs, {}, **kwargs)
        self.head = head

    def _default_loss(self):
        return {"start_logits": _sparse_cross_entropy(), "end_logits": _sparse_cross_entropy()}

    def _default_metrics(self):
        return {"start_logits": [_accuracy()], "end_logits": [_accuracy()]}


@keras.saving.register_keras_serializable(package="keras_albert")
class MergeChoices(keras.layers.Layer):
    """Reshapes [batch, choices, seq] to [batch * choices, seq] for the encoder."""

    def call(self, inputs):
        return tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])

    def compute_output_shape(self, input_shape):
        return (None, input_shape[-1])


@keras.saving.register_keras_serializable(package="keras_albert")
class MultipleChoiceClassifier(EncoderTask):
    """Scores `num_choices` packed (context, choice) pairs per example.

    Inputs have shape [batch, num_choices, seq]; each pair is encoded, its
    `pooled_output` scored by a dense layer to one logit; output [batch, num_choices].
    `compile()` defaults to sparse cross-entropy over the choices, and accuracy.
    """

    task = "multiple_choice"

    def __init__(self, encoder, num_choices, dropout=0.1, **kwargs):
        inputs = _encoder_inputs(encoder, extra_dims=(num_choices,))
        merge = MergeChoices(dtype=encoder.dtype_policy, name="merge_choices")
        flat = {key: merge(value) for key, value in inputs.items()}
        head = ClassificationHead(
            1,
            dropout=dropout,
            kernel_initializer=_head_initializer(encoder),
            dtype=encoder.dtype_policy,
            name="scorer",
        )
        scores = head(encoder(flat)["pooled_output"])
        logits = keras.ops.reshape(scores, (-1, num_choices))
        config = {"num_choices": num_choices, "dropout": dropout}
        super().__init__(encoder, inputs, logits, config, **kwargs)
        self.head = head

    def _default_loss(self):
        return _sparse_cross_entropy()

    def _default_metrics(self):
        return [_accuracy()]


@keras.saving.register_keras_serializable(package="keras_albert")
class PretrainingModel(EncoderTask):
    """Masked-LM (+ sentence-order) logits for pretraining, as ALBERT.

    Inputs: the encoder inputs plus `masked_positions` [batch, M] (int32).
    Outputs: `mlm_logits` [batch, M, V] and, with `sentence_order=True`,
    `sop_logits` [batch, 2] from `pooled_output` (BERT's NSP head has the same
    shape). The MLM decoder is tied to the encoder's word embeddings.

    `compile()` defaults to sparse cross-entropy on each output, averaged over the
    weighted entries (`reduction="mean_with_sample_weight"`), and their accuracies as
    weighted metrics, so padded masked positions (sample weight 0) count in neither.
    """

    task = "pretraining"

    def __init__(self, encoder, sentence_order=True, **kwargs):
        inputs = _encoder_inputs(encoder)
        inputs["masked_positions"] = keras.Input(
            shape=(None,), dtype="int32", name="masked_positions"
        )
        encoded = encoder({key: inputs[key] for key in encoder.input_keys})
        mlm_head = MaskedLMHead(
            token_embedding=encoder.token_embedding,
            activation=encoder.activation,
            layer_norm_epsilon=encoder.layer_norm_epsilon,
            kernel_initializer=_head_initializer(encoder),
            dtype=encoder.dtype_policy,
            name="mlm_head",
        )
        outputs = {"mlm_logits": mlm_head(encoded["sequence_output"], inputs["masked_positions"])}
        sop_head = None
        if sentence_order:
            sop_head = ClassificationHead(
                2,
                dropout=encoder.dropout,
                kernel_initializer=_head_initializer(encoder),
                dtype=encoder.dtype_policy,
                name="sop_head",
            )
            outputs["sop_logits"] = sop_head(encoded["pooled_output"])
        super().__init__(encoder, inputs, outputs, {"sentence_order": sentence_order}, **kwargs)
        self.mlm_head = mlm_head
        self.sop_head = sop_head

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """As `EncoderTask.compile`, but the "auto" accuracies are `weighted_metrics`."""
        if _is_auto(metrics):
            metrics = None
            kwargs.setdefault("weighted_metrics", {key: [_accuracy()] for key in self.output})
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def _default_loss(self):
        return {key: _sparse_cross_entropy(reduction="mean_with_sample_weight")
                for key in self.output}
