"""`Encoder`: one functional Keras model for ALBERT, BERT and DistilBERT-style encoders."""

import keras
import tensorflow as tf

from keras_albert.layers.embeddings import FactorizedEmbedding
from keras_albert.layers.transformer_stack import TransformerStack
from keras_albert.presets import check_config_keys, preset_config

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def _as_int32(key, value):
    """Converts an id/mask input to an int32 tensor, refusing non-integer data."""
    if isinstance(value, keras.KerasTensor):
        return value
    value = tf.convert_to_tensor(value)
    if value.dtype == tf.int32:
        return value
    if not (value.dtype.is_integer or value.dtype.is_bool):
        raise TypeError(f"Encoder input '{key}' must hold integer ids; got {value.dtype.name}.")
    return tf.cast(value, tf.int32)


@keras.saving.register_keras_serializable(package="keras_albert")
class Encoder(keras.Model):
    """A BERT-family encoder following the TF Hub input/output convention.

    Inputs: a dict of int32 [batch, seq] tensors `input_word_ids`, `input_mask`
    (1 for real tokens, 0 for padding) and `input_type_ids` (segment ids; models
    built with `num_segments=0` need no type ids and ignore them if given).

    Outputs: a dict with
    - `sequence_output` [batch, seq, H]: the last block's hidden states;
    - `pooled_output` [batch, H]: `tanh(dense(first token))` when `use_pooler`;
      models without a pooler (DistilBERT) return the first token's hidden state
      unchanged, which is what DistilBERT's task heads start from;
    - `encoder_outputs`: the hidden states after every block application,
      `num_layers * inner_group_num` tensors, as google-research/albert lists them.

    One class covers the family: ALBERT is `embedding_dim < hidden_dim` with
    `sharing="all"`; BERT is `embedding_dim == hidden_dim` with `sharing="none"`;
    a DistilBERT-style student has `num_segments=0` and `use_pooler=False`.
    The constructor arguments are the config (`get_config` returns them).

    Example:

    >>> encoder = Encoder(vocabulary_size=1000, hidden_dim=64, num_layers=2,
    ...                   num_heads=4, embedding_dim=16, sharing="all")
    >>> ids = tf.constant([[2, 15, 27, 3, 0]])
    >>> out = encoder({"input_word_ids": ids,
    ...                "input_mask": tf.cast(ids > 0, "int32"),
    ...                "input_type_ids": tf.zeros_like(ids)})
    >>> out["sequence_output"].shape, out["pooled_output"].shape
    (TensorShape([1, 5, 64]), TensorShape([1, 64]))

    Args:
        vocabulary_size: number of token ids.
        hidden_dim: H, the width of the transformer blocks.
        num_layers: L, the number of layers applied.
        num_heads: attention heads; must divide `hidden_dim` unless `key_size`
            and `value_size` are both given.
        intermediate_dim: feed-forward width, 4H if None.
        key_size: query/key size per head, `hidden_dim // num_heads` if None.
            Larger than that lifts attention's low-rank bottleneck (see
            `SelfAttentionSublayer`); `Encoder.from_preset("albert_base",
            key_size=128)` has 12,864,768 parameters instead of 11,683,584.
        value_size: value size per head, `hidden_dim // num_heads` if None.
        embedding_dim: E, the word-embedding width; H if None (no projection).
        num_groups: G, groups of blocks; layers are assigned to groups in
            contiguous blocks as in google-research/albert.
        inner_group_num: blocks applied one after the other per layer.
        sharing: `"all"`, `"attention"`, `"ffn"` or `"none"` (see
            `TransformerStack`).
        max_sequence_length: size of the learned position table.
        num_segments: token types; 0 for none.
        use_pooler: whether `pooled_output` is `tanh(dense(first token))`.
        activation: `"gelu"` (exact, BERT/DistilBERT), `"gelu_approximate"`
            (tanh, ALBERT), `"gelu_sigmoid"` (x * sigmoid(1.702 x)), or a Keras
            activation name.
        dropout: dropout on embeddings and block outputs.
        attention_dropout: dropout on attention probabilities; `dropout` if None.
        layer_norm_epsilon: LayerNorm epsilon.
        initializer_range: standard deviation of the truncated normal initializer.
        seed: seed of the dropout masks, for reproducible training.
        remat: gradient checkpointing of the transformer blocks: `"none"`,
            `"selective"` (recompute the attention half of each block and the
            cheap rest: GELU, dropout masks, LayerNorm; on ALBERT-base about a
            quarter of the activation memory for about 1.1x step time), `"full"`
            (recompute every block: the least memory, for about one extra forward
            pass) or `"every_k"` (recompute segments of k blocks). Gradients are
            unchanged (dropout is stateless).
        dtype: a dtype policy name, e.g. `"mixed_bfloat16"`.
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        num_layers,
        num_heads,
        intermediate_dim=None,
        key_size=None,
        value_size=None,
        embedding_dim=None,
        num_groups=1,
        inner_group_num=1,
        sharing="none",
        max_sequence_length=512,
        num_segments=2,
        use_pooler=True,
        activation="gelu",
        dropout=0.1,
        attention_dropout=None,
        layer_norm_epsilon=1e-12,
        initializer_range=0.02,
        seed=None,
        remat="none",
        dtype=None,
        **kwargs,
    ):
        # keras.Model would drop an unknown argument silently.
        check_config_keys(kwargs)
        intermediate_dim = intermediate_dim or 4 * hidden_dim
        embedding_dim = embedding_dim or hidden_dim
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        # A seed generator, not an int: an initializer seeded with an int (or left
        # unseeded) returns the same tensor on every call in Keras 3, which would start
        # query, key, value and every layer from identical weights.
        initializer = keras.initializers.TruncatedNormal(
            stddev=initializer_range, seed=keras.random.SeedGenerator(seed)
        )

        # === Layers ===
        embedding = FactorizedEmbedding(
            vocabulary_size=vocabulary_size,
            embedding_dim=embedding_dim,
            hidden_dim=hidden_dim,
            max_sequence_length=max_sequence_length,
            num_segments=num_segments,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            embeddings_initializer=initializer,
            kernel_initializer=initializer,
            seed=seed,
            dtype=dtype,
            name="embedding",
        )
        stack = TransformerStack(
            num_layers=num_layers,
            hidden_dim=hidden_dim,
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            key_size=key_size,
            value_size=value_size,
            num_groups=num_groups,
            inner_group_num=inner_group_num,
            sharing=sharing,
            activation=activation,
            dropout=dropout,
            attention_dropout=attention_dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=initializer,
            seed=seed,
            remat=remat,
            dtype=dtype,
            name="transformer",
        )
        pooler = None
        if use_pooler:
            pooler = keras.layers.Dense(
                hidden_dim,
                activation="tanh",
                kernel_initializer=initializer,
                dtype=dtype,
                name="pooler",
            )

        # === Functional graph ===
        inputs = {
            "input_word_ids": keras.Input(shape=(None,), dtype="int32", name="input_word_ids"),
            "input_mask": keras.Input(shape=(None,), dtype="int32", name="input_mask"),
        }
        if num_segments:
            inputs["input_type_ids"] = keras.Input(
                shape=(None,), dtype="int32", name="input_type_ids"
            )
        hidden = embedding(inputs["input_word_ids"], inputs.get("input_type_ids"))
        encoder_outputs = stack(hidden, inputs["input_mask"])
        sequence_output = encoder_outputs[-1]
        first_token = sequence_output[:, 0, :]
        pooled_output = pooler(first_token) if pooler is not None else first_token
        super().__init__(
            inputs=inputs,
            outputs={
                "sequence_output": sequence_output,
                "pooled_output": pooled_output,
                "encoder_outputs": list(encoder_outputs),
            },
            dtype=dtype,
            **kwargs,
        )

        if dtype is not None:
            # Functional models do not take the policy from `dtype` themselves; the
            # model's policy decides loss scaling in `compile` and is saved in config.
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Sub-layers, for weight transfer and heads ===
        self.embedding = embedding
        self.transformer = stack
        self.pooler = pooler

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.key_size = stack.key_size
        self.value_size = stack.value_size
        self.embedding_dim = embedding_dim
        self.num_groups = num_groups
        self.inner_group_num = inner_group_num
        self.sharing = sharing
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.use_pooler = use_pooler
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.initializer_range = initializer_range
        self.seed = seed
        self.remat = remat

    @property
    def input_keys(self):
        """The input names this encoder reads."""
        return INPUT_KEYS if self.num_segments else INPUT_KEYS[:2]

    @property
    def token_embedding(self):
        """The word-embedding layer; masked-LM heads tie their decoder to it."""
        return self.embedding.word_embeddings

    def __call__(self, inputs, *args, **kwargs):
        # Validate before Keras's own input handling so errors name the TF Hub keys.
        return super().__call__(self._validated(inputs), *args, **kwargs)

    def _validated(self, inputs):
        if not isinstance(inputs, dict):
            raise TypeError(
                f"{type(self).__name__} expects a dict with keys {list(self.input_keys)}; "
                f"got {type(inputs).__name__}."
            )
        missing = [key for key in self.input_keys if key not in inputs]
        if missing:
            raise ValueError(
                f"Missing encoder input(s) {missing}. Expected a dict with keys "
                f"{list(self.input_keys)} (int32, shape [batch, seq]); got keys "
                f"{sorted(inputs)}."
            )
        # Extra keys (e.g. type ids for an encoder without token types) are dropped.
        inputs = {key: _as_int32(key, inputs[key]) for key in self.input_keys}
        reference = self.input_keys[0]
        for key in self.input_keys:
            shape = tf.TensorShape(inputs[key].shape)
            if shape.rank is not None and shape.rank != 2:
                raise ValueError(
                    f"Encoder input '{key}' must have shape [batch, seq]; got {shape}."
                )
            if not shape.is_compatible_with(tf.TensorShape(inputs[reference].shape)):
                raise ValueError(
                    f"Encoder inputs must all have the same shape: '{reference}' has "
                    f"{inputs[reference].shape} but '{key}' has {shape}."
                )
        if not any(isinstance(value, keras.KerasTensor) for value in inputs.values()):
            # Dynamic dimensions are only known at run time: check them in the graph.
            reference_shape = tf.shape(inputs[reference])
            checks = [
                tf.debugging.assert_equal(
                    tf.shape(inputs[key]),
                    reference_shape,
                    message=f"Encoder inputs '{reference}' and '{key}' differ in shape.",
                )
                for key in self.input_keys[1:]
            ]
            with tf.control_dependencies(checks):
                inputs = {key: tf.identity(value) for key, value in inputs.items()}
        return inputs

    def get_config(self):
        # A functional model with its own constructor gets only Keras's `name`,
        # `trainable` and `dtype` here, not the layer graph.
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_size": self.key_size,
                "value_size": self.value_size,
                "embedding_dim": self.embedding_dim,
                "num_groups": self.num_groups,
                "inner_group_num": self.inner_group_num,
                "sharing": self.sharing,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "use_pooler": self.use_pooler,
                "activation": self.activation,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "initializer_range": self.initializer_range,
                "seed": self.seed,
                "remat": self.remat,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, name, /, **overrides):
        """Builds a randomly initialised encoder from a named configuration.

        `overrides` replace preset fields, e.g. the ALBERT paper's Table 3/4
        variants: `Encoder.from_preset("albert_base", embedding_dim=64)` or
        `Encoder.from_preset("albert_base", sharing="attention")`. A key that is not
        an `Encoder` argument raises `ValueError` listing the valid ones. The preset
        name is positional only, so `name=` names the encoder.

        >>> encoder = Encoder.from_preset("albert_tiny", embedding_dim=16,
        ...                               vocabulary_size=100)
        >>> encoder.embedding_dim, encoder.sharing  # overridden, from the preset
        (16, 'all')
        """
        return cls(**preset_config(name, **overrides))
