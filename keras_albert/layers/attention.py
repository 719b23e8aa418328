"""The self-attention half of a post-LayerNorm transformer block."""

import keras
import tensorflow as tf

from keras_albert.layers.dropout import derive_seed, stateless_dropout
from keras_albert.layers.recompute import recomputed


def padding_mask_to_attention_bias(input_mask):
    """Turns a [batch, seq] 0/1 padding mask into an additive float32 bias.

    The bias has shape [batch, 1, 1, seq]: 0 for real keys, a large negative number
    for padding keys, so that softmax gives padding keys no weight.
    """
    mask = tf.cast(input_mask, tf.float32)
    return (1.0 - mask)[:, tf.newaxis, tf.newaxis, :] * -1e9


@keras.saving.register_keras_serializable(package="keras_albert")
class SelfAttentionSublayer(keras.layers.Layer):
    """Multi-head self-attention, output projection, dropout, residual, LayerNorm.

    Query, key, value and output projections are [hidden, hidden] dense layers, the
    layout of every BERT-family checkpoint. Softmax runs in float32 whatever the
    dtype policy. Dropout is stateless (see `stateless_dropout`): pass the same
    `seed` and the same mask is drawn, which keeps recomputed gradients exact.

    Example:

    >>> layer = SelfAttentionSublayer(hidden_dim=8, num_heads=2)
    >>> x = tf.random.normal([2, 5, 8])
    >>> layer(x, tf.ones([2, 5], "int32")).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})."
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def dense(name):
            return keras.layers.Dense(
                hidden_dim,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query")
        self.key = dense("key")
        self.value = dense("value")
        self.output_dense = dense("output")
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value, self.output_dense):
            layer.build(input_shape)
        self.layer_norm.build(input_shape)

    def _split_heads(self, x):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(x, [batch, length, self.num_heads, self.head_dim])

    def _attend(self, hidden_states, attention_bias, seed):
        query = self._split_heads(self.query(hidden_states))
        key = self._split_heads(self.key(hidden_states))
        value = self._split_heads(self.value(hidden_states))
        scale = tf.cast(self.head_dim**-0.5, query.dtype)
        scores = tf.einsum("bqhd,bkhd->bhqk", query * scale, key)
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + attention_bias, axis=-1)
        probs = tf.cast(probs, value.dtype)
        if seed is not None:
            probs = stateless_dropout(probs, self.attention_dropout, derive_seed(seed, 0))
        context = tf.einsum("bhqk,bkhd->bqhd", probs, value)
        batch, length = tf.shape(hidden_states)[0], tf.shape(hidden_states)[1]
        context = tf.reshape(context, [batch, length, self.hidden_dim])
        output = self.output_dense(context)
        if seed is not None:
            output = stateless_dropout(output, self.dropout, derive_seed(seed, 1))
        return self.layer_norm(hidden_states + output)

    def call(self, hidden_states, input_mask, seed=None, recompute=False):
        """Args: hidden_states [batch, seq, hidden]; input_mask [batch, seq], 1 for
        real tokens and 0 for padding; seed: int32 [2] to enable dropout, or None;
        recompute: keep only `hidden_states` for the backward pass and redo the whole
        sublayer there (`remat="selective"`; the same result and gradients)."""
        # The bias is built here, in float32, because Keras casts float arguments of
        # a layer call to the compute dtype (bfloat16 would round it).
        attention_bias = padding_mask_to_attention_bias(input_mask)
        if recompute:
            return recomputed(lambda x: self._attend(x, attention_bias, seed), hidden_states)
        return self._attend(hidden_states, attention_bias, seed)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
