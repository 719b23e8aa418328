"""Exporting models as SavedModels that load with `tensorflow` + `tensorflow_text` alone.

- `serving`: TensorFlow Serving exports of encoders and task models (raw-text and
  token-id signatures, versioned layout, warm-up records).
- `hub`, `hub_preprocessor`: TF-Hub-style encoder and preprocessor SavedModels (the Reusable SavedModel
  API) that other Keras 3 and tf_keras models reuse and fine-tune.
"""

from keras_albert.export.serving import export_for_serving
from keras_albert.export.serving import export_saved_model
from keras_albert.export.serving import next_version
from keras_albert.export.hub import export_hub_encoder
from keras_albert.export.hub_preprocessor import export_hub_preprocessor
from keras_albert.export.keras_reuse import HubEncoderLayer

__all__ = [
    "HubEncoderLayer",
    "export_for_serving",
    "export_hub_encoder",
    "export_hub_preprocessor",
    "export_saved_model",
    "next_version",
]
