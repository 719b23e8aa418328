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


_COMMAND_SCRIPTS = ("keras-albert", "keras-albert.exe", "keras-albert-script.py")


def _started_as_command_line():
    """True in a `keras-albert ...` or `python [options] -m keras_albert.cli ...` process."""
    if os.path.basename((getattr(sys, "argv", None) or [""])[0]) in _COMMAND_SCRIPTS:
        return True
    argv = list(getattr(sys, "orig_argv", ()))
    index = 1
    while index < len(argv):  # the interpreter's own options, up to -m, -c or a script
        option = argv[index]
        if option == "-m":
            return argv[index + 1:index + 2] == ["keras_albert.cli"]
        if option.startswith("-m"):
            return option[2:] == "keras_albert.cli"
        if option in ("-X", "-W"):  # options that take the next word as their value
            index += 2
        elif option.startswith("-") and option != "-" and not option.startswith("-c"):
            index += 1
        else:
            return False
    return False


if not _started_as_command_line():
    register_with_keras()
