"""The streaming MLM + SOP pretraining data (`keras_albert.training.masking`,
`keras_albert.training.pretraining_examples`, `keras_albert.training.pretraining_data`,
`keras_albert.training.corpus`).

Real vocabularies and text from the shared data folder; statistics are checked against
the definitions (recomputed here from the vocabulary), not against numbers the code
under test produced.
"""

import collections
import gzip
import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_albert.training import masking
from keras_albert.training import pretraining_data as pd
from keras_albert.training import pretraining_examples
from keras_albert.training.corpus import default_corpus_documents, iter_documents, write_corpus_file


@pytest.fixture(scope="module")
def sp_tokenizer(data_dir):
    from keras_albert.tokenizers import SentencePieceTokenizer

    return SentencePieceTokenizer(data_dir / "vocab" / "albert_spiece_rebuilt.model")


@pytest.fixture(scope="module")
def wp_tokenizer(data_dir):
    from keras_albert.tokenizers import WordPieceTokenizer

    return WordPieceTokenizer(data_dir / "vocab" / "bert_uncased_vocab.txt")


@pytest.fixture(scope="module")
def corpus_path(data_dir):
    return data_dir / "corpus" / "python311_docs.txt.gz"


@pytest.fixture(scope="module")
def prose_sentences(data_dir):
    """English prose: the first SST-2 training sentences."""
    with open(data_dir / "sst2" / "train.tsv", encoding="utf-8") as handle:
        next(handle)
        return [line.split("\t")[0] for line in itertools.islice(handle, 4000)]


def _tokenize(tokenizer, lines):
    ids = tokenizer(tf.constant(lines))
    return [np.asarray(row, np.int32) for row in ids.to_list()]


def _word_starts_from_vocabulary(tokenizer, wordpiece):
    """The word-start rule, written out independently of the code under test."""
    vocabulary = tokenizer.get_vocabulary()
    if wordpiece:
        return np.array([not token.startswith("##") for token in vocabulary])
    return np.array([token.startswith("\u2581") for token in vocabulary])


def _specials(tokenizer):
    return {tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
            tokenizer.mask_id}


def _collect(dataset, limit=None):
    """Concatenates the batches of a finite dataset into numpy arrays."""
    xs, ys, ws = collections.defaultdict(list), collections.defaultdict(list), \
        collections.defaultdict(list)
    for x, y, w in itertools.islice(dataset, limit):
        for source, target in ((x, xs), (y, ys), (w, ws)):
            for key, value in source.items():
                target[key].append(value.numpy())
    join = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return join(xs), join(ys), join(ws)


def _original_ids(x, y, w):
    """input_word_ids with the masked positions restored to their labels."""
    ids = x["input_word_ids"].copy()
    rows, cols = np.nonzero(w["mlm_logits"])
    ids[rows, x["masked_positions"][rows, cols]] = y["mlm_logits"][rows, cols]
    return ids


# ---------------------------------------------------------------------------------
# Masking.


@pytest.mark.parametrize("wordpiece", [False, True], ids=["sentencepiece", "wordpiece"])
def test_mask_statistics(wordpiece, sp_tokenizer, wp_tokenizer, prose_sentences):
    tokenizer = wp_tokenizer if wordpiece else sp_tokenizer
    tables = masking.masking_tables(tokenizer)
    specials = _specials(tokenizer)
    word_start = _word_starts_from_vocabulary(tokenizer, wordpiece)
    stream = np.concatenate(_tokenize(tokenizer, prose_sentences))
    rng = np.random.default_rng(123)
    seq_length, real_length, max_predictions = 128, 110, 40  # budget 16 or 17 < 40
    num_examples = 400
    masked_total = real_total = 0
    kept = replaced_mask = replaced_random = 0
    for k in range(num_examples):
        real = stream[k * real_length : (k + 1) * real_length]
        split = int(rng.integers(10, real_length - 10))
        sequence = np.concatenate([
            [tokenizer.cls_id], real[:split], [tokenizer.sep_id], real[split:],
            [tokenizer.sep_id],
            np.full(seq_length - real_length - 3, tokenizer.pad_id),
        ]).astype(np.int32)
        masked, positions, labels = masking.mask_tokens(
            sequence, rng, max_predictions=max_predictions, **tables)

        assert masked.shape == sequence.shape
        assert np.all(np.diff(positions) > 0), "positions sorted and unique"
        np.testing.assert_array_equal(labels, sequence[positions])
        assert not any(int(i) in specials for i in sequence[positions])
        unchosen = np.ones(seq_length, bool)
        unchosen[positions] = False
        np.testing.assert_array_equal(masked[unchosen], sequence[unchosen])
        assert len(positions) <= round(real_length * 0.15) <= max_predictions

        # Whole words: a word (a start piece, or a piece after a special token, and
        # the continuation pieces after it) is chosen entirely or not at all.
        is_special = np.isin(sequence, list(specials))
        previous_special = np.concatenate([[True], is_special[:-1]])
        starts = ~is_special & (word_start[sequence] | previous_special)
        word_index = np.cumsum(starts)
        chosen = ~unchosen
        for word in np.unique(word_index[~is_special]):
            members = chosen[(word_index == word) & ~is_special]
            assert members.all() or not members.any(), "a word was partly masked"

        masked_total += len(positions)
        real_total += real_length
        new = masked[positions]
        replaced_mask += int(np.sum(new == tokenizer.mask_id))
        kept += int(np.sum(new == labels))
        replaced_random += int(np.sum((new != tokenizer.mask_id) & (new != labels)))
        assert not any(int(i) in specials for i in new[new != tokenizer.mask_id])

    assert abs(masked_total / real_total - 0.15) <= 0.01
    assert abs(replaced_mask / masked_total - 0.8) <= 0.03
    # An unchanged token may also come from a random draw of the same id (1 in 30k).
    assert abs(kept / masked_total - 0.1) <= 0.03
    assert abs(replaced_random / masked_total - 0.1) <= 0.03


def test_ngram_span_lengths(sp_tokenizer):
    """Span lengths in words follow p(n) proportional to 1/n: 6/11, 3/11, 2/11.

    ALBERT's procedure skips an n-gram that overlaps an earlier one and shortens one
    that overflows the budget, which favours short spans once the budget is nearly
    used up. Those effects are small on long sequences with a low mask rate, where
    this checks the draw itself.
    """
    tables = masking.masking_tables(sp_tokenizer)
    vocabulary = sp_tokenizer.get_vocabulary()
    # Multi-piece words too: "▁" starts, then 0-2 continuation pieces.
    starts = np.array([i for i, t in enumerate(vocabulary) if t.startswith("\u2581")
                       and t[1:].isalpha()][:2000])
    pieces = np.array([i for i, t in enumerate(vocabulary) if t.isalpha()
                       and not t.startswith("\u2581")][:2000])
    rng = np.random.default_rng(7)
    counts = collections.Counter()
    for _ in range(80):
        pieces_per_word = 1 + rng.choice(3, 3000, p=[0.6, 0.3, 0.1])
        tokens = rng.choice(pieces, pieces_per_word.sum())
        tokens[np.cumsum(pieces_per_word) - pieces_per_word] = rng.choice(starts, 3000)
        sequence = np.concatenate([[sp_tokenizer.cls_id], tokens, [sp_tokenizer.sep_id]])
        word_start = tables["word_start"][sequence]
        _, positions, _, spans = masking.mask_tokens(
            sequence, rng, mask_rate=0.03, max_predictions=10**6, return_spans=True,
            **tables)
        chosen = np.zeros(len(sequence), bool)
        for first, end, num_words in spans:
            assert word_start[first] and (end == len(sequence) or word_start[end])
            assert np.count_nonzero(word_start[first:end]) == num_words
            assert not chosen[first:end].any(), "overlapping spans"
            chosen[first:end] = True
            counts[num_words] += 1
        np.testing.assert_array_equal(np.flatnonzero(chosen), positions)
    total = sum(counts.values())
    assert total > 4000
    assert set(counts) <= {1, 2, 3}
    for n, expected in ((1, 6 / 11), (2, 3 / 11), (3, 2 / 11)):
        assert abs(counts[n] / total - expected) <= 0.03, (n, counts[n] / total)

    # max_ngram=1 masks single words only.
    _, _, _, spans = masking.mask_tokens(sequence, rng, max_ngram=1, max_predictions=10**6,
                                         return_spans=True, **tables)
    assert {n for _, _, n in spans} == {1}


def test_word_start_table_and_specials(sp_tokenizer, wp_tokenizer):
    for tokenizer, wordpiece in ((sp_tokenizer, False), (wp_tokenizer, True)):
        table = masking.word_start_table(tokenizer)
        assert table.dtype == bool and table.shape == (tokenizer.vocabulary_size,)
        expected = _word_starts_from_vocabulary(tokenizer, wordpiece)
        specials = sorted(_specials(tokenizer))
        assert masking.special_id_set(tokenizer) == set(specials)
        assert table[specials].all()
        others = np.setdiff1d(np.arange(len(table)), specials)
        np.testing.assert_array_equal(table[others], expected[others])
        assert 0 < table.mean() < 1
    assert not masking.word_start_table(wp_tokenizer)[wp_tokenizer.token_to_id("##ing")]
    assert masking.word_start_table(sp_tokenizer)[sp_tokenizer.token_to_id("\u2581the")]


def test_truncate_pair_matches_albert():
    """Lengths as ALBERT's one-token-at-a-time loop (longest first, b on ties)."""
    rng = np.random.default_rng(0)
    for length_a, length_b, budget in itertools.product(range(1, 14), range(1, 14), (5, 9)):
        a, b = list(range(length_a)), list(range(100, 100 + length_b))
        while len(a) + len(b) > budget:
            (a if len(a) > len(b) else b).pop()
        first, second = pretraining_examples._truncate_pair(
            np.arange(length_a), np.arange(100, 100 + length_b), budget, rng)
        assert (len(first), len(second)) == (len(a), len(b))
        # What is left is a contiguous piece of each segment.
        for kept in (first, second):
            assert np.all(np.diff(kept) == 1)


# ---------------------------------------------------------------------------------
# Examples and batches.


def _marker_words(tokenizer, count):
    """Whole words that are one token each, to number the lines of a document."""
    vocabulary = tokenizer.get_vocabulary()
    candidates = [t for t in vocabulary[2000:6000] if t.isalpha() and len(t) >= 4][:400]
    ids = _tokenize(tokenizer, candidates)
    words = [(w, int(i[0])) for w, i in zip(candidates, ids) if len(i) == 1]
    assert len(words) >= count
    return words[:count]


def test_sentence_order(wp_tokenizer):
    num_lines = 40
    markers = _marker_words(wp_tokenizer, num_lines)
    line_of = {token_id: index for index, (_, token_id) in enumerate(markers)}
    # Line i is the i-th marker word three times: from the ids we know the line.
    document = [" ".join([word] * 3) for word, _ in markers]
    documents = [document] * 250
    dataset = pd.pretraining_dataset(
        documents, wp_tokenizer, seq_length=32, batch_size=50, max_predictions=5,
        short_seq_prob=0.0, seed=3)
    x, y, w = _collect(dataset)
    labels = y["sop_logits"]
    assert 900 <= len(labels) <= 1500
    assert abs(labels.mean() - 0.5) <= 0.05
    np.testing.assert_array_equal(w["sop_logits"], 1.0)

    original = _original_ids(x, y, w)
    checked = 0
    rows = zip(original, x["input_type_ids"], x["input_mask"], labels)
    for ids, types, mask, label in rows:
        segment_a = [line_of[i] for i in ids[(types == 0) & (mask == 1)] if i in line_of]
        segment_b = [line_of[i] for i in ids[types == 1] if i in line_of]
        assert segment_a and segment_b
        if set(segment_a) & set(segment_b):
            continue  # one line split in two: order is not visible
        # Each segment is a run of consecutive lines, in document order.
        for segment in (segment_a, segment_b):
            assert segment == sorted(segment)
            assert set(segment) == set(range(segment[0], segment[-1] + 1))
        if label == 0:
            assert max(segment_a) < min(segment_b)
        else:
            assert min(segment_a) > max(segment_b), "label 1 must mean B came first"
        checked += 1
    assert checked > 0.8 * len(labels)


def test_shapes_and_packing(sp_tokenizer, corpus_path):
    seq_length, batch_size, max_predictions = 64, 8, 10
    dataset = pd.pretraining_dataset(
        lambda: iter_documents(corpus_path), sp_tokenizer, seq_length=seq_length,
        batch_size=batch_size, max_predictions=max_predictions, shuffle_buffer=50)
    x_spec, y_spec, w_spec = dataset.element_spec
    for key in ("input_word_ids", "input_mask", "input_type_ids"):
        assert x_spec[key].shape == (batch_size, seq_length) and x_spec[key].dtype == tf.int32
    assert x_spec["masked_positions"].shape == (batch_size, max_predictions)
    assert y_spec["mlm_logits"].shape == (batch_size, max_predictions)
    assert y_spec["mlm_logits"].dtype == tf.int32
    assert y_spec["sop_logits"].shape == (batch_size,) and y_spec["sop_logits"].dtype == tf.int32
    assert w_spec["mlm_logits"].dtype == tf.float32 and w_spec["sop_logits"].shape == (batch_size,)

    x, y, w = _collect(dataset, limit=10)
    ids, mask, types = x["input_word_ids"], x["input_mask"], x["input_type_ids"]
    tok = sp_tokenizer
    np.testing.assert_array_equal(mask, (ids != tok.pad_id).astype(np.int32))
    for row_ids, row_mask, row_types in zip(ids, mask, types):
        length = int(row_mask.sum())
        assert row_mask[:length].all() and not row_mask[length:].any()
        assert row_ids[0] == tok.cls_id
        seps = np.flatnonzero(row_ids == tok.sep_id)
        assert len(seps) == 2 and seps[1] == length - 1 and 1 < seps[0] < length - 2
        assert np.sum(row_ids == tok.cls_id) == 1
        np.testing.assert_array_equal(row_types[: seps[0] + 1], 0)
        np.testing.assert_array_equal(row_types[seps[0] + 1 : length], 1)
        np.testing.assert_array_equal(row_types[length:], 0)
    weights = w["mlm_logits"]
    assert set(np.unique(weights)) <= {0.0, 1.0}
    # Real predictions first, padding after; padding is position 0 / label 0.
    assert np.all(np.diff(weights, axis=1) <= 0)
    positions, labels = x["masked_positions"], y["mlm_logits"]
    np.testing.assert_array_equal(positions[weights == 0], 0)
    np.testing.assert_array_equal(labels[weights == 0], 0)
    # An example has no prediction only when no whole word fits max_predictions
    # (reStructuredText table borders such as "+-----+" are one long "word").
    assert np.mean(weights.sum(1) >= 1) > 0.95
    original = _original_ids(x, y, w)
    for row in range(len(ids)):
        real = weights[row] == 1
        row_positions = positions[row][real]
        assert np.all(np.diff(row_positions) > 0)
        assert np.all(mask[row][row_positions] == 1)
        assert not np.isin(original[row][row_positions], list(_specials(tok))).any()

    # sop=False: [CLS] A [SEP], type ids 0, SOP label 0 with weight 0.
    x, y, w = _collect(pd.pretraining_dataset(
        lambda: iter_documents(corpus_path), tok, seq_length=seq_length,
        batch_size=batch_size, sop=False, shuffle_buffer=0), limit=3)
    np.testing.assert_array_equal(x["input_type_ids"], 0)
    np.testing.assert_array_equal(np.sum(x["input_word_ids"] == tok.sep_id, axis=1), 1)
    np.testing.assert_array_equal(y["sop_logits"], 0)
    np.testing.assert_array_equal(w["sop_logits"], 0.0)


def test_seed_determinism_and_new_masks_each_epoch(wp_tokenizer, prose_sentences):
    documents = [prose_sentences[i : i + 3] for i in range(0, 600, 3)]  # 200 docs

    def make(seed, documents=documents, **options):
        options.setdefault("shuffle_buffer", 100)
        return pd.pretraining_dataset(documents, wp_tokenizer, seq_length=64,
                                      batch_size=16, seed=seed, **options)

    first, again, other = (_collect(make(s), limit=4) for s in (5, 5, 6))
    for part_1, part_2 in zip(first, again):
        for key in part_1:
            np.testing.assert_array_equal(part_1[key], part_2[key])
    assert not np.array_equal(first[0]["input_word_ids"], other[0]["input_word_ids"])

    # repeat=True, no shuffle, one short sentence per document and sop=False: one
    # example per document, never truncated, so epoch 2 has the same sequences in the
    # same order, with different masks.
    short = [[s] for s in prose_sentences if 5 <= len(s.split()) <= 25][:160]
    x, y, w = _collect(make(5, short, repeat=True, sop=False, short_seq_prob=0.0,
                            shuffle_buffer=0).unbatch().batch(len(short)).take(2))
    original = _original_ids(x, y, w)
    n = len(short)
    np.testing.assert_array_equal(original[:n], original[n:])
    different = [not np.array_equal(x["masked_positions"][i], x["masked_positions"][i + n])
                 for i in range(n)]
    assert np.mean(different) > 0.7

    # A repeat=False dataset iterated again (the next fit epoch) masks anew too.
    dataset = make(5, short, sop=False, short_seq_prob=0.0, shuffle_buffer=0)
    pass_1, pass_2 = (next(iter(dataset))[0]["masked_positions"].numpy() for _ in range(2))
    assert not np.array_equal(pass_1, pass_2)


def _random_prose(rng, words, num_lines, words_per_line=8):
    return [" ".join(rng.choice(words, words_per_line)) for _ in range(num_lines)]


def test_short_seq_prob(wp_tokenizer):
    words = _marker_words(wp_tokenizer, 200)
    words = np.array([w for w, _ in words])
    rng = np.random.default_rng(0)
    documents = [_random_prose(rng, words, 200) for _ in range(20)]  # 1600 tokens each
    seq_length = 64
    max_num_tokens = seq_length - 3

    def short_fraction(probability):
        x, _, _ = _collect(pd.pretraining_dataset(
            documents, wp_tokenizer, seq_length=seq_length, batch_size=25,
            short_seq_prob=probability, shuffle_buffer=0, drop_remainder=False, seed=1))
        real = x["input_mask"].sum(1) - 3
        assert real.max() == max_num_tokens
        return np.mean(real < max_num_tokens), len(real)

    none, count = short_fraction(0.0)
    assert count > 400
    assert none < 0.05  # only the ends of documents
    some, _ = short_fraction(0.1)
    # Short targets are uniform in [2, 61]: a few of them still fill the sequence.
    assert 0.06 <= some - none <= 0.13


def test_streaming_reads_lazily(wp_tokenizer):
    words = np.array([w for w, _ in _marker_words(wp_tokenizer, 100)])
    pulled = collections.Counter()
    total = 100_000

    def documents():
        rng = np.random.default_rng(0)
        for _ in range(total):
            pulled["documents"] += 1
            yield _random_prose(rng, words, 6)

    dataset = pd.pretraining_dataset(documents, wp_tokenizer, seq_length=64,
                                     batch_size=8, shuffle_buffer=100, repeat=True)
    x, _, _ = next(iter(dataset))
    assert x["input_word_ids"].shape == (8, 64)
    assert pulled["documents"] < 2_000 < total

    # A one-shot generator works for one pass (the documents read by the up-front
    # check are not lost) and says clearly that it cannot be read again.
    generator = (_random_prose(np.random.default_rng(i), words, 6) for i in range(50))
    one_shot = pd.pretraining_dataset(generator, wp_tokenizer, seq_length=64,
                                      batch_size=4, shuffle_buffer=0, sop=False,
                                      short_seq_prob=0.0)
    assert sum(int(x["input_word_ids"].shape[0]) for x, _, _ in one_shot) == 48
    with pytest.raises(Exception, match="one-shot iterator"):
        list(one_shot)


def test_bad_input(wp_tokenizer, tmp_path):
    documents = [["a first sentence here", "and a second one"]] * 10
    with pytest.raises(ValueError, match="seq_length"):
        pd.pretraining_dataset(documents, wp_tokenizer, seq_length=7)
    with pytest.raises(ValueError, match="max_predictions"):
        pd.pretraining_dataset(documents, wp_tokenizer, max_predictions=0)
    for empty in ([], [[]], [["", "   "]], [["word"]]):  # one token: no SOP pair
        with pytest.raises(ValueError, match="no pretraining example"):
            pd.pretraining_dataset(empty, wp_tokenizer, batch_size=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        pd.pretraining_dataset(documents[:2], wp_tokenizer, batch_size=32)
    with pytest.raises(ValueError, match="one-shot"):
        pd.pretraining_dataset(iter(documents), wp_tokenizer, repeat=True)
    with pytest.raises(TypeError, match="list of lines"):
        pd.pretraining_dataset(["a string, not a document"], wp_tokenizer)

    missing = tmp_path / "missing.txt.gz"
    with pytest.raises(FileNotFoundError, match="missing.txt.gz"):
        iter_documents([missing])
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    with pytest.raises(ValueError, match="no text"):
        list(iter_documents(blank))


# ---------------------------------------------------------------------------------
# Corpus files and the default corpus.


def test_corpus_files_round_trip(tmp_path, corpus_path):
    documents = [["First line.", "Second  line."], ["Another document."], ["x"]]
    for name in ("corpus.txt", "corpus.txt.gz"):
        path = tmp_path / name
        assert write_corpus_file(documents + [[], ["  "]], path) == 3
        assert list(iter_documents(path)) == [
            ["First line.", "Second line."], ["Another document."], ["x"]]
    raw = (tmp_path / "corpus.txt").read_text()
    assert raw == "First line.\nSecond line.\n\nAnother document.\n\nx\n"
    both = list(iter_documents([tmp_path / "corpus.txt", tmp_path / "corpus.txt.gz"]))
    assert len(both) == 6

    # The real corpus: paragraphs separated by blank lines, read from the .gz.
    first = list(itertools.islice(iter_documents(corpus_path), 200))
    with gzip.open(corpus_path, "rt", encoding="utf-8") as handle:
        head = [line.strip() for line in itertools.islice(handle, 20000)]
    paragraphs = [list(g) for k, g in itertools.groupby(head, bool) if k]
    assert first == paragraphs[:200]


def test_default_corpus():
    from pydoc_data.topics import topics

    documents = default_corpus_documents()
    assert all(isinstance(d, list) and d and all(isinstance(s, str) and s.strip()
                                                  for s in d) for d in documents)
    words = sum(len(line.split()) for document in documents for line in document)
    assert words >= 100_000
    text = "\n".join(line for document in documents for line in document)
    # pydoc topics text (wrapped in the source, one sentence per line here) ...
    sentence = " ".join(topics["assert"].split("\n\n")[1].split())
    assert sentence.split(":")[0] in text
    # ... and standard-library docstrings.
    import json

    assert json.dumps.__doc__.strip().split("\n")[0] in text
    assert default_corpus_documents() == documents


# ---------------------------------------------------------------------------------
# End to end.


def test_fit_pretraining_model(sp_tokenizer, corpus_path):
    import keras

    from keras_albert import Encoder
    from keras_albert.models import PretrainingModel

    dataset = pd.pretraining_dataset(
        lambda: iter_documents(corpus_path), sp_tokenizer, seq_length=64, batch_size=4,
        max_predictions=8, shuffle_buffer=20, repeat=True)
    model = PretrainingModel(Encoder.from_preset("albert_tiny"))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss={"mlm_logits": loss, "sop_logits": loss})
    history = model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()
