"""Callbacks shared by the pretraining, fine-tuning and distillation runs."""

import resource
import time

import keras


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Throughput(keras.callbacks.Callback):
    """Adds `tokens_per_second` (and `seconds_per_step`) to the epoch logs.

    `tokens_per_batch` is the tokens of one (fixed-shape) batch; the first `skip`
    batches (tracing and XLA compilation) are not timed. The values are running
    means since the start of training; placed before `TensorBoard` in the callback
    list, they reach TensorBoard as well as the history.
    """

    def __init__(self, tokens_per_batch, skip=1):
        super().__init__()
        self.tokens_per_batch = tokens_per_batch
        self.skip = skip
        self._seen = 0
        self.seconds = 0.0
        self.steps = 0
        self.tokens = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen <= self.skip:
            return
        self.seconds += time.perf_counter() - self._start
        self.steps += 1
        self.tokens += self.tokens_per_batch

    @property
    def tokens_per_second(self):
        return self.tokens / self.seconds if self.seconds else float("nan")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.steps:
            logs["tokens_per_second"] = self.tokens_per_second
            logs["seconds_per_step"] = self.seconds / self.steps


def standard_callbacks(output_dir, resume=True, tensorboard=True, strategy=None):
    """TensorBoard logs in `output_dir/logs` and, with `resume`, a
    `ChiefBackupAndRestore` in `output_dir/backup` (Keras's `BackupAndRestore`
    semantics, plus the optimizer and RNG state, and only the chief writing under
    `MultiWorkerMirroredStrategy`): a killed run started again with the same command
    continues from its last checkpoint. For an exact mid-epoch continuation (the
    same batches as an uninterrupted run) drive `fit` with
    `keras_albert.training.resume.resumable_fit`, as the pipelines do.

    Under `MultiWorkerMirroredStrategy` (`strategy`, default: the current one) only
    the chief writes TensorBoard logs.
    """
    import os

    import tensorflow as tf

    from keras_albert.training.resume import ChiefBackupAndRestore
    from keras_albert.training.strategy import is_chief

    strategy = strategy or tf.distribute.get_strategy()
    callbacks = []
    if tensorboard and is_chief(strategy):
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
    if resume:
        callbacks.append(ChiefBackupAndRestore(os.path.join(output_dir, "backup")))
    return callbacks
