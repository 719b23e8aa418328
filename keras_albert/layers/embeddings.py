"""Token, position and token-type embeddings, factorized as in ALBERT."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_albert")
class FactorizedEmbedding(keras.layers.Layer):
    """Word + learned position (+ token type) embeddings of size E, LayerNorm, dropout,
    then a dense projection E -> H when `embedding_dim != hidden_dim`.

    With `embedding_dim == hidden_dim` this is BERT's embedding; with
    `num_segments=0` there are no token-type embeddings (DistilBERT).

    Example:

    >>> embedding = FactorizedEmbedding(vocabulary_size=100, embedding_dim=16,
    ...                                 hidden_dim=32, max_sequence_length=64)
    >>> ids = tf.constant([[2, 7, 3]])
    >>> embedding(ids, tf.zeros_like(ids)).shape
    TensorShape([1, 3, 32])
    """

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        hidden_dim,
        max_sequence_length=512,
        num_segments=2,
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        embeddings_initializer="glorot_uniform",
        kernel_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed

        self.word_embeddings = keras.layers.Embedding(
            vocabulary_size,
            embedding_dim,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="word_embeddings",
        )
        self.token_type_embeddings = None
        if num_segments:
            self.token_type_embeddings = keras.layers.Embedding(
                num_segments,
                embedding_dim,
                embeddings_initializer=self.embeddings_initializer,
                dtype=self.dtype_policy,
                name="token_type_embeddings",
            )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dropout_layer = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)
        self.projection = None
        if embedding_dim != hidden_dim:
            self.projection = keras.layers.Dense(
                hidden_dim,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="projection",
            )

    def build(self, input_shape=None):
        self.word_embeddings.build()
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_sequence_length, self.embedding_dim),
            initializer=self.embeddings_initializer,
        )
        if self.token_type_embeddings is not None:
            self.token_type_embeddings.build()
        self.layer_norm.build((None, None, self.embedding_dim))
        if self.projection is not None:
            self.projection.build((None, None, self.embedding_dim))

    def _check_length(self, token_ids):
        length = token_ids.shape[1]
        message = (
            f"Input sequence length {{}} exceeds max_sequence_length "
            f"{self.max_sequence_length} (the size of the position embedding table); "
            "truncate the inputs, for example with the packer's seq_length."
        )
        if isinstance(length, int):
            if length > self.max_sequence_length:
                raise ValueError(message.format(length))
            return token_ids
        check = tf.debugging.assert_less_equal(
            tf.shape(token_ids)[1],
            self.max_sequence_length,
            message=message.format("(dynamic)"),
        )
        with tf.control_dependencies([check]):
            return tf.identity(token_ids)

    def call(self, token_ids, token_type_ids=None, training=None):
        token_ids = self._check_length(token_ids)
        length = tf.shape(token_ids)[1]
        embeddings = self.word_embeddings(token_ids)
        positions = tf.cast(self.position_embeddings[:length], embeddings.dtype)
        embeddings = embeddings + positions[tf.newaxis]
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = tf.zeros_like(token_ids)
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        embeddings = self.layer_norm(embeddings)
        embeddings = self.dropout_layer(embeddings, training=training)
        if self.projection is not None:
            embeddings = self.projection(embeddings)
        return embeddings

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return tuple(input_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
            }
        )
        return config
