"""AdamW and LAMB whose weight-decay exclusions survive saving.

Keras's `exclude_from_weight_decay(var_names=...)` is not part of `get_config`, so a
model reloaded from a `.keras` file would silently start decaying its LayerNorm and
bias variables. These subclasses take the exclusions as a constructor argument.

Keras's `Lamb` applies weight decay decoupled, before the trust-ratio update; the
LAMB paper and google-research/albert put the decay term inside the ratio. The
difference is second order for small decay rates; we keep Keras's optimizer.
"""

import keras

# Variable names (Keras `variable.name`, the last path component) never decayed:
# LayerNorm scales/offsets and biases, as in BERT and ALBERT.
DEFAULT_DECAY_EXCLUSIONS = ("gamma", "beta", "bias")


class _SavedDecayExclusions:
    def __init__(self, *args, exclude_from_weight_decay=DEFAULT_DECAY_EXCLUSIONS, **kwargs):
        super().__init__(*args, **kwargs)
        self.decay_exclusions = list(exclude_from_weight_decay or ())
        if self.decay_exclusions:
            self.exclude_from_weight_decay(var_names=self.decay_exclusions)

    def get_config(self):
        config = super().get_config()
        config["exclude_from_weight_decay"] = list(self.decay_exclusions)
        return config


@keras.saving.register_keras_serializable(package="keras_albert")
class AdamW(_SavedDecayExclusions, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with LayerNorm and bias excluded from weight decay.

    >>> optimizer = AdamW(learning_rate=1e-4, weight_decay=0.01)
    >>> optimizer.get_config()["exclude_from_weight_decay"]
    ['gamma', 'beta', 'bias']
    """


@keras.saving.register_keras_serializable(package="keras_albert")
class Lamb(_SavedDecayExclusions, keras.optimizers.Lamb):
    """`keras.optimizers.Lamb` (ALBERT's pretraining optimizer) with saved exclusions."""
