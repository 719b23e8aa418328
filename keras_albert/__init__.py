"""keras-albert: compact BERT-family encoders (ALBERT, BERT, DistilBERT) for Keras 3."""

import os

# The library is written for Keras 3 on the TensorFlow backend (tensorflow-text ops,
# SavedModel export, tf.distribute). Choose it unless the user chose already.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Registers our optimizers, schedule, losses and metrics with Keras, so `.keras`
# files compiled with them load wherever keras_albert is imported.
import keras_albert.optimizers  # noqa: E402,F401
from keras_albert import losses, metrics  # noqa: E402,F401
from keras_albert.conversion.pretrained import from_pretrained  # noqa: E402
from keras_albert.models.encoder import Encoder  # noqa: E402
from keras_albert.presets import list_presets, preset_config  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Encoder", "from_pretrained", "list_presets", "preset_config", "__version__"]
