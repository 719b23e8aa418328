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

import os

import keras

from keras_albert.models.tasks import PretrainingModel
from keras_albert.training.callbacks import Throughput, peak_rss_mib
from keras_albert.training.resumable_streams import replayable
from keras_albert.training.run_directory import RunDirectory, check_new_run
from keras_albert.training.strategy import prepare_dataset

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
    overwrite=False,
):
    """Trains a compiled `PretrainingModel` for `steps` steps and saves it in `output_dir`.

    `train_dataset` is a dataset, or better a zero-argument callable returning a fresh
    one (e.g. `lambda: pretraining_dataset(...)`): every iterator Keras opens then
    replays a new pipeline from the current global step
    (`keras_albert.training.resumable_streams.replayable`), so a resumed run trains on
    exactly the batches an uninterrupted one would have. A dataset object is skipped
    in place instead, which is exact only if its order does not depend on earlier
    iterators: `pretraining_dataset`'s corpus epochs and shuffle advance with every
    iterator opened on the object, including the one Keras's `fit` opens under a
    strategy to build the model.

    Writes `output_dir/logs` (TensorBoard), `output_dir/backup` (checkpoints at the end
    of every epoch and every `checkpoint_every` steps, with the optimizer state, the
    step and the RNG state; removed after a successful run; see
    `keras_albert.training.resume.make_checkpoint` for `resume`), `model.keras`, the
    tokenizer's vocabulary and `summary.json` (held-out accuracies before, after every
    epoch and after, tokens/s, peak memory). A checkpoint is continued only by a run with the same fingerprint:
    the model (architecture, precision, remat), the optimizer's settings, the steps
    and `run` (a dict of the caller's settings: data, batch, seed ...); otherwise it
    is refused, naming what differs. A folder holding another run is refused
    unless this run continues its checkpoint or `overwrite=True` (which clears it:
    `keras_albert.training.run_directory.check_new_run`). Under
    `MultiWorkerMirroredStrategy` only the chief writes `output_dir`. Returns the
    summary dict.
    """
    import tensorflow as tf

    from keras_albert.training.fingerprint import model_settings, optimizer_settings

    if steps < 1:  # 0 steps would divide by 0 below
        raise ValueError(f"steps must be >= 1; got {steps}.")
    strategy = model.distribute_strategy
    run_directory = RunDirectory(output_dir, strategy).start(tokenizer, resume, overwrite)
    epochs, steps_per_epoch = epoch_plan(steps, steps_per_epoch)
    if eval_dataset is not None:
        # The same held-out batches (same masks) before and after training.
        eval_dataset = fixed_batches(eval_dataset, eval_steps)
    checkpoint = run_directory.checkpoint(resume, checkpoint_every, run={
        "steps": int(epochs * steps_per_epoch), "steps_per_epoch": int(steps_per_epoch),
        "model": model_settings(model), "optimizer": optimizer_settings(model.optimizer),
        **(run or {})})
    before = evaluate_pretrainer(model, eval_dataset) if eval_dataset else {}
    throughput = Throughput(tokens_per_batch or 0)

    def dataset_from_step(step):
        if isinstance(train_dataset, tf.data.Dataset):
            dataset = train_dataset.skip(step) if step else train_dataset
        else:
            dataset = replayable(train_dataset, step)
        return prepare_dataset(matching_outputs(dataset, model), strategy)

    fitted = run_directory.fit(
        model, dataset_from_step, epochs, steps_per_epoch, checkpoint,
        # Throughput first: callbacks share one logs dict in order, so TensorBoard then
        # records tokens/s too.
        first_callbacks=[throughput], callbacks=extra_callbacks, verbose=verbose,
        # Held-out accuracy after every epoch (`val_*` in the history, TensorBoard and
        # summary.json), on the same masks as before and after: learning curves.
        validation_data=(prepare_dataset(matching_outputs(eval_dataset, model), strategy)
                         if eval_dataset else None))
    after = evaluate_pretrainer(model, eval_dataset) if eval_dataset else {}
    summary = {
        "params": int(model.encoder.count_params()),
        "steps": int(epochs * steps_per_epoch),
        "resumed_at_step": fitted["resumed_at_step"],
        "train_seconds": fitted["train_seconds"],
        "tokens_per_second": round(throughput.tokens_per_second, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "before": before,
        "after": after,
        "history": fitted["history"],
    }
    run_directory.finish(model, summary)
    return summary


def new_pretrainer(preset, vocabulary_size, sentence_order=True, **overrides):
    """A randomly initialised `PretrainingModel` for `preset`, resized to the vocabulary."""
    from keras_albert.models.encoder import Encoder

    encoder = Encoder.from_preset(preset, vocabulary_size=vocabulary_size, **overrides)
    return PretrainingModel(encoder, sentence_order=sentence_order)


def pretrain_fingerprint(corpus, vocab, vocab_size, preset, seq_length, max_predictions,
                         sentence_order, global_batch, seed, eval_steps):
    """What a `pretrain_on_corpus` run's result depends on besides the model and the
    optimizer (which `pretrain` adds): the corpus files (path, size, hash), the
    vocabulary (its file, or the size of the one trained on the corpus), the preset,
    the masking, the batch and the seed."""
    from keras_albert.training.fingerprint import file_settings

    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    return {"corpus": [file_settings(path) for path in paths],
            "vocab_file": file_settings(vocab) if vocab else None,
            "trained_vocab_size": None if vocab else vocab_size, "preset": preset,
            "seq_length": seq_length, "max_predictions": max_predictions,
            "sentence_order": sentence_order, "global_batch": global_batch, "seed": seed,
            "eval_steps": eval_steps}


def pretrain_on_corpus(corpus, output_dir, optimizer, preset="albert_base", vocab=None,
                       vocab_size=30000, seq_length=128, batch_size=64, steps=10000,
                       steps_per_epoch=1000, max_predictions=None, sentence_order=True,
                       eval_steps=20, seed=0, strategy=None, steps_per_execution=1,
                       jit_compile=False, resume=True, checkpoint_every=None,
                       verbose="auto", overwrite=False, **overrides):
    """`keras-albert pretrain` from Python: text files in, a run directory out.

    Reads `corpus` (text files, `.gz` ok: one sentence a line, blank lines between
    documents), trains a SentencePiece vocabulary of `vocab_size` pieces unless
    `vocab` names one, holds every 20th document out for evaluation, builds
    `preset` (with `overrides`, e.g. `remat`, `dtype`, `num_layers`) as a
    `PretrainingModel` in `strategy`'s scope, and runs `pretrain` (`overwrite`: as
    there; a refused folder is refused before any work). `optimizer` is a
    Keras optimizer or a callable `total_steps -> optimizer`; `batch_size` is the
    global batch. Returns the summary.

        pretrain_on_corpus(["corpus.txt.gz"], "runs/albert", None, preset="albert_tiny",
                           steps=100)  # None: AdaFactor, relative step
    """
    import sys

    import tensorflow as tf

    from keras_albert.conversion.pretrained import tokenizer_from_file
    from keras_albert.optimizers import create_optimizer
    from keras_albert.tokenizers import SentencePieceTokenizer
    from keras_albert.training.corpus import iter_documents
    from keras_albert.training.pretraining_data import pretraining_dataset
    from keras_albert.training.strategy import DistributionPlan, is_chief
    from keras_albert.training.vocab import train_sentencepiece

    for name, value in (("steps", steps), ("steps_per_epoch", steps_per_epoch),
                        ("batch_size", batch_size), ("seq_length", seq_length)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1; got {value}.")
    strategy = strategy or tf.distribute.get_strategy()
    check_new_run(output_dir, resume, overwrite, chief=is_chief(strategy))
    os.makedirs(output_dir, exist_ok=True)
    if vocab:
        tokenizer = tokenizer_from_file(vocab)
    else:
        lines = (line for document in iter_documents(corpus) for line in document)
        tokenizer = SentencePieceTokenizer(train_sentencepiece(lines, vocab_size))

    def documents(held_out):
        def read():
            for index, document in enumerate(iter_documents(corpus)):
                if (index % 20 == 19) == held_out:
                    yield document
        return read

    plan = DistributionPlan(strategy, batch_size, steps_per_execution)
    batch = plan.global_batch
    max_predictions = max_predictions or max(1, round(seq_length * 0.15))
    data = dict(tokenizer=tokenizer, seq_length=seq_length, batch_size=batch,
                max_predictions=max_predictions, sop=sentence_order, repeat=True)

    def train():
        # A fresh pipeline: `pretrain` replays one for every iterator Keras opens, from
        # the current global step, so every process and worker sees the same batches.
        return pretraining_dataset(documents(False), seed=seed, **data)

    train()  # checks the corpus before anything is built
    try:
        held_out = pretraining_dataset(documents(True), seed=seed + 1, **data)
    except ValueError:  # a corpus of fewer than 20 documents holds nothing out
        print("keras-albert pretrain: the corpus is too small to hold out documents; "
              "no held-out evaluation.", file=sys.stderr)
        held_out = None
    epochs, steps_per_epoch = epoch_plan(steps, steps_per_epoch)
    total_steps = epochs * steps_per_epoch
    with strategy.scope():
        if optimizer is None:
            optimizer = create_optimizer("adafactor", None)
        elif callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer(total_steps)
        model = new_pretrainer(preset, tokenizer.vocabulary_size,
                               sentence_order=sentence_order, seed=seed, **overrides)
        positions = model.encoder.max_sequence_length
        if seq_length > positions:  # else Keras fails in the first batch, at length
            raise ValueError(f"Sequence length {seq_length} exceeds the model's position "
                             f"table ({positions} positions); use at most {positions}, or "
                             "set max_sequence_length.")
        compile_pretrainer(model, optimizer, jit_compile=jit_compile,
                           steps_per_execution=plan.steps_per_execution)
    return pretrain(
        model, train, output_dir, total_steps, steps_per_epoch=steps_per_epoch,
        eval_dataset=held_out, eval_steps=eval_steps, tokenizer=tokenizer,
        tokens_per_batch=batch * seq_length, verbose=verbose, resume=resume,
        checkpoint_every=checkpoint_every, overwrite=overwrite,
        run=pretrain_fingerprint(corpus, vocab, vocab_size, preset, seq_length,
                                 max_predictions, sentence_order, batch, seed, eval_steps),
    )
