"""The self-attention half of a post-LayerNorm transformer block."""

import numbers

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


def head_sizes(hidden_dim, num_heads, key_size=None, value_size=None):
    """The (query/key, value) size per head: `hidden_dim // num_heads` unless given.

    >>> head_sizes(768, 12), head_sizes(768, 12, key_size=128)
    ((64, 64), (128, 64))
    >>> head_sizes(100, 8)
    Traceback (most recent call last):
    ...
    ValueError: hidden_dim (100) is not divisible by num_heads (8): give key_size and value_size explicitly.
    """
    for name, value in (("num_heads", num_heads), ("key_size", key_size),
                        ("value_size", value_size)):
        if value is not None and (not isinstance(value, numbers.Integral)
                                  or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if (key_size is None or value_size is None) and hidden_dim % num_heads:
        raise ValueError(
            f"hidden_dim ({hidden_dim}) is not divisible by num_heads ({num_heads}): "
            "give key_size and value_size explicitly."
        )
    default = int(hidden_dim // num_heads)
    return int(key_size or default), int(value_size or default)


@keras.saving.register_keras_serializable(package="keras_albert")
class SelfAttentionSublayer(keras.layers.Layer):
    """Multi-head self-attention, output projection, dropout, residual, LayerNorm.

    By default query, key, value and output projections are [hidden, hidden] dense
    layers, the layout of every BERT-family checkpoint: each head's query/key and
    value size is hidden / heads. `key_size` sets the query/key size per head and
    `value_size` the value size per head independently of the head count. With a
    head size below the sequence length each head's attention matrix has rank at most
    the key size (Bhojanapalli et al. 2020, "Low-Rank Bottleneck in Multi-head
    Attention Models"); a larger `key_size` lifts that bound for 2 x hidden x heads x
    (key_size - hidden / heads) more weights. Scores are scaled by key_size ** -0.5.

    Softmax runs in float32 whatever the dtype policy. Dropout is stateless (see
    `stateless_dropout`): pass the same `seed` and the same mask is drawn, which keeps
    recomputed gradients exact.

    Example:

    >>> layer = SelfAttentionSublayer(hidden_dim=8, num_heads=2)
    >>> x = tf.random.normal([2, 5, 8])
    >>> layer(x, tf.ones([2, 5], "int32")).shape
    TensorShape([2, 5, 8])
    >>> wide = SelfAttentionSublayer(hidden_dim=8, num_heads=2, key_size=16)
    >>> wide(x, tf.ones([2, 5], "int32")).shape, wide.query.kernel.shape
    (TensorShape([2, 5, 8]), TensorShape([8, 32]))
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        key_size=None,
        value_size=None,
        dropout=0.0,
        attention_dropout=0.0,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.key_size, self.value_size = head_sizes(hidden_dim, num_heads, key_size, value_size)
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def dense(name, units):
            return keras.layers.Dense(
                int(units),  # Keras refuses NumPy integers
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.query = dense("query", num_heads * self.key_size)
        self.key = dense("key", num_heads * self.key_size)
        self.value = dense("value", num_heads * self.value_size)
        self.output_dense = dense("output", hidden_dim)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, input_shape):
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.num_heads * self.value_size,))
        self.layer_norm.build(input_shape)

    def _split_heads(self, x, size):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(x, [batch, length, self.num_heads, size])

    def _attend(self, hidden_states, attention_bias, seed):
        query = self._split_heads(self.query(hidden_states), self.key_size)
        key = self._split_heads(self.key(hidden_states), self.key_size)
        value = self._split_heads(self.value(hidden_states), self.value_size)
        scale = tf.cast(self.key_size**-0.5, query.dtype)
        scores = tf.einsum("bqhd,bkhd->bhqk", query * scale, key)
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + attention_bias, axis=-1)
        probs = tf.cast(probs, value.dtype)
        if seed is not None:
            probs = stateless_dropout(probs, self.attention_dropout, derive_seed(seed, 0))
        context = tf.einsum("bhqk,bkhd->bqhd", probs, value)
        batch, length = tf.shape(hidden_states)[0], tf.shape(hidden_states)[1]
        context = tf.reshape(context, [batch, length, self.num_heads * self.value_size])
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
                "key_size": self.key_size,
                "value_size": self.value_size,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
