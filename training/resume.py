"""Exact resumption of a killed training run, also under `MultiWorkerMirroredStrategy`.

A run is a sequence of global steps `0 .. total_steps - 1`; step `s` trains on batch
`s` of a deterministic input stream. A checkpoint holds everything step `s` depends
on:

- the model's weights and the optimizer's state (Adam / AdaFactor slots, the step
  counter that drives the learning-rate schedule, gradient-accumulation buffers,
  the loss scale), written with `model.save_weights`;
- the global step, which is the data position: the input pipeline is rebuilt and
  skips the batches already consumed (`dataset_from_step(step)`);
- the random state of the model's layers (the `SeedGenerator` states that dropout
  draws from), which `save_weights` leaves out.

`ChiefBackupAndRestore` writes checkpoints (every `save_freq` steps and/or at the end
of each epoch) and restores the latest one when training begins, as Keras's
`BackupAndRestore` does; unlike it, only the chief writes the shared directory under
`MultiWorkerMirroredStrategy` (the other workers save into a scratch directory, so
that every worker runs the same saving code, and delete it), and every worker
restores from the shared directory. `resumable_fit` drives `model.fit` so that a run
restored mid-epoch trains only the rest of that epoch, then the remaining epochs, on
exactly the batches an uninterrupted run would have used.

For the data position to mean anything the stream must not depend on how often a
dataset object was iterated before: `keras_albert.training.resumable_streams` makes
such streams (`task_stream`, `replayable`), and every `fit` call gets a fresh dataset
from `dataset_from_step`.

    checkpoint = make_checkpoint(output_dir, resume="auto", save_freq=200)
    history = resumable_fit(
        model,
        lambda step: task_stream(data, preprocessor, 32, start_step=step, end_step=300),
        epochs=3, steps_per_epoch=100, checkpoint=checkpoint)

Checkpoint layout (`backup_dir`): `ckpt-<step>/model.weights.h5`,
`ckpt-<step>/state.json` (step, epoch, RNG states, the optimizer's variables, the
run's settings) and `latest` (the name of the newest complete checkpoint, replaced
atomically after the checkpoint directory was renamed into place): a kill at any
moment leaves the previous checkpoint readable.
"""

import json
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_albert.training.fingerprint import run_differences

__all__ = [
    "ChiefBackupAndRestore",
    "make_checkpoint",
    "read_checkpoint",
    "resumable_fit",
]

_LATEST = "latest"
_STATE = "state.json"
_WEIGHTS = "model.weights.h5"


# === Checkpoint files ===


def read_checkpoint(backup_dir):
    """The state of the newest complete checkpoint in `backup_dir` (a dict with
    `step`, `epoch`, `rng`, `run` and `path`), or None when there is none."""
    latest = os.path.join(backup_dir, _LATEST)
    if not os.path.isfile(latest):
        return None
    with open(latest, encoding="utf-8") as handle:
        name = handle.read().strip()
    path = os.path.join(backup_dir, name)
    with open(os.path.join(path, _STATE), encoding="utf-8") as handle:
        state = json.load(handle)
    state["path"] = path
    return state


def _write_text_atomically(path, text):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _seed_state_variables(model):
    """The `SeedGenerator` state variables of every layer (dropout's random state)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _optimizer_of(model):
    optimizer = getattr(model, "optimizer", None)
    return getattr(optimizer, "inner_optimizer", optimizer)


def _optimizer_variable_indices(model):
    """Positions in `model.trainable_variables` of the variables the optimizer was
    built for (a `Distiller` builds it for the student variables that get gradients),
    so a resumed run builds it for the same ones before loading its slots."""
    optimizer = _optimizer_of(model)
    built_for = getattr(optimizer, "_trainable_variables", None)
    if not getattr(optimizer, "built", False) or built_for is None:
        return None
    position = {id(v): i for i, v in enumerate(model.trainable_variables)}
    indices = [position.get(id(v)) for v in built_for]
    return None if None in indices else indices


_START_OVER = ("Pass --no-resume to start over (or --overwrite; resume='restart' from "
               "Python)")


class ChiefBackupAndRestore(keras.callbacks.Callback):
    """`keras.callbacks.BackupAndRestore` with the optimizer state, the step, the data
    position and the RNG state, exact mid-epoch resumption (with `resumable_fit`) and
    chief-only writes under `MultiWorkerMirroredStrategy`.

    Args:
        backup_dir: the shared checkpoint directory (one per run).
        save_freq: `"epoch"` (at the end of every epoch) or an int: every that many
            global steps (and at the end of every epoch).
        delete_checkpoint: delete `backup_dir` once training has completed (as
            Keras's). False keeps it for the caller to `delete()` after saving the
            trained model: a kill between the end of training and the save then
            leaves the checkpoint to resume from.
        run: the run's fingerprint: a JSON-able dict of the settings its result depends
            on (data, model, optimizer, global batch, seed, steps ...; see
            `keras_albert.training.fingerprint`). A checkpoint written with other
            settings is refused, naming the settings that differ.
        restore: False to start over: an existing checkpoint is ignored (and deleted
            by the chief when training begins).

    `start_step` is the step training resumes at (0 without a checkpoint): build the
    input pipeline from there. In a plain `model.fit` (without `resumable_fit`) the
    callback behaves like Keras's: training restarts at the beginning of the epoch
    the checkpoint was written in.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, run=None,
                 restore=True):
        super().__init__()
        if save_freq != "epoch" and (isinstance(save_freq, bool) or
                                     not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or an int >= 1; got {save_freq!r}.")
        self.backup_dir = os.path.abspath(backup_dir)
        self.save_freq = save_freq
        self.delete_checkpoint = delete_checkpoint
        self.run = json.loads(json.dumps(run or {}))
        # restore=False: start over; the chief clears the directory when training begins.
        self.state = read_checkpoint(self.backup_dir) if restore else None
        self._clear = not restore
        if self.state is not None and self.run and self.state.get("run") != self.run:
            changes = "; ".join(run_differences(self.state.get("run") or {}, self.run))
            raise ValueError(
                f"The checkpoint in {self.backup_dir} was written by a run with other "
                f"settings ({changes}): it does not continue this run. {_START_OVER}, or "
                "run with the settings it was written with.")
        self.start_step = int(self.state["step"]) if self.state else 0
        self.step = self.start_step
        self.epoch = int(self.state["epoch"]) if self.state else 0
        self.total_steps = None  # set by `resumable_fit`
        self.driven = False  # True under `resumable_fit`: exact mid-epoch resumption
        self._restored = self.state is None
        self._epoch_start = self.step
        self._last_saved = self.step

    # --- restore ---

    def restore(self):
        """Loads the checkpoint into the model (weights, optimizer, RNG state)."""
        if self._restored:
            return
        model, state = self.model, self.state
        try:
            optimizer = model.optimizer
            if optimizer is not None and not optimizer.built:
                variables = model.trainable_variables
                indices = state.get("optimizer_variables")
                if indices is not None:
                    variables = [variables[i] for i in indices]
                with model.distribute_strategy.scope():
                    optimizer.build(variables)
            model.load_weights(os.path.join(state["path"], _WEIGHTS))
        except (ValueError, KeyError, IndexError, TypeError) as error:
            # Keras's own message names layers and variable counts, not what to do.
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise ValueError(
                f"The checkpoint in {self.backup_dir} does not fit this model ({reason}): "
                f"it was written for another one. {_START_OVER}.") from error
        seeds = _seed_state_variables(model)
        saved = state.get("rng", [])
        if len(saved) != len(seeds):
            raise ValueError(f"The checkpoint in {self.backup_dir} has {len(saved)} random "
                             f"states; the model has {len(seeds)} SeedGenerators: it was "
                             f"written for another model. {_START_OVER}.")
        for variable, value in zip(seeds, saved):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        self._restored = True

    def on_train_begin(self, logs=None):
        if self._clear:
            from keras_albert.training.strategy import is_chief

            self._clear = False
            if is_chief(self.model.distribute_strategy):
                shutil.rmtree(self.backup_dir, ignore_errors=True)
        if self._restored:
            return
        self.restore()
        if not self.driven:
            # Keras's BackupAndRestore semantics: start the checkpoint's epoch over.
            self.model._initial_epoch = self.epoch
            self.step = self._last_saved = self.epoch * int(self.params.get("steps") or 0)

    # --- save ---

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start + batch + 1
        if self.save_freq != "epoch" and (
                self.step // self.save_freq > self._last_saved // self.save_freq):
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._save()

    def _save(self):
        from keras_albert.training.strategy import worker_role

        if self.step == self._last_saved:  # saved at this step already (or restored)
            return
        _, _, chief = worker_role(self.model.distribute_strategy)
        # Every worker runs the same saving code; only the chief's files are kept.
        root = self.backup_dir if chief else tempfile.mkdtemp(prefix="keras_albert_backup_")
        os.makedirs(root, exist_ok=True)
        name = f"ckpt-{self.step:09d}"
        temporary = os.path.join(root, f".tmp-{name}-{os.getpid()}")
        shutil.rmtree(temporary, ignore_errors=True)
        os.makedirs(temporary)
        self.model.save_weights(os.path.join(temporary, _WEIGHTS))
        state = {
            "format": 1,
            "step": self.step,
            "epoch": self.epoch,
            "rng": [np.asarray(v.numpy()).tolist() for v in _seed_state_variables(self.model)],
            "optimizer_variables": _optimizer_variable_indices(self.model),
            "run": self.run,
        }
        with open(os.path.join(temporary, _STATE), "w", encoding="utf-8") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        final = os.path.join(root, name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(temporary, final)
        _write_text_atomically(os.path.join(root, _LATEST), name)
        for entry in os.listdir(root):  # older checkpoints and interrupted writes
            if entry != name and (entry.startswith("ckpt-") or entry.startswith(".tmp-")):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
        if not chief:
            shutil.rmtree(root, ignore_errors=True)
        self._last_saved = self.step

    def on_train_end(self, logs=None):
        # Completed (or stopped early by a callback, as Keras's BackupAndRestore
        # treats it); not after the partial first epoch of a resumed run.
        finished = (self.total_steps is None or self.step >= self.total_steps
                    or self.model.stop_training)
        if self.delete_checkpoint and finished:
            self.delete()

    def delete(self):
        """Removes the checkpoint directory (on the chief only)."""
        from keras_albert.training.strategy import worker_role

        if self.model is None or worker_role(self.model.distribute_strategy)[2]:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


RESUME_MODES = ("auto", "require", "restart")


def make_checkpoint(output_dir, resume="auto", save_freq=None, run=None,
                    delete_checkpoint=True):
    """The checkpoint callback of a pipeline writing to `output_dir` (`output_dir/backup`).

    `resume`: `"auto"` or True (continue from a checkpoint if there is one: Keras's
    `BackupAndRestore` semantics), `"require"` (continue; fail if there is no
    checkpoint), `"restart"` (start over, discarding any checkpoint) or False / None
    (no checkpoints). `save_freq`: checkpoint every that many steps (None: at the end
    of every epoch). `delete_checkpoint=False` keeps the checkpoint when training
    ends, for the caller to `delete()` once its results are saved
    (`keras_albert.training.run_directory.RunDirectory.finish` does).
    """
    if resume is None or resume is False:
        return None
    if resume is True:
        resume = "auto"
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, True or False; got "
                         f"{resume!r}.")
    backup_dir = os.path.join(output_dir, "backup")
    checkpoint = ChiefBackupAndRestore(backup_dir, save_freq=save_freq or "epoch", run=run,
                                       restore=resume != "restart",
                                       delete_checkpoint=delete_checkpoint)
    if resume == "require" and checkpoint.state is None:
        raise FileNotFoundError(
            f"--resume: there is no checkpoint in {backup_dir} to continue from (none was "
            "written yet, or the run completed and removed it). Run without --resume "
            "to start.")
    return checkpoint


# === Driving fit ===


def resumable_fit(model, dataset_from_step, epochs, steps_per_epoch, checkpoint=None,
                  callbacks=(), **fit_kwargs):
    """`model.fit` for `epochs` epochs of `steps_per_epoch` steps that resumes exactly.

    Args:
        model: a compiled model.
        dataset_from_step: `step -> dataset` giving the training batches from global
            step `step` on (a fresh dataset object each call; see
            `keras_albert.training.resumable_streams`).
        checkpoint: a `ChiefBackupAndRestore` or None (no checkpoints).
        callbacks: other callbacks; `fit_kwargs` go to `fit` (validation_data,
            verbose ...).

    Restored at step `s = e * steps_per_epoch + b` with `b > 0`, it first fits the
    rest of epoch `e` (`steps_per_epoch - b` steps, then epoch `e`'s validation and
    checkpoint), then epochs `e + 1 ..` as usual. Returns the merged history dict.
    """
    if steps_per_epoch is None or steps_per_epoch < 1:
        raise ValueError(f"resumable_fit needs steps_per_epoch >= 1; got {steps_per_epoch}.")
    total = epochs * steps_per_epoch
    start = 0
    callbacks = list(callbacks)
    if checkpoint is not None:
        checkpoint.driven = True
        checkpoint.total_steps = total
        start = checkpoint.start_step
        callbacks.append(checkpoint)
    if start > total:
        raise ValueError(f"The checkpoint is at step {start}, past this run's {total} steps.")
    epoch, offset = divmod(start, steps_per_epoch)
    runs = []
    if offset:
        runs.append((epoch, epoch + 1, steps_per_epoch - offset))
        epoch += 1
    if epoch < epochs:
        runs.append((epoch, epochs, steps_per_epoch))
    if not runs and checkpoint is not None:
        # Killed after the last step but before the end of the run: nothing to train.
        checkpoint.set_model(model)
        checkpoint.restore()
        if checkpoint.delete_checkpoint:
            checkpoint.delete()
    history = {}
    step = start
    for first, last, steps in runs:
        model._initial_epoch = None
        result = model.fit(dataset_from_step(step), initial_epoch=first, epochs=last,
                           steps_per_epoch=steps, callbacks=callbacks, **fit_kwargs)
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        step += (last - first) * steps
        if model.stop_training:
            break
    return history

