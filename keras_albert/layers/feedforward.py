"""The feed-forward half of a post-LayerNorm transformer block."""

import keras

from keras_albert.layers.activations import get_activation
from keras_albert.layers.dropout import stateless_dropout
from keras_albert.layers.recompute import activation_then_dense, recomputed


@keras.saving.register_keras_serializable(package="keras_albert")
class FeedForwardSublayer(keras.layers.Layer):
    """Dense (hidden -> intermediate) + activation + dense back, dropout, residual, LayerNorm.

    Example:

    >>> import tensorflow as tf
    >>> layer = FeedForwardSublayer(hidden_dim=8, intermediate_dim=32)
    >>> layer(tf.random.normal([2, 5, 8])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        hidden_dim,
        intermediate_dim,
        activation="gelu",
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.activation_fn = get_activation(activation)
        # The activation is applied in `call`, not by the Dense layer, so that
        # `remat="selective"` can recompute it in the backward pass.
        self.intermediate = keras.layers.Dense(
            intermediate_dim,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="intermediate",
        )
        self.output_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, input_shape):
        self.intermediate.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))
        self.layer_norm.build(input_shape)

    def call(self, hidden_states, seed=None, recompute=False):
        """seed: int32 [2] to enable dropout (drawn statelessly), or None;
        recompute: keep only the first projection's output for the backward pass
        and recompute the activation, dropout mask and LayerNorm (`remat="selective"`)."""
        pre_activation = self.intermediate(hidden_states)
        if recompute:
            dense = self.output_dense
            output = activation_then_dense(
                pre_activation,
                self.activation_fn,
                keras.ops.cast(dense.kernel, self.compute_dtype),
                keras.ops.cast(dense.bias, self.compute_dtype),
            )
        else:
            output = self.output_dense(self.activation_fn(pre_activation))
        if seed is not None:
            output = stateless_dropout(output, self.dropout, seed, recompute_mask=recompute)
        if recompute:
            return recomputed(lambda a, b: self.layer_norm(a + b), hidden_states, output)
        return self.layer_norm(hidden_states + output)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
