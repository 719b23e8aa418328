"""Masked-LM + sentence-order pretraining with `model.fit`, as ALBERT.

The model is `keras_albert.models.PretrainingModel` (tied masked-LM decoder + SOP
head); the data comes from `keras_albert.training.pretraining_data.pretraining_dataset`, whose
batches are `(features, labels, sample_weights)` with padded masked positions
weighted 0. The masked-LM loss is averaged over real predictions only
(`reduction="mean_with_sample_weight"`), and the logs carry `mlm_logits_accuracy`
and `sop_logits_accuracy`.

    model = PretrainingModel(Encoder.from_preset("albert_base", remat="full"))
    compile_pretrainer(model, create_optimizer("adafactor", None))
    model.fit(pretraining_dataset(documents, tokenizer), steps_per_epoch=1000, epochs=10)

`pretrain(...)` below is that with a directory: checkpoints for exact resumption
(`keras_albert.training.resume`), TensorBoard logs, the saved model and tokenizer, and a JSON
summary.
"""

import json
import os
import time

import keras

from keras_albert.conversion.huggingface import write_tokenizer
from keras_albert.models.tasks import PretrainingModel
from keras_albert.training.callbacks import Throughput, peak_rss_mib, standard_callbacks
from keras_albert.training.resume import make_checkpoint, replayable, resumable_fit
from keras_albert.training.strategy import prepare_dataset, remove_worker_dir, worker_output_dir

MLM_ACCURACY = "mlm_logits_accuracy"
SOP_ACCURACY = "sop_logits_accuracy"


def _sparse_loss():
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )


def compile_pretrainer(model, optimizer, jit_compile=False, steps_per_execution=1):
    """Compiles a `PretrainingModel` with masked-LM (+ SOP) losses and accuracies.

    Both losses are means over the weighted entries: padded masked positions
    (weight 0) count neither in the loss nor in the accuracy.
    """
    losses = {"mlm_logits": _sparse_loss()}
    metrics = {"mlm_logits": [keras.metrics.SparseCategoricalAccuracy("accuracy")]}
    if "sop_logits" in model.output:
        losses["sop_logits"] = _sparse_loss()
        metrics["sop_logits"] = [keras.metrics.SparseCategoricalAccuracy("accuracy")]
    model.compile(
        optimizer=optimizer, loss=losses, weighted_metrics=metrics, jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def epoch_plan(steps, steps_per_epoch=None):
    """`(epochs, steps_per_epoch)` whose product is the smallest count >= `steps`, so a
    learning-rate schedule sized with `epochs * steps_per_epoch` ends where training
    does."""
    steps_per_epoch = min(steps_per_epoch or steps, steps)
    epochs = -(-steps // steps_per_epoch)
    return epochs, -(-steps // epochs)


def matching_outputs(dataset, model):
    """`dataset` with labels and weights for the model's outputs only: a masked-LM-only
    model (`sentence_order=False`) evaluates on the same batches as an MLM + SOP one."""
    outputs = set(model.output)

    def keep(x, y, sample_weight):
        return (x, {k: v for k, v in y.items() if k in outputs},
                {k: v for k, v in sample_weight.items() if k in outputs})

    return dataset.map(keep) if outputs != set(dataset.element_spec[1]) else dataset


def fixed_batches(dataset, steps):
    """The first `steps` batches of `dataset`, held in memory, as a finite dataset.

    Pretraining datasets draw new masks on every pass; evaluating on these instead
    compares models, or moments of training, on the same masked positions.
    (`dataset.take(n).cache()` does not serve here: Keras reads such a pipeline over
    a Python generator only partially, and warns that it ran out of data.)
    """
    import tensorflow as tf

    batches = list(dataset.take(steps))
    fixed = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        fixed = fixed.concatenate(tf.data.Dataset.from_tensors(batch))
    return fixed


def evaluate_pretrainer(model, dataset, steps=None):
    """Masked-LM and SOP accuracy (and losses) on `dataset` (`steps` batches of it).

    Pass `fixed_batches(dataset, n)` to compare models or moments on the same masks:
    each pass over a repeating pretraining dataset draws new ones.
    """
    results = model.evaluate(matching_outputs(dataset, model), steps=steps, return_dict=True,
                             verbose=0)
    if len(model.outputs) == 1:  # Keras names a single output's metrics without a prefix
        results = {f"mlm_logits_{key}" if key != "loss" else key: value
                   for key, value in results.items()}
    return {key: float(value) for key, value in results.items()}


def pretrain(
    model,
    train_dataset,
    output_dir,
    steps,
    steps_per_epoch=None,
    eval_dataset=None,
    eval_steps=10,
    tokenizer=None,
    tokens_per_batch=None,
    resume=True,
    verbose="auto",
    extra_callbacks=(),
    checkpoint_every=None,
    run=None,
):
    """Trains a compiled `PretrainingModel` for `steps` steps and saves it in `output_dir`.

    `train_dataset` is a dataset, or better a zero-argument callable returning a fresh
    one (e.g. `lambda: pretraining_dataset(...)`): every iterator Keras opens then
    replays a new pipeline from the current global step (`keras_albert.training.resume.replayable`),
    so a resumed run trains on exactly the batches an uninterrupted one would have.
    A dataset object is skipped in place instead, which is exact only if its order
    does not depend on earlier iterators: `pretraining_dataset`'s corpus epochs and
    shuffle advance with every iterator opened on the object, including the one
    Keras's `fit` opens under a strategy to build the model.

    Writes `output_dir/logs` (TensorBoard), `output_dir/backup` (checkpoints at the end
    of every epoch and every `checkpoint_every` steps, with the optimizer state, the
    step and the RNG state; removed after a successful run; see
    `keras_albert.training.resume.make_checkpoint` for `resume`), `pretrainer.keras`, the
    tokenizer's vocabulary and `summary.json` (accuracies before and after, tokens/s,
    peak memory). `run` (a dict of settings) guards the checkpoint against being
    resumed by a run with other settings. Under `MultiWorkerMirroredStrategy` only
    the chief writes `output_dir`. Returns the summary dict.
    """
    import tensorflow as tf

    strategy = model.distribute_strategy
    work_dir = worker_output_dir(output_dir, strategy)
    os.makedirs(work_dir, exist_ok=True)
    if tokenizer is not None:  # first: a resumed run finds the vocabulary it trained with
        write_tokenizer(tokenizer, work_dir)
    epochs, steps_per_epoch = epoch_plan(steps, steps_per_epoch)
    if eval_dataset is not None:
        # The same held-out batches (same masks) before and after training.
        eval_dataset = fixed_batches(eval_dataset, eval_steps)
    before = evaluate_pretrainer(model, eval_dataset) if eval_dataset else {}
    throughput = Throughput(tokens_per_batch or 0)
    checkpoint = make_checkpoint(output_dir, resume, checkpoint_every, run={
        "steps": int(epochs * steps_per_epoch), "steps_per_epoch": int(steps_per_epoch),
        **(run or {})})

    def dataset_from_step(step):
        if isinstance(train_dataset, tf.data.Dataset):
            dataset = train_dataset.skip(step) if step else train_dataset
        else:
            dataset = replayable(train_dataset, step)
        return prepare_dataset(matching_outputs(dataset, model), strategy)

    # Throughput first: callbacks share one logs dict in order, so TensorBoard then
    # records tokens/s too.
    callbacks = [throughput] + standard_callbacks(work_dir, resume=False, strategy=strategy) \
        + list(extra_callbacks)
    start = time.perf_counter()
    history = resumable_fit(
        model, dataset_from_step, epochs, steps_per_epoch, checkpoint,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    seconds = time.perf_counter() - start
    after = evaluate_pretrainer(model, eval_dataset) if eval_dataset else {}
    model.save(os.path.join(work_dir, "pretrainer.keras"))
    summary = {
        "params": int(model.encoder.count_params()),
        "steps": int(epochs * steps_per_epoch),
        "resumed_at_step": checkpoint.start_step if checkpoint else 0,
        "train_seconds": round(seconds, 1),
        "tokens_per_second": round(throughput.tokens_per_second, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "before": before,
        "after": after,
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }
    with open(os.path.join(work_dir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    remove_worker_dir(work_dir, output_dir)
    return summary


def new_pretrainer(preset, vocabulary_size, sentence_order=True, **overrides):
    """A randomly initialised `PretrainingModel` for `preset`, resized to the vocabulary."""
    from keras_albert.models.encoder import Encoder

    encoder = Encoder.from_preset(preset, vocabulary_size=vocabulary_size, **overrides)
    return PretrainingModel(encoder, sentence_order=sentence_order)
