"""Fine-tuning with `model.fit`: build the task model, train, report.

The task kinds, their models and what their `compile()` trains with by default are
one table, in `keras_albert.models.task_kinds`:

    model = task_model(encoder, "classification", num_classes=2)
    model.compile(optimizer=create_optimizer("adamw", 5e-5, ...))  # loss, metrics: auto
    model.fit(task_dataset(train, preprocessor, shuffle=True), epochs=3)

`finetune(...)` below is that with a directory, checkpoints and exact resumption
(`keras_albert.training.run_directory`): the batches come from
`keras_albert.training.resumable_streams.task_stream`, whose epoch `e` is shuffled by `(seed, e)` alone, so a run killed mid-epoch and started again
continues with exactly the batches it would have seen.
"""

import keras

from keras_albert.models.tasks import EncoderTask
from keras_albert.training.callbacks import peak_rss_mib
from keras_albert.training.resumable_streams import task_stream
from keras_albert.training.run_directory import RunDirectory
from keras_albert.training.strategy import DistributionPlan


def predict_task(model, data, preprocessor, batch_size=64):
    """Logits for every example of `data`, in the data's order (batches are sorted
    by length for speed, then put back).

    Per-token outputs (token classification [N, W, C]; span QA's
    `{"start_logits": [N, W], "end_logits": [N, W]}`) are padded to the widest batch
    `W`: token logits with 0, span logits with -1e9 as the head pads them.
    """
    from keras_albert.training.task_dataset import restore_order, task_dataset

    dataset, order = task_dataset(data, preprocessor, batch_size=batch_size,
                                  sort_by_length=True)
    outputs = model.predict(dataset, verbose=0)
    fill = -1e9 if data.task == "span" else 0.0

    def in_order(logits):
        # Keras concatenates batches of different widths into a RaggedTensor.
        if hasattr(logits, "to_tensor"):
            logits = logits.to_tensor(default_value=fill).numpy()
        return restore_order(logits, order)

    return keras.tree.map_structure(in_order, outputs)


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
    overwrite=False,
    fingerprint=None,
):
    """The run around `model.fit` that `finetune` and `keras_albert.training.distill.distill` share.

    Plans the steps (`max_steps` caps them in all, spread over `epochs`), then calls
    `compile_model(optimizer, steps_per_execution)`, where `optimizer` is a Keras
    optimizer or a callable that takes the number of steps and returns one (so that a
    schedule ends where training does); starts the run directory
    (`keras_albert.training.run_directory`: a folder holding another run is refused
    unless this run continues its checkpoint or `overwrite=True`); fits on
    `keras_albert.training.resumable_streams.task_stream` batches (global `batch_size`)
    with checkpoints in `output_dir/backup` and exact resumption (`resume`,
    `checkpoint_every`: see `keras_albert.training.resume.make_checkpoint`),
    TensorBoard logs and `extra_callbacks`, validating on `eval_data` after each
    epoch. Returns a dict: `run_directory` (call its `finish(model, summary)` when
    done), `epochs`, `steps`, `resumed_at_step`, `replicas`, `train_seconds`,
    `real_tokens_per_second`, `history`.

    The checkpoint's fingerprint is the data, the steps, the batch, the seed and the
    optimizer's settings, with the caller's `fingerprint` dict (its model, its files
    ...): a checkpoint written by a run with other settings is refused.
    """
    from keras_albert.training.fingerprint import examples_settings, optimizer_settings
    from keras_albert.training.pretrain import epoch_plan
    from keras_albert.training.task_dataset import task_dataset

    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("max_steps", max_steps)):
        if value is not None and value < 1:  # 0 steps would train nothing, or divide by 0
            raise ValueError(f"{name} must be >= 1; got {value}.")
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
    run_directory = RunDirectory(output_dir, strategy).start(preprocessor.tokenizer, resume,
                                                             overwrite)
    checkpoint = run_directory.checkpoint(resume, checkpoint_every, run={
        "global_batch": batch_size, "seed": seed, "epochs": epochs, "max_steps": max_steps,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "train_data": examples_settings(train_data), "eval_data": examples_settings(eval_data),
        "optimizer": optimizer_settings(optimizer), **(fingerprint or {})})

    def dataset_from_step(step):
        return plan.prepare(task_stream(train_data, preprocessor, batch_size, seed=seed,
                                        start_step=step, end_step=total_steps))

    fitted = run_directory.fit(model, dataset_from_step, epochs, steps_per_epoch, checkpoint,
                               callbacks=extra_callbacks, validation_data=validation,
                               verbose=verbose)
    seconds, resumed_at = fitted["train_seconds"], fitted["resumed_at_step"]
    # Real (non-padding) tokens per second over this process's fit (tracing and the
    # per-epoch validation included, so a lower bound).
    real_tokens = real_tokens_per_epoch * (total_steps - resumed_at) / epoch_batches
    return {
        "run_directory": run_directory,
        "epochs": epochs,
        "steps": total_steps,
        "resumed_at_step": resumed_at,
        "replicas": plan.num_replicas,
        "train_seconds": seconds,
        "real_tokens_per_second": round(real_tokens / seconds, 1) if seconds else None,
        "history": fitted["history"],
    }


def finetune_fingerprint(model, preprocessor):
    """What a fine-tuning run's result depends on besides its data, steps and optimizer
    (which `fit_on_task_stream` adds): the task model (head, encoder architecture,
    precision, remat), the sequence length and the vocabulary's size."""
    from keras_albert.training.fingerprint import model_settings

    return {"task": getattr(model, "task", None), "model": model_settings(model),
            "seq_length": preprocessor.seq_length,
            "vocabulary_size": preprocessor.tokenizer.vocabulary_size,
            **packing_settings(preprocessor)}


def preprocessor_as_trained(preprocessor, summary):
    """`preprocessor`, cutting too-long texts as the run of `summary` (its summary.json)
    did: exports and students must see texts cut as the model saw them in training."""
    truncation = summary.get("truncation", "longest_first")
    head_tokens = summary.get("head_tokens")
    if (truncation, head_tokens) == (preprocessor.truncation, preprocessor.head_tokens):
        return preprocessor
    return preprocessor.with_truncation(truncation, head_tokens)


def packing_settings(preprocessor):
    """How too-long texts were cut, when not the default `longest_first`: summary.json
    keeps it for `keras-albert export` (serving must cut as training did), and run
    fingerprints from before the option existed still match."""
    if preprocessor.truncation == "longest_first":
        return {}
    return {"truncation": preprocessor.truncation, "head_tokens": preprocessor.head_tokens}


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
    overwrite=False,
    fingerprint=None,
):
    """Fine-tunes a task model on `train_data` (a `keras_albert.training.task_records.TaskData`).

    Compiles `model` (a task model of the data's kind, e.g. from
    `keras_albert.models.task_kinds.task_model`) with its own loss and metrics, trains
    with length-bucketed batches (validating on `eval_data` after each epoch),
    evaluates on `eval_data` with `keras_albert.metrics.evaluate_predictions`
    (accuracy, F1, MCC, Pearson, Spearman as the task has them; entity F1 or macro F1
    for token classification, exact match and F1 for span QA), and writes
    `output_dir/model.keras`, the tokenizer's vocabulary, TensorBoard logs and
    `summary.json`. Returns the summary dict. Token-classification and span-QA
    summaries also count what truncation to the sequence length cut: word tags
    (`truncated_words`) or answers (`truncated_answers`), for the training and
    evaluation data.

    `optimizer` is a Keras optimizer, or a callable taking the number of training
    steps and returning one (so a schedule ends exactly where training does).
    `max_steps` caps the steps in all, spread over `epochs`. `batch_size` is the global
    batch (split among the replicas of the model's strategy; see
    `keras_albert.training.strategy.DistributionPlan`).

    Checkpoints (`output_dir/backup`, at the end of every epoch and every
    `checkpoint_every` steps) hold the weights, the optimizer state, the step (the
    data position) and the RNG state; `resume` is `"auto"`/True (continue from a
    checkpoint if there is one), `"require"`, `"restart"` or False (no checkpoints):
    see `keras_albert.training.resume.make_checkpoint`. A folder holding another run
    (a model, a vocabulary, logs) is refused unless the run continues its checkpoint
    or `overwrite=True`, which clears it first. Under `MultiWorkerMirroredStrategy`
    only the chief writes `output_dir`.

    A checkpoint is continued only by a run with the same fingerprint: the data, the
    model (`finetune_fingerprint`), the optimizer's settings, the steps, the batch and
    the seed; `fingerprint` adds what the caller knows besides (the command line: its
    files and the model's source). Otherwise it is refused, naming what differs.
    """
    from keras_albert.metrics import evaluate_predictions
    from keras_albert.training.task_dataset import encode_examples, task_targets

    task = train_data.task
    if not isinstance(model, EncoderTask):
        # Its loss would be unknown: only our task models pick theirs in compile().
        raise TypeError(f"finetune trains keras_albert task models (task_model(encoder, "
                        f"{task!r}, ...)); got {type(model).__name__}. For another model, "
                        "compile it with a loss and fit it on task_dataset(...) batches.")
    if model.task != task:
        raise ValueError(f"The model is for task {model.task!r} but the data is for "
                         f"{task!r}; build it with `task_model(encoder, {task!r}, ...)`.")

    def compile_model(chosen_optimizer, steps_per_execution):
        # The task model's own loss and metrics ("auto"; see `task_kinds`).
        model.compile(optimizer=chosen_optimizer, jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)

    run = fit_on_task_stream(
        model, compile_model, optimizer, train_data, preprocessor, output_dir, epochs=epochs,
        batch_size=batch_size, eval_data=eval_data, seed=seed, max_steps=max_steps,
        resume=resume, checkpoint_every=checkpoint_every,
        steps_per_execution=steps_per_execution, extra_callbacks=extra_callbacks,
        verbose=verbose, overwrite=overwrite,
        fingerprint={**finetune_fingerprint(model, preprocessor), **(fingerprint or {})})
    run_directory = run.pop("run_directory")
    history = run.pop("history")
    summary = {
        "task": task,
        # What an export needs to rebuild the serving contract (`keras-albert export`).
        "text_inputs": train_data.num_segments,
        "seq_length": preprocessor.seq_length,
        **packing_settings(preprocessor),
        "label_names": list(train_data.label_names) if train_data.label_names else None,
        "train_examples": len(train_data),
        **run,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "history": history,
    }
    if task in ("token", "span"):
        cut = {"train": encode_examples(train_data, preprocessor)[0].truncated}
        if eval_data is not None:
            cut["eval"] = encode_examples(eval_data, preprocessor)[0].truncated
        summary["truncated_words" if task == "token" else "truncated_answers"] = cut
    if eval_data is not None:
        logits = predict_task(model, eval_data, preprocessor)
        summary["eval"] = evaluate_predictions(task, logits,
                                               task_targets(eval_data, preprocessor),
                                               label_names=train_data.label_names)
        summary["eval_examples"] = len(eval_data)
    run_directory.finish(model, summary)
    return summary
