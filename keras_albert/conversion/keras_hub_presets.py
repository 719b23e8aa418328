"""keras-hub presets on disk (`backbone.save_to_preset(dir)`) -> our models.

keras-hub's own loader rebuilds the `AlbertBackbone`, `BertBackbone` or
`DistilBertBackbone`; its variables are then paired with ours layer by layer. Both
sides keep Keras kernels as [in, ..., out], so a tensor only changes shape where
keras-hub splits attention heads into their own axis ([H, heads, head_dim]).
Every keras-hub variable must be paired exactly once and every variable of ours
filled, or nothing is loaded.
"""

import json
import pathlib

import keras
import numpy as np

from keras_albert.conversion.strict_loading import assign_strictly
from keras_albert.conversion.transformers_config import apply_overrides
from keras_albert.models.encoder import Encoder

BACKBONES = {"AlbertBackbone": "albert", "BertBackbone": "bert",
             "DistilBertBackbone": "distilbert"}
# keras-hub activation functions (by name) -> ours. keras-hub's ALBERT and BERT use
# the tanh GELU, its DistilBERT the exact one; the converted encoder does the same,
# so that it reproduces the backbone.
_ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": "gelu_approximate", "relu": "relu"}


def is_keras_hub_preset(directory):
    """True if `directory` looks like a keras-hub preset (config.json with a class_name)."""
    config_path = pathlib.Path(directory) / "config.json"
    if not config_path.exists():
        return False
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return isinstance(config, dict) and "class_name" in config and "model_type" not in config


def _backbone_class_name(directory):
    config = json.loads((pathlib.Path(directory) / "config.json").read_text(encoding="utf-8"))
    name = config.get("class_name")
    if name not in BACKBONES:
        raise ValueError(
            f"{directory} is a keras-hub preset of {name!r}; supported backbones are "
            f"{sorted(BACKBONES)}."
        )
    return name


def _flat_blocks(backbone):
    layers = backbone.transformer_layers
    # AlbertBackbone keeps a list per group; the others a flat list.
    return [layer for item in layers for layer in (item if isinstance(item, list) else [item])]


def encoder_config_from_keras_hub(backbone, family):
    """`Encoder` arguments reproducing a keras-hub backbone."""
    config = backbone.get_config()
    blocks = _flat_blocks(backbone)
    activations = {getattr(block.activation, "__name__", repr(block.activation))
                   for block in blocks}
    if len(activations) != 1 or next(iter(activations)) not in _ACTIVATIONS:
        raise ValueError(f"Unsupported keras-hub activation(s) {sorted(activations)}; "
                         f"supported: {sorted(_ACTIVATIONS)}.")
    epsilons = {backbone.embeddings_layer_norm.epsilon} | {
        block.layer_norm_epsilon for block in blocks
    }
    if len(epsilons) != 1:
        raise ValueError(f"The backbone mixes LayerNorm epsilons {sorted(epsilons)}.")
    arguments = dict(
        vocabulary_size=config["vocabulary_size"],
        hidden_dim=config["hidden_dim"],
        num_layers=config["num_layers"],
        num_heads=config["num_heads"],
        intermediate_dim=config["intermediate_dim"],
        max_sequence_length=config["max_sequence_length"],
        activation=_ACTIVATIONS[activations.pop()],
        dropout=config["dropout"],
        attention_dropout=config["dropout"],
        layer_norm_epsilon=epsilons.pop(),
        sharing="none",
    )
    if family == "albert":
        arguments.update(
            embedding_dim=config["embedding_dim"],
            num_groups=config["num_groups"],
            inner_group_num=config["num_inner_repetitions"],
            num_segments=config["num_segments"],
            sharing="all",
        )
    elif family == "bert":
        arguments.update(num_segments=config["num_segments"])
    else:
        arguments.update(num_segments=0, use_pooler=False)
    return arguments


def _dense_pairs(theirs, ours):
    yield theirs.kernel, ours.kernel
    yield theirs.bias, ours.bias


def _norm_pairs(theirs, ours):
    yield theirs.gamma, ours.gamma
    yield theirs.beta, ours.beta


def _block_pairs(block, attention, ffn):
    """A keras-hub `TransformerEncoder` against our attention and feed-forward halves."""
    heads = block._self_attention_layer
    for theirs, ours in ((heads.query_dense, attention.query), (heads.key_dense, attention.key),
                         (heads.value_dense, attention.value),
                         (heads.output_dense, attention.output_dense)):
        yield from _dense_pairs(theirs, ours)
    yield from _norm_pairs(block._self_attention_layer_norm, attention.layer_norm)
    yield from _dense_pairs(block._feedforward_intermediate_dense, ffn.intermediate)
    yield from _dense_pairs(block._feedforward_output_dense, ffn.output_dense)
    yield from _norm_pairs(block._feedforward_layer_norm, ffn.layer_norm)


def _merge_head_axes(value, shape):
    """keras-hub's attention kernels [H, heads, head_dim] (query, key, value) and
    [heads, head_dim, H] (output), and biases [heads, head_dim], as our [H, H] and [H].

    The element order is already ours; any other shape is left for the strict
    loader to report.
    """
    splits_heads = (
        (value.ndim == 3 and len(shape) == 2
         and shape[0] in (value.shape[0], value.shape[0] * value.shape[1]))
        or (value.ndim == 2 and len(shape) == 1)
    )
    if splits_heads and value.size == int(np.prod(shape)):
        return value.reshape(shape)
    return value


def keras_hub_pairs(backbone, encoder, family):
    """Yields `(keras-hub variable, our variable)` for every weight of `backbone`."""
    embedding = encoder.embedding
    yield backbone.token_embedding.embeddings, embedding.word_embeddings.embeddings
    # DistilBertBackbone keeps its position table in a TokenAndPositionEmbedding.
    positions = backbone.embeddings if family == "distilbert" else backbone
    yield positions.position_embedding.position_embeddings, embedding.position_embeddings
    if family != "distilbert":
        yield backbone.segment_embedding.embeddings, embedding.token_type_embeddings.embeddings
    yield from _norm_pairs(backbone.embeddings_layer_norm, embedding.layer_norm)
    stack = encoder.transformer
    if family == "albert":
        yield from _dense_pairs(backbone.embeddings_projection, embedding.projection)
        for group in range(backbone.num_groups):
            for inner in range(backbone.num_inner_repetitions):
                yield from _block_pairs(
                    backbone.get_layer(f"group_{group}_inner_layer_{inner}"),
                    stack.attention_layer("group", group, inner),
                    stack.feedforward_layer("group", group, inner),
                )
    else:
        for index in range(backbone.num_layers):
            yield from _block_pairs(
                backbone.get_layer(f"transformer_layer_{index}"),
                stack.attention_layer("layer", index),
                stack.feedforward_layer("layer", index),
            )
    if family != "distilbert":
        yield from _dense_pairs(backbone.pooled_dense, encoder.pooler)


def encoder_from_keras_hub(backbone, **overrides):
    """Builds an `Encoder` reproducing a keras-hub backbone, strictly.

    Example:

    >>> import keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2,
    ...     num_heads=2, hidden_dim=16, intermediate_dim=32)
    >>> encoder_from_keras_hub(backbone).count_params() == backbone.count_params()
    True
    """
    class_name = type(backbone).__name__
    if class_name not in BACKBONES:
        raise ValueError(f"Unsupported keras-hub backbone {class_name}; supported: "
                         f"{sorted(BACKBONES)}.")
    family = BACKBONES[class_name]
    description = f"keras-hub {class_name}"
    arguments = apply_overrides(encoder_config_from_keras_hub(backbone, family), overrides,
                                description)
    encoder = Encoder(**arguments)
    targets, source = [], {}
    for theirs, ours in keras_hub_pairs(backbone, encoder, family):
        source[theirs.path] = _merge_head_axes(keras.ops.convert_to_numpy(theirs),
                                               tuple(ours.shape))
        targets.append((theirs.path, ours, False))
    # Backbone weights no pair consumed show up as tensors without a place.
    for weight in backbone.weights:
        source.setdefault(weight.path, keras.ops.convert_to_numpy(weight))
    return assign_strictly(encoder, targets, source, description)


def load_keras_hub_preset(directory, heads=False, **overrides):
    """Builds an `Encoder` from a keras-hub backbone preset saved on disk.

    Args:
        directory: written by `backbone.save_to_preset(directory)`.
        heads: must be False: backbone presets have no pretraining heads.
        **overrides: runtime options such as `dropout` or `remat`.

    Example:

    >>> encoder = load_keras_hub_preset("albert_preset_dir")  # doctest: +SKIP
    """
    import keras_hub

    directory = pathlib.Path(directory)
    class_name = _backbone_class_name(directory)
    if heads:
        raise ValueError(f"{directory} is a keras-hub {class_name} preset, which has no "
                         "pretraining heads; load it with heads=False.")
    backbone = keras_hub.models.Backbone.from_preset(str(directory))
    return encoder_from_keras_hub(backbone, **overrides)


def tokenizer_from_preset(directory):
    """The tokenizer saved in a keras-hub preset (`assets/tokenizer/`), or None."""
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    directory = pathlib.Path(directory)
    assets = directory / "assets" / "tokenizer"
    settings = {}
    if (directory / "tokenizer.json").exists():
        settings = json.loads((directory / "tokenizer.json").read_text()).get("config", {})
    if (assets / "vocabulary.spm").exists():
        return SentencePieceTokenizer(str(assets / "vocabulary.spm"))
    if (assets / "vocabulary.txt").exists():
        lowercase = bool(settings.get("lowercase", True))
        return WordPieceTokenizer(str(assets / "vocabulary.txt"), lowercase=lowercase,
                                  strip_accents=lowercase)
    return None
