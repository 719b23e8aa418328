"""Input streams whose batch `s` is the same however often they were iterated before.

Exact resumption (`keras_albert.training.resume`) restarts a killed run at global
step `s` by rebuilding the input pipeline from there: `dataset_from_step(s)`. For
that data position to mean anything the stream must not depend on how often a
dataset object was iterated before. `tf.data`'s
`shuffle(reshuffle_each_iteration=True)` draws each iteration's order from a
generator shared by the dataset object (measured here: a second iterator of the same
object, e.g. the one Keras's `fit` opens to build the model under a strategy, shifts
every later epoch's order). Two ways around it:

- `task_stream` makes epoch `e`'s order of a `TaskData` from
  `numpy.random.default_rng([seed, e])` alone;
- `replayable` wraps any pipeline factory (e.g. `pretraining_dataset`) so that every
  iterator opened on the dataset replays a fresh pipeline from `start_step`.

    batches = task_stream(train_data, preprocessor, 32, seed=0, start_step=step,
                          end_step=total_steps)
    batches = replayable(lambda: pretraining_dataset(documents, tokenizer), step)
"""

import numpy as np

__all__ = ["replayable", "task_stream"]


# === Replayable pipelines ===


def replayable(make_dataset, start_step=0):
    """A dataset whose every iterator replays a fresh `make_dataset()` from batch
    `start_step` on.

    For pipelines whose order depends on how often the dataset *object* was iterated
    (`pretraining_dataset`: its corpus epochs and its shuffle advance with every
    iterator opened on it; `shuffle(reshuffle_each_iteration=True)` in general). Keras's
    `fit` opens an extra iterator under a strategy (to build the model from one batch)
    whose read-ahead would otherwise shift the stream by a timing-dependent amount.
    Each iterator here calls `make_dataset()` anew (from a `tf.data` generator), so
    every iterator sees the same batches.
    """
    import tensorflow as tf

    spec = make_dataset().element_spec

    def generate():
        dataset = make_dataset()
        if start_step:
            dataset = dataset.skip(start_step)
        yield from dataset.as_numpy_iterator()

    return tf.data.Dataset.from_generator(generate, output_signature=spec)


# === A deterministic, resumable task-data stream ===


def task_stream(data, preprocessor, batch_size, seed=0, start_step=0, end_step=None,
                **dataset_kwargs):
    """Shuffled, length-bucketed batches of a `TaskData`, epoch after epoch, from
    global step `start_step` to `end_step`.

    Epoch `e` is `task_dataset(data.subset(p_e), shuffle=False)` with `p_e =
    numpy.random.default_rng([seed, e]).permutation(len(data))`: the batches
    `task_dataset(..., shuffle=True)` would form from that order (the same buckets,
    padding and batch composition rules), but the order depends on `(seed, e)` only,
    never on how often a dataset was iterated before. Batch `s` of the stream is
    therefore the same in every process, and a stream built from `start_step` is the
    tail of the one built from 0 (each epoch still holds every example exactly once).

    The dataset has `steps_per_epoch` (batches per epoch) and `real_tokens_per_epoch`
    attributes, like `task_dataset`'s. `dataset_kwargs` go to `task_dataset`
    (`bucket_boundaries`, `max_shapes`, `drop_remainder`).
    """
    from keras_albert.training.task_dataset import steps_per_epoch as batches_in
    from keras_albert.training.task_dataset import task_dataset

    for key in ("shuffle", "repeat", "sort_by_length", "return_order"):
        if key in dataset_kwargs:
            raise TypeError(f"task_stream sets {key!r} itself.")

    def epoch_dataset(epoch):
        order = np.random.default_rng([int(seed) % 2**63, int(epoch)]).permutation(len(data))
        return task_dataset(data.subset(order), preprocessor, batch_size=batch_size,
                            shuffle=False, **dataset_kwargs)

    if start_step < 0:
        raise ValueError(f"start_step must be >= 0; got {start_step}.")
    datasets = {0: epoch_dataset(0)}
    probe = datasets[0]
    per_epoch = batches_in(probe)  # the same for every epoch's order
    if end_step is None:
        end_step = start_step + per_epoch
    if end_step < start_step:
        raise ValueError(f"end_step ({end_step}) is before start_step ({start_step}).")
    first_epoch, offset = divmod(start_step, per_epoch)
    last_epoch = max(first_epoch, -(-end_step // per_epoch) - 1)
    stream = None
    for epoch in range(first_epoch, last_epoch + 1):
        dataset = datasets[epoch] if epoch in datasets else epoch_dataset(epoch)
        if epoch == first_epoch and offset:
            dataset = dataset.skip(offset)
        stream = dataset if stream is None else stream.concatenate(dataset)
    stream = stream.take(end_step - start_step)
    stream.steps_per_epoch = per_epoch
    stream.real_tokens_per_epoch = probe.real_tokens_per_epoch
    stream.bucket_boundaries = probe.bucket_boundaries
    return stream
