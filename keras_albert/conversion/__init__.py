"""Loading weights from other ecosystems (transformers state dicts for now)."""

from keras_albert.conversion.transformers_weights import (
    detect_family,
    encoder_config_from_transformers,
    encoder_from_transformers,
    load_transformers_state_dict,
)

__all__ = [
    "detect_family",
    "encoder_config_from_transformers",
    "encoder_from_transformers",
    "load_transformers_state_dict",
]
