"""Original google-research/albert TF1 checkpoints -> our models.

The checkpoint's variables are named after the original `modeling.py`
(`bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel`, ...),
optionally under a TF Hub `module/` prefix, and saved next to an `albert_config.json`.
The names are derived from transformers' ALBERT names (the single table in
`transformers_names.py`) by the renaming rules below, so every variable of the
model still has exactly one source tensor. Optimizer slots (`*/adam_m`, `*/adam_v`)
and `global_step` are not weights and are skipped.
"""

import json
import pathlib
import re

from keras_albert.conversion.strict_loading import CheckpointNaming, build_from_checkpoint
from keras_albert.conversion.transformers_config import encoder_config_from_transformers

CONFIG_FILE = "albert_config.json"
HUB_PREFIX = "module/"
_NOT_WEIGHTS = ("global_step", "_CHECKPOINTABLE_OBJECT_GRAPH")
_OPTIMIZER_SLOTS = ("/adam_m", "/adam_v")

_BLOCK = r"encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\."
_TF1_BLOCK = r"bert/encoder/transformer/group_\1/inner_group_\2/"
# transformers ALBERT name (without the `albert.` prefix) -> TF1 name. A trailing
# `weight`/`bias` becomes `kernel`/`bias`, or `gamma`/`beta` in LayerNorm scopes.
_RENAMES = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"embeddings\.(\w+_embeddings)\.weight", r"bert/embeddings/\1"),
        (r"embeddings\.LayerNorm\.(\w+)", r"bert/embeddings/LayerNorm/\1"),
        (r"encoder\.embedding_hidden_mapping_in\.(\w+)",
         r"bert/encoder/embedding_hidden_mapping_in/\1"),
        (_BLOCK + r"attention\.(query|key|value)\.(\w+)", _TF1_BLOCK + r"attention_1/self/\3/\4"),
        (_BLOCK + r"attention\.dense\.(\w+)", _TF1_BLOCK + r"attention_1/output/dense/\3"),
        (_BLOCK + r"attention\.LayerNorm\.(\w+)", _TF1_BLOCK + r"LayerNorm/\3"),
        (_BLOCK + r"ffn\.(\w+)", _TF1_BLOCK + r"ffn_1/intermediate/dense/\3"),
        (_BLOCK + r"ffn_output\.(\w+)", _TF1_BLOCK + r"ffn_1/intermediate/output/dense/\3"),
        (_BLOCK + r"full_layer_layer_norm\.(\w+)", _TF1_BLOCK + r"LayerNorm_1/\3"),
        (r"pooler\.(\w+)", r"bert/pooler/dense/\1"),
        (r"predictions\.dense\.(\w+)", r"cls/predictions/transform/dense/\1"),
        (r"predictions\.LayerNorm\.(\w+)", r"cls/predictions/transform/LayerNorm/\1"),
        (r"predictions\.bias", "cls/predictions/output_bias"),
        # The SOP layer keeps a [2, H] `output_weights` matrix, as torch does.
        (r"sop_classifier\.classifier\.weight", "cls/seq_relationship/output_weights"),
        (r"sop_classifier\.classifier\.bias", "cls/seq_relationship/output_bias"),
    )
)


def tf1_name(name):
    """The original ALBERT TF1 name of a transformers ALBERT tensor name.

    >>> tf1_name("encoder.albert_layer_groups.1.albert_layers.0.attention.query.weight")
    'bert/encoder/transformer/group_1/inner_group_0/attention_1/self/query/kernel'
    >>> tf1_name("encoder.albert_layer_groups.0.albert_layers.0.full_layer_layer_norm.bias")
    'bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta'
    """
    for pattern, template in _RENAMES:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        scope, _, leaf = match.expand(template).rpartition("/")
        if leaf in ("weight", "bias"):
            layer_norm = scope.rpartition("/")[2].startswith("LayerNorm")
            leaf = {"weight": "gamma" if layer_norm else "kernel",
                    "bias": "beta" if layer_norm else "bias"}[leaf]
        return f"{scope}/{leaf}"
    raise KeyError(f"No original ALBERT name for the transformers tensor {name!r}.")


class TF1AlbertNaming(CheckpointNaming):
    """Names of google-research/albert's `modeling.py` and `run_pretraining.py`."""

    def __init__(self):
        super().__init__("albert")
        self.mlm_prefix = "cls/predictions/"
        self.sentence_prefix = "cls/seq_relationship/"
        self.pooler_prefix = "bert/pooler/"

    def target(self, name, transpose):
        name = tf1_name(name)
        # TF1 kernels are [in, out] like Keras'; only `output_weights` is [out, in].
        return name, transpose and not name.endswith("/kernel")


def encoder_config_from_albert_config(config):
    """`Encoder` arguments from an original `albert_config.json` dict.

    >>> encoder_config_from_albert_config({"vocab_size": 100, "embedding_size": 16,
    ...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "intermediate_size": 64, "hidden_act": "gelu"})["activation"]
    'gelu_approximate'
    """
    for key, default in (("net_structure_type", 0), ("gap_size", 0),
                         ("num_memory_blocks", 0), ("down_scale_factor", 1)):
        if config.get(key, default) != default:
            raise ValueError(f"{CONFIG_FILE} sets {key}={config[key]!r}; only the standard "
                             f"ALBERT architecture ({key}={default}) is supported.")
    activation = config.get("hidden_act", "gelu")
    # The original modeling.py's `gelu` is the tanh approximation (transformers calls
    # it gelu_new); the key names are otherwise transformers' own.
    activation = {"gelu": "gelu_new"}.get(activation, activation)
    return encoder_config_from_transformers(
        {**config, "model_type": "albert", "hidden_act": activation}
    )


def find_checkpoint(path):
    """`(checkpoint prefix, albert_config.json path)` for a checkpoint directory or prefix.

    A directory may hold a `checkpoint` index file, a single `*.index` checkpoint, or
    a TF1 Hub module's `variables/variables`; the config is looked for beside the
    checkpoint and in the directory.
    """
    import tensorflow as tf

    path = pathlib.Path(path)
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            indexes = sorted(path.glob("*.index")) or sorted(path.glob("variables/*.index"))
            if len(indexes) != 1:
                raise FileNotFoundError(
                    f"{path} holds {len(indexes)} TF checkpoints (*.index files); pass the "
                    "checkpoint prefix, e.g. DIR/model.ckpt-best."
                )
            prefix = str(indexes[0])[: -len(".index")]
        directory = path
    else:
        if not pathlib.Path(f"{path}.index").exists():
            raise FileNotFoundError(f"{path} is neither a directory nor a TF checkpoint "
                                    f"prefix ({path}.index does not exist).")
        prefix, directory = str(path), path.parent
    prefix_dir = pathlib.Path(prefix).parent
    for candidate in (prefix_dir / CONFIG_FILE, directory / CONFIG_FILE,
                      prefix_dir.parent / CONFIG_FILE):
        if candidate.exists():
            return prefix, candidate
    raise FileNotFoundError(
        f"No {CONFIG_FILE} beside the checkpoint {prefix}; the original ALBERT "
        "checkpoints ship one (vocab_size, embedding_size, hidden_size, ...)."
    )


def read_tf1_checkpoint(prefix):
    """`{name: array}` of a TF1 checkpoint: `module/` prefix stripped, optimizer slots
    and `global_step` left out.

    Example:

    >>> tensors = read_tf1_checkpoint("albert_base/model.ckpt-best")  # doctest: +SKIP
    >>> tensors["bert/embeddings/word_embeddings"].shape  # doctest: +SKIP
    (30000, 128)
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"Cannot read the TF checkpoint {prefix}: {error}") from error
    tensors = {}
    for original in sorted(reader.get_variable_to_shape_map()):
        name = original[len(HUB_PREFIX):] if original.startswith(HUB_PREFIX) else original
        if name in _NOT_WEIGHTS or name.endswith(_OPTIMIZER_SLOTS):
            continue
        if name in tensors:
            raise ValueError(f"The checkpoint has both {name!r} and {original!r}.")
        tensors[name] = reader.get_tensor(original)
    return tensors


def load_tf1_albert(path, heads=False, **overrides):
    """Builds our model from an original google-research/albert TF1 checkpoint.

    Args:
        path: the checkpoint directory or prefix; `albert_config.json` beside it.
        heads: False for an `Encoder`; True for a `PretrainingModel` with the
            checkpoint's masked-LM (`cls/predictions`) and SOP
            (`cls/seq_relationship`) heads.
        **overrides: runtime options such as `dropout` or `remat`.

    Example:

    >>> model = load_tf1_albert("albert_base", heads=True)  # doctest: +SKIP
    """
    prefix, config_path = find_checkpoint(path)
    config = json.loads(pathlib.Path(config_path).read_text(encoding="utf-8"))
    return build_from_checkpoint(
        encoder_config_from_albert_config(config),
        read_tf1_checkpoint(prefix),
        TF1AlbertNaming(),
        heads=heads,
        description=f"ALBERT TF1 checkpoint {prefix}",
        **overrides,
    )


def tokenizer_beside_checkpoint(path):
    """The SentencePiece tokenizer shipped with an original checkpoint, or None.

    google-research/albert ships `30k-clean.model` (TF Hub modules keep it in
    `assets/`); `spiece.model` is the Hugging Face name. Text is lowercased, as the
    released models were trained (`do_lower_case=True`).
    """
    from keras_albert.tokenizers import SentencePieceTokenizer

    path = pathlib.Path(path)
    directory = path if path.is_dir() else path.parent
    for name in ("spiece.model", "30k-clean.model", "assets/30k-clean.model"):
        if (directory / name).exists():
            return SentencePieceTokenizer(str(directory / name))
    return None
