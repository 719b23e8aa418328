"""Activation names used by the checkpoint families.

BERT and DistilBERT checkpoints were trained with the exact (erf) GELU; ALBERT
checkpoints with the tanh approximation (transformers calls it `gelu_new`). Mixing them
up changes outputs by about 1e-3, so the encoder config names the one it uses.
"""

import keras


def gelu_approximate(x):
    """The tanh approximation of GELU, as used by the original ALBERT code."""
    return keras.activations.gelu(x, approximate=True)


def gelu_exact(x):
    """The exact GELU, x * Phi(x), as used by BERT and DistilBERT checkpoints."""
    return keras.activations.gelu(x, approximate=False)


_NAMED = {"gelu": gelu_exact, "gelu_approximate": gelu_approximate}


def get_activation(name):
    """Returns the activation function for `name`.

    `"gelu"` is the exact GELU, `"gelu_approximate"` the tanh one; any other name is
    looked up in `keras.activations` (for example `"relu"`).
    """
    if name in _NAMED:
        return _NAMED[name]
    try:
        return keras.activations.get(name)
    except ValueError as error:
        raise ValueError(
            f"Unknown activation {name!r}; use 'gelu' (exact), 'gelu_approximate' "
            "(tanh) or a keras.activations name such as 'relu'."
        ) from error
