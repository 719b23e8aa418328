"""Activation names used by the checkpoint families, and the three forms of GELU.

BERT and DistilBERT checkpoints were trained with the exact (erf) GELU; ALBERT
checkpoints with the tanh approximation (transformers calls it `gelu_new`). Mixing them
up changes outputs by about 1e-3, so the encoder config names the one it uses. The
sigmoid form x * sigmoid(1.702 x) (Hendrycks & Gimpel 2016; transformers'
`quick_gelu`) is the cheapest of the three and the least exact.
"""

import keras


def gelu_approximate(x):
    """The tanh approximation of GELU, as used by the original ALBERT code."""
    return keras.activations.gelu(x, approximate=True)


def gelu_exact(x):
    """The exact GELU, x * Phi(x), as used by BERT and DistilBERT checkpoints."""
    return keras.activations.gelu(x, approximate=False)


def gelu_sigmoid(x):
    """GELU as x * sigmoid(1.702 x): one exponential, no erf or tanh polynomial.

    Its largest absolute difference from the exact GELU is 0.0203 (at x = -2.27),
    against 4.7e-4 (at x = 2.70) for the tanh form; both measured on a 1e-5 grid over
    [-10, 10] against x * Phi(x) computed with SciPy's erf.

    >>> round(float(gelu_sigmoid(1.0)), 4)  # 1 / (1 + e^-1.702)
    0.8458
    """
    x = keras.ops.convert_to_tensor(x)
    return x * keras.ops.sigmoid(keras.ops.cast(1.702, x.dtype) * x)


_NAMED = {"gelu": gelu_exact, "gelu_approximate": gelu_approximate,
          "gelu_sigmoid": gelu_sigmoid}


def get_activation(name):
    """Returns the activation function for `name`.

    `"gelu"` is the exact GELU, `"gelu_approximate"` the tanh one, `"gelu_sigmoid"`
    x * sigmoid(1.702 x); any other name is looked up in `keras.activations` (for
    example `"relu"`).
    """
    if name in _NAMED:
        return _NAMED[name]
    try:
        return keras.activations.get(name)
    except ValueError as error:
        raise ValueError(
            f"Unknown activation {name!r}; use 'gelu' (exact), 'gelu_approximate' "
            "(tanh), 'gelu_sigmoid' (x * sigmoid(1.702 x)) or a keras.activations name "
            "such as 'relu'."
        ) from error
