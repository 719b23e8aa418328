"""The run directory: one layout for what `pretrain`, `finetune` and `distill` write.

    OUTPUT/
      model.keras                  the trained model (pretraining: the PretrainingModel)
      spiece.model | vocab.txt     its tokenizer, with tokenizer_config.json
      summary.json                 the run's settings and results
      logs/                        TensorBoard logs (train/, validation/)
      backup/                      checkpoints while the run goes on (removed at the end)

`RunDirectory` owns these names and the skeleton every run shares: make the folder
and write the tokenizer first (a resumed run finds the vocabulary it trained with),
fit with checkpoints and exact resumption, then save the model and the summary.
Under `MultiWorkerMirroredStrategy` only the chief writes `OUTPUT`; the other
workers write to a scratch folder that `finish` removes.

    run = RunDirectory("runs/sst2")
    run.start(preprocessor.tokenizer)
    checkpoint = run.checkpoint(resume="auto", run={"seed": 0})
    fitted = run.fit(model, dataset_from_step, 3, 100, checkpoint)
    run.finish(model, {"task": "classification", **fitted})
"""

import json
import os
import pathlib
import time

MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.json"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"


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


class RunDirectory:
    """One run's output folder; see the module docstring for its layout."""

    def __init__(self, output_dir, strategy=None):
        import tensorflow as tf

        from keras_albert.training.strategy import worker_output_dir

        self.output_dir = str(output_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.work_dir = worker_output_dir(self.output_dir, self.strategy)

    @property
    def model_path(self):
        return os.path.join(self.work_dir, MODEL_FILE)

    @property
    def summary_path(self):
        return os.path.join(self.work_dir, SUMMARY_FILE)

    def start(self, tokenizer=None):
        """Creates the folder and writes the tokenizer's vocabulary."""
        from keras_albert.conversion.huggingface import write_tokenizer

        os.makedirs(self.work_dir, exist_ok=True)
        if tokenizer is not None:
            write_tokenizer(tokenizer, self.work_dir)
        return self

    def checkpoint(self, resume=True, checkpoint_every=None, run=None):
        """The checkpoint callback for `backup/` (None with `resume=False`); made before
        any work, so that `resume="require"` without a checkpoint fails at once. `run`
        (a dict of settings) guards a checkpoint against being resumed by a run with
        other settings; see `keras_albert.training.resume.make_checkpoint`."""
        from keras_albert.training.resume import make_checkpoint

        return make_checkpoint(self.output_dir, resume, checkpoint_every, run=run)

    def fit(self, model, dataset_from_step, epochs, steps_per_epoch, checkpoint=None,
            callbacks=(), first_callbacks=(), validation_data=None, verbose="auto"):
        """`model.fit` with `checkpoint` (from `self.checkpoint`), exact resumption and
        TensorBoard logs in `logs/` (`keras_albert.training.resume.resumable_fit`).

        `dataset_from_step(step)` returns the training batches from global step `step`
        on; `first_callbacks` run before the logging callbacks (so what they add to
        the logs reaches TensorBoard). Returns a dict: `resumed_at_step`,
        `train_seconds`, `history`.
        """
        from keras_albert.training.callbacks import standard_callbacks
        from keras_albert.training.resume import resumable_fit

        callbacks = (list(first_callbacks)
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
        """Writes `model.keras` and `summary.json`, then removes a non-chief worker's
        scratch folder."""
        from keras_albert.training.strategy import remove_worker_dir

        model.save(self.model_path)
        with open(self.summary_path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        remove_worker_dir(self.work_dir, self.output_dir)
