"""keras-albert: compact BERT-family encoders (ALBERT, BERT, DistilBERT) for Keras 3.

    import keras_albert

    encoder = keras_albert.Encoder.from_preset("albert_base")
    model, preprocessor = keras_albert.load("runs/sst2", task_model=True)

Importing the package registers its layers, models, optimizers, losses and metrics
with Keras, so `keras.saving.load_model` reads `.keras` files that use them. The one
exception is the `keras-albert` command line, which imports what a command needs only
once it has parsed the arguments: `keras-albert --help` answers without TensorFlow.
"""

import importlib
import os
import sys

# The library is written for Keras 3 on the TensorFlow backend (tensorflow-text ops,
# SavedModel export, tf.distribute). Choose it unless the user chose already.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

# Public names and the modules that define them, imported on first use.
_PUBLIC = {
    "Encoder": "keras_albert.models.encoder",
    "from_pretrained": "keras_albert.conversion.pretrained",
    "load": "keras_albert.conversion.pretrained",
    "list_presets": "keras_albert.presets",
    "preset_config": "keras_albert.presets",
}

__all__ = [*_PUBLIC, "register_with_keras", "__version__"]


def register_with_keras():
    """Imports every module that registers a class with Keras (idempotent)."""
    for module in ("keras_albert.optimizers", "keras_albert.losses", "keras_albert.metrics",
                   "keras_albert.layers", "keras_albert.heads", "keras_albert.models",
                   "keras_albert.tokenizers"):
        importlib.import_module(module)


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_albert' has no attribute {name!r}")


def _started_as_command_line():
    """True in a `keras-albert ...` or `python -m keras_albert.cli ...` process."""
    argv = list(getattr(sys, "orig_argv", ()))
    if len(argv) < 2:
        return False
    return (os.path.basename(argv[1]).startswith("keras-albert")
            or argv[1:3] == ["-m", "keras_albert.cli"])


if not _started_as_command_line():
    register_with_keras()
