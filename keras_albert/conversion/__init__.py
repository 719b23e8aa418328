"""Loading and writing other ecosystems' checkpoints.

- `from_pretrained` / `convert`: any supported source (Hugging Face directories and
  Hub ids, original ALBERT TF1 checkpoints, keras-hub presets), strictly.
- `save_huggingface`: our models as Hugging Face directories transformers loads.
- The transformers name mapping (`transformers_weights.py`) underlies all of them.
"""

from keras_albert.conversion.huggingface import (
    load_huggingface,
    read_huggingface_directory,
    save_huggingface,
)
from keras_albert.conversion.keras_hub_presets import (
    encoder_from_keras_hub,
    load_keras_hub_preset,
)
from keras_albert.conversion.pretrained import Pretrained, convert, from_pretrained
from keras_albert.conversion.tf1_albert import load_tf1_albert, read_tf1_checkpoint
from keras_albert.conversion.transformers_weights import (
    detect_family,
    encoder_config_from_transformers,
    encoder_from_transformers,
    load_transformers_state_dict,
    model_from_transformers,
    transformers_config_from_encoder,
    transformers_state_dict,
    transformers_targets,
)

__all__ = [
    "Pretrained",
    "convert",
    "detect_family",
    "encoder_config_from_transformers",
    "encoder_from_keras_hub",
    "encoder_from_transformers",
    "from_pretrained",
    "load_huggingface",
    "load_keras_hub_preset",
    "load_tf1_albert",
    "load_transformers_state_dict",
    "model_from_transformers",
    "read_huggingface_directory",
    "read_tf1_checkpoint",
    "save_huggingface",
    "transformers_config_from_encoder",
    "transformers_state_dict",
    "transformers_targets",
]
