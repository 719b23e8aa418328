"""Keras layers of the encoder: embeddings, transformer sublayers, the shared stack."""

from keras_albert.layers.activations import (
    gelu_approximate,
    gelu_exact,
    gelu_sigmoid,
    get_activation,
)
from keras_albert.layers.attention import SelfAttentionSublayer, padding_mask_to_attention_bias
from keras_albert.layers.dropout import derive_seed, stateless_dropout
from keras_albert.layers.embeddings import FactorizedEmbedding
from keras_albert.layers.feedforward import FeedForwardSublayer
from keras_albert.layers.transformer_stack import SHARING_MODES, TransformerStack, layer_schedule

__all__ = [
    "FactorizedEmbedding",
    "FeedForwardSublayer",
    "SHARING_MODES",
    "SelfAttentionSublayer",
    "TransformerStack",
    "derive_seed",
    "gelu_approximate",
    "gelu_sigmoid",
    "gelu_exact",
    "get_activation",
    "layer_schedule",
    "padding_mask_to_attention_bias",
    "stateless_dropout",
]
