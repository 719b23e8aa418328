"""One place that turns optimizer names and recipe numbers into a Keras optimizer."""

import keras

from keras_albert.optimizers.adafactor import AdaFactor
from keras_albert.optimizers.schedules import WarmupPolynomialDecay
from keras_albert.optimizers.weight_decay import AdamW, Lamb

OPTIMIZERS = ("adam", "adamw", "lamb", "adafactor")


def create_optimizer(
    name="adamw",
    learning_rate=1e-4,
    total_steps=None,
    warmup_steps=0,
    weight_decay=0.01,
    gradient_accumulation_steps=None,
    global_clipnorm=None,
):
    """Builds an optimizer for a BERT/ALBERT recipe.

    Args:
        name: `"adam"`, `"adamw"`, `"lamb"` or `"adafactor"`.
        learning_rate: the peak learning rate. For `"adafactor"`,
            `learning_rate=None` uses its relative step size (times each parameter's
            RMS) instead; an explicit rate is used as is, without parameter scaling.
        total_steps: with `warmup_steps`, gives linear warm-up then linear decay to
            0 (`WarmupPolynomialDecay`); None keeps the rate constant.
        warmup_steps: warm-up length in steps.
        weight_decay: decoupled weight decay; LayerNorm and bias are excluded.
        gradient_accumulation_steps: Keras gradient accumulation (>= 2), or None.
        global_clipnorm: clip the gradients' global norm (BERT's recipe uses 1.0),
            or None.

    Example:

    >>> optimizer = create_optimizer("lamb", 1.76e-3, total_steps=125_000,
    ...                              warmup_steps=3_125)
    >>> type(optimizer).__name__
    'Lamb'
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")
    schedule = learning_rate
    if total_steps is not None and learning_rate is not None:
        schedule = WarmupPolynomialDecay(learning_rate, warmup_steps, total_steps)
    common = {"gradient_accumulation_steps": gradient_accumulation_steps, "global_clipnorm": global_clipnorm}
    if name == "adam":
        return keras.optimizers.Adam(schedule, **common)
    if name == "adamw":
        return AdamW(learning_rate=schedule, weight_decay=weight_decay, **common)
    if name == "lamb":
        return Lamb(learning_rate=schedule, weight_decay=weight_decay, **common)
    if schedule is None:
        return AdaFactor(weight_decay=weight_decay or None, **common)
    # An explicit rate replaces the relative step; it is then not also scaled by
    # each parameter's RMS (the usual pairing, as in transformers' recommendation).
    return AdaFactor(learning_rate=schedule, relative_step=False,
                     multiply_by_parameter_scale=False,
                     weight_decay=weight_decay or None, **common)
