"""Weight transfer from transformers' `AlbertModel`, `BertModel` and `DistilBertModel`.

A state dict (name -> array, as `model.state_dict()` gives, tensors or NumPy) maps
onto an `Encoder` strictly: every source tensor must land in exactly one variable,
every variable must receive a value, and shapes must agree. Anything else is refused
before a single variable is written, so a model is never half loaded.
"""

import numpy as np

from keras_albert.models.encoder import Encoder

# Buffers transformers keeps in some state dicts; they are not weights.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
_MODEL_PREFIXES = {"albert": "albert.", "bert": "bert.", "distilbert": "distilbert."}
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
    "relu": "relu",
}


def _activation(name):
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"Unsupported activation {name!r} in the transformers config; supported: "
            f"{sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]


def encoder_config_from_transformers(config):
    """Maps a transformers config (object or dict) to `Encoder` arguments.

    >>> encoder_config_from_transformers({"model_type": "bert", "vocab_size": 100,
    ...     "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...     "intermediate_size": 64, "hidden_act": "gelu"})["sharing"]
    'none'
    """
    if not isinstance(config, dict):
        config = config.to_dict()
    model_type = config.get("model_type")
    if model_type == "albert":
        return dict(
            vocabulary_size=config["vocab_size"],
            embedding_dim=config.get("embedding_size", 128),
            hidden_dim=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            intermediate_dim=config["intermediate_size"],
            num_groups=config.get("num_hidden_groups", 1),
            inner_group_num=config.get("inner_group_num", 1),
            sharing="all",
            max_sequence_length=config.get("max_position_embeddings", 512),
            num_segments=config.get("type_vocab_size", 2),
            activation=_activation(config.get("hidden_act", "gelu_new")),
            dropout=config.get("hidden_dropout_prob", 0.0),
            attention_dropout=config.get("attention_probs_dropout_prob", 0.0),
            layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
            initializer_range=config.get("initializer_range", 0.02),
        )
    if model_type == "bert":
        return dict(
            vocabulary_size=config["vocab_size"],
            hidden_dim=config["hidden_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            intermediate_dim=config["intermediate_size"],
            sharing="none",
            max_sequence_length=config.get("max_position_embeddings", 512),
            num_segments=config.get("type_vocab_size", 2),
            activation=_activation(config.get("hidden_act", "gelu")),
            dropout=config.get("hidden_dropout_prob", 0.1),
            attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
            layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
            initializer_range=config.get("initializer_range", 0.02),
        )
    if model_type == "distilbert":
        return dict(
            vocabulary_size=config["vocab_size"],
            hidden_dim=config["dim"],
            num_layers=config["n_layers"],
            num_heads=config["n_heads"],
            intermediate_dim=config["hidden_dim"],
            sharing="none",
            max_sequence_length=config.get("max_position_embeddings", 512),
            num_segments=0,
            use_pooler=False,
            activation=_activation(config.get("activation", "gelu")),
            dropout=config.get("dropout", 0.1),
            attention_dropout=config.get("attention_dropout", 0.1),
            layer_norm_epsilon=1e-12,  # fixed in transformers' DistilBERT code
            initializer_range=config.get("initializer_range", 0.02),
        )
    raise ValueError(
        f"Unsupported transformers model_type {model_type!r}; expected 'albert', 'bert' "
        "or 'distilbert'."
    )


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


def load_transformers_state_dict(encoder, state_dict, family=None):
    """Copies a transformers encoder state dict into `encoder`, strictly.

    Args:
        encoder: an `Encoder` whose config matches the checkpoint.
        state_dict: mapping of transformers names to torch tensors or arrays, as
            `AlbertModel(...).state_dict()`; an `albert.` / `bert.` /
            `distilbert.` prefix (from a task model) is stripped.
        family: `"albert"`, `"bert"` or `"distilbert"`; guessed if None.

    Raises:
        ValueError: naming every unmapped source tensor, every variable left
            without a value and every shape mismatch. Nothing is written then.
    """
    family = family or detect_family(state_dict)
    prefix = _MODEL_PREFIXES[family]
    source = {}
    for name, value in state_dict.items():
        name = name[len(prefix):] if name.startswith(prefix) else name
        if name.endswith(_BUFFER_SUFFIXES):
            continue
        source[name] = value

    targets = list(_TARGETS[family](encoder))
    assignments, missing, mismatched = [], [], []
    for name, variable, transpose in targets:
        if name not in source:
            missing.append(f"{name} (for {variable.path})")
            continue
        value = _to_numpy(source[name])
        value = value.T if transpose else value
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(f"{name}: checkpoint {tuple(value.shape)} vs "
                              f"{variable.path} {tuple(variable.shape)}")
            continue
        assignments.append((variable, value))
    unused = sorted(set(source) - {name for name, _, _ in targets})
    covered = {id(variable) for _, variable, _ in targets}
    uncovered = [v.path for v in encoder.weights if id(v) not in covered]
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
            f"Refusing to load the {family} checkpoint (nothing was loaded): "
            + "; ".join(problems)
        )
    for variable, value in assignments:
        variable.assign(value.astype(variable.dtype))
    return encoder


def encoder_from_transformers(config, state_dict, **overrides):
    """Builds an `Encoder` from a transformers config and loads its state dict.

    Example (with transformers and torch installed):

    >>> import transformers
    >>> hf = transformers.BertModel(transformers.BertConfig(
    ...     vocab_size=100, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=64))
    >>> encoder = encoder_from_transformers(hf.config, hf.state_dict())
    >>> encoder.count_params() == hf.num_parameters()
    True
    """
    arguments = encoder_config_from_transformers(config)
    arguments.update(overrides)
    family = config["model_type"] if isinstance(config, dict) else config.model_type
    encoder = Encoder(**arguments)
    return load_transformers_state_dict(encoder, state_dict, family=family)
