"""`model.fit` / `evaluate` under `tf.distribute.MultiWorkerMirroredStrategy` (Keras 3.15).

Keras 3.15's TensorFlow trainer cannot train a model that lives in a
`MultiWorkerMirroredStrategy` (MWMS) scope, for two reasons found here:

1. `keras/src/backend/tensorflow/trainer.py`, `TensorFlowTrainer._maybe_symbolic_build`
   (called by `fit` and `evaluate` whenever the model was created in a strategy scope)
   takes the first distributed batch and calls
   `strategy.reduce("MEAN", batch, axis=None)` on the whole `(x, y, sample_weight)`
   structure, only to learn its shapes. `MirroredExtended._reduce_to` maps over nested
   values, but `CollectiveAllReduceExtended._reduce_to` (MWMS) unwraps only a single
   `DistributedValues`, so the tuple reaches the cross-device ops, whose
   `convert_to_tensor(tuple of PerReplica)` raises "Attempt to convert a value
   (PerReplica...)". Building the model and its metrics needs nothing but the shapes
   and dtypes of one replica's batch, which `experimental_local_results(value)[0]`
   gives without any communication.
2. Behind it, in multi-worker mode `reduce_per_replica` (same file) reduces every log
   that `train_step` / `test_step` return with `strategy.reduce("MEAN", v, axis=0)`,
   which fails on the 0-d loss and metric values ("Invalid reduction dimension 0";
   keras#20585, tensorflow#72388). Giving each scalar log a leading axis of length 1
   makes that reduction a mean over the replicas' values, a scalar again.

`MultiWorkerFitMixin` avoids both at the model level, without touching Keras's files:
it overrides `_maybe_symbolic_build` (only under MWMS: the local replica's batch is
used for the symbolic build instead of a cross-worker reduce) and `_make_function`
(only in multi-worker mode: the step function returned to Keras reshapes 0-d logs to
`[1]`; whatever `train_step` / `test_step` the model defines, e.g. `Distiller`'s, is
wrapped). Why it is safe:

- The symbolic build only reads shapes and dtypes (it builds `KerasTensor`s); the mean
  Keras would compute has the shape of one replica's value, the same as the local
  value. No variable, optimizer or data state differs.
- The step itself (gradients, their all-reduce, the optimizer update) is untouched;
  only the logs' shapes change, and the mean over replicas of `[1]`-shaped values is
  the mean Keras meant to compute.
- Under no strategy, `OneDeviceStrategy`, `MirroredStrategy` and `TPUStrategy` both
  overrides call Keras's own methods unchanged.

The override uses two private Keras methods (`_maybe_symbolic_build`,
`_make_function`); `tests/test_distributed.py` trains two real worker processes and
compares their weights with a one-device run, so a Keras upgrade that changes them
fails there, not silently.
"""

import tensorflow as tf

__all__ = ["MultiWorkerFitMixin", "is_multi_worker", "uses_collective_reduce"]


def uses_collective_reduce(strategy):
    """True for a `MultiWorkerMirroredStrategy` (one or several workers)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_multi_worker(strategy):
    """True when Keras reduces logs across workers (MWMS with several workers): the
    same condition as Keras's `_collective_all_reduce_multi_worker`."""
    return uses_collective_reduce(strategy) and strategy.extended._in_multi_worker_mode()


def _with_batch_axis(value):
    if isinstance(value, tf.Tensor) and value.shape.rank == 0:
        return tf.reshape(value, [1])
    return value


class MultiWorkerFitMixin:
    """Lets a `keras.Model` subclass train with `fit` / `evaluate` under
    `MultiWorkerMirroredStrategy` (see the module docstring). List it before
    `keras.Model` (or the task base class): `class Task(MultiWorkerFitMixin, keras.Model)`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is None or not uses_collective_reduce(strategy):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            batch = next(batches)
            break
        # One replica's batch: its shapes are what Keras's MEAN-reduce would return.
        batch = tf.nest.map_structure(
            lambda value: strategy.experimental_local_results(value)[0]
            if isinstance(value, tf.distribute.DistributedValues) else value,
            batch,
        )
        with strategy.scope():
            self._symbolic_build(data_batch=batch)

    def _make_function(self, step_function):
        if not is_multi_worker(self.distribute_strategy):
            return super()._make_function(step_function)

        def step_with_batched_logs(data):
            logs = step_function(data)
            return tf.nest.map_structure(_with_batch_axis, logs)

        return super()._make_function(step_with_batched_logs)
