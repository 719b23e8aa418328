"""Fine-tuning with `model.fit`: pick the task model, its loss and metrics, train, report.

Tasks and what they train:

| task             | model                                  | loss                       | metrics                     |
|------------------|----------------------------------------|----------------------------|-----------------------------|
| `classification` | `SequenceClassifier(num_classes)`      | sparse cross-entropy       | accuracy (+ F1, MCC if 2)   |
| `regression`     | `SequenceClassifier(1)`                | mean squared error         | Pearson (Spearman at end)   |
| `multilabel`     | `SequenceClassifier(num_labels)`       | ZLPR (`keras_albert.losses`)| micro F1                   |
| `token`          | `TokenClassifier(num_classes)`         | sparse CE, label -100 ignored | accuracy on labelled tokens |
| `span`           | `SpanQuestionAnswerer()`               | CE on start and end        | start / end accuracy        |

    model = build_task_model(encoder, "classification", num_classes=2)
    compile_for_task(model, "classification", create_optimizer("adamw", 5e-5, ...))
    model.fit(task_dataset(train, preprocessor, shuffle=True), epochs=3)

`finetune(...)` below is that with a directory, checkpoints and exact resumption
(`keras_albert.training.resume`): the batches come from `keras_albert.training.resume.task_stream`, whose epoch
`e` is shuffled by `(seed, e)` alone, so a run killed mid-epoch and started again
continues with exactly the batches it would have seen.
"""

import json
import os
import time

import keras

from keras_albert.conversion.huggingface import write_tokenizer
from keras_albert.losses import ZLPRLoss
from keras_albert.metrics import IGNORE_LABEL
from keras_albert.models.tasks import SequenceClassifier, SpanQuestionAnswerer, TokenClassifier
from keras_albert.training.callbacks import peak_rss_mib, standard_callbacks
from keras_albert.training.resume import make_checkpoint, resumable_fit, task_stream
from keras_albert.training.strategy import DistributionPlan, remove_worker_dir, worker_output_dir

TASKS = ("classification", "regression", "multilabel", "token", "span")


def _check_task(task):
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {TASKS}.")


def build_task_model(encoder, task, num_classes=None, dropout=0.1, pooling="pooled"):
    """The task model for `task` on top of `encoder` (see the module docstring);
    `pooling` is the sequence classifier's (`SequenceClassifier`)."""
    _check_task(task)
    if task == "span":
        return SpanQuestionAnswerer(encoder)
    if task == "regression":
        return SequenceClassifier(encoder, num_classes=1, dropout=dropout, pooling=pooling)
    if not num_classes or num_classes < 2 and task != "multilabel":
        raise ValueError(f"task={task!r} needs num_classes >= 2; got {num_classes}.")
    if task == "token":
        return TokenClassifier(encoder, num_classes=num_classes, dropout=dropout)
    return SequenceClassifier(encoder, num_classes=num_classes, dropout=dropout,
                              pooling=pooling)


def task_loss_and_metrics(task, num_classes=None):
    """`(loss, metrics)` for `model.compile` (Keras objects; see the module docstring)."""
    from keras_albert import metrics as task_metrics

    _check_task(task)
    if task in ("classification", "regression", "multilabel"):
        loss = {
            "classification": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "regression": keras.losses.MeanSquaredError(),
            "multilabel": ZLPRLoss(),
        }[task]
        return loss, task_metrics.task_metrics(task, num_classes or 2)
    if task == "token":
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=IGNORE_LABEL
        )
        return loss, [task_metrics.TokenAccuracy(name="accuracy")]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    accuracy = {
        "start_logits": [keras.metrics.SparseCategoricalAccuracy("accuracy")],
        "end_logits": [keras.metrics.SparseCategoricalAccuracy("accuracy")],
    }
    return {"start_logits": loss, "end_logits": loss}, accuracy


def compile_for_task(model, task, optimizer, num_classes=None, jit_compile=False,
                     steps_per_execution=1):
    loss, metrics = task_loss_and_metrics(task, num_classes)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def predict_task(model, data, preprocessor, batch_size=64):
    """Logits for every example of `data`, in the data's order (batches are sorted
    by length for speed, then put back)."""
    from keras_albert.training.task_data import restore_order, task_dataset

    dataset, order = task_dataset(data, preprocessor, batch_size=batch_size,
                                  sort_by_length=True)
    logits = model.predict(dataset, verbose=0)
    return restore_order(logits, order)


def fit_on_task_stream(
    model,
    compile_model,
    optimizer,
    train_data,
    preprocessor,
    output_dir,
    epochs=3,
    batch_size=32,
    eval_data=None,
    seed=0,
    max_steps=None,
    resume=True,
    checkpoint_every=None,
    steps_per_execution=1,
    extra_callbacks=(),
    verbose="auto",
):
    """The run around `model.fit` that `finetune` and `keras_albert.training.distill.distill` share.

    Plans the steps (`max_steps` caps them in all, spread over `epochs`), then calls
    `compile_model(optimizer, steps_per_execution)`, where `optimizer` is a Keras
    optimizer or a callable that takes the number of steps and returns one (so that a
    schedule ends where training does); writes the tokenizer to the worker's output directory; fits on
    `keras_albert.training.resume.task_stream` batches (global `batch_size`) with checkpoints in
    `output_dir/backup` and exact resumption (`resume`, `checkpoint_every`: see
    `keras_albert.training.resume.make_checkpoint`), TensorBoard logs and `extra_callbacks`,
    validating on `eval_data` after each epoch. Returns a dict: `work_dir` (where this
    worker writes; delete it with `remove_worker_dir` when done), `epochs`, `steps`,
    `resumed_at_step`, `replicas`, `train_seconds`, `real_tokens_per_second`, `history`.
    """
    from keras_albert.training.pretrain import epoch_plan
    from keras_albert.training.task_data import task_dataset

    strategy = model.distribute_strategy
    plan = DistributionPlan(strategy, batch_size, steps_per_execution)
    sizing = task_stream(train_data, preprocessor, batch_size, seed=seed)
    epoch_batches, real_tokens_per_epoch = sizing.steps_per_epoch, sizing.real_tokens_per_epoch
    del sizing
    steps_per_epoch = epoch_batches
    if max_steps is not None:
        epochs, steps_per_epoch = epoch_plan(max_steps, -(-max_steps // epochs))
    total_steps = epochs * steps_per_epoch
    if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
        optimizer = optimizer(total_steps)
    compile_model(optimizer, plan.steps_per_execution)
    validation = None
    if eval_data is not None:
        validation = plan.prepare(task_dataset(eval_data, preprocessor,
                                               batch_size=2 * batch_size))
    work_dir = worker_output_dir(output_dir, strategy)
    os.makedirs(work_dir, exist_ok=True)
    write_tokenizer(preprocessor.tokenizer, work_dir)
    checkpoint = make_checkpoint(output_dir, resume, checkpoint_every, run={
        "global_batch": batch_size, "seed": seed, "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps, "train_examples": len(train_data)})

    def dataset_from_step(step):
        return plan.prepare(task_stream(train_data, preprocessor, batch_size, seed=seed,
                                        start_step=step, end_step=total_steps))

    start = time.perf_counter()
    history = resumable_fit(
        model, dataset_from_step, epochs, steps_per_epoch, checkpoint,
        callbacks=standard_callbacks(work_dir, resume=False, strategy=strategy)
        + list(extra_callbacks),
        validation_data=validation,
        verbose=verbose,
        shuffle=False,  # the stream shuffles itself
    )
    seconds = time.perf_counter() - start
    resumed_at = checkpoint.start_step if checkpoint else 0
    # Real (non-padding) tokens per second over this process's fit (tracing and the
    # per-epoch validation included, so a lower bound).
    real_tokens = real_tokens_per_epoch * (total_steps - resumed_at) / epoch_batches
    return {
        "work_dir": work_dir,
        "epochs": epochs,
        "steps": total_steps,
        "resumed_at_step": resumed_at,
        "replicas": plan.num_replicas,
        "train_seconds": round(seconds, 1),
        "real_tokens_per_second": round(real_tokens / seconds, 1) if seconds else None,
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }


def save_run(model, summary, work_dir, output_dir):
    """Writes `model.keras` and `summary.json` to `work_dir`, then drops a non-chief
    worker's scratch directory."""
    model.save(os.path.join(work_dir, "model.keras"))
    with open(os.path.join(work_dir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    remove_worker_dir(work_dir, output_dir)


def finetune(
    model,
    preprocessor,
    train_data,
    output_dir,
    optimizer,
    epochs=3,
    batch_size=32,
    eval_data=None,
    seed=0,
    max_steps=None,
    resume=True,
    verbose="auto",
    jit_compile=False,
    extra_callbacks=(),
    checkpoint_every=None,
    steps_per_execution=1,
):
    """Fine-tunes a task model on `train_data` (a `keras_albert.training.task_data.TaskData`).

    Compiles `model` for the data's task, trains with length-bucketed batches
    (validating on `eval_data` after each epoch), evaluates on `eval_data` with
    `keras_albert.metrics.evaluate_predictions` (accuracy, F1, MCC, Pearson, Spearman as
    the task has them), and writes `output_dir/model.keras`, the tokenizer's
    vocabulary, TensorBoard logs and `summary.json`. Returns the summary dict.

    `optimizer` is a Keras optimizer, or a callable taking the number of training
    steps and returning one (so a schedule ends exactly where training does).
    `max_steps` caps the steps in all, spread over `epochs`. `batch_size` is the global
    batch (split among the replicas of the model's strategy; see
    `keras_albert.training.strategy.DistributionPlan`).

    Checkpoints (`output_dir/backup`, at the end of every epoch and every
    `checkpoint_every` steps) hold the weights, the optimizer state, the step (the
    data position) and the RNG state; `resume` is `"auto"`/True (continue from a
    checkpoint if there is one), `"require"`, `"restart"` or False (no checkpoints):
    see `keras_albert.training.resume.make_checkpoint`. Under `MultiWorkerMirroredStrategy` only the
    chief writes `output_dir`.
    """
    from keras_albert.metrics import evaluate_predictions

    task = train_data.task

    def compile_model(chosen_optimizer, steps_per_execution):
        compile_for_task(model, task, chosen_optimizer, train_data.num_classes,
                         jit_compile=jit_compile, steps_per_execution=steps_per_execution)

    run = fit_on_task_stream(
        model, compile_model, optimizer, train_data, preprocessor, output_dir, epochs=epochs,
        batch_size=batch_size, eval_data=eval_data, seed=seed, max_steps=max_steps,
        resume=resume, checkpoint_every=checkpoint_every,
        steps_per_execution=steps_per_execution, extra_callbacks=extra_callbacks,
        verbose=verbose)
    work_dir = run.pop("work_dir")
    history = run.pop("history")
    summary = {
        "task": task,
        # What an export needs to rebuild the serving contract (`keras-albert export`).
        "text_inputs": len(train_data.texts),
        "seq_length": preprocessor.seq_length,
        "label_names": list(train_data.label_names) if train_data.label_names else None,
        "train_examples": len(train_data),
        **run,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "history": history,
    }
    if eval_data is not None:
        logits = predict_task(model, eval_data, preprocessor)
        summary["eval"] = evaluate_predictions(task, logits, eval_data.labels)
        summary["eval_examples"] = len(eval_data)
    save_run(model, summary, work_dir, output_dir)
    return summary
