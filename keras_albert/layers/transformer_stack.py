"""The encoder stack: L layer applications drawn from G groups of shared blocks."""

import keras
import tensorflow as tf

from keras_albert.layers.attention import SelfAttentionSublayer, head_sizes
from keras_albert.layers.dropout import derive_seed
from keras_albert.layers.feedforward import FeedForwardSublayer

SHARING_MODES = ("all", "attention", "ffn", "none")


REMAT_HELP = (
    "'none', 'selective', 'full' or 'every_k' with k >= 1 (e.g. 'every_2')"
)


def parse_remat(remat):
    """Blocks per recomputed segment for a `remat` setting, or None for no block recompute.

    `"none"`: keep every activation. `"selective"`: keep the large matmul outputs
    and recompute the cheap rest (attention probabilities, GELU, dropout masks,
    LayerNorm) inside each block; see `keras_albert.layers.recompute`. `"full"`:
    recompute each block in the backward pass, keeping only block inputs.
    `"every_k"` (e.g. `"every_3"`): recompute segments of k blocks, keeping only
    every k-th block's input (Chen et al. 2016 pick k near sqrt(L)).

    >>> [parse_remat(name) for name in ("none", "selective", "full", "every_3")]
    [None, None, 1, 3]
    """
    if remat in ("none", "selective", None):
        return None
    if remat == "full":
        return 1
    if isinstance(remat, str) and remat.startswith("every_") and remat[6:].isdigit():
        if int(remat[6:]) >= 1:
            return int(remat[6:])
    raise ValueError(f"Unknown remat={remat!r}; expected {REMAT_HELP}.")


def layer_schedule(num_layers, num_groups, inner_group_num):
    """Lists the block applications of an ALBERT-style encoder, in order.

    Layer `l` belongs to group `int(l / num_layers * num_groups)`, the contiguous
    assignment of google-research/albert, and applies that group's `inner_group_num`
    blocks one after the other. Returns a list of `(layer, group, inner)` triples,
    `num_layers * inner_group_num` long.

    >>> layer_schedule(4, 2, 2)
    [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1), (3, 1, 0), (3, 1, 1)]
    """
    return [
        (layer, int(layer / num_layers * num_groups), inner)
        for layer in range(num_layers)
        for inner in range(inner_group_num)
    ]


@keras.saving.register_keras_serializable(package="keras_albert")
class TransformerStack(keras.layers.Layer):
    """Applies `num_layers` post-LayerNorm transformer blocks with optional sharing.

    Each block is a `SelfAttentionSublayer` followed by a `FeedForwardSublayer`.
    `sharing` says which halves are shared across the layers of a group (ALBERT
    paper, Table 4):

    - `"all"`: one set of weights per (group, inner) slot; ALBERT uses 1 group.
    - `"attention"`: attention shared per slot, feed-forward weights per layer.
    - `"ffn"`: feed-forward shared per slot, attention weights per layer.
    - `"none"`: every layer has its own weights (BERT); groups do not matter.

    Each half carries its own LayerNorm. Calling the stack returns the list of the
    hidden states after every block application (`num_layers * inner_group_num`
    tensors); the last one is the sequence output.

    Dropout is drawn statelessly from a seed advanced once per training call and
    folded with the block index, so each block can be recomputed exactly: `remat`
    (`"none"`, `"selective"`, `"full"`, `"every_k"`; see `parse_remat`) trades
    recomputation in the backward pass for not keeping activations: `"selective"`
    redoes only the cheap operations of each block, `"full"` whole blocks.

    Example:

    >>> stack = TransformerStack(num_layers=4, hidden_dim=8, num_heads=2, sharing="all")
    >>> outputs = stack(tf.random.normal([2, 5, 8]), tf.ones([2, 5], "int32"))
    >>> len(outputs), len(stack.attention_layers)
    (4, 1)
    """

    def __init__(
        self,
        num_layers,
        hidden_dim,
        num_heads,
        intermediate_dim=None,
        key_size=None,
        value_size=None,
        num_groups=1,
        inner_group_num=1,
        sharing="none",
        activation="gelu",
        dropout=0.0,
        attention_dropout=None,
        layer_norm_epsilon=1e-12,
        kernel_initializer="glorot_uniform",
        seed=None,
        remat="none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.remat = remat
        self.remat_segment = parse_remat(remat)
        if sharing not in SHARING_MODES:
            raise ValueError(f"Unknown sharing={sharing!r}; expected one of {SHARING_MODES}.")
        for name, value in (
            ("num_layers", num_layers),
            ("num_groups", num_groups),
            ("inner_group_num", inner_group_num),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if num_groups > num_layers:
            raise ValueError(
                f"num_groups ({num_groups}) cannot exceed num_layers ({num_layers})."
            )
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.key_size, self.value_size = head_sizes(hidden_dim, num_heads, key_size, value_size)
        self.intermediate_dim = intermediate_dim or 4 * hidden_dim
        self.num_groups = num_groups
        self.inner_group_num = inner_group_num
        self.sharing = sharing
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="dropout_seed")

        self.schedule = layer_schedule(num_layers, num_groups, inner_group_num)
        shares_attention = sharing in ("all", "attention")
        shares_ffn = sharing in ("all", "ffn")
        # Keys name the weight sets: ("group", g, i) when shared, ("layer", l, i) if not.
        self.attention_keys, self.feedforward_keys = [], []
        self.attention_layers, self.feedforward_layers = [], []
        self._block_indices = []
        for layer, group, inner in self.schedule:
            attention_key = ("group", group, inner) if shares_attention else ("layer", layer, inner)
            ffn_key = ("group", group, inner) if shares_ffn else ("layer", layer, inner)
            if attention_key not in self.attention_keys:
                self.attention_keys.append(attention_key)
                self.attention_layers.append(
                    SelfAttentionSublayer(
                        hidden_dim=hidden_dim,
                        num_heads=num_heads,
                        key_size=self.key_size,
                        value_size=self.value_size,
                        dropout=dropout,
                        attention_dropout=self.attention_dropout,
                        layer_norm_epsilon=layer_norm_epsilon,
                        kernel_initializer=self.kernel_initializer,
                        dtype=self.dtype_policy,
                        name=self._slot_name(attention_key, "attention"),
                    )
                )
            if ffn_key not in self.feedforward_keys:
                self.feedforward_keys.append(ffn_key)
                self.feedforward_layers.append(
                    FeedForwardSublayer(
                        hidden_dim=hidden_dim,
                        intermediate_dim=self.intermediate_dim,
                        activation=activation,
                        dropout=dropout,
                        layer_norm_epsilon=layer_norm_epsilon,
                        kernel_initializer=self.kernel_initializer,
                        dtype=self.dtype_policy,
                        name=self._slot_name(ffn_key, "ffn"),
                    )
                )
            self._block_indices.append(
                (self.attention_keys.index(attention_key), self.feedforward_keys.index(ffn_key))
            )

    def _slot_name(self, key, part):
        kind, index, inner = key
        suffix = f"_inner_{inner}" if self.inner_group_num > 1 else ""
        return f"{kind}_{index}{suffix}_{part}"

    def attention_layer(self, kind, index, inner=0):
        """The attention sublayer of `("group", g, i)` or `("layer", l, i)`."""
        return self.attention_layers[self.attention_keys.index((kind, index, inner))]

    def feedforward_layer(self, kind, index, inner=0):
        """The feed-forward sublayer of `("group", g, i)` or `("layer", l, i)`."""
        return self.feedforward_layers[self.feedforward_keys.index((kind, index, inner))]

    def build(self, input_shape):
        for layer in self.attention_layers + self.feedforward_layers:
            layer.build(input_shape)

    def _run_blocks(self, start, stop, hidden_states, input_mask, step_seed, selective=False):
        """Applies blocks `start` .. `stop - 1`; returns each one's output."""
        outputs = []
        for position in range(start, stop):
            attention_index, ffn_index = self._block_indices[position]
            seeds = [None, None]
            if step_seed is not None:
                block_seed = derive_seed(step_seed, position)
                seeds = [derive_seed(block_seed, 0), derive_seed(block_seed, 1)]
            hidden_states = self.attention_layers[attention_index](
                hidden_states, input_mask, seed=seeds[0], recompute=selective
            )
            hidden_states = self.feedforward_layers[ffn_index](
                hidden_states, seed=seeds[1], recompute=selective
            )
            outputs.append(hidden_states)
        return outputs

    def _recomputed_segment(self, start, stop, hidden_states, input_mask, step_seed):
        """Like `_run_blocks`, but keeps only the segment's input for the backward pass.

        `tf.recompute_grad` runs the segment again when gradients are needed. It is
        called with one positional tensor (keyword arguments break it inside
        `tf.function`), and dropout is stateless, so the recomputation draws the same
        masks as the forward pass and the gradients are exact.
        """

        def segment(hidden):
            # The integer mask and seed are captured, not arguments: they need no
            # gradient (and the tape warns when asked to watch integers).
            return self._run_blocks(start, stop, hidden, input_mask, step_seed)

        return list(tf.recompute_grad(segment)(hidden_states))

    def call(self, hidden_states, input_mask, training=None):
        use_dropout = bool(training) and (self.dropout > 0 or self.attention_dropout > 0)
        step_seed = None
        if use_dropout:
            step_seed = tf.cast(self.seed_generator.next(), tf.int32)
        # Recompute only serves backward passes: inference (and exported serving
        # graphs) runs the blocks plainly, with no custom-gradient functions.
        if self.remat_segment is None or not training:
            selective = bool(training) and self.remat == "selective"
            return self._run_blocks(
                0, len(self.schedule), hidden_states, input_mask, step_seed, selective
            )
        outputs = []
        for start in range(0, len(self.schedule), self.remat_segment):
            stop = min(start + self.remat_segment, len(self.schedule))
            outputs += self._recomputed_segment(
                start, stop, hidden_states, input_mask, step_seed
            )
            hidden_states = outputs[-1]
        return outputs

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return [tuple(input_shape)] * len(self.schedule)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_size": self.key_size,
                "value_size": self.value_size,
                "num_groups": self.num_groups,
                "inner_group_num": self.inner_group_num,
                "sharing": self.sharing,
                "activation": self.activation,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "seed": self.seed,
                "remat": self.remat,
            }
        )
        return config
