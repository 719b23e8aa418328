"""Dense heads for whole-sequence and per-token predictions."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_albert")
class ClassificationHead(keras.layers.Layer):
    """Optional hidden dense layer, dropout, then a dense layer to `num_outputs` logits.

    Applied to `pooled_output` [batch, H] it classifies (or regresses, with
    `num_outputs=1`) whole sequences; applied to `sequence_output`
    [batch, seq, H] it classifies every token. `hidden_dim` adds DistilBERT's
    `pre_classifier` (dense + ReLU) in front. Outputs are float32.

    Example:

    >>> head = ClassificationHead(num_outputs=3)
    >>> head(tf.random.normal([4, 64])).shape
    TensorShape([4, 3])
    """

    def __init__(
        self,
        num_outputs,
        dropout=0.1,
        hidden_dim=None,
        hidden_activation="relu",
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(f"num_outputs must be a positive integer, got {num_outputs!r}.")
        self.num_outputs = num_outputs
        self.dropout = dropout
        self.hidden_dim = hidden_dim
        self.hidden_activation = hidden_activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.hidden = None
        if hidden_dim:
            self.hidden = keras.layers.Dense(
                hidden_dim,
                activation=hidden_activation,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="hidden",
            )
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)
        self.output_dense = keras.layers.Dense(
            num_outputs,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="logits",
        )

    def build(self, input_shape):
        if self.hidden is not None:
            self.hidden.build(input_shape)
            input_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        self.output_dense.build(input_shape)

    def call(self, inputs, training=None):
        hidden = inputs if self.hidden is None else self.hidden(inputs)
        hidden = self.dropout_layer(hidden, training=training)
        return tf.cast(self.output_dense(hidden), tf.float32)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_outputs,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_outputs": self.num_outputs,
                "dropout": self.dropout,
                "hidden_dim": self.hidden_dim,
                "hidden_activation": self.hidden_activation,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_albert")
class SpanHead(keras.layers.Layer):
    """Start and end logits for extractive question answering.

    A dense layer to 2 outputs per token, split into `start_logits` and
    `end_logits` [batch, seq] (float32). Padding positions get -1e9 so that they
    are never predicted.

    Example:

    >>> head = SpanHead()
    >>> out = head(tf.random.normal([2, 7, 64]), tf.ones([2, 7], "int32"))
    >>> out["start_logits"].shape
    TensorShape([2, 7])
    """

    def __init__(self, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dense = keras.layers.Dense(
            2, kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name="logits"
        )

    def build(self, sequence_output_shape, input_mask_shape=None):
        self.dense.build(sequence_output_shape)

    def call(self, sequence_output, input_mask):
        logits = tf.cast(self.dense(sequence_output), tf.float32)
        padding = (1.0 - tf.cast(input_mask, tf.float32)) * -1e9
        return {
            "start_logits": logits[..., 0] + padding,
            "end_logits": logits[..., 1] + padding,
        }

    def compute_output_shape(self, sequence_output_shape, input_mask_shape=None):
        shape = tuple(sequence_output_shape[:-1])
        return {"start_logits": shape, "end_logits": shape}

    def get_config(self):
        config = super().get_config()
        config["kernel_initializer"] = keras.initializers.serialize(self.kernel_initializer)
        return config
