"""The run directory: one layout for what `pretrain`, `finetune` and `distill` write.

    OUTPUT/
      model.keras                  the trained model (pretraining: the PretrainingModel)
      spiece.model | vocab.txt     its tokenizer, with tokenizer_config.json
      summary.json                 the run's settings and results
      logs/                        TensorBoard logs (train/, validation/)
      backup/                      checkpoints while the run goes on (removed at the end)

`RunDirectory` owns these names and the skeleton every run shares. A folder holds
one run: `start` refuses a folder with another run's files in it (a finished model,
a vocabulary, logs) unless the run continues that folder's checkpoint or
`overwrite=True` clears them first. `fit` trains with checkpoints and exact
resumption; `finish` writes the tokenizer, the model and the summary, each under a
temporary name then renamed into place, and only then removes the checkpoint: a run
killed at any moment leaves a checkpoint that `--resume` continues, or a complete
run. Under `MultiWorkerMirroredStrategy` only the chief writes `OUTPUT`; the other
workers write to a scratch folder that `finish` removes.

    run = RunDirectory("runs/sst2")
    run.start(preprocessor.tokenizer, resume="auto")
    checkpoint = run.checkpoint(resume="auto", run={"seed": 0})
    fitted = run.fit(model, dataset_from_step, 3, 100, checkpoint)
    run.finish(model, {"task": "classification", **fitted})
"""

import json
import math
import os
import pathlib
import shutil
import tempfile
import time

MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.json"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
VOCABULARY_FILES = ("spiece.model", "vocab.txt")
TOKENIZER_CONFIG = "tokenizer_config.json"
# What a run writes: `overwrite=True` removes these, and nothing else, from a folder.
RUN_FILES = (MODEL_FILE, SUMMARY_FILE, *VOCABULARY_FILES, TOKENIZER_CONFIG, LOGS_DIR,
             BACKUP_DIR)
# `finish` writes into a scratch folder of this prefix, then renames into place.
_PARTIAL = ".partial-"
_RESUMING = (True, "auto", "require")


def read_summary(path):
    """The `summary.json` of a run directory, or beside a `.keras` file; {} if none.

    >>> read_summary("no/such/run")
    {}
    """
    path = pathlib.Path(path)
    folder = path if path.is_dir() else path.parent
    summary = folder / SUMMARY_FILE
    if path.exists() and summary.is_file():
        return json.loads(summary.read_text(encoding="utf-8"))
    return {}


def check_new_run(output_dir, resume=False, overwrite=False, chief=True):
    """Refuses (`FileExistsError`, one line) to start a run over another run's files;
    returns True when the run starts over them (they are to be removed first).

    Another run's files are `RUN_FILES`: a finished run (`model.keras`,
    `summary.json`), a vocabulary, logs, a checkpoint; other files do not count. A
    run may start over them when it continues the folder's checkpoint (`resume`
    True, "auto" or "require", and `backup/` holds one) or with `overwrite=True`
    (`RunDirectory.start` then removes them); `resume="restart"` (--no-resume) starts
    over an unfinished run's files, not over a finished run. `chief=False` (another worker of a
    multi-worker run) leaves `logs/` out: the chief may be writing it already.

    >>> check_new_run("no/such/folder", resume="auto")
    False
    """
    from keras_albert.training.resume import read_checkpoint

    if overwrite:
        if resume == "require":
            raise ValueError("overwrite=True (--overwrite) starts the run over; it cannot "
                             "also continue its checkpoint (--resume).")
        return True
    if resume == "require":
        return False  # continues the checkpoint; `make_checkpoint` fails clearly without
    present = [name for name in RUN_FILES if (chief or name != LOGS_DIR)
               and os.path.exists(os.path.join(output_dir, name))]
    if not present:
        return False
    resumable = read_checkpoint(os.path.join(output_dir, BACKUP_DIR)) is not None
    if resumable and resume in _RESUMING:
        return False
    if resume == "restart" and MODEL_FILE not in present and SUMMARY_FILE not in present:
        return True  # --no-resume over an unfinished run: start it over, as asked
    if MODEL_FILE in present or SUMMARY_FILE in present:
        what = "a finished run"
    elif resumable:
        what = "an interrupted run (continue it with --resume)"
    else:
        what = "another run's files"
    raise FileExistsError(f"{output_dir} holds {what} ({', '.join(present)}): pass "
                          "--overwrite (overwrite=True) to replace it, or write to another "
                          "folder.")


def remove_run_files(output_dir):
    """Removes what runs write (`RUN_FILES`, scratch folders of interrupted writes)
    from `output_dir`; other files stay."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name in RUN_FILES or name.startswith(_PARTIAL):
            _remove(os.path.join(output_dir, name))


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _replace_from(scratch, folder, name):
    """Moves `scratch/name` (fsynced) over `folder/name` in one rename: a kill
    leaves the old file or the new one, never part of one."""
    path = os.path.join(scratch, name)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(path, os.path.join(folder, name))


class NonFiniteLoss(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


def _stop_on_non_finite_loss(start_step):
    """A callback that raises `NonFiniteLoss` at the first step whose loss is not
    finite (`start_step`: the global step training resumes at). Keras's
    `TerminateOnNaN` stops quietly instead, and the run would then save a NaN model
    and a NaN checkpoint as if it had finished."""
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = self._epoch_start = start_step

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_start = self.step

        def on_train_batch_end(self, batch, logs=None):
            # Counted as the checkpoint counts: `batch` is the execution's last step.
            self.step = self._epoch_start + batch + 1
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise NonFiniteLoss(
                    f"training stopped at step {self.step}: the loss is {float(loss)} "
                    "(a lower --learning-rate, or --clip-norm, often helps). No model "
                    "was saved; the checkpoints of earlier steps are kept.")

    return StopOnNonFiniteLoss()


class RunDirectory:
    """One run's output folder; see the module docstring for its layout."""

    def __init__(self, output_dir, strategy=None):
        import tensorflow as tf

        from keras_albert.training.strategy import worker_output_dir

        self.output_dir = str(output_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.work_dir = worker_output_dir(self.output_dir, self.strategy)
        self.tokenizer = None
        self.overwrite = False
        self._checkpoint = None

    @property
    def model_path(self):
        return os.path.join(self.work_dir, MODEL_FILE)

    @property
    def summary_path(self):
        return os.path.join(self.work_dir, SUMMARY_FILE)

    def start(self, tokenizer=None, resume=False, overwrite=False):
        """Makes the folder for a run that trains with `tokenizer` (`finish` writes it
        beside the model). Refuses a folder holding another run's files unless the run
        continues its checkpoint (`resume`) or `overwrite=True`, which removes them
        first (see `check_new_run`)."""
        chief = self.work_dir == self.output_dir
        start_over = check_new_run(self.output_dir, resume, overwrite, chief=chief)
        if chief:
            if start_over:
                remove_run_files(self.output_dir)
            elif os.path.isdir(self.output_dir):  # writes a killed `finish` left
                for name in os.listdir(self.output_dir):
                    if name.startswith(_PARTIAL):
                        _remove(os.path.join(self.output_dir, name))
        os.makedirs(self.work_dir, exist_ok=True)
        self.tokenizer, self.overwrite = tokenizer, overwrite
        return self

    def checkpoint(self, resume=True, checkpoint_every=None, run=None):
        """The checkpoint callback for `backup/` (None with `resume=False`); made before
        any work, so that `resume="require"` without a checkpoint fails at once. `run`
        (a dict of settings) guards a checkpoint against being resumed by a run with
        other settings; see `keras_albert.training.resume.make_checkpoint`. `finish`
        removes the checkpoint, once the model is saved."""
        from keras_albert.training.resume import make_checkpoint

        if self.overwrite and resume not in (None, False):
            resume = "restart"  # every worker starts over, as the chief cleared backup/
        self._checkpoint = make_checkpoint(self.output_dir, resume, checkpoint_every, run=run,
                                           delete_checkpoint=False)
        return self._checkpoint

    def fit(self, model, dataset_from_step, epochs, steps_per_epoch, checkpoint=None,
            callbacks=(), first_callbacks=(), validation_data=None, verbose="auto"):
        """`model.fit` with `checkpoint` (from `self.checkpoint`), exact resumption and
        TensorBoard logs in `logs/` (`keras_albert.training.resume.resumable_fit`).

        `dataset_from_step(step)` returns the training batches from global step `step`
        on; `first_callbacks` run before the logging callbacks (so what they add to
        the logs reaches TensorBoard). Returns a dict: `resumed_at_step`,
        `train_seconds`, `history`.

        A loss that is not finite stops training at once with a `NonFiniteLoss` error:
        nothing more is written, so no model is saved and the checkpoints written
        before that step stay.
        """
        from keras_albert.training.callbacks import standard_callbacks
        from keras_albert.training.resume import resumable_fit

        guard = _stop_on_non_finite_loss(checkpoint.start_step if checkpoint else 0)
        # First, so that no later callback (the checkpoint above all) sees the step.
        callbacks = ([guard] + list(first_callbacks)
                     + standard_callbacks(self.work_dir, resume=False, strategy=self.strategy)
                     + list(callbacks))
        start = time.perf_counter()
        history = resumable_fit(model, dataset_from_step, epochs, steps_per_epoch, checkpoint,
                                callbacks=callbacks, validation_data=validation_data,
                                verbose=verbose, shuffle=False)  # the stream shuffles itself
        return {
            "resumed_at_step": checkpoint.start_step if checkpoint else 0,
            "train_seconds": round(time.perf_counter() - start, 1),
            "history": {key: [float(v) for v in values] for key, values in history.items()},
        }

    def finish(self, model, summary):
        """Writes the tokenizer, `model.keras` and `summary.json`, each into a scratch
        folder in the run's folder and then renamed into place, and only then removes
        the checkpoint: a run killed before the end leaves its checkpoint (which
        `--resume` continues: with the training done, it evaluates and saves again).
        Then removes a non-chief worker's scratch folder."""
        from keras_albert.training.strategy import remove_worker_dir

        scratch = tempfile.mkdtemp(prefix=_PARTIAL, dir=self.work_dir)
        try:
            if self.tokenizer is not None:
                self._write_tokenizer(scratch)
            model.save(os.path.join(scratch, MODEL_FILE))
            _replace_from(scratch, self.work_dir, MODEL_FILE)
            with open(os.path.join(scratch, SUMMARY_FILE), "w", encoding="utf-8") as handle:
                json.dump(summary, handle, indent=2)
            _replace_from(scratch, self.work_dir, SUMMARY_FILE)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if self._checkpoint is not None:
            self._checkpoint.delete()  # on the chief only
        remove_worker_dir(self.work_dir, self.output_dir)

    def _write_tokenizer(self, scratch):
        """The tokenizer's files, renamed into place; the other kind of vocabulary, if
        any, removed: only the model's own tokenizer may stand beside it."""
        from keras_albert.conversion.huggingface import write_tokenizer

        write_tokenizer(self.tokenizer, scratch)
        written = os.listdir(scratch)
        for name in written:
            _replace_from(scratch, self.work_dir, name)
        for name in VOCABULARY_FILES:
            if name not in written and os.path.exists(os.path.join(self.work_dir, name)):
                os.remove(os.path.join(self.work_dir, name))
