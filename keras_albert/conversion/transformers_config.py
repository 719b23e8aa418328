"""transformers configs <-> `Encoder` arguments, for ALBERT, BERT and DistilBERT.

Each family names its `config.json` keys differently (`hidden_size` / `dim`,
`num_hidden_layers` / `n_layers`, ...) and fixes some `Encoder` arguments by its
architecture (ALBERT shares all layers; DistilBERT has no token types and no
pooler). The tables below hold both, so that reading a config and writing one back
are the same mapping run in two directions.

>>> arguments = encoder_config_from_transformers({"model_type": "distilbert",
...     "vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64})
>>> arguments["num_segments"], arguments["use_pooler"]
(0, False)
"""

import warnings

from keras_albert.presets import check_config_keys

FAMILIES = ("albert", "bert", "distilbert")

# transformers activation names -> ours. "gelu" is the exact GELU in transformers;
# "gelu_new" (ALBERT) and its aliases are the tanh approximation.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "quick_gelu": "gelu_sigmoid",  # x * sigmoid(1.702 x)
    "relu": "relu",
}
# Ours -> the name written to config.json.
_TRANSFORMERS_ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": "gelu_new",
                             "gelu_sigmoid": "quick_gelu", "relu": "relu"}

_REQUIRED = object()
# Per family: (config.json key, `Encoder` argument, value when the key is absent). The
# defaults are transformers' own config defaults; `_REQUIRED` keys must be present.
_CONFIG_KEYS = {
    "albert": (
        ("vocab_size", "vocabulary_size", _REQUIRED),
        ("embedding_size", "embedding_dim", 128),
        ("hidden_size", "hidden_dim", _REQUIRED),
        ("num_hidden_layers", "num_layers", _REQUIRED),
        ("num_attention_heads", "num_heads", _REQUIRED),
        ("intermediate_size", "intermediate_dim", _REQUIRED),
        ("num_hidden_groups", "num_groups", 1),
        ("inner_group_num", "inner_group_num", 1),
        ("max_position_embeddings", "max_sequence_length", 512),
        ("type_vocab_size", "num_segments", 2),
        ("hidden_act", "activation", "gelu_new"),
        ("hidden_dropout_prob", "dropout", 0.0),
        ("attention_probs_dropout_prob", "attention_dropout", 0.0),
        ("layer_norm_eps", "layer_norm_epsilon", 1e-12),
        ("initializer_range", "initializer_range", 0.02),
    ),
    "bert": (
        ("vocab_size", "vocabulary_size", _REQUIRED),
        ("hidden_size", "hidden_dim", _REQUIRED),
        ("num_hidden_layers", "num_layers", _REQUIRED),
        ("num_attention_heads", "num_heads", _REQUIRED),
        ("intermediate_size", "intermediate_dim", _REQUIRED),
        ("max_position_embeddings", "max_sequence_length", 512),
        ("type_vocab_size", "num_segments", 2),
        ("hidden_act", "activation", "gelu"),
        ("hidden_dropout_prob", "dropout", 0.1),
        ("attention_probs_dropout_prob", "attention_dropout", 0.1),
        ("layer_norm_eps", "layer_norm_epsilon", 1e-12),
        ("initializer_range", "initializer_range", 0.02),
    ),
    "distilbert": (
        ("vocab_size", "vocabulary_size", _REQUIRED),
        ("dim", "hidden_dim", _REQUIRED),
        ("n_layers", "num_layers", _REQUIRED),
        ("n_heads", "num_heads", _REQUIRED),
        ("hidden_dim", "intermediate_dim", _REQUIRED),
        ("max_position_embeddings", "max_sequence_length", 512),
        ("activation", "activation", "gelu"),
        ("dropout", "dropout", 0.1),
        ("attention_dropout", "attention_dropout", 0.1),
        ("initializer_range", "initializer_range", 0.02),
    ),
}
# `Encoder` arguments each family's architecture fixes.
_FIXED_ARGUMENTS = {
    "albert": {"sharing": "all"},
    "bert": {"sharing": "none"},
    # DistilBERT has no token types and no pooler; its LayerNorm epsilon is
    # hard-coded to 1e-12 in transformers' code.
    "distilbert": {"sharing": "none", "num_segments": 0, "use_pooler": False,
                   "layer_norm_epsilon": 1e-12},
}

# `Encoder` arguments that do not change the weights and may be overridden on load.
RUNTIME_OPTIONS = ("activation", "dropout", "attention_dropout", "seed", "remat", "dtype",
                   "name")


def _activation(name):
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"Unsupported activation {name!r} in the transformers config; supported: "
            f"{sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]


def _as_dict(config):
    return dict(config) if isinstance(config, dict) else config.to_dict()


def check_family(model_type):
    """Returns `model_type` if it is a supported family, else raises a ValueError."""
    if model_type not in FAMILIES:
        raise ValueError(
            f"Unsupported transformers model_type {model_type!r}; expected 'albert', "
            "'bert' or 'distilbert'."
        )
    return model_type


def transformers_family(config):
    """The supported family of a transformers config (object or dict).

    >>> transformers_family({"model_type": "albert"})
    'albert'
    """
    return check_family(_as_dict(config).get("model_type"))


def encoder_config_from_transformers(config):
    """Maps a transformers config (object or dict) to `Encoder` arguments.

    >>> encoder_config_from_transformers({"model_type": "bert", "vocab_size": 100,
    ...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "intermediate_size": 64, "hidden_act": "gelu"})["sharing"]
    'none'
    """
    config = _as_dict(config)
    family = check_family(config.get("model_type"))
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            "Only absolute position embeddings are supported; the config has "
            f"position_embedding_type={config['position_embedding_type']!r}."
        )
    keys = _CONFIG_KEYS[family]
    missing = [key for key, _, default in keys if default is _REQUIRED and key not in config]
    if missing:
        raise ValueError(f"The {family} config lacks the required keys {missing}.")
    arguments = {argument: config.get(key, default) for key, argument, default in keys}
    arguments["activation"] = _activation(arguments["activation"])
    arguments.update(_FIXED_ARGUMENTS[family])
    return arguments


def encoder_family(encoder):
    """The transformers family an `Encoder`'s layout corresponds to.

    ALBERT shares all layers and projects E -> H; BERT and DistilBERT share nothing
    and have E = H (DistilBERT without token types).

    >>> from keras_albert.models.encoder import Encoder
    >>> encoder_family(Encoder.from_preset("bert_tiny"))
    'bert'
    """
    if encoder.sharing == "all" and encoder.embedding_dim != encoder.hidden_dim:
        family = "albert"
    elif (
        encoder.sharing == "none"
        and encoder.inner_group_num == 1
        and encoder.embedding_dim == encoder.hidden_dim
    ):
        family = "bert" if encoder.num_segments else "distilbert"
    else:
        family = None
    head_size = encoder.hidden_dim / encoder.num_heads
    if family and head_size == encoder.key_size == encoder.value_size:
        return family
    if family:
        raise ValueError(
            f"transformers' {family} ties each head's query/key and value size to "
            f"hidden_dim / num_heads = {encoder.hidden_dim} / {encoder.num_heads}; this "
            f"encoder has key_size={encoder.key_size} and value_size={encoder.value_size}, "
            "which it cannot express."
        )
    raise ValueError(
        f"This encoder (sharing={encoder.sharing!r}, embedding_dim={encoder.embedding_dim}, "
        f"hidden_dim={encoder.hidden_dim}, inner_group_num={encoder.inner_group_num}) has "
        "no transformers equivalent: ALBERT shares all layers with embedding_dim < "
        "hidden_dim; BERT and DistilBERT share none with embedding_dim == hidden_dim."
    )


def transformers_config_from_encoder(encoder, architecture=None):
    """The transformers `config.json` dict describing `encoder` (inverse of
    `encoder_config_from_transformers`).

    >>> from keras_albert.models.encoder import Encoder
    >>> transformers_config_from_encoder(Encoder.from_preset("albert_tiny"))["hidden_act"]
    'gelu_new'
    """
    family = encoder_family(encoder)
    arguments = encoder.get_config()
    wrong = {
        argument: arguments[argument]
        for argument, value in _FIXED_ARGUMENTS[family].items()
        if arguments[argument] != value
    }
    if wrong:
        raise ValueError(f"transformers' {family} requires {_FIXED_ARGUMENTS[family]}; "
                         f"this encoder has {wrong}.")
    if arguments["activation"] not in _TRANSFORMERS_ACTIVATIONS:
        raise ValueError(f"Activation {arguments['activation']!r} has no transformers name; "
                         f"supported: {sorted(_TRANSFORMERS_ACTIVATIONS)}.")
    config = {"model_type": family}
    if architecture:
        config["architectures"] = [architecture]
    for key, argument, _ in _CONFIG_KEYS[family]:
        value = arguments[argument]
        config[key] = _TRANSFORMERS_ACTIVATIONS[value] if argument == "activation" else value
    return config


def apply_overrides(arguments, overrides, source):
    """Applies `overrides` to `Encoder` arguments read from a checkpoint.

    Only `RUNTIME_OPTIONS` may change: the rest is fixed by the weights. Forcing an
    activation other than the checkpoint's warns, since outputs then differ from the
    original model (about 1e-3 between the exact and the tanh GELU).

    >>> apply_overrides({"activation": "gelu", "dropout": 0.1}, {"dropout": 0.0},
    ...                 "bert checkpoint")
    {'activation': 'gelu', 'dropout': 0.0}
    """
    check_config_keys(overrides)  # a typo is named as such, with the valid keys
    fixed = sorted(set(overrides) - set(RUNTIME_OPTIONS))
    if fixed:
        raise ValueError(
            f"Cannot override {fixed}: the checkpoint's weights fix them. Only "
            f"{list(RUNTIME_OPTIONS)} can be changed on load."
        )
    forced = overrides.get("activation", arguments["activation"])
    if forced != arguments["activation"]:
        warnings.warn(
            f"The {source} uses activation={arguments['activation']!r}, but "
            f"activation={forced!r} was forced: outputs will differ from the original "
            "model (about 1e-3 between the exact and the tanh GELU).",
            UserWarning,
            stacklevel=3,
        )
    return {**arguments, **overrides}
