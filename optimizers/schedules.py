"""Learning-rate schedules for the BERT/ALBERT recipes."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_albert")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak_learning_rate`, then polynomial decay to `end_learning_rate`.

    The BERT / ALBERT recipe (power 1: linear decay). At step t (counting from 0):

        t < warmup_steps:  peak * (t + 1) / warmup_steps
        afterwards:        end + (peak - end) * (1 - (t - warmup) / (total - warmup)) ** power

    and `end_learning_rate` after `total_steps`.

    Example:

    >>> schedule = WarmupPolynomialDecay(1e-3, warmup_steps=10, total_steps=110)
    >>> [round(float(schedule(t)), 6) for t in (0, 9, 60, 110)]
    [0.0001, 0.001, 0.0005, 0.0]
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps,
                 end_learning_rate=0.0, power=1.0):
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps "
                             f"({warmup_steps}).")
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.end_learning_rate = end_learning_rate
        self.power = power

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        end = ops.cast(self.end_learning_rate, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        warm = peak * (step + 1.0) / warmup
        progress = ops.clip(
            (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        decayed = end + (peak - end) * ops.power(1.0 - progress, self.power)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
        }
