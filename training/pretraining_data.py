"""Streaming MLM + sentence-order-prediction (SOP) pretraining data, as ALBERT makes it.

`pretraining_dataset(documents, tokenizer, ...)` turns a stream of documents (each a
list of lines, as `keras_albert.training.corpus.iter_documents` yields them) into batches that
`keras_albert.models.PretrainingModel` trains on with plain `model.fit`:

    x = {"input_word_ids", "input_mask", "input_type_ids": int32 [B, S],
         "masked_positions": int32 [B, M]}
    y = {"mlm_logits": int32 [B, M], "sop_logits": int32 [B]}
    sample_weight = {"mlm_logits": float32 [B, M], "sop_logits": float32 [B]}

The examples are ALBERT's (`keras_albert.training.pretraining_examples`: SOP segment
pairs packed as `[CLS] A [SEP] B [SEP]`; `keras_albert.training.masking`: whole-word
n-gram masking, n <= 3, p(n) proportional to 1/n, 80/10/10). Unlike the original
script, which writes a fixed set of TFRecords (`dupe_factor` copies with different
masks), the masking here is dynamic: it is drawn each time an example is produced,
so every epoch sees a new mask, and nothing is materialised: documents are read
lazily, tokenized 256 lines at a time with the in-graph tokenizer (called from
Python, as one `tf.function` call per batch of lines), and examples flow through
`tf.data.Dataset.from_generator` (in blocks of 64, then `unbatch`) into a shuffle
buffer, batching and prefetching.

Throughput: about 2,000-2,500 examples/s on one CPU core at seq_length 128
(`benchmarks/pretraining_data_throughput.py` measures it), far above the ~30
examples/s `albert_tiny` trains on there, so the data is never the bottleneck on CPU.
"""

import itertools
import numbers
import threading

import numpy as np
import tensorflow as tf

from keras_albert.training.pretraining_examples import ExampleMaker

__all__ = ["pretraining_dataset"]

# Examples handed from the Python generator to tf.data per call.
_BLOCK_EXAMPLES = 64


# ---------------------------------------------------------------------------------
# The document source.


class _DocumentSource:
    """Gives a fresh iterator over the documents for each pass.

    A zero-arg callable is called once per pass; a re-iterable (a list) is iterated
    again; a one-shot iterator (a generator) can be read once: the documents the
    up-front check read are replayed, and a second pass raises.
    """

    def __init__(self, documents):
        self._callable = documents if callable(documents) else None
        self._iterable = None
        self._one_shot = None
        self._replay = []
        self._one_shot_used = False
        if self._callable is None:
            try:
                iterator = iter(documents)
            except TypeError as error:
                raise TypeError(
                    "`documents` must be an iterable of documents (lists of lines) or "
                    f"a zero-arg callable returning one; got {type(documents).__name__}."
                ) from error
            if iterator is documents:
                self._one_shot = iterator
            else:
                self._iterable = documents

    @property
    def is_one_shot(self):
        return self._one_shot is not None

    def _recording(self):
        for document in self._one_shot:
            self._replay.append(document)
            yield document

    def probe_iterator(self):
        if self._one_shot is not None:
            return self._recording()
        return self.iterator()

    def iterator(self):
        if self._callable is not None:
            return iter(self._callable())
        if self._iterable is not None:
            return iter(self._iterable)
        if self._one_shot_used:
            raise ValueError(
                "`documents` was a one-shot iterator and it has been read already; "
                "pass a zero-arg callable returning a fresh iterator (e.g. `lambda: "
                "iter_documents(paths)`) or a list to iterate the dataset again."
            )
        self._one_shot_used = True
        replay, self._replay = self._replay, []
        return itertools.chain(replay, self._one_shot)


# ---------------------------------------------------------------------------------
# The dataset.


def _epoch_rng(seed, epoch):
    return np.random.default_rng([seed % 2**63, epoch])


def _check_arguments(seq_length, batch_size, max_predictions, mask_rate, max_ngram,
                     short_seq_prob, seed, shuffle_buffer):
    def is_int(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not is_int(seq_length) or seq_length < 8:
        raise ValueError(f"`seq_length` must be an int >= 8; got {seq_length!r}.")
    if not is_int(max_predictions) or max_predictions < 1:
        raise ValueError(f"`max_predictions` must be an int >= 1; got {max_predictions!r}.")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an int >= 1; got {batch_size!r}.")
    if not (isinstance(mask_rate, numbers.Real) and 0 < mask_rate <= 1):
        raise ValueError(f"`mask_rate` must be in (0, 1]; got {mask_rate!r}.")
    if not is_int(max_ngram) or max_ngram < 1:
        raise ValueError(f"`max_ngram` must be an int >= 1; got {max_ngram!r}.")
    if not (isinstance(short_seq_prob, numbers.Real) and 0 <= short_seq_prob <= 1):
        raise ValueError(f"`short_seq_prob` must be in [0, 1]; got {short_seq_prob!r}.")
    if not is_int(seed):
        raise ValueError(f"`seed` must be an int; got {seed!r}.")
    if not is_int(shuffle_buffer) or shuffle_buffer < 0:
        raise ValueError(f"`shuffle_buffer` must be an int >= 0; got {shuffle_buffer!r}.")


def pretraining_dataset(
    documents,
    tokenizer,
    seq_length=128,
    batch_size=32,
    max_predictions=20,
    mask_rate=0.15,
    max_ngram=3,
    short_seq_prob=0.1,
    sop=True,
    seed=0,
    shuffle_buffer=1000,
    repeat=False,
    drop_remainder=True,
):
    """A `tf.data.Dataset` of `(x, y, sample_weight)` batches for MLM + SOP pretraining.

    Args:
        documents: the corpus, read lazily: an iterable of documents (each a list of
            lines), or a zero-arg callable returning such an iterator (called again
            for every pass, e.g. `lambda: iter_documents(paths)`). A one-shot iterator
            (a generator object) can be passed for a single pass with `repeat=False`.
        tokenizer: a `keras_albert` `SentencePieceTokenizer` or `WordPieceTokenizer`.
        seq_length: S, the packed length, special tokens included (>= 8).
        batch_size: B.
        max_predictions: M, the most masked positions per example (padded with
            position 0, label 0, weight 0).
        mask_rate: the fraction of real tokens to predict.
        max_ngram: the longest masked n-gram, in words; p(n) is proportional to 1/n
            (3 gives 6/11, 3/11, 2/11).
        short_seq_prob: the probability that a chunk's target length is drawn
            uniformly from [2, S - 3] instead of S - 3. It is drawn for every chunk
            (ALBERT draws it once per document), so about this fraction of the
            examples of long documents are short.
        sop: sentence-order prediction. False: plain MLM, `[CLS] A [SEP]` with up to
            S - 2 tokens, type ids 0, SOP label 0 with sample weight 0 (the batch
            structure stays the same; for `PretrainingModel(..., sentence_order=False)`
            drop the `"sop_logits"` entries of `y` and `sample_weight` with a `map`).
        seed: the same seed gives the same batches.
        shuffle_buffer: the size of the example shuffle buffer (0 or 1: no shuffle).
        repeat: True: an infinite dataset that re-reads `documents` every epoch, with
            new chunking choices and masks each epoch.
        drop_remainder: drop a last, smaller batch (the batch size is then fixed in
            the dataset's shapes).

    Returns:
        A dataset of `(x, y, sample_weight)`:
        `x = {"input_word_ids", "input_mask", "input_type_ids"}` int32 [B, S] and
        `"masked_positions"` int32 [B, M]; `y = {"mlm_logits": int32 [B, M] (the
        original ids), "sop_logits": int32 [B] (1 = swapped)}`; `sample_weight =
        {"mlm_logits": float32 [B, M] (1 real, 0 padding), "sop_logits": float32 [B]}`.

    Examples, as ALBERT: consecutive lines of a document are accumulated up to the
    target length, split at a random line boundary into A and B, swapped with
    probability 1/2 (label 1), truncated to S - 3 (longest first, front or back at
    random) and packed `[CLS] A [SEP] B [SEP]`. A chunk that is a single line (a
    one-line document, a line that alone reaches the target, or a document's last
    line left on its own) is split at a random token instead, if it has two or more
    tokens; a single-token chunk gives no SOP example.
    Lines with no tokens are dropped. Masking (`mask_tokens`) is drawn when the
    example is made, from `np.random.default_rng([seed, epoch])`, so each epoch masks
    differently; each new iteration of a `repeat=False` dataset (e.g. each epoch of
    `model.fit`) is the next epoch. The example shuffle uses the same seed. Two
    datasets made with the same arguments give the same batches.

    Call it eagerly (not inside a `tf.function`): it reads the first documents to
    check them, and the tokenizer runs from Python in the input pipeline.

    Raises:
        ValueError: bad arguments, or a corpus that gives no example (or, with
            `repeat=False` and `drop_remainder=True`, fewer examples than one batch).
            The first documents are read when the dataset is made, to check this.
    """
    _check_arguments(seq_length, batch_size, max_predictions, mask_rate, max_ngram,
                     short_seq_prob, seed, shuffle_buffer)
    source = _DocumentSource(documents)
    if repeat and source.is_one_shot:
        raise ValueError(
            "`repeat=True` re-reads the documents every epoch, but `documents` is a "
            "one-shot iterator; pass a list or a zero-arg callable returning a fresh "
            "iterator (e.g. `lambda: iter_documents(paths)`)."
        )
    maker = ExampleMaker(tokenizer, seq_length, max_predictions, mask_rate, max_ngram,
                         short_seq_prob, sop)

    # Check up front that the corpus gives examples: a ValueError here is clearer than
    # an error from inside tf.data at the first batch.
    needed = batch_size if (drop_remainder and not repeat) else 1
    found = sum(1 for _ in itertools.islice(
        maker.examples(source.probe_iterator(), _epoch_rng(seed, 0)), needed))
    if found == 0:
        raise ValueError(
            "The corpus gives no pretraining example: it has no document with at "
            f"least {2 if sop else 1} token(s) after tokenization. Documents must be "
            "lists of non-empty lines."
        )
    if found < needed:
        raise ValueError(
            f"The corpus gives only {found} pretraining example(s), fewer than "
            f"batch_size={batch_size}, so with drop_remainder=True there is no batch; "
            "use more text, a smaller batch_size or drop_remainder=False."
        )

    epoch_counter = itertools.count()
    counter_lock = threading.Lock()

    def epochs():
        while True:
            with counter_lock:
                epoch = next(epoch_counter)
            count = 0
            for example in maker.examples(source.iterator(), _epoch_rng(seed, epoch)):
                count += 1
                yield example
            if count == 0:
                raise ValueError(f"Epoch {epoch} of the corpus gave no example.")
            if not repeat:
                return

    def generate():
        # Examples cross into tf.data in blocks (one Python call per block instead of
        # per example, which would cost more than making the example), then `unbatch`.
        block = []
        for example in epochs():
            block.append(example)
            if len(block) == _BLOCK_EXAMPLES:
                yield tuple(np.stack(column) for column in zip(*block))
                block = []
        if block:
            yield tuple(np.stack(column) for column in zip(*block))

    S, M = seq_length, max_predictions
    signature = (
        tf.TensorSpec([None, S], tf.int32),  # input_word_ids
        tf.TensorSpec([None, S], tf.int32),  # input_mask
        tf.TensorSpec([None, S], tf.int32),  # input_type_ids
        tf.TensorSpec([None, M], tf.int32),  # masked_positions
        tf.TensorSpec([None, M], tf.int32),  # mlm labels
        tf.TensorSpec([None, M], tf.float32),  # mlm weights
        tf.TensorSpec([None], tf.int32),  # sop label
        tf.TensorSpec([None], tf.float32),  # sop weight
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.unbatch()
    if shuffle_buffer > 1:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed % 2**31)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def structure(word_ids, input_mask, type_ids, positions, labels, weights,
                  sop_label, sop_weight):
        x = {
            "input_word_ids": word_ids,
            "input_mask": input_mask,
            "input_type_ids": type_ids,
            "masked_positions": positions,
        }
        y = {"mlm_logits": labels, "sop_logits": sop_label}
        sample_weight = {"mlm_logits": weights, "sop_logits": sop_weight}
        return x, y, sample_weight

    dataset = dataset.map(structure)
    return dataset.prefetch(tf.data.AUTOTUNE)
