"""Whole-word n-gram masking for MLM pretraining, as ALBERT does it; pure NumPy.

`masking_tables(tokenizer)` computes once what masking needs to know about a
vocabulary (which tokens start a word, which are special, the ids to draw random
replacements from); `mask_tokens(token_ids, rng, **tables)` then masks one packed
sequence: whole words, in n-grams of up to `max_ngram` words with p(n) proportional
to 1/n, 80% `[MASK]` / 10% a random id / 10% unchanged.

    tables = masking_tables(tokenizer)
    rng = np.random.default_rng(0)
    masked_ids, positions, labels = mask_tokens(token_ids, rng, **tables)

`keras_albert.training.pretraining_examples` calls it on every example it packs, so
the mask is drawn anew each time an example is made (dynamic masking).
"""

import functools

import numpy as np

__all__ = [
    "mask_tokens",
    "masking_tables",
    "special_id_set",
    "word_start_table",
]

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
