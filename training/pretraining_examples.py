"""Packed MLM + SOP pretraining examples from tokenized documents, as ALBERT makes them.

This follows google-research/albert `create_pretraining_data.py`: consecutive lines
of a document are accumulated into a chunk up to a target length (sometimes
shorter), the chunk is split at a line boundary into segments A and B, swapped half
the time (SOP label 1), truncated longest-first from the front or the back at
random, packed as `[CLS] A [SEP] B [SEP]` and masked with `mask_tokens` (whole-word
n-grams, 80/10/10). `ExampleMaker` does all of it for a stream of documents, one
example at a time, as flat NumPy tuples; `pretraining_dataset` feeds them to
`tf.data`.

    maker = ExampleMaker(tokenizer, seq_length=128, max_predictions=20,
                         mask_rate=0.15, max_ngram=3, short_seq_prob=0.1, sop=True)
    rng = np.random.default_rng(0)
    for example in maker.examples(documents, rng):
        word_ids, input_mask, type_ids, positions, labels, weights, sop_label, _ = example
"""

import functools

import numpy as np
import tensorflow as tf

from keras_albert.training.masking import mask_tokens, masking_tables

__all__ = ["ExampleMaker"]

# Lines tokenized per call of the in-graph tokenizer.
TOKENIZE_BATCH_LINES = 256


# ---------------------------------------------------------------------------------
# Segments.



def _truncate_pair(first, second, max_num_tokens, rng):
    """ALBERT's `truncate_seq_pair`, in closed form.

    ALBERT removes one token at a time from the longer segment (the second on a tie),
    from the front or the back with probability 1/2 each. The number removed from each
    segment is computed directly and the number of those taken from the front is
    Binomial(removed, 1/2), which is the same distribution.
    """
    length_a, length_b = len(first), len(second)
    excess = length_a + length_b - max_num_tokens
    if excess <= 0:
        return first, second
    difference = abs(length_a - length_b)
    if excess <= difference:
        cut_a, cut_b = (excess, 0) if length_a > length_b else (0, excess)
    else:
        rest = excess - difference
        cut_a = (difference if length_a > length_b else 0) + rest // 2
        cut_b = (difference if length_b > length_a else 0) + rest - rest // 2
    front_a, front_b = rng.binomial([cut_a, cut_b], 0.5).tolist()
    first = first[front_a : length_a - (cut_a - front_a)]
    second = second[front_b : length_b - (cut_b - front_b)]
    return first, second


def _chunk_to_segments(chunk, rng, max_num_tokens, sop):
    """Segments `(a, b, sop_label)` from a chunk of tokenized lines, or None."""
    if not sop:
        tokens = np.concatenate(chunk) if len(chunk) > 1 else chunk[0]
        tokens, _ = _truncate_pair(tokens, tokens[:0], max_num_tokens, rng)
        return tokens, tokens[:0], 0
    if len(chunk) >= 2:
        a_end = int(rng.integers(1, len(chunk)))
        first = np.concatenate(chunk[:a_end]) if a_end > 1 else chunk[0]
        second = np.concatenate(chunk[a_end:]) if len(chunk) - a_end > 1 else chunk[-1]
    else:
        # One line: split its tokens at a random point (ALBERT would pair it with a
        # random document instead, which SOP does not use).
        tokens = chunk[0]
        if len(tokens) < 2:
            return None
        split = int(rng.integers(1, len(tokens)))
        first, second = tokens[:split], tokens[split:]
    label = 0
    if rng.random() < 0.5:
        first, second, label = second, first, 1
    first, second = _truncate_pair(first, second, max_num_tokens, rng)
    return first, second, label


def _document_segments(lines, rng, max_num_tokens, short_seq_prob, sop):
    """Yields `(a, b, sop_label)` for one document (a list of non-empty id arrays)."""

    def draw_target():
        if short_seq_prob > 0 and rng.random() < short_seq_prob:
            return int(rng.integers(2, max_num_tokens + 1))
        return max_num_tokens

    target = draw_target()
    chunk = []
    chunk_length = 0
    last = len(lines) - 1
    for index, line in enumerate(lines):
        chunk.append(line)
        chunk_length += len(line)
        if index == last or chunk_length >= target:
            segments = _chunk_to_segments(chunk, rng, max_num_tokens, sop)
            if segments is not None:
                yield segments
            chunk = []
            chunk_length = 0
            target = draw_target()


# ---------------------------------------------------------------------------------
# Examples.


class ExampleMaker:
    """Tokenizes documents, cuts them into segment pairs, packs and masks them.

    `examples(documents, rng)` yields one flat tuple per example: `(word_ids,
    input_mask, type_ids)` int32 [seq_length], `(masked_positions, mlm_labels)` int32
    [max_predictions], `mlm_weights` float32 [max_predictions] (1 real, 0 padding),
    the SOP label (int32, 1 = swapped) and its weight (float32, 0 without `sop`).
    The arguments are `pretraining_dataset`'s, checked there.
    """

    def __init__(self, tokenizer, seq_length, max_predictions, mask_rate, max_ngram,
                 short_seq_prob, sop):
        self.tokenizer = tokenizer
        self.seq_length = seq_length
        self.max_predictions = max_predictions
        self.mask_rate = mask_rate
        self.max_ngram = max_ngram
        self.short_seq_prob = short_seq_prob
        self.sop = sop
        self.max_num_tokens = seq_length - 3 if sop else seq_length - 2
        self.tables = masking_tables(tokenizer)
        self.cls_id = int(tokenizer.cls_id)
        self.sep_id = int(tokenizer.sep_id)
        self.pad_id = int(tokenizer.pad_id)

    def tokenize(self, lines):
        """Token ids of a list of lines: one call of the tokenizer, as numpy arrays."""
        ids = self._tokenize_graph(tf.constant(lines, tf.string))
        flat = ids.flat_values.numpy().astype(np.int32, copy=False)
        splits = ids.row_splits.numpy().tolist()
        return [flat[splits[i] : splits[i + 1]] for i in range(len(lines))]

    @functools.cached_property
    def _tokenize_graph(self):
        # The tokenizer's ops run as one graph call instead of op by op (about 1.4x
        # faster on large batches); traced once, for any number of lines.
        return tf.function(
            self.tokenizer.call,
            input_signature=[tf.TensorSpec([None], tf.string)],
            reduce_retracing=True,
        )

    def tokenized_documents(self, documents):
        """Yields each document as a list of non-empty id arrays (one per line)."""
        pending, pending_lines = [], 0
        for document in documents:
            if isinstance(document, (str, bytes)):
                raise TypeError(
                    "Each document must be a list of lines (strings), not a single "
                    f"string; got {document[:60]!r}."
                )
            lines = [line for line in document if line and not line.isspace()]
            if not lines:
                continue
            pending.append(lines)
            pending_lines += len(lines)
            if pending_lines >= TOKENIZE_BATCH_LINES:
                yield from self._tokenize_documents(pending)
                pending, pending_lines = [], 0
        if pending:
            yield from self._tokenize_documents(pending)

    def _tokenize_documents(self, documents):
        flat_lines = [line for document in documents for line in document]
        ids = []
        for start in range(0, len(flat_lines), TOKENIZE_BATCH_LINES):
            ids.extend(self.tokenize(flat_lines[start : start + TOKENIZE_BATCH_LINES]))
        offset = 0
        for document in documents:
            lines = [line for line in ids[offset : offset + len(document)] if line.size]
            offset += len(document)
            if lines:
                yield lines

    def examples(self, documents, rng):
        """Yields flat example tuples for one pass over `documents`."""
        for lines in self.tokenized_documents(documents):
            for first, second, label in _document_segments(
                lines, rng, self.max_num_tokens, self.short_seq_prob, self.sop
            ):
                yield self.pack(first, second, label, rng)

    def pack(self, first, second, label, rng):
        seq_length, max_predictions = self.seq_length, self.max_predictions
        length_a, length_b = len(first), len(second)
        word_ids = np.full(seq_length, self.pad_id, np.int32)
        type_ids = np.zeros(seq_length, np.int32)
        word_ids[0] = self.cls_id
        word_ids[1 : 1 + length_a] = first
        word_ids[1 + length_a] = self.sep_id
        length = 2 + length_a
        if self.sop:
            word_ids[length : length + length_b] = second
            word_ids[length + length_b] = self.sep_id
            type_ids[length : length + length_b + 1] = 1
            length += length_b + 1
        masked, positions, labels = mask_tokens(
            word_ids[:length],
            rng,
            mask_rate=self.mask_rate,
            max_predictions=max_predictions,
            max_ngram=self.max_ngram,
            **self.tables,
        )
        word_ids[:length] = masked
        input_mask = np.zeros(seq_length, np.int32)
        input_mask[:length] = 1
        count = positions.shape[0]
        masked_positions = np.zeros(max_predictions, np.int32)
        masked_positions[:count] = positions
        mlm_labels = np.zeros(max_predictions, np.int32)
        mlm_labels[:count] = labels
        mlm_weights = np.zeros(max_predictions, np.float32)
        mlm_weights[:count] = 1.0
        sop_weight = np.float32(1.0 if self.sop else 0.0)
        return (word_ids, input_mask, type_ids, masked_positions, mlm_labels,
                mlm_weights, np.int32(label), sop_weight)
