"""Streaming MLM + sentence-order-prediction (SOP) pretraining data, as ALBERT makes it.

`pretraining_dataset(documents, tokenizer, ...)` turns a stream of documents (each a
list of lines, as `keras_albert.training.corpus.iter_documents` yields them) into batches that
`keras_albert.models.PretrainingModel` trains on with plain `model.fit`:

    x = {"input_word_ids", "input_mask", "input_type_ids": int32 [B, S],
         "masked_positions": int32 [B, M]}
    y = {"mlm_logits": int32 [B, M], "sop_logits": int32 [B]}
    sample_weight = {"mlm_logits": float32 [B, M], "sop_logits": float32 [B]}

It follows google-research/albert `create_pretraining_data.py`: chunks of consecutive
lines up to a target length (sometimes shorter), split at a line boundary into
segments A and B, swapped half the time (SOP label 1), truncated longest-first from
the front or the back at random, packed as `[CLS] A [SEP] B [SEP]`; then whole-word
n-gram masking (n <= 3, p(n) proportional to 1/n) with the 80/10/10 replacement. Unlike
the original script, which writes a fixed set of TFRecords (`dupe_factor` copies with
different masks), the masking here is dynamic: it is drawn each time an example is
produced, so every epoch sees a new mask, and nothing is materialised: documents are
read lazily, tokenized 256 lines at a time with the in-graph tokenizer (called from
Python, as one `tf.function` call per batch of lines), and examples flow through
`tf.data.Dataset.from_generator` (in blocks of 64, then `unbatch`) into a shuffle
buffer, batching and prefetching.

Throughput: examples/s that the dataset yields at seq_length 128, batch 32, with the
real ALBERT SentencePiece vocabulary (`albert_spiece_rebuilt.model`) on the Python 3.11
documentation corpus (`python311_docs.txt.gz`), pinned to one core (`taskset -c 1`) of
a 2-core machine that other jobs were loading (load average ~3), so these are lower
bounds:

    taskset -c 1 python -m keras_albert.training.pretraining_data VOCAB CORPUS --batches 300

    with VOCAB = ../shared/data/vocab/albert_spiece_rebuilt.model
    and CORPUS = ../shared/data/corpus/python311_docs.txt.gz

    paragraphs as documents (47 real tokens/example):     2,500 examples/s
    --merge-documents 20 (116 real tokens/example):       2,000 examples/s
    (both cores, same load: 4,900 and 2,400; WordPiece, bert_uncased: 2,500)

About a third of the time is tokenization, half is masking (`mask_tokens`). For
scale: `albert_tiny` (`PretrainingModel`, Adam) trains on about 30 examples/s at
seq_length 128 on the same core, so the data is never the bottleneck on CPU.
"""

import argparse
import functools
import itertools
import numbers
import threading
import time

import numpy as np
import tensorflow as tf

__all__ = [
    "mask_tokens",
    "masking_tables",
    "pretraining_dataset",
    "special_id_set",
    "word_start_table",
]

# Lines tokenized per call of the in-graph tokenizer.
TOKENIZE_BATCH_LINES = 256
# Examples handed from the Python generator to tf.data per call.
_BLOCK_EXAMPLES = 64

_SPM_WORD_START = "\u2581"  # "▁"
_WORDPIECE_CONTINUATION = "##"


# ---------------------------------------------------------------------------------
# Vocabulary tables.


def special_id_set(tokenizer):
    """The ids of the tokenizer's special tokens: pad, unk, [CLS], [SEP], [MASK].

    They are never masked (nor counted as real tokens when sizing the mask) and never
    drawn as random replacements. `<unk>` is among them: predicting "unknown" teaches
    nothing.
    """
    return frozenset(
        int(i)
        for i in (
            tokenizer.pad_id,
            tokenizer.unk_id,
            tokenizer.cls_id,
            tokenizer.sep_id,
            tokenizer.mask_id,
        )
    )


def _is_wordpiece(tokenizer, vocabulary):
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    if isinstance(tokenizer, WordPieceTokenizer):
        return True
    if isinstance(tokenizer, SentencePieceTokenizer):
        return False
    # Another tokenizer: WordPiece if the vocabulary has "##" continuations.
    return any(token.startswith(_WORDPIECE_CONTINUATION) for token in vocabulary)


def word_start_table(tokenizer):
    """A bool array over the vocabulary: does this token start a word?

    SentencePiece: pieces starting with "▁" start a word; the others (including
    standalone punctuation such as "," after "▁hello") continue the previous word.
    WordPiece: tokens not starting with "##" start a word. Special tokens are marked
    as starts (they are never masked anyway). A continuation piece right after a
    special token (e.g. when truncation cut a word at the front of a segment) starts a
    new word in `mask_tokens`.
    """
    vocabulary = tokenizer.get_vocabulary()
    if _is_wordpiece(tokenizer, vocabulary):
        table = np.array(
            [not token.startswith(_WORDPIECE_CONTINUATION) for token in vocabulary], bool
        )
    else:
        table = np.array([token.startswith(_SPM_WORD_START) for token in vocabulary], bool)
    table[list(special_id_set(tokenizer))] = True
    return table


def masking_tables(tokenizer):
    """The keyword arguments `mask_tokens` needs for `tokenizer`, computed once.

    Returns a dict with `word_start` (bool [V]), `special` (bool [V]), `mask_id` and
    `replacement_ids` (the non-special ids, drawn uniformly for the 10% random
    replacements).
    """
    size = tokenizer.vocabulary_size
    special = np.zeros(size, bool)
    special[list(special_id_set(tokenizer))] = True
    return {
        "word_start": word_start_table(tokenizer),
        "special": special,
        "mask_id": int(tokenizer.mask_id),
        "replacement_ids": np.flatnonzero(~special).astype(np.int32),
    }


# ---------------------------------------------------------------------------------
# Masking.


@functools.lru_cache(maxsize=None)
def _ngram_cumulative_probabilities(max_ngram):
    p = 1.0 / np.arange(1, max_ngram + 1)
    return np.cumsum(p / p.sum())


def mask_tokens(
    token_ids,
    rng,
    *,
    word_start,
    special,
    mask_id,
    replacement_ids,
    mask_rate=0.15,
    max_predictions=20,
    max_ngram=3,
    return_spans=False,
):
    """Whole-word n-gram masking of one packed sequence, as ALBERT; pure NumPy.

    Args:
        token_ids: int array [L], a packed example (specials included, padding may be
            included: it is special).
        rng: a `np.random.Generator`.
        word_start, special, mask_id, replacement_ids: see `masking_tables`.
        mask_rate: the fraction of real (non-special) tokens to predict.
        max_predictions: the most positions to predict.
        max_ngram: the longest n-gram, in words; p(n) is proportional to 1/n.
        return_spans: also return the chosen spans.

    Returns:
        `(masked_ids, positions, labels)`: the ids with the chosen tokens replaced
        (80% `mask_id`, 10% a random non-special id, 10% unchanged), the chosen
        positions (sorted, int32) and the original ids there. With `return_spans`, a
        fourth item: a list of `(first_position, end_position, num_words)`, one per
        chosen n-gram, in the order chosen.

    The procedure is ALBERT's: `num_to_predict = min(max_predictions, max(1,
    round(num_real * mask_rate)))` where `num_real` counts the non-special tokens.
    Words are a start piece and the continuation pieces after it. For each word, in
    random order, n is drawn with p(n) proportional to 1/n over the n-grams that fit
    before the next special token (an n-gram never crosses [SEP]); if the n-gram's
    tokens exceed the remaining budget, shorter n are tried; if even one word does not
    fit, or any word of the n-gram is already masked, the word is skipped. It stops
    when the budget is reached. Whole words can leave the budget short of
    `num_to_predict` (ALBERT's too); when no word at all fits (a short example of
    long words), the shortest word is masked anyway if it fits in `max_predictions`,
    so an example has no prediction only if even that does not fit.
    """
    ids = np.asarray(token_ids)
    length = ids.shape[0]
    masked = ids.astype(np.int32, copy=True)
    candidate = ~special[ids]
    num_real = int(np.count_nonzero(candidate))
    empty = np.zeros(0, np.int32)
    if num_real == 0:
        return (masked, empty, empty, []) if return_spans else (masked, empty, empty)
    budget = min(max_predictions, max(1, int(round(num_real * mask_rate))))

    previous_candidate = np.empty(length, bool)
    previous_candidate[0] = False
    previous_candidate[1:] = candidate[:-1]
    starts = np.flatnonzero(candidate & (word_start[ids] | ~previous_candidate))
    num_words = starts.shape[0]
    # A word ends at the next word start or at the next special token.
    breaks = np.concatenate([np.flatnonzero(~candidate), [length]])
    run_ends = breaks[np.searchsorted(breaks, starts)]
    next_starts = np.concatenate([starts[1:], [length]])
    ends = np.minimum(next_starts, run_ends)
    # Words left in the same run (between specials), counting this one.
    last_in_run = np.concatenate([ends[:-1] != starts[1:], [True]])
    run_index = np.concatenate([[0], np.cumsum(last_in_run[:-1])])
    available = np.flatnonzero(last_in_run)[run_index] - np.arange(num_words) + 1
    available = np.minimum(available, max_ngram)

    cumulative = _ngram_cumulative_probabilities(max_ngram)
    draws = rng.random(num_words) * cumulative[available - 1]
    ngram = 1 + np.count_nonzero(draws[:, None] >= cumulative[None, :], axis=1)
    ngram = np.minimum(ngram, available)
    order = rng.permutation(num_words)

    starts_list = starts.tolist()
    ends_list = ends.tolist()
    ngram_list = ngram.tolist()
    covered = [False] * num_words
    count = 0
    spans = []
    for word in order.tolist():
        if count >= budget:
            break
        n = ngram_list[word]
        size = ends_list[word + n - 1] - starts_list[word]
        while n > 1 and count + size > budget:
            n -= 1
            size = ends_list[word + n - 1] - starts_list[word]
        if count + size > budget:
            continue
        if any(covered[word : word + n]):
            continue
        covered[word : word + n] = [True] * n
        count += size
        spans.append((starts_list[word], ends_list[word + n - 1], n))
    if not spans and num_words:
        # No whole word fits the budget (a short example of long words): mask the
        # shortest word (the first in the random order on a tie) rather than nothing,
        # if it fits in max_predictions.
        sizes = (ends - starts)[order]
        word = int(order[np.argmin(sizes)])
        if ends_list[word] - starts_list[word] <= max_predictions:
            spans.append((starts_list[word], ends_list[word], 1))

    chosen = np.zeros(length, bool)
    for first, end, _ in spans:
        chosen[first:end] = True
    positions = np.flatnonzero(chosen).astype(np.int32)
    labels = ids[positions].astype(np.int32)
    action = rng.random(positions.shape[0])
    masked[positions[action < 0.8]] = mask_id
    random_positions = positions[action >= 0.9]
    if random_positions.size:
        masked[random_positions] = replacement_ids[
            rng.integers(0, replacement_ids.shape[0], random_positions.size)
        ]
    if return_spans:
        return masked, positions, labels, spans
    return masked, positions, labels


# ---------------------------------------------------------------------------------
# Examples.


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


class _ExampleMaker:
    """Tokenizes documents, cuts them into segment pairs, packs and masks them."""

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


# ---------------------------------------------------------------------------------
# The dataset.


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
    maker = _ExampleMaker(tokenizer, seq_length, max_predictions, mask_rate, max_ngram,
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


# ---------------------------------------------------------------------------------
# Throughput measurement: python -m keras_albert.training.pretraining_data VOCAB CORPUS.


def _load_tokenizer(path):
    from keras_albert.tokenizers import SentencePieceTokenizer, WordPieceTokenizer

    if str(path).endswith(".txt"):
        return WordPieceTokenizer(path)
    return SentencePieceTokenizer(path)


def main(argv=None):
    from keras_albert.training.corpus import iter_documents

    parser = argparse.ArgumentParser(description="Measures the pretraining data throughput.")
    parser.add_argument("vocabulary", help="a SentencePiece .model or a WordPiece vocab.txt")
    parser.add_argument("corpus", nargs="+", help="corpus files (.txt or .gz)")
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-predictions", type=int, default=20)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--merge-documents", type=int, default=1, metavar="N",
        help="join every N consecutive documents into one (longer documents fill "
        "the sequences; the Python docs corpus has one paragraph per document)")
    args = parser.parse_args(argv)

    def documents():
        stream = iter_documents(args.corpus)
        if args.merge_documents <= 1:
            return stream
        groups = iter(lambda: list(itertools.islice(stream, args.merge_documents)), [])
        return ([line for document in group for line in document] for group in groups)

    tokenizer = _load_tokenizer(args.vocabulary)
    dataset = pretraining_dataset(
        documents,
        tokenizer,
        seq_length=args.seq_length,
        batch_size=args.batch_size,
        max_predictions=args.max_predictions,
        repeat=True,
    )
    iterator = iter(dataset)
    for _ in range(args.warmup):
        next(iterator)
    start = time.perf_counter()
    tokens = 0
    for _ in range(args.batches):
        x, _, _ = next(iterator)
        tokens += int(tf.reduce_sum(x["input_mask"]))
    elapsed = time.perf_counter() - start
    examples = args.batches * args.batch_size
    print(
        f"{examples / elapsed:,.0f} examples/s, {tokens / elapsed:,.0f} tokens/s "
        f"({examples} examples of seq_length {args.seq_length} in {elapsed:.2f} s; "
        f"{tokens / examples:.1f} real tokens per example)"
    )
    return examples / elapsed


if __name__ == "__main__":
    main()
