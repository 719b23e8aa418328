"""Weight transfer between our models and transformers' ALBERT, BERT and DistilBERT.

The target generators in this module are the single source of truth for parameter
names: each yields `(transformers name, our variable, transpose)` for every variable
of an `Encoder` (and of a `PretrainingModel`'s masked-LM and sentence heads). The other
formats translate onto these names: original ALBERT TF1 checkpoints rename them
(`tf1_albert.py`), keras-hub backbones are read out under them (`keras_hub_presets.py`),
and Hugging Face directories are written with them (`huggingface.py`).

Loading is strict: every source tensor must land in exactly one variable, every
variable must receive a value, and shapes must agree. Anything else is refused before
a single variable is written, so a model is never half loaded.
"""

import warnings
from typing import NamedTuple, Optional

import keras
import numpy as np

from keras_albert.models.encoder import Encoder

FAMILIES = ("albert", "bert", "distilbert")

# Buffers transformers keeps in some state dicts; they are not weights.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
# Task models (AlbertForPreTraining, ...) keep the encoder under this attribute.
_MODEL_PREFIXES = {"albert": "albert.", "bert": "bert.", "distilbert": "distilbert."}

# transformers activation names -> ours. "gelu" is the exact GELU in transformers;
# "gelu_new" (ALBERT) and its aliases are the tanh approximation.
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
}
# Ours -> the name written to config.json.
_TRANSFORMERS_ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": "gelu_new", "relu": "relu"}

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


class _Heads(NamedTuple):
    """transformers names of a family's pretraining heads."""

    mlm_prefix: str  # every masked-LM tensor name starts with it
    mlm_dense: str
    mlm_norm: str
    mlm_bias: str
    sentence: Optional[str]  # the SOP / NSP linear layer, or None
    # Tied copies in task state dicts -> the (unprefixed) tensor they equal.
    tied: dict
    # transformers classes for (encoder only, masked-LM, masked-LM + sentence head).
    architectures: tuple


_HEADS = {
    "albert": _Heads(
        "predictions.", "predictions.dense", "predictions.LayerNorm", "predictions.bias",
        sentence="sop_classifier.classifier",
        tied={"predictions.decoder.weight": "embeddings.word_embeddings.weight",
              "predictions.decoder.bias": "predictions.bias"},
        architectures=("AlbertModel", "AlbertForMaskedLM", "AlbertForPreTraining"),
    ),
    "bert": _Heads(
        "cls.predictions.", "cls.predictions.transform.dense",
        "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
        sentence="cls.seq_relationship",
        tied={"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
              "cls.predictions.decoder.bias": "cls.predictions.bias"},
        architectures=("BertModel", "BertForMaskedLM", "BertForPreTraining"),
    ),
    "distilbert": _Heads(
        "vocab_", "vocab_transform", "vocab_layer_norm", "vocab_projector.bias",
        sentence=None,
        tied={"vocab_projector.weight": "embeddings.word_embeddings.weight"},
        architectures=("DistilBertModel", "DistilBertForMaskedLM", None),
    ),
}


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

    >>> encoder_family(Encoder.from_preset("bert_tiny"))
    'bert'
    """
    if encoder.sharing == "all" and encoder.embedding_dim != encoder.hidden_dim:
        return "albert"
    if (
        encoder.sharing == "none"
        and encoder.inner_group_num == 1
        and encoder.embedding_dim == encoder.hidden_dim
    ):
        return "bert" if encoder.num_segments else "distilbert"
    raise ValueError(
        f"This encoder (sharing={encoder.sharing!r}, embedding_dim={encoder.embedding_dim}, "
        f"hidden_dim={encoder.hidden_dim}, inner_group_num={encoder.inner_group_num}) has "
        "no transformers equivalent: ALBERT shares all layers with embedding_dim < "
        "hidden_dim; BERT and DistilBERT share none with embedding_dim == hidden_dim."
    )


def transformers_config_from_encoder(encoder, architecture=None):
    """The transformers `config.json` dict describing `encoder` (inverse of
    `encoder_config_from_transformers`).

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
    """
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


# === Target generators: the names, one family at a time ===


def _dense(name, layer):
    # torch Linear weights are [out, in]; Keras Dense kernels are [in, out].
    yield f"{name}.weight", layer.kernel, True
    yield f"{name}.bias", layer.bias, False


def _norm(name, layer):
    yield f"{name}.weight", layer.gamma, False
    yield f"{name}.bias", layer.beta, False


def _embedding_targets(encoder, projection_name=None):
    embedding = encoder.embedding
    yield "embeddings.word_embeddings.weight", embedding.word_embeddings.embeddings, False
    yield "embeddings.position_embeddings.weight", embedding.position_embeddings, False
    if embedding.token_type_embeddings is not None:
        yield (
            "embeddings.token_type_embeddings.weight",
            embedding.token_type_embeddings.embeddings,
            False,
        )
    yield from _norm("embeddings.LayerNorm", embedding.layer_norm)
    if embedding.projection is not None:
        if projection_name is None:
            raise ValueError(
                "This checkpoint family has no embedding projection (E must equal H)."
            )
        yield from _dense(projection_name, embedding.projection)


def _albert_targets(encoder):
    yield from _embedding_targets(encoder, "encoder.embedding_hidden_mapping_in")
    stack = encoder.transformer
    if stack.sharing != "all":
        raise ValueError("transformers' ALBERT shares all parameters; got sharing="
                         f"{stack.sharing!r}.")
    for (_, group, inner), layer in zip(stack.attention_keys, stack.attention_layers):
        prefix = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}.attention"
        for part, dense in (("query", layer.query), ("key", layer.key),
                            ("value", layer.value), ("dense", layer.output_dense)):
            yield from _dense(f"{prefix}.{part}", dense)
        yield from _norm(f"{prefix}.LayerNorm", layer.layer_norm)
    for (_, group, inner), layer in zip(stack.feedforward_keys, stack.feedforward_layers):
        prefix = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}"
        yield from _dense(f"{prefix}.ffn", layer.intermediate)
        yield from _dense(f"{prefix}.ffn_output", layer.output_dense)
        yield from _norm(f"{prefix}.full_layer_layer_norm", layer.layer_norm)
    if encoder.pooler is not None:
        yield from _dense("pooler", encoder.pooler)


def _unshared_layers(encoder):
    stack = encoder.transformer
    if stack.sharing != "none" or stack.inner_group_num != 1:
        raise ValueError(
            "BERT and DistilBERT checkpoints have one block per layer and no sharing; "
            f"got sharing={stack.sharing!r}, inner_group_num={stack.inner_group_num}."
        )
    for index in range(stack.num_layers):
        yield index, stack.attention_layer("layer", index), stack.feedforward_layer("layer", index)


def _bert_targets(encoder):
    yield from _embedding_targets(encoder)
    for index, attention, ffn in _unshared_layers(encoder):
        prefix = f"encoder.layer.{index}"
        yield from _dense(f"{prefix}.attention.self.query", attention.query)
        yield from _dense(f"{prefix}.attention.self.key", attention.key)
        yield from _dense(f"{prefix}.attention.self.value", attention.value)
        yield from _dense(f"{prefix}.attention.output.dense", attention.output_dense)
        yield from _norm(f"{prefix}.attention.output.LayerNorm", attention.layer_norm)
        yield from _dense(f"{prefix}.intermediate.dense", ffn.intermediate)
        yield from _dense(f"{prefix}.output.dense", ffn.output_dense)
        yield from _norm(f"{prefix}.output.LayerNorm", ffn.layer_norm)
    if encoder.pooler is not None:
        yield from _dense("pooler.dense", encoder.pooler)


def _distilbert_targets(encoder):
    if encoder.pooler is not None or encoder.num_segments:
        raise ValueError("DistilBERT checkpoints have no pooler and no token types; build "
                         "the encoder with use_pooler=False and num_segments=0.")
    yield from _embedding_targets(encoder)
    for index, attention, ffn in _unshared_layers(encoder):
        prefix = f"transformer.layer.{index}"
        yield from _dense(f"{prefix}.attention.q_lin", attention.query)
        yield from _dense(f"{prefix}.attention.k_lin", attention.key)
        yield from _dense(f"{prefix}.attention.v_lin", attention.value)
        yield from _dense(f"{prefix}.attention.out_lin", attention.output_dense)
        yield from _norm(f"{prefix}.sa_layer_norm", attention.layer_norm)
        yield from _dense(f"{prefix}.ffn.lin1", ffn.intermediate)
        yield from _dense(f"{prefix}.ffn.lin2", ffn.output_dense)
        yield from _norm(f"{prefix}.output_layer_norm", ffn.layer_norm)


_TARGETS = {"albert": _albert_targets, "bert": _bert_targets, "distilbert": _distilbert_targets}


def _head_targets(family, mlm_head, sentence_head):
    names = _HEADS[family]
    if mlm_head is not None:
        yield from _dense(names.mlm_dense, mlm_head.dense)
        yield from _norm(names.mlm_norm, mlm_head.layer_norm)
        # The decoder matrix is the word embedding (tied); only its bias is a head weight.
        yield names.mlm_bias, mlm_head.output_bias, False
    if sentence_head is not None:
        if names.sentence is None:
            raise ValueError(f"transformers' {family} has no sentence-order / next-sentence "
                             "head; use PretrainingModel(encoder, sentence_order=False).")
        if sentence_head.hidden is not None:
            raise ValueError("The sentence head has a hidden layer; transformers' has none.")
        yield from _dense(names.sentence, sentence_head.output_dense)


def model_parts(model):
    """(encoder, masked-LM head or None, sentence head or None) of a supported model."""
    from keras_albert.models.tasks import PretrainingModel

    if isinstance(model, Encoder):
        return model, None, None
    if isinstance(model, PretrainingModel):
        return model.encoder, model.mlm_head, model.sop_head
    raise TypeError(
        f"Expected an Encoder or a PretrainingModel; got {type(model).__name__}."
    )


def transformers_targets(model, family=None):
    """Lists `(transformers name, variable, transpose)` for every variable of `model`.

    `model` is an `Encoder` (names as in `AlbertModel` / `BertModel` /
    `DistilBertModel`, without a prefix) or a `PretrainingModel` (the same encoder
    names followed by the head names of `AlbertForPreTraining`, `BertForPreTraining`
    or `DistilBertForMaskedLM`). `transpose` is True where the transformers tensor is
    the transposed Keras kernel.

    >>> targets = transformers_targets(Encoder.from_preset("bert_tiny"))
    >>> targets[0][0]
    'embeddings.word_embeddings.weight'
    """
    encoder, mlm_head, sentence_head = model_parts(model)
    family = check_family(family or encoder_family(encoder))
    targets = list(_TARGETS[family](encoder))
    targets += list(_head_targets(family, mlm_head, sentence_head))
    return targets


def detect_family(names):
    """Guesses `"albert"`, `"bert"` or `"distilbert"` from state-dict names."""
    names = list(names)
    if any(".albert_layer_groups." in name for name in names):
        return "albert"
    if any(name.startswith(("transformer.layer.", "distilbert.")) for name in names):
        return "distilbert"
    if any(".layer." in name and ".attention.self." in name for name in names):
        return "bert"
    raise ValueError("Cannot tell the model family from the state-dict names; expected "
                     "ALBERT, BERT or DistilBERT encoder weights.")


def _to_numpy(value):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def _normalized_state(state_dict, family):
    """Source tensors under target names: task-model prefix stripped, legacy
    `LayerNorm.gamma/beta` renamed, buffers dropped, tied copies checked and dropped."""
    prefix = _MODEL_PREFIXES[family]
    source = {}
    for name, value in state_dict.items():
        original = name
        name = name[len(prefix):] if name.startswith(prefix) else name
        if name.endswith(_BUFFER_SUFFIXES):
            continue
        # Old BERT checkpoints name LayerNorm parameters gamma/beta (transformers renames
        # them on load too).
        if name.endswith(".gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith(".beta"):
            name = name[: -len("beta")] + "bias"
        if name in source:
            raise ValueError(f"Checkpoint tensor {original!r} duplicates {name!r}.")
        source[name] = value
    for copy, original in _HEADS[family].tied.items():
        if copy not in source:
            continue
        value = _to_numpy(source.pop(copy))
        if original in source and not np.array_equal(value, _to_numpy(source[original])):
            raise ValueError(
                f"Refusing to load the {family} checkpoint (nothing was loaded): "
                f"{copy!r} differs from {original!r}, but the model ties them (the "
                "masked-LM decoder is the word-embedding matrix)."
            )
    return source


def assign_strictly(model, targets, source, description):
    """Assigns `source` tensors to `targets` only if they match one to one.

    Args:
        model: the Keras model the targets belong to; every one of its weights
            must be a target.
        targets: `(name, variable, transpose)` triples.
        source: mapping of names to arrays (or torch tensors).
        description: what is loaded, for the error message (`"bert checkpoint"`).

    Raises:
        ValueError: naming every unmapped source tensor, every variable left
            without a value and every shape mismatch. Nothing is written then.
    """
    names = [name for name, _, _ in targets]
    if len(set(names)) != len(names):  # a bug in a name table, not in the checkpoint
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise RuntimeError(f"Duplicate target names: {duplicates}")
    if len({id(variable) for _, variable, _ in targets}) != len(targets):
        raise RuntimeError("A variable appears under two target names.")
    assignments, missing, mismatched = [], [], []
    for name, variable, transpose in targets:
        if name not in source:
            missing.append(f"{name} (for {variable.path})")
            continue
        value = _to_numpy(source[name])
        expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
        if tuple(value.shape) != expected:
            # Both shapes in the checkpoint's layout.
            mismatched.append(f"{name}: checkpoint {tuple(value.shape)}, expected {expected} "
                              f"for {variable.path}")
            continue
        assignments.append((variable, value.T if transpose else value))
    unused = sorted(set(source) - set(names))
    covered = {id(variable) for _, variable, _ in targets}
    uncovered = [v.path for v in model.weights if id(v) not in covered]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {missing}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if unused:
        problems.append(f"checkpoint tensors with no place in the model: {unused}")
    if uncovered:
        problems.append(f"model variables this family has no tensor for: {uncovered}")
    if problems:
        raise ValueError(
            f"Refusing to load the {description} (nothing was loaded): " + "; ".join(problems)
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return model


def load_transformers_state_dict(model, state_dict, family=None):
    """Copies a transformers state dict into `model`, strictly.

    Args:
        model: an `Encoder` (or a `PretrainingModel`, whose heads must then be in
            the state dict) whose config matches the checkpoint.
        state_dict: mapping of transformers names to torch tensors or arrays, as
            `AlbertModel(...).state_dict()`; an `albert.` / `bert.` /
            `distilbert.` prefix (from a task model) is stripped.
        family: `"albert"`, `"bert"` or `"distilbert"`; guessed if None.

    Raises:
        ValueError: naming every unmapped source tensor, every variable left
            without a value and every shape mismatch. Nothing is written then.

    Example:

    >>> import transformers
    >>> hf = transformers.BertModel(transformers.BertConfig(
    ...     vocab_size=100, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=64))
    >>> encoder = Encoder(**encoder_config_from_transformers(hf.config))
    >>> encoder = load_transformers_state_dict(encoder, hf.state_dict())
    """
    family = check_family(family or detect_family(state_dict))
    source = _normalized_state(state_dict, family)
    return assign_strictly(
        model, transformers_targets(model, family), source, f"{family} checkpoint"
    )


def transformers_state_dict(model):
    """Our weights under transformers names, as NumPy arrays (for safetensors).

    An `Encoder` gives `AlbertModel` / `BertModel` / `DistilBertModel` names; a
    `PretrainingModel` gives `AlbertForPreTraining` / `BertForPreTraining` /
    `DistilBertForMaskedLM` names (encoder under `albert.` etc.). Tied decoder
    weights are left out, as transformers' `save_pretrained` leaves them out.

    >>> state = transformers_state_dict(Encoder.from_preset("bert_tiny"))
    >>> state["encoder.layer.0.attention.self.query.weight"].shape
    (64, 64)
    """
    encoder, _, _ = model_parts(model)
    family = encoder_family(encoder)
    prefix = "" if model is encoder else _MODEL_PREFIXES[family]
    encoder_names = {name for name, _, _ in _TARGETS[family](encoder)}
    state = {}
    for name, variable, transpose in transformers_targets(model, family):
        value = keras.ops.convert_to_numpy(variable).astype("float32")
        value = np.ascontiguousarray(value.T if transpose else value)
        state[prefix + name if name in encoder_names else name] = value
    return state


def transformers_architecture(model):
    """The transformers class `model` corresponds to, e.g. `"AlbertForPreTraining"`.

    >>> transformers_architecture(Encoder.from_preset("distilbert_tiny"))
    'DistilBertModel'
    """
    encoder, mlm_head, sentence_head = model_parts(model)
    family = encoder_family(encoder)
    index = 0 if mlm_head is None else (2 if sentence_head is not None else 1)
    architecture = _HEADS[family].architectures[index]
    if architecture is None:
        raise ValueError(f"transformers' {family} has no model with a sentence head.")
    # transformers' *ForMaskedLM models have no pooler; the base and pretraining
    # models always have one. Anything else would drop or invent weights.
    if family != "distilbert":
        needs_pooler = mlm_head is None or sentence_head is not None
        if needs_pooler and encoder.pooler is None:
            raise ValueError(f"transformers' {architecture} has a pooler; this encoder "
                             "has none (build it with use_pooler=True).")
        if not needs_pooler and encoder.pooler is not None:
            raise ValueError(f"transformers' {architecture} has no pooler, so this "
                             "encoder's pooler would be lost; build the encoder with "
                             "use_pooler=False or keep the sentence head.")
    return architecture


class CheckpointNaming:
    """How a checkpoint format names transformers' tensors.

    This base class is the transformers naming itself (encoder names without the
    task-model prefix). Other formats subclass it: `target` renames each
    `(transformers name, transpose)` pair, and the prefixes say how the format
    names its pretraining heads and pooler.
    """

    def __init__(self, family):
        heads = _HEADS[check_family(family)]
        self.family = family
        self.mlm_prefix = heads.mlm_prefix
        self.sentence_prefix = heads.sentence + "." if heads.sentence else None
        self.pooler_prefix = "pooler."

    def target(self, name, transpose):
        """The `(name, transpose)` this format uses for a transformers tensor."""
        return name, transpose

    def is_mlm(self, name):
        return name.startswith(self.mlm_prefix)

    def is_sentence(self, name):
        return self.sentence_prefix is not None and name.startswith(self.sentence_prefix)


def build_from_checkpoint(arguments, source, naming, heads=False, description="checkpoint",
                          **overrides):
    """Builds our model for `Encoder` `arguments` and loads `source` into it, strictly.

    Args:
        arguments: `Encoder` arguments read from the checkpoint's config.
        source: checkpoint tensor names (in `naming`) -> arrays.
        naming: a `CheckpointNaming` for the checkpoint's format and family.
        heads: False for an `Encoder`: the checkpoint's pretraining heads, recognised
            by name, are left out. True for a `PretrainingModel` with the
            checkpoint's masked-LM head and, if it has one, its SOP / NSP head.
        description: what is loaded, for messages.
        **overrides: `RUNTIME_OPTIONS` such as `dropout` or `remat`.

    Any source tensor without a place, variable without a value or shape mismatch
    is refused before anything is assigned.
    """
    from keras_albert.models.tasks import PretrainingModel

    has_mlm = any(naming.is_mlm(name) for name in source)
    has_sentence = any(naming.is_sentence(name) for name in source)
    if heads and not has_mlm:
        raise ValueError(
            f"heads=True, but the {description} has no masked-LM head (no tensor named "
            f"'{naming.mlm_prefix}...'); load it with heads=False."
        )
    if not heads:
        source = {
            name: value
            for name, value in source.items()
            if not (naming.is_mlm(name) or naming.is_sentence(name))
        }
    # transformers' *ForMaskedLM models are built without a pooler.
    if naming.family != "distilbert" and has_mlm and not has_sentence and not any(
        name.startswith(naming.pooler_prefix) for name in source
    ):
        arguments = {**arguments, "use_pooler": False}
    arguments = apply_overrides(arguments, overrides, description)
    encoder = Encoder(**arguments)
    model = PretrainingModel(encoder, sentence_order=has_sentence) if heads else encoder
    targets = []
    for name, variable, transpose in transformers_targets(model, naming.family):
        name, transpose = naming.target(name, transpose)
        targets.append((name, variable, transpose))
    return assign_strictly(model, targets, source, description)


def model_from_transformers(config, state_dict, heads=False, description=None,
                            **overrides):
    """Builds our model from a transformers config and state dict, strictly.

    Args:
        config: a transformers config object or `config.json` dict.
        state_dict: transformers names -> arrays or torch tensors (prefixed
            task-model names or bare encoder names).
        heads: False for an `Encoder` (pretraining heads in the state dict are
            recognised by name and left out); True for a `PretrainingModel` with the
            checkpoint's masked-LM head and, if present, its SOP / NSP head.
        description: how to call the checkpoint in messages.
        **overrides: `RUNTIME_OPTIONS` such as `dropout` or `remat`.

    Example:

    >>> import transformers
    >>> hf = transformers.AlbertForPreTraining(transformers.AlbertConfig(
    ...     vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=64))
    >>> model = model_from_transformers(hf.config, hf.state_dict(), heads=True)
    >>> type(model).__name__, model.sop_head is not None
    ('PretrainingModel', True)
    """
    config = _as_dict(config)
    family = check_family(config.get("model_type"))
    return build_from_checkpoint(
        encoder_config_from_transformers(config),
        _normalized_state(state_dict, family),
        CheckpointNaming(family),
        heads=heads,
        description=description or f"{family} checkpoint",
        **overrides,
    )


def encoder_from_transformers(config, state_dict, **overrides):
    """Builds an `Encoder` from a transformers config and loads its state dict.

    Pretraining-head tensors in the state dict are left out; any other tensor
    without a place is refused.

    Example (with transformers and torch installed):

    >>> import transformers
    >>> hf = transformers.BertModel(transformers.BertConfig(
    ...     vocab_size=100, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=64))
    >>> encoder = encoder_from_transformers(hf.config, hf.state_dict())
    >>> encoder.count_params() == hf.num_parameters()
    True
    """
    return model_from_transformers(config, state_dict, heads=False, **overrides)
