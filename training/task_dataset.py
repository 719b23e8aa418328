"""A `TaskData` to length-bucketed `tf.data` batches, and reports on those batches.

`task_dataset` tokenizes every text once (`encode_texts`), packs it with the
preprocessor's own `InputPacker` (so truncation and special tokens are exactly the
preprocessor's) and batches examples of similar length together. Each batch is padded
to the smallest of a few bucket boundaries (`length_buckets`) that holds its longest
row, so a compiled (XLA) training step sees at most `max_shapes` different shapes
while short texts do not pay for padding up to `seq_length`. `steps_per_epoch`,
`padding_efficiency` and `batch_widths` report on the result; `restore_order` puts
predictions back in input order.

Token-classification and span-QA data (`token_span_records`) are packed by
`token_span_encoding` instead (`encode_examples` picks): their labels are per-token
ids with `IGNORE_LABEL` (-100) on unscored tokens and padding, or the answer's start
and end position; `task_targets` gives them in input order, to score predictions.

Example:

>>> from keras_albert.training.task_files import load_task_file  # doctest: +SKIP
>>> data = load_task_file("sst2/train.tsv")                      # doctest: +SKIP
>>> train, held_out = data.split(0.05)                           # doctest: +SKIP
>>> dataset = task_dataset(train, preprocessor, batch_size=32,
...                        shuffle=True, repeat=True)            # doctest: +SKIP
>>> model.fit(dataset, epochs=3,
...           steps_per_epoch=steps_per_epoch(dataset))          # doctest: +SKIP
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_albert.metrics import IGNORE_LABEL
from keras_albert.training.length_buckets import bucket_plan
from keras_albert.training.length_buckets import resolve_bucket_boundaries
from keras_albert.training.task_records import TaskData
from keras_albert.training.token_span_encoding import answer_positions
from keras_albert.training.token_span_encoding import pack_tagged_words
from keras_albert.training.token_span_records import SpanTaskData
from keras_albert.training.token_span_records import TokenTaskData

# What `task_dataset` batches.
TASK_DATA_TYPES = (TaskData, TokenTaskData, SpanTaskData)


@dataclasses.dataclass
class EncodedTexts:
    """Packed token ids of every example, without padding (what `encode_texts` returns).

    `word_ids[row_splits[i]:row_splits[i + 1]]` is example i's `[CLS] a [SEP] (b [SEP])`
    as `InputPacker` made it; `lengths[i]` its length and `first_lengths[i]` how many of
    its tokens have type id 0 (`[CLS] a [SEP]`). `truncated` counts the word tags
    (token data) or answers (span data) that truncation cut away.
    """

    word_ids: np.ndarray
    row_splits: np.ndarray
    lengths: np.ndarray
    first_lengths: np.ndarray
    pad_id: int
    seq_length: int
    truncated: int = 0


def _batch_packer(preprocessor):
    """The preprocessor's own `InputPacker`, padding to the batch's longest row."""
    from keras_albert.tokenizers import InputPacker

    config = dict(preprocessor.packer.get_config())
    config["pad_to"] = "batch"
    return InputPacker.from_config(config)


def encode_texts(data, preprocessor, chunk_size=2048):
    """Tokenizes and packs every text of `data` once (in chunks of `chunk_size`)."""
    texts = data.texts if isinstance(data, TaskData) else TaskData(data, None).texts
    tokenizer = preprocessor.tokenizer
    packer = _batch_packer(preprocessor)

    ids, lengths, first_lengths = [], [], []
    for start in range(0, len(texts[0]), chunk_size):
        chunk = [tf.constant(column[start:start + chunk_size], tf.string) for column in texts]
        outputs = packer([tokenizer(segment) for segment in chunk])  # eager: as fast
        mask = outputs["input_mask"].numpy().astype(bool)
        row_lengths = mask.sum(axis=1)
        type_ones = (outputs["input_type_ids"].numpy() * mask).sum(axis=1)
        ids.append(outputs["input_word_ids"].numpy()[mask])  # row-major: rows in order
        lengths.append(row_lengths)
        first_lengths.append(row_lengths - type_ones)
    lengths = np.concatenate(lengths).astype(np.int32)
    row_splits = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return EncodedTexts(
        word_ids=np.concatenate(ids).astype(np.int32),
        row_splits=row_splits,
        lengths=lengths,
        first_lengths=np.concatenate(first_lengths).astype(np.int32),
        pad_id=int(packer.pad_id),
        seq_length=int(packer.seq_length),
    )


def encode_examples(data, preprocessor):
    """`(EncodedTexts, targets)` of any task data; `targets` is None (unlabelled),
    `data.labels` (a `TaskData`), int32 token labels aligned with `word_ids` (token),
    or int32 [N, 2] answer start / end positions (span)."""
    if data.task == "token":
        packer = preprocessor.packer
        packed = pack_tagged_words(data, preprocessor.tokenizer, packer.seq_length,
                                   packer.cls_id, packer.sep_id)
        encoded = EncodedTexts(
            word_ids=packed.word_ids,
            row_splits=np.concatenate([[0], np.cumsum(packed.lengths, dtype=np.int64)]),
            lengths=packed.lengths,
            first_lengths=packed.lengths,  # one segment: every type id is 0
            pad_id=int(packer.pad_id),
            seq_length=int(packer.seq_length),
            truncated=packed.truncated_words,
        )
        return encoded, packed.labels
    if data.task == "span":
        encoded = encode_texts(TaskData((data.questions, data.contexts), None), preprocessor)
        positions, encoded.truncated = answer_positions(
            data, preprocessor.tokenizer, encoded.first_lengths, encoded.lengths)
        return encoded, positions
    return encode_texts(data, preprocessor), data.labels


def task_targets(data, preprocessor):
    """The labels of `data` in input order, as `keras_albert.metrics.evaluate_predictions`
    scores them: `data.labels` for a `TaskData`; for token data int32 [N, seq_length]
    per-token labels (`IGNORE_LABEL` where unscored); for span data int32 [N, 4], the
    answer's start and end position, then the context's first and last position.
    None for unlabelled data."""
    encoded, targets = encode_examples(data, preprocessor)
    if targets is None:
        return None
    if data.task == "token":
        labels = np.full((len(data), encoded.seq_length), IGNORE_LABEL, np.int32)
        rows = np.repeat(np.arange(len(data)), encoded.lengths)
        columns = np.arange(len(encoded.word_ids)) - np.repeat(encoded.row_splits[:-1],
                                                               encoded.lengths)
        labels[rows, columns] = targets
        return labels
    if data.task == "span":
        context = np.stack([encoded.first_lengths, encoded.lengths - 2], axis=1)
        return np.concatenate([targets, context], axis=1).astype(np.int32)
    return targets


def task_dataset(
    data,
    preprocessor,
    batch_size=32,
    shuffle=False,
    seed=0,
    bucket_boundaries="auto",
    max_shapes=8,
    repeat=False,
    drop_remainder=False,
    sort_by_length=False,
    return_order=False,
):
    """Length-bucketed `(x, y)` batches of a `TaskData` for `fit`, `evaluate`, `predict`.

    Every text is tokenized once with `preprocessor.tokenizer` and packed with the
    preprocessor's `InputPacker` (`[CLS] a [SEP] (b [SEP])`, its truncation to
    `preprocessor.seq_length`), so the tokens are exactly `preprocessor(texts)`'s.
    Examples are then grouped by packed length and each batch is padded to the
    smallest bucket boundary that holds its longest row: at most `len(boundaries)`
    batch shapes (XLA compiles each once), and short texts are not padded to
    `seq_length`.

    `x` is the encoder input dict (int32 `input_word_ids`, `input_mask`,
    `input_type_ids`, [B, width]); `y` the labels: int32 [B] (classification), float32
    [B] (regression), float32 [B, C] (multilabel), int32 [B, width] (token: the first
    piece of each word has its tag, other tokens `IGNORE_LABEL`) or
    `{"start_logits": [B], "end_logits": [B]}` answer positions (span; packed as
    `[CLS] question [SEP] context [SEP]`). Unlabelled data yields `x` only.

    Order: with `shuffle=True` the examples are shuffled (deterministically for a
    `seed`, reshuffled each epoch with `repeat=True`) before bucketing. With
    `shuffle=False` the order is deterministic and kept within each bucket, but batches
    of different buckets interleave (a bucket's batch comes out when it fills; partial
    batches come last), so the output order is not the input order: pass
    `return_order=True` to get it. `sort_by_length=True` (for fast inference) sorts the
    examples by length before batching, and implies `return_order`.

    Args:
        data: a `TaskData`, `TokenTaskData` or `SpanTaskData`.
        preprocessor: a `keras_albert.tokenizers.Preprocessor` (its tokenizer,
            `seq_length` and truncation are used; its `pad_to` is not).
        batch_size: examples per batch.
        shuffle, seed: shuffle the examples, deterministically for a seed.
        bucket_boundaries: `"auto"` (at most `max_shapes` padded widths chosen from the
            length distribution, multiples of 8 and `seq_length` last), a list of
            widths (`seq_length` is appended if missing), or None to pad every batch
            to `seq_length`.
        max_shapes: the most batch widths `"auto"` may choose.
        repeat: repeat forever (each epoch reshuffled when `shuffle`).
        drop_remainder: drop partial batches (then each bucket drops its own).
        sort_by_length: batch the examples in order of length (inference).
        return_order: also return `order`, the example index of each output row, so
            that `restore_order(predictions, order)` puts predictions back in place.

    Returns:
        The `tf.data.Dataset`, or `(dataset, order)` with `sort_by_length` or
        `return_order`. Its cardinality is known (infinite with `repeat`); use
        `steps_per_epoch(dataset)` for the batches in one epoch.
    """
    if not isinstance(data, TASK_DATA_TYPES):
        raise TypeError(f"`data` must be a TaskData, TokenTaskData or SpanTaskData; got "
                        f"{type(data).__name__}.")
    if not len(data):
        raise ValueError("`data` has no examples.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
    if shuffle and (sort_by_length or return_order):
        raise ValueError("`sort_by_length` / `return_order` need shuffle=False: a "
                         "shuffled order changes every epoch.")
    encoded, targets = encode_examples(data, preprocessor)
    seq_length = encoded.seq_length
    boundaries = resolve_bucket_boundaries(bucket_boundaries, encoded.lengths, seq_length,
                                           max_shapes)
    buckets = np.searchsorted(boundaries, encoded.lengths, side="left").astype(np.int64)

    word_ids = tf.RaggedTensor.from_row_splits(
        tf.constant(encoded.word_ids), tf.constant(encoded.row_splits), validate=False)
    lengths = tf.constant(encoded.lengths)
    first_lengths = tf.constant(encoded.first_lengths)
    widths = tf.constant(boundaries, tf.int32)
    labels = None if targets is None else tf.constant(targets)
    if labels is not None and data.task == "token":
        labels = tf.RaggedTensor.from_row_splits(labels, tf.constant(encoded.row_splits),
                                                 validate=False)
    pad_id = encoded.pad_id

    def make_batch(indices):
        indices = tf.cast(indices, tf.int64)
        row_lengths = tf.gather(lengths, indices)
        longest = tf.reduce_max(row_lengths)
        width = tf.gather(widths, tf.searchsorted(widths, longest[tf.newaxis], side="left"))[0]
        ids = tf.gather(word_ids, indices).to_tensor(pad_id)
        ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]], constant_values=pad_id)
        positions = tf.range(width)[tf.newaxis, :]
        mask = positions < row_lengths[:, tf.newaxis]
        types = tf.logical_and(positions >= tf.gather(first_lengths, indices)[:, tf.newaxis],
                               mask)
        x = {
            "input_word_ids": tf.cast(ids, tf.int32),
            "input_mask": tf.cast(mask, tf.int32),
            "input_type_ids": tf.cast(types, tf.int32),
        }
        if labels is None:
            return x
        if data.task == "token":
            y = tf.gather(labels, indices).to_tensor(IGNORE_LABEL)
            return x, tf.pad(y, [[0, 0], [0, width - tf.shape(y)[1]]],
                             constant_values=IGNORE_LABEL)
        if data.task == "span":
            positions = tf.gather(labels, indices)
            return x, {"start_logits": positions[:, 0], "end_logits": positions[:, 1]}
        return x, tf.gather(labels, indices)

    counts = np.bincount(buckets, minlength=len(boundaries))
    if shuffle:
        num_batches = int(sum(
            c // batch_size if drop_remainder else -(-c // batch_size) for c in counts))
        bucket_ids = tf.constant(buckets)
        dataset = tf.data.Dataset.range(len(data)).shuffle(
            len(data), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.group_by_window(
            key_func=lambda index: tf.gather(bucket_ids, index),
            reduce_func=lambda key, window: window.batch(batch_size, drop_remainder),
            window_size=batch_size,
        )
        order = None
    else:
        if sort_by_length:
            ranked = np.argsort(encoded.lengths, kind="stable")
            plan = [ranked[i:i + batch_size] for i in range(0, len(ranked), batch_size)]
            if drop_remainder and plan and len(plan[-1]) < batch_size:
                plan.pop()
        else:
            plan = bucket_plan(buckets, batch_size, drop_remainder)
        if not plan:
            raise ValueError(f"No batch of {batch_size} with drop_remainder=True: only "
                             f"{len(data)} examples.")
        num_batches = len(plan)
        order = np.concatenate(plan).astype(np.int64)
        dataset = tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
            order, [len(batch) for batch in plan]))
    if num_batches == 0:
        raise ValueError(f"No batch of {batch_size} with drop_remainder=True: no bucket "
                         f"has that many of the {len(data)} examples.")
    dataset = dataset.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    # Kept for steps_per_epoch() and padding reports (a plain Python attribute).
    dataset.steps_per_epoch = num_batches
    # Packed tokens without padding in one epoch, for real-token throughput figures.
    dataset.real_tokens_per_epoch = int(encoded.lengths.sum())
    dataset.bucket_boundaries = list(boundaries)
    if sort_by_length or return_order:
        return dataset, order
    return dataset


def restore_order(predictions, order):
    """Puts rows that came out in `order` (from `task_dataset`) back in input order."""
    predictions = np.asarray(predictions)
    order = np.asarray(order)
    if len(predictions) != len(order):
        raise ValueError(f"{len(predictions)} predictions for {len(order)} examples.")
    restored = np.empty_like(predictions)
    restored[order] = predictions
    return restored


def steps_per_epoch(dataset):
    """The batches in one epoch of a `task_dataset` (also when it repeats)."""
    steps = getattr(dataset, "steps_per_epoch", None)
    if steps is not None:
        return int(steps)
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The dataset repeats forever and does not say its epoch length.")
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError("The dataset's cardinality is unknown; count its batches instead.")
    return cardinality


def padding_efficiency(dataset, num_batches=None):
    """Real tokens / all tokens (mask ones / mask size) over `num_batches` batches.

    1.0 means no padding. Reads the whole dataset when `num_batches` is None (it must
    then be finite).
    """
    if num_batches is None:
        if int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY:
            raise ValueError("The dataset repeats forever: pass `num_batches`.")
    else:
        dataset = dataset.take(num_batches)
    real = total = 0
    for element in dataset:
        x = element[0] if isinstance(element, tuple) else element
        mask = x["input_mask"].numpy()
        real += int(mask.sum())
        total += mask.size
    if not total:
        raise ValueError("The dataset yielded no batch.")
    return real / total


def batch_widths(dataset, num_batches=None):
    """The distinct padded widths of the batches (the shapes a compiled step sees)."""
    if num_batches is not None:
        dataset = dataset.take(num_batches)
    widths = set()
    for element in dataset:
        x = element[0] if isinstance(element, tuple) else element
        widths.add(int(x["input_word_ids"].shape[1]))
    return sorted(widths)
