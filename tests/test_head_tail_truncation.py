"""Head+tail truncation (Sun et al. 2019): a too-long text keeps its first and last
pieces, with the special tokens in place, in training and in the served model.

The expected ids are built with Python slicing from the tokenizer's own pieces, and
pairs against the `tokenizers` library's longest_first lengths transcribed in Python,
not with the trimmer under test.
"""

import gzip
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_albert import Encoder
from keras_albert.conversion.huggingface import write_tokenizer
from keras_albert.models.task_kinds import task_model
from keras_albert.tokenizers import InputPacker, Preprocessor, WordPieceTokenizer

CLS, SEP = 2, 3


def _longest_first_lengths(first, second, budget):
    """The `tokenizers` library's longest_first lengths for a pair (its Rust code,
    utils/truncation.rs, transcribed): the longer text is cut first; when both must
    be cut each gets half, the odd token going to the longer (the second on a tie)."""
    if first + second <= budget:
        return first, second
    shorter, longer = sorted((first, second))
    longer = shorter if shorter > budget else max(shorter, budget - shorter)
    if shorter + longer > budget:
        shorter, longer = budget // 2, budget // 2 + budget % 2
    return (longer, shorter) if first > second else (shorter, longer)


def _head_tail(tokens, kept, head):
    head = min(head, kept)
    return tokens[:head] + (tokens[len(tokens) - (kept - head):] if kept > head else [])


@pytest.mark.parametrize("length", [0, 1, 5, 13, 14, 15, 40])
@pytest.mark.parametrize("head_tokens", [0, 4, 13])
def test_one_text_keeps_exactly_its_first_and_last_pieces(length, head_tokens):
    seq_length = 15  # room for 13 pieces
    tokens = list(range(100, 100 + length))
    packer = InputPacker(seq_length, cls_id=CLS, sep_id=SEP, truncation="head_tail",
                         head_tokens=head_tokens)
    packed = packer([tf.ragged.constant([tokens], dtype=tf.int32, ragged_rank=1)
                     if tokens else tf.ragged.constant([[]], dtype=tf.int32)])
    kept = min(length, seq_length - 2)
    expected = [CLS] + _head_tail(tokens, kept, head_tokens) + [SEP]
    expected += [0] * (seq_length - len(expected))
    assert packed["input_word_ids"].numpy()[0].tolist() == expected
    assert packed["input_mask"].numpy()[0].tolist() == [1] * (kept + 2) + [0] * (13 - kept)
    assert not packed["input_type_ids"].numpy().any()


def test_pairs_keep_longest_first_counts_and_cut_the_middle_of_each_text():
    rng = np.random.default_rng(0)
    seq_length, head_tokens = 16, 3
    budget = seq_length - 3
    packer = InputPacker(seq_length, cls_id=CLS, sep_id=SEP, truncation="head_tail",
                         head_tokens=head_tokens, pad_to="batch")
    firsts, seconds = [], []
    for _ in range(40):
        firsts.append(list(range(100, 100 + int(rng.integers(0, 20)))))
        seconds.append(list(range(200, 200 + int(rng.integers(0, 20)))))
    packed = packer([tf.ragged.constant(firsts, dtype=tf.int32),
                     tf.ragged.constant(seconds, dtype=tf.int32)])
    ids = packed["input_word_ids"].numpy()
    types = packed["input_type_ids"].numpy()
    for row, (first, second) in enumerate(zip(firsts, seconds)):
        keep_first, keep_second = _longest_first_lengths(len(first), len(second), budget)
        expected = ([CLS] + _head_tail(first, keep_first, head_tokens) + [SEP]
                    + _head_tail(second, keep_second, head_tokens) + [SEP])
        assert ids[row, :len(expected)].tolist() == expected
        assert not ids[row, len(expected):].any()
        assert types[row, :len(expected)].tolist() == (
            [0] * (keep_first + 2) + [1] * (keep_second + 1))


def test_real_reviews_through_the_preprocessor(data_dir):
    wordpiece = WordPieceTokenizer(str(data_dir / "vocab" / "bert_uncased_vocab.txt"))
    with gzip.open(data_dir / "imdb" / "train.tsv.gz", "rt", encoding="utf-8") as handle:
        next(handle)  # header
        reviews = [next(handle).rstrip("\n").split("\t")[3] for _ in range(8)]
    seq_length = 64
    preprocessor = Preprocessor(wordpiece, seq_length=seq_length, truncation="head_tail")
    assert preprocessor.head_tokens == 16  # a quarter of the 62 pieces' room
    packed = preprocessor(reviews)["input_word_ids"].numpy()
    cut = 0
    for row, review in enumerate(reviews):
        pieces = wordpiece([review]).numpy()[0].tolist()
        kept = min(len(pieces), seq_length - 2)
        cut += len(pieces) > kept
        expected = [wordpiece.cls_id] + _head_tail(pieces, kept, 16) + [wordpiece.sep_id]
        assert packed[row, :len(expected)].tolist() == expected
    assert cut >= 6  # the check above is about cut reviews, not short ones
    # The option is in the configuration (what `.keras` files keep; the vocabulary
    # travels as an asset beside it).
    config = preprocessor.get_config()
    assert (config["truncation"], config["head_tokens"]) == ("head_tail", 16)
    restored = Preprocessor(wordpiece, **{key: config[key] for key in (
        "seq_length", "truncation", "head_tokens", "pad_to")})
    np.testing.assert_array_equal(restored(reviews)["input_word_ids"].numpy(), packed)


def test_bad_head_tail_arguments_are_refused():
    with pytest.raises(ValueError, match=r"`head_tokens` must be an int in \[0, 14\] "
                                         r"\(seq_length - 2\); got 15"):
        InputPacker(16, cls_id=CLS, sep_id=SEP, truncation="head_tail", head_tokens=15)
    with pytest.raises(ValueError, match=r"`head_tokens` applies to truncation='head_tail' "
                                         r"only; truncation is 'longest_first'"):
        InputPacker(16, cls_id=CLS, sep_id=SEP, head_tokens=4)
    with pytest.raises(ValueError, match=r"`truncation` must be one of \('longest_first', "
                                         r"'round_robin', 'head_tail'\); got 'middle'"):
        InputPacker(16, cls_id=CLS, sep_id=SEP, truncation="middle")


def test_cli_refuses_head_tokens_that_do_not_fit_before_any_work(tmp_path, capsys):
    from keras_albert.cli import main

    code = main(["finetune", "--model", "bert_tiny", "--train", str(tmp_path / "missing.tsv"),
                 "--seq", "32", "--truncation", "head_tail", "--head-tokens", "40",
                 "--output", str(tmp_path / "run")])
    assert code == 2
    assert "--head-tokens must be in [0, 30] (--seq minus 2 for [CLS] and [SEP]); got 40" in (
        capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_export_serves_texts_cut_as_the_run_was_trained(tmp_path):
    from keras_albert.cli import main

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]
    tokenizer = WordPieceTokenizer(vocabulary)
    model = task_model(Encoder.from_preset("bert_tiny", vocabulary_size=len(vocabulary),
                                           seed=4), "classification", num_classes=2)
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    write_tokenizer(tokenizer, str(run))
    (run / "summary.json").write_text(json.dumps(
        {"task": "classification", "text_inputs": 1, "seq_length": 12,
         "truncation": "head_tail", "head_tokens": 3}))
    assert main(["export", str(run), str(tmp_path / "serving")]) == 0
    served = tf.saved_model.load(str(tmp_path / "serving" / "1"))
    text = " ".join(f"w{i}" for i in range(30))
    out = served.signatures["serving_default"](text=tf.constant([text]))
    head_tail = Preprocessor(tokenizer, 12, truncation="head_tail", head_tokens=3)
    assert head_tail([text])["input_word_ids"].numpy()[0].tolist() == (
        [2] + [5, 6, 7] + list(range(5 + 23, 5 + 30)) + [3])
    np.testing.assert_allclose(out["logits"].numpy(),
                               np.asarray(model(head_tail([text]))), atol=1e-5)
    # ... and not as longest_first would have: the check above can fail.
    assert not np.allclose(out["logits"].numpy(),
                           np.asarray(model(Preprocessor(tokenizer, 12)([text]))), atol=1e-5)


def test_runs_hand_their_truncation_to_exports_and_students():
    from keras_albert.training.finetune import packing_settings, preprocessor_as_trained

    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    plain = Preprocessor(tokenizer, seq_length=20)
    assert packing_settings(plain) == {}  # old runs' summaries and fingerprints hold none
    assert preprocessor_as_trained(plain, {}) is plain
    trained = preprocessor_as_trained(plain, {"truncation": "head_tail", "head_tokens": 5})
    assert (trained.truncation, trained.head_tokens, trained.seq_length) == ("head_tail", 5, 20)
    assert packing_settings(trained) == {"truncation": "head_tail", "head_tokens": 5}
