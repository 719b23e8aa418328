"""transformers state dicts <-> our models: load one strictly, or write ours out.

`load_transformers_state_dict` fills an existing model, `model_from_transformers`
builds one from a config and a state dict; both accept task-model state dicts
(`albert.`-prefixed names, tied decoder copies, buffers) and old BERT
`LayerNorm.gamma/beta` names. `transformers_state_dict` and
`transformers_architecture` go the other way, for `save_huggingface`. Names come
from `transformers_names.py`, configs from `transformers_config.py`.

>>> from keras_albert.models.encoder import Encoder
>>> transformers_architecture(Encoder.from_preset("albert_tiny"))
'AlbertModel'
"""

import keras
import numpy as np

from keras_albert.conversion.strict_loading import (
    CheckpointNaming,
    assign_strictly,
    build_from_checkpoint,
    to_numpy,
)
from keras_albert.conversion.transformers_config import (
    check_family,
    encoder_config_from_transformers,
    encoder_family,
    transformers_family,
)
from keras_albert.conversion.transformers_names import (
    HEAD_NAMES,
    encoder_targets,
    model_parts,
    transformers_targets,
)

# Buffers transformers keeps in some state dicts; they are not weights.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
# Task models (AlbertForPreTraining, ...) keep the encoder under this attribute.
_MODEL_PREFIXES = {"albert": "albert.", "bert": "bert.", "distilbert": "distilbert."}


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
    for copy, original in HEAD_NAMES[family].tied.items():
        if copy not in source:
            continue
        value = to_numpy(source.pop(copy))
        if original in source and not np.array_equal(value, to_numpy(source[original])):
            raise ValueError(
                f"Refusing to load the {family} checkpoint (nothing was loaded): "
                f"{copy!r} differs from {original!r}, but the model ties them (the "
                "masked-LM decoder is the word-embedding matrix)."
            )
    return source


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
    >>> from keras_albert.models.encoder import Encoder
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

    >>> from keras_albert.models.encoder import Encoder
    >>> state = transformers_state_dict(Encoder.from_preset("bert_tiny"))
    >>> state["encoder.layer.0.attention.self.query.weight"].shape
    (64, 64)
    """
    encoder, _, _ = model_parts(model)
    family = encoder_family(encoder)
    prefix = "" if model is encoder else _MODEL_PREFIXES[family]
    encoder_names = {name for name, _, _ in encoder_targets(encoder, family)}
    state = {}
    for name, variable, transpose in transformers_targets(model, family):
        value = keras.ops.convert_to_numpy(variable).astype("float32")
        value = np.ascontiguousarray(value.T if transpose else value)
        state[prefix + name if name in encoder_names else name] = value
    return state


def transformers_architecture(model):
    """The transformers class `model` corresponds to, e.g. `"AlbertForPreTraining"`.

    >>> from keras_albert.models.encoder import Encoder
    >>> transformers_architecture(Encoder.from_preset("distilbert_tiny"))
    'DistilBertModel'
    """
    encoder, mlm_head, sentence_head = model_parts(model)
    family = encoder_family(encoder)
    index = 0 if mlm_head is None else (2 if sentence_head is not None else 1)
    architecture = HEAD_NAMES[family].architectures[index]
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
    family = transformers_family(config)
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
