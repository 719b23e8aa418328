"""Word tags and answer spans to the packed token positions a model trains on.

Token classification (`pack_tagged_words`): every word is tokenized on its own (as
transformers' `is_split_into_words=True` does; both tokenizers split text at
whitespace first, so a sentence's pieces are its words' pieces one after the other)
and the example packed as `[CLS] pieces [SEP]`. The first piece of each word
carries the word's tag id; the other pieces, `[CLS]`, `[SEP]` (and later the
padding) carry `IGNORE_LABEL` (-100). Pieces past `seq_length - 2` are cut; a word
whose first piece is cut loses its tag, and `truncated_words` counts such words. A
word that tokenizes to nothing (only control characters) has no piece, so no label.

Span QA (`answer_positions`): the packed row is the preprocessor's
`[CLS] question [SEP] context [SEP]`, and the answer's characters are mapped to the
first and last context piece they overlap (`answer_token_spans`):

- with a tokenizer that has `tokenize_with_offsets` (`WordPieceTokenizer`), through
  each piece's character offsets in the original context;
- otherwise (`SentencePieceTokenizer`: its normalisation collapses whitespace and
  rewrites ``` `` ``` / `''`, so it does not map character by character) by
  re-tokenizing the context up to the answer's start and up to its end: the pieces
  of `context[:start]` are those before the answer as long as they agree with the
  whole context's; where they part, that piece of the context holds the answer's
  first character (likewise for the end). Exact when the answer's edges fall
  between pieces, as they nearly always do; an answer edge inside a piece takes
  the whole piece, as with offsets. A piece that is only SentencePiece's word mark
  `▁` (before a word that starts with punctuation: `▁` `(`) holds no character of
  the answer, so a span does not start on one.

An answer cut away by truncation (or "no answer") points at position 0, `[CLS]`, for
both start and end, as in BERT's SQuAD recipe.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_albert.metrics import IGNORE_LABEL


def _tokenize(tokenizer, strings, chunk_size=4096):
    """Flat int32 ids of every string, and how many each has."""
    ids, counts = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
    for start in range(0, len(strings), chunk_size):
        pieces = tokenizer(tf.constant(strings[start:start + chunk_size], tf.string))
        ids.append(pieces.flat_values.numpy().astype(np.int32))
        counts.append(pieces.row_lengths().numpy())
    return np.concatenate(ids), np.concatenate(counts)


@dataclasses.dataclass
class PackedTokens:
    """`[CLS] pieces [SEP]` rows one after the other (`word_ids`, `lengths`), their
    labels aligned with `word_ids` (None for unlabelled data) and how many words
    lost their tag to truncation."""

    word_ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    truncated_words: int


def pack_tagged_words(data, tokenizer, seq_length, cls_id, sep_id):
    """Packs a `TokenTaskData` as described in the module docstring."""
    words = [word for example in data.words for word in example]
    piece_ids, pieces_per_word = _tokenize(tokenizer, words)
    words_per_example = np.asarray([len(example) for example in data.words], np.int64)
    example_of_word = np.repeat(np.arange(len(data)), words_per_example)
    pieces_per_example = np.bincount(example_of_word, weights=pieces_per_word,
                                     minlength=len(data)).astype(np.int64)

    # Each piece's example and position within that example's pieces.
    example_of_piece = np.repeat(np.arange(len(data)), pieces_per_example)
    example_starts = np.concatenate([[0], np.cumsum(pieces_per_example)[:-1]]).astype(np.int64)
    position = np.arange(len(piece_ids)) - example_starts[example_of_piece]
    budget = seq_length - 2
    kept = position < budget

    lengths = np.minimum(pieces_per_example, budget) + 2
    row_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    word_ids = np.full(int(lengths.sum()), sep_id, np.int32)
    word_ids[row_starts] = cls_id
    target = row_starts[example_of_piece[kept]] + 1 + position[kept]
    word_ids[target] = piece_ids[kept]

    word_first_piece = np.concatenate([[0], np.cumsum(pieces_per_word)[:-1]]).astype(np.int64)
    has_pieces = pieces_per_word > 0
    first_piece_kept = np.zeros(len(words), bool)
    first_piece_kept[has_pieces] = kept[word_first_piece[has_pieces]]
    truncated = int(np.sum(has_pieces & ~first_piece_kept))
    labels = None
    if data.tags is not None:
        piece_labels = np.full(len(piece_ids), IGNORE_LABEL, np.int32)
        tags = np.concatenate([np.zeros(0, np.int32)] + list(data.tags))
        piece_labels[word_first_piece[has_pieces]] = tags[has_pieces]
        labels = np.full(len(word_ids), IGNORE_LABEL, np.int32)
        labels[target] = piece_labels[kept]
    return PackedTokens(word_ids, lengths.astype(np.int32), labels, truncated)


def _spans_from_offsets(tokenizer, contexts, char_starts, char_ends, chunk_size=2048):
    spans = np.full((len(contexts), 2), -1, np.int64)
    for first in range(0, len(contexts), chunk_size):
        chunk = slice(first, first + chunk_size)
        _, starts, ends = tokenizer.tokenize_with_offsets(
            tf.constant(contexts[chunk], tf.string))
        rows = starts.value_rowids().numpy()
        index = tf.ragged.range(starts.row_lengths()).flat_values.numpy()
        starts, ends = starts.flat_values.numpy(), ends.flat_values.numpy()
        answer_start, answer_end = char_starts[chunk][rows], char_ends[chunk][rows]
        overlaps = (answer_start >= 0) & (starts < answer_end) & (ends > answer_start)
        block = spans[chunk]
        block[:, 0] = len(starts) + 1  # above any index, so np.minimum finds the first
        np.minimum.at(block[:, 0], rows[overlaps], index[overlaps])
        np.maximum.at(block[:, 1], rows[overlaps], index[overlaps])
        block[block[:, 1] < 0] = -1
    return spans


def _common_prefix(a, b):
    """The number of leading ids `a` and `b` share."""
    size = min(len(a), len(b))
    differ = np.flatnonzero(a[:size] != b[:size])
    return int(differ[0]) if len(differ) else size


def _spans_from_prefixes(tokenizer, contexts, char_starts, char_ends):
    answered = np.flatnonzero(char_starts >= 0)
    spans = np.full((len(contexts), 2), -1, np.int64)
    if not len(answered):
        return spans
    pick = [contexts[i] for i in answered]
    texts = (pick + [c[:s] for c, s in zip(pick, char_starts[answered])]
             + [c[:e] for c, e in zip(pick, char_ends[answered])])
    ids, counts = _tokenize(tokenizer, texts)
    rows = np.split(ids, np.cumsum(counts)[:-1])
    count = len(answered)
    blank = {i for i, token in enumerate(tokenizer.get_vocabulary()) if not token.strip("▁")}
    for k, i in enumerate(answered):
        full, before, through = rows[k], rows[count + k], rows[2 * count + k]
        start = _common_prefix(before, full)
        while start < len(full) and full[start] in blank:
            start += 1
        if start >= len(full):
            continue
        shared = _common_prefix(through, full)
        end = len(through) - 1 if shared == len(through) else shared
        spans[i] = start, min(max(end, start), len(full) - 1)
    return spans


def answer_token_spans(tokenizer, contexts, char_starts, char_ends):
    """int64 [N, 2]: the first and last piece of `tokenizer(context)` that each answer
    (characters `char_starts[i]:char_ends[i]`) overlaps; (-1, -1) without an answer
    (start -1) or when no piece overlaps it. See the module docstring for how."""
    char_starts = np.asarray(char_starts, np.int64)
    char_ends = np.asarray(char_ends, np.int64)
    if hasattr(tokenizer, "tokenize_with_offsets"):
        return _spans_from_offsets(tokenizer, list(contexts), char_starts, char_ends)
    return _spans_from_prefixes(tokenizer, list(contexts), char_starts, char_ends)


def answer_positions(data, tokenizer, first_lengths, lengths):
    """`(positions, truncated)` for a `SpanTaskData` packed as `[CLS] q [SEP] c [SEP]`.

    `first_lengths` / `lengths` are each packed row's `[CLS] q [SEP]` length and whole
    length. `positions` int32 [N, 2] are the answer's first and last token in the
    packed row, (0, 0) when it has none or truncation cut it (`truncated` counts those
    that had one). None for unlabelled data.
    """
    if data.answer_starts is None:
        return None, 0
    spans = answer_token_spans(tokenizer, data.contexts, data.answer_starts, data.answer_ends)
    first_lengths = np.asarray(first_lengths, np.int64)
    context_kept = np.asarray(lengths, np.int64) - first_lengths - 1
    inside = (spans[:, 0] >= 0) & (spans[:, 1] < context_kept)
    positions = np.where(inside[:, None], spans + first_lengths[:, None], 0)
    return positions.astype(np.int32), int(np.sum((spans[:, 0] >= 0) & ~inside))
