"""Loading and writing other ecosystems' checkpoints.

- `load`: any model source (presets, our `.keras` files and run directories, and all
  that `from_pretrained` reads) with its preprocessor.
- `from_pretrained` / `convert`: any supported checkpoint (Hugging Face directories and
  Hub ids, original ALBERT TF1 checkpoints, keras-hub presets), strictly.
- `save_huggingface`: our models as Hugging Face directories transformers loads.
- transformers' names (`transformers_names.py`), configs (`transformers_config.py`)
  and the strict loader (`strict_loading.py`) underlie all of them;
  `transformers_weights.py` loads and writes transformers state dicts.
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
from keras_albert.conversion.pretrained import (
    Pretrained,
    convert,
    from_pretrained,
    load,
    source_format,
    tokenizer_from_file,
)
from keras_albert.conversion.tf1_albert import load_tf1_albert, read_tf1_checkpoint
from keras_albert.conversion.transformers_config import (
    encoder_config_from_transformers,
    transformers_config_from_encoder,
)
from keras_albert.conversion.transformers_names import transformers_targets
from keras_albert.conversion.transformers_weights import (
    detect_family,
    encoder_from_transformers,
    load_transformers_state_dict,
    model_from_transformers,
    transformers_state_dict,
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
    "load",
    "load_keras_hub_preset",
    "load_tf1_albert",
    "load_transformers_state_dict",
    "model_from_transformers",
    "read_huggingface_directory",
    "read_tf1_checkpoint",
    "save_huggingface",
    "source_format",
    "tokenizer_from_file",
    "transformers_config_from_encoder",
    "transformers_state_dict",
    "transformers_targets",
]
