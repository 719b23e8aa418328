"""Masked-language-model head with a decoder tied to the word embeddings."""

import keras
import tensorflow as tf

from keras_albert.layers.activations import get_activation


@keras.saving.register_keras_serializable(package="keras_albert")
class MaskedLMHead(keras.layers.Layer):
    """Dense (H -> E) + activation + LayerNorm, then logits against the word embeddings.

    The decoder is the transposed word-embedding matrix of the encoder (tied, as in
    BERT and ALBERT) plus an output bias of size V. Pass `token_embedding` (the
    encoder's `token_embedding` layer) at construction; it is not part of the config,
    so task models re-link it when they are rebuilt.

    Call with the encoder's `sequence_output` [batch, seq, H] and, optionally,
    `masked_positions` [batch, M] (int) to score only those positions. Logits are
    float32.

    Example:

    >>> from keras_albert import Encoder
    >>> encoder = Encoder.from_preset("albert_tiny")
    >>> head = MaskedLMHead(token_embedding=encoder.token_embedding)
    >>> logits = head(tf.random.normal([2, 6, 64]), tf.constant([[1, 2], [3, 4]]))
    >>> logits.shape
    TensorShape([2, 2, 30000])
    """

    def __init__(
        self,
        token_embedding=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if token_embedding is None:
            raise ValueError("MaskedLMHead needs `token_embedding`, the encoder's "
                             "word-embedding layer (`encoder.token_embedding`).")
        self.vocabulary_size = token_embedding.input_dim
        self.embedding_dim = token_embedding.output_dim
        self.dense = keras.layers.Dense(
            self.embedding_dim,
            activation=get_activation(activation),
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="dense",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, sequence_output_shape, masked_positions_shape=None):
        self.dense.build(sequence_output_shape)
        self.layer_norm.build(tuple(sequence_output_shape[:-1]) + (self.embedding_dim,))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
        )

    def call(self, sequence_output, masked_positions=None):
        hidden = sequence_output
        if masked_positions is not None:
            hidden = tf.gather(hidden, tf.cast(masked_positions, tf.int32), batch_dims=1)
        hidden = self.layer_norm(self.dense(hidden))
        embeddings = tf.cast(self.token_embedding.embeddings, hidden.dtype)
        logits = tf.matmul(hidden, embeddings, transpose_b=True)
        return tf.cast(logits, tf.float32) + self.output_bias

    def compute_output_shape(self, sequence_output_shape, masked_positions_shape=None):
        if masked_positions_shape is not None:
            return tuple(masked_positions_shape) + (self.vocabulary_size,)
        return tuple(sequence_output_shape[:-1]) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
