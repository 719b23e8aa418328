"""transformers' parameter names for our models: the single source of truth.

For every variable of an `Encoder` (and of a `PretrainingModel`'s masked-LM and
sentence heads) the tables below yield `(transformers name, our variable, transpose)`,
one small function per weight group, written like the checkpoint's own names. The
other formats translate onto these names: original ALBERT TF1 checkpoints rename them
(`tf1_albert.py`), keras-hub backbones are read out under them
(`keras_hub_presets.py`), and Hugging Face directories are written with them
(`huggingface.py`).

>>> from keras_albert.models.encoder import Encoder
>>> [name for name, _, _ in transformers_targets(Encoder.from_preset("bert_tiny"))][-2:]
['pooler.dense.weight', 'pooler.dense.bias']
"""

from typing import NamedTuple, Optional

from keras_albert.conversion.transformers_config import check_family, encoder_family
from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel


class HeadNames(NamedTuple):
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


HEAD_NAMES = {
    "albert": HeadNames(
        "predictions.", "predictions.dense", "predictions.LayerNorm", "predictions.bias",
        sentence="sop_classifier.classifier",
        tied={"predictions.decoder.weight": "embeddings.word_embeddings.weight",
              "predictions.decoder.bias": "predictions.bias"},
        architectures=("AlbertModel", "AlbertForMaskedLM", "AlbertForPreTraining"),
    ),
    "bert": HeadNames(
        "cls.predictions.", "cls.predictions.transform.dense",
        "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
        sentence="cls.seq_relationship",
        tied={"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
              "cls.predictions.decoder.bias": "cls.predictions.bias"},
        architectures=("BertModel", "BertForMaskedLM", "BertForPreTraining"),
    ),
    "distilbert": HeadNames(
        "vocab_", "vocab_transform", "vocab_layer_norm", "vocab_projector.bias",
        sentence=None,
        tied={"vocab_projector.weight": "embeddings.word_embeddings.weight"},
        architectures=("DistilBertModel", "DistilBertForMaskedLM", None),
    ),
}


def _dense(name, layer):
    # torch Linear weights are [out, in]; Keras Dense kernels are [in, out].
    yield f"{name}.weight", layer.kernel, True
    yield f"{name}.bias", layer.bias, False


def _norm(name, layer):
    yield f"{name}.weight", layer.gamma, False
    yield f"{name}.bias", layer.beta, False


def _embeddings(encoder, projection_name=None):
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


# === ALBERT: one shared block per (group, inner) ===


def _albert_attention(prefix, attention):
    yield from _dense(f"{prefix}.query", attention.query)
    yield from _dense(f"{prefix}.key", attention.key)
    yield from _dense(f"{prefix}.value", attention.value)
    yield from _dense(f"{prefix}.dense", attention.output_dense)
    yield from _norm(f"{prefix}.LayerNorm", attention.layer_norm)


def _albert_feedforward(prefix, ffn):
    yield from _dense(f"{prefix}.ffn", ffn.intermediate)
    yield from _dense(f"{prefix}.ffn_output", ffn.output_dense)
    yield from _norm(f"{prefix}.full_layer_layer_norm", ffn.layer_norm)


def _albert_targets(encoder):
    yield from _embeddings(encoder, "encoder.embedding_hidden_mapping_in")
    stack = encoder.transformer
    if stack.sharing != "all":
        raise ValueError("transformers' ALBERT shares all parameters; got sharing="
                         f"{stack.sharing!r}.")
    for (_, group, inner), layer in zip(stack.attention_keys, stack.attention_layers):
        prefix = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}"
        yield from _albert_attention(f"{prefix}.attention", layer)
    for (_, group, inner), layer in zip(stack.feedforward_keys, stack.feedforward_layers):
        prefix = f"encoder.albert_layer_groups.{group}.albert_layers.{inner}"
        yield from _albert_feedforward(prefix, layer)
    if encoder.pooler is not None:
        yield from _dense("pooler", encoder.pooler)


# === BERT and DistilBERT: one block per layer ===


def _unshared_layers(encoder):
    stack = encoder.transformer
    if stack.sharing != "none" or stack.inner_group_num != 1:
        raise ValueError(
            "BERT and DistilBERT checkpoints have one block per layer and no sharing; "
            f"got sharing={stack.sharing!r}, inner_group_num={stack.inner_group_num}."
        )
    for index in range(stack.num_layers):
        yield index, stack.attention_layer("layer", index), stack.feedforward_layer("layer", index)


def _bert_attention(prefix, attention):
    yield from _dense(f"{prefix}.self.query", attention.query)
    yield from _dense(f"{prefix}.self.key", attention.key)
    yield from _dense(f"{prefix}.self.value", attention.value)
    yield from _dense(f"{prefix}.output.dense", attention.output_dense)
    yield from _norm(f"{prefix}.output.LayerNorm", attention.layer_norm)


def _bert_feedforward(prefix, ffn):
    yield from _dense(f"{prefix}.intermediate.dense", ffn.intermediate)
    yield from _dense(f"{prefix}.output.dense", ffn.output_dense)
    yield from _norm(f"{prefix}.output.LayerNorm", ffn.layer_norm)


def _bert_targets(encoder):
    yield from _embeddings(encoder)
    for index, attention, ffn in _unshared_layers(encoder):
        yield from _bert_attention(f"encoder.layer.{index}.attention", attention)
        yield from _bert_feedforward(f"encoder.layer.{index}", ffn)
    if encoder.pooler is not None:
        yield from _dense("pooler.dense", encoder.pooler)


def _distilbert_attention(prefix, attention):
    yield from _dense(f"{prefix}.attention.q_lin", attention.query)
    yield from _dense(f"{prefix}.attention.k_lin", attention.key)
    yield from _dense(f"{prefix}.attention.v_lin", attention.value)
    yield from _dense(f"{prefix}.attention.out_lin", attention.output_dense)
    yield from _norm(f"{prefix}.sa_layer_norm", attention.layer_norm)


def _distilbert_feedforward(prefix, ffn):
    yield from _dense(f"{prefix}.ffn.lin1", ffn.intermediate)
    yield from _dense(f"{prefix}.ffn.lin2", ffn.output_dense)
    yield from _norm(f"{prefix}.output_layer_norm", ffn.layer_norm)


def _distilbert_targets(encoder):
    if encoder.pooler is not None or encoder.num_segments:
        raise ValueError("DistilBERT checkpoints have no pooler and no token types; build "
                         "the encoder with use_pooler=False and num_segments=0.")
    yield from _embeddings(encoder)
    for index, attention, ffn in _unshared_layers(encoder):
        yield from _distilbert_attention(f"transformer.layer.{index}", attention)
        yield from _distilbert_feedforward(f"transformer.layer.{index}", ffn)


_ENCODER_TARGETS = {
    "albert": _albert_targets,
    "bert": _bert_targets,
    "distilbert": _distilbert_targets,
}


# === Pretraining heads ===


def _mlm_head(names, mlm_head):
    yield from _dense(names.mlm_dense, mlm_head.dense)
    yield from _norm(names.mlm_norm, mlm_head.layer_norm)
    # The decoder matrix is the word embedding (tied); only its bias is a head weight.
    yield names.mlm_bias, mlm_head.output_bias, False


def _sentence_head(family, names, sentence_head):
    if names.sentence is None:
        raise ValueError(f"transformers' {family} has no sentence-order / next-sentence "
                         "head; use PretrainingModel(encoder, sentence_order=False).")
    if sentence_head.hidden is not None:
        raise ValueError("The sentence head has a hidden layer; transformers' has none.")
    yield from _dense(names.sentence, sentence_head.output_dense)


def model_parts(model):
    """(encoder, masked-LM head or None, sentence head or None) of a supported model."""
    if isinstance(model, Encoder):
        return model, None, None
    if isinstance(model, PretrainingModel):
        return model.encoder, model.mlm_head, model.sop_head
    raise TypeError(
        f"Expected an Encoder or a PretrainingModel; got {type(model).__name__}."
    )


def encoder_targets(encoder, family):
    """`(transformers name, variable, transpose)` for the variables of `encoder` alone,
    named as in `AlbertModel` / `BertModel` / `DistilBertModel` (no task prefix).

    >>> from keras_albert.models.encoder import Encoder
    >>> encoder_targets(Encoder.from_preset("albert_tiny"), "albert")[-1][0]
    'pooler.bias'
    """
    return list(_ENCODER_TARGETS[check_family(family)](encoder))


def transformers_targets(model, family=None):
    """Lists `(transformers name, variable, transpose)` for every variable of `model`.

    `model` is an `Encoder` (names as in `AlbertModel` / `BertModel` /
    `DistilBertModel`, without a prefix) or a `PretrainingModel` (the same encoder
    names followed by the head names of `AlbertForPreTraining`, `BertForPreTraining`
    or `DistilBertForMaskedLM`). `transpose` is True where the transformers tensor is
    the transposed Keras kernel.

    >>> from keras_albert.models.encoder import Encoder
    >>> targets = transformers_targets(Encoder.from_preset("bert_tiny"))
    >>> targets[0][0]
    'embeddings.word_embeddings.weight'
    """
    encoder, mlm_head, sentence_head = model_parts(model)
    family = check_family(family or encoder_family(encoder))
    names = HEAD_NAMES[family]
    targets = encoder_targets(encoder, family)
    if mlm_head is not None:
        targets += list(_mlm_head(names, mlm_head))
    if sentence_head is not None:
        targets += list(_sentence_head(family, names, sentence_head))
    return targets
