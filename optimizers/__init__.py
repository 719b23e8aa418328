"""Optimizers for training the encoders with little optimizer memory.

`AdaFactor` (Shazeer & Stern 2018) keeps factored second moments: an n x m matrix costs
n + m floats of state instead of Adam's 2 n m. `optimizer_state_bytes(optimizer)` counts
the bytes of any built Keras optimizer's state. `create_optimizer` builds the recipe
optimizers (Adam, AdamW, LAMB, AdaFactor) with warm-up + polynomial decay and
LayerNorm/bias excluded from weight decay.
"""

import os

# Like `keras_albert`: the TensorFlow backend unless the user chose one already.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_albert.optimizers.adafactor import AdaFactor, optimizer_state_bytes  # noqa: E402
from keras_albert.optimizers.factory import OPTIMIZERS, create_optimizer  # noqa: E402
from keras_albert.optimizers.schedules import WarmupPolynomialDecay  # noqa: E402
from keras_albert.optimizers.weight_decay import AdamW, Lamb  # noqa: E402

__all__ = [
    "OPTIMIZERS",
    "AdaFactor",
    "AdamW",
    "Lamb",
    "WarmupPolynomialDecay",
    "create_optimizer",
    "optimizer_state_bytes",
]
