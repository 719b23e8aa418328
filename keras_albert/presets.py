"""Named encoder configurations: the ALBERT paper's Table 1, BERT, DistilBERT, tiny ones.

Parameter counts include the pooler and match transformers and keras-hub for the
same configuration (vocabulary 30,000 for ALBERT, 30,522 for BERT/DistilBERT, 512
positions, 2 token types). The ALBERT paper's Table 3/4 variants come from overrides:
`preset_config("albert_base", embedding_dim=64)`, `sharing="none"`, ...
"""

# The keys a configuration may hold: the `Encoder` constructor arguments and Keras's
# `name` and `trainable`, i.e. the keys of `Encoder.get_config()` (tests/test_presets.py
# checks them against `Encoder`). Written out because the presets import no model.
CONFIG_KEYS = (
    "activation", "attention_dropout", "dropout", "dtype", "embedding_dim", "hidden_dim",
    "initializer_range", "inner_group_num", "intermediate_dim", "key_size", "layer_norm_epsilon",
    "max_sequence_length", "name", "num_groups", "num_heads", "num_layers", "num_segments",
    "remat", "seed", "sharing", "trainable", "use_pooler", "value_size", "vocabulary_size",
)

ALBERT_VOCABULARY_SIZE = 30000
BERT_VOCABULARY_SIZE = 30522

_ALBERT = dict(
    vocabulary_size=ALBERT_VOCABULARY_SIZE,
    embedding_dim=128,
    sharing="all",
    activation="gelu_approximate",
    dropout=0.0,  # ALBERT v2 checkpoints were trained without dropout.
)
_BERT = dict(vocabulary_size=BERT_VOCABULARY_SIZE, sharing="none", activation="gelu", dropout=0.1)
_DISTILBERT = dict(_BERT, num_segments=0, use_pooler=False)

# Each preset: (family, description, config). The family picks the tokenizer:
# ALBERT uses SentencePiece, BERT and DistilBERT WordPiece.
PRESETS = {
    "albert_base": ("albert", "ALBERT-base: L12 H768 E128, all layers shared (12M)",
                    dict(_ALBERT, hidden_dim=768, num_layers=12, num_heads=12)),
    "albert_large": ("albert", "ALBERT-large: L24 H1024 E128, all shared (18M)",
                     dict(_ALBERT, hidden_dim=1024, num_layers=24, num_heads=16)),
    # Released xlarge checkpoints use 16 heads (the paper's rule H/64 would give 32);
    # the head count does not change the parameter count.
    "albert_xlarge": ("albert", "ALBERT-xlarge: L24 H2048 E128, all shared (60M)",
                      dict(_ALBERT, hidden_dim=2048, num_layers=24, num_heads=16)),
    "albert_xxlarge": ("albert", "ALBERT-xxlarge: L12 H4096 E128, FFN 16384, 64 heads (223M)",
                       dict(_ALBERT, hidden_dim=4096, num_layers=12, num_heads=64)),
    "bert_base": ("bert", "BERT-base uncased: L12 H768, no sharing (110M)",
                  dict(_BERT, hidden_dim=768, num_layers=12, num_heads=12)),
    "bert_large": ("bert", "BERT-large uncased: L24 H1024, no sharing (335M)",
                   dict(_BERT, hidden_dim=1024, num_layers=24, num_heads=16)),
    "distilbert_base": ("distilbert", "DistilBERT-base: L6 H768, no token types, no pooler (66M)",
                        dict(_DISTILBERT, hidden_dim=768, num_layers=6, num_heads=12)),
    # Tiny configurations for tests and demos: seconds to build and run.
    "albert_tiny": ("albert", "tiny ALBERT for tests: L4 H64 E32, 2 groups x 2 inner blocks",
                    dict(_ALBERT, hidden_dim=64, num_layers=4, num_heads=4, embedding_dim=32,
                         num_groups=2, inner_group_num=2, max_sequence_length=128)),
    "bert_tiny": ("bert", "tiny BERT for tests: L2 H64",
                  dict(_BERT, hidden_dim=64, num_layers=2, num_heads=4,
                       max_sequence_length=128)),
    "distilbert_tiny": ("distilbert", "tiny DistilBERT-style student for tests: L2 H64",
                        dict(_DISTILBERT, hidden_dim=64, num_layers=2, num_heads=4,
                             max_sequence_length=128)),
}


def check_config_keys(keys):
    """Raises `ValueError` naming those of `keys` that are not `CONFIG_KEYS`.

    A functional Keras model drops constructor arguments it does not know without a
    word, so a misspelt override (`key_dim=128`) would build the preset unchanged.

    >>> check_config_keys(["hidden_dim", "key_dim"])
    Traceback (most recent call last):
    ...
    ValueError: Unknown Encoder configuration key(s) ['key_dim']. Valid keys: ...
    """
    unknown = sorted(set(keys) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown Encoder configuration key(s) {unknown}. Valid keys: "
            f"{', '.join(sorted(CONFIG_KEYS))}."
        )


def _check_name(name):
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets: {', '.join(sorted(PRESETS))}."
        )


def preset_config(name, /, **overrides):
    """Returns the `Encoder` constructor arguments of preset `name`, with overrides.

    An override that is not an `Encoder` argument raises `ValueError` listing the
    valid keys. The preset name is positional only, so `name=` names the encoder.

    >>> preset_config("albert_base")["embedding_dim"]
    128
    >>> preset_config("albert_base", embedding_dim=64, sharing="none")["embedding_dim"]
    64
    >>> preset_config("albert_base", key_dim=128)
    Traceback (most recent call last):
    ...
    ValueError: Unknown Encoder configuration key(s) ['key_dim']. Valid keys: ...
    """
    _check_name(name)
    check_config_keys(overrides)
    config = dict(PRESETS[name][2])
    config.update(overrides)
    return config


def preset_family(name):
    """`"albert"`, `"bert"` or `"distilbert"`: which tokenizer and checkpoints fit."""
    _check_name(name)
    return PRESETS[name][0]


def preset_description(name):
    _check_name(name)
    return PRESETS[name][1]


def list_presets():
    """The preset names, sorted."""
    return sorted(PRESETS)
