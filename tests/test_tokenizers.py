"""Tests of keras_albert.tokenizers against independent references.

References: transformers' `BertTokenizerFast` and `AlbertTokenizer` (tokenizers
library), Google's `sentencepiece` with ALBERT's own Python text normalisation, and
small pure-Python packing rules. The data are the shared GLUE files and vocabularies.
"""

import json
import os
import unicodedata

import keras
import numpy as np
import pytest
import sentencepiece
import tensorflow as tf
from conftest import read_tsv_column
from sentencepiece import sentencepiece_model_pb2

from keras_albert.tokenizers import InputPacker
from keras_albert.tokenizers import Preprocessor
from keras_albert.tokenizers import SentencePieceTokenizer
from keras_albert.tokenizers import WordPieceTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

NUM_SENTENCES = 500
PACKED_LENGTH = 32
# Pieces the ALBERT model declares as SentencePiece user_defined_symbols.
ALBERT_USER_DEFINED = set('()"-.–£€')


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def albert_model_path(data_dir):
    return data_dir / "vocab" / "albert_spiece_rebuilt.model"


@pytest.fixture(scope="module")
def bert_vocab_path(data_dir):
    return data_dir / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def sst2_sentences(data_dir):
    return read_tsv_column(data_dir / "sst2" / "dev.tsv", "sentence", NUM_SENTENCES)


@pytest.fixture(scope="module")
def mrpc_pairs(data_dir):
    path = data_dir / "mrpc" / "dev.tsv"
    return read_tsv_column(path, "#1 String"), read_tsv_column(path, "#2 String")


# ----------------------------------------------------------------- our tokenizers


@pytest.fixture(scope="module")
def albert_tokenizer(albert_model_path):
    return SentencePieceTokenizer(str(albert_model_path))


@pytest.fixture(scope="module")
def bert_tokenizer(bert_vocab_path):
    return WordPieceTokenizer(str(bert_vocab_path))


@pytest.fixture(scope="module")
def tokenizers(albert_tokenizer, bert_tokenizer):
    return {"albert": albert_tokenizer, "bert": bert_tokenizer}


# --------------------------------------------------------------------- references


@pytest.fixture(scope="module")
def hf_bert(bert_vocab_path):
    # transformers 5 ignores `vocab_file=` here (it lands in **kwargs and leaves a
    # 5-token vocabulary: every word becomes [UNK]); `vocab=` takes the file path.
    tokenizer = transformers.BertTokenizerFast(vocab=str(bert_vocab_path), do_lower_case=True)
    assert tokenizer.vocab_size == 30522
    return tokenizer


@pytest.fixture(scope="module")
def albert_proto(albert_model_path):
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(albert_model_path.read_bytes())
    return proto


@pytest.fixture(scope="module")
def hf_albert_from_pieces(albert_proto):
    """transformers' AlbertTokenizer over the model's own pieces, scores and charsmap."""
    return transformers.AlbertTokenizer(
        vocab=[(piece.piece, piece.score) for piece in albert_proto.pieces],
        _spm_precompiled_charsmap=albert_proto.normalizer_spec.precompiled_charsmap,
    )


@pytest.fixture(scope="module")
def hf_albert_from_file(albert_model_path, tmp_path_factory):
    """transformers' AlbertTokenizer loaded the usual way from a `spiece.model`."""
    folder = tmp_path_factory.mktemp("albert_hf")
    (folder / "spiece.model").symlink_to(albert_model_path)
    return transformers.AlbertTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def spm_reference(albert_model_path):
    return sentencepiece.SentencePieceProcessor(model_file=str(albert_model_path))


def albert_preprocess_text(text):
    """`preprocess_text` of google-research/albert's tokenization.py (uncased)."""
    text = " ".join(text.strip().split())
    text = text.replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


def hf_ids(tokenizer, texts):
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def special_ids(tokenizer):
    t = tokenizer
    return [t.pad_id, t.unk_id, t.cls_id, t.sep_id, t.mask_id]


def mismatches(ours, reference):
    assert len(ours) == len(reference)
    return [i for i, (a, b) in enumerate(zip(ours, reference)) if a != b]


# ------------------------------------------------------------------ SentencePiece


def test_sentencepiece_published_albert_ids(albert_tokenizer):
    expected = [10975, 15, 51, 1952, 25, 10901]
    assert albert_tokenizer(["Hello, my dog is cute"]).to_list() == [expected]
    single = albert_tokenizer("hello, my dog is cute")
    assert single.shape.rank == 1 and single.dtype == tf.int32
    assert single.numpy().tolist() == expected
    assert albert_tokenizer.detokenize(expected).numpy() == b"hello, my dog is cute"


def test_sentencepiece_special_ids(albert_tokenizer, spm_reference):
    tokenizer = albert_tokenizer
    pieces = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert special_ids(tokenizer) == [spm_reference.piece_to_id(p) for p in pieces]
    assert special_ids(tokenizer) == [0, 1, 2, 3, 4]
    assert tokenizer.vocabulary_size == spm_reference.get_piece_size() == 30000
    assert tokenizer.id_to_token(10975) == spm_reference.id_to_piece(10975) == "▁hello"
    assert tokenizer.token_to_id("▁hello") == 10975
    assert tokenizer.token_to_id("not-a-piece") == tokenizer.unk_id


def test_sentencepiece_matches_albert_reference(albert_tokenizer, spm_reference, sst2_sentences):
    """Same ids as Google's sentencepiece after ALBERT's own Python normalisation."""
    edge_cases = [
        "",
        "   ",
        "  Héllo\u00a0\t WORLD\u3000 ``quoted'' text  ",
        "naïve café, Ångström résumé",
        "ΟΔΟΣ Σίσυφος",  # Python lowercases a word-final sigma to "ς"
        "ไทยั กั้น",  # Thai marks with combining class 0 are kept by ALBERT
        "ﬁ ½ ＡＢＣ ™",
        "x\u0301y\u0327z",
    ]
    texts = sst2_sentences + edge_cases
    reference = [spm_reference.encode(albert_preprocess_text(text)) for text in texts]
    ours = albert_tokenizer(texts).to_list()
    assert mismatches(ours, reference) == []


def test_sentencepiece_matches_transformers_albert(
    albert_tokenizer, hf_albert_from_pieces, sst2_sentences
):
    ours = albert_tokenizer(sst2_sentences).to_list()
    assert mismatches(ours, hf_ids(hf_albert_from_pieces, sst2_sentences)) == []


def test_transformers_from_file_differs_only_on_user_defined_symbols(
    albert_tokenizer, hf_albert_from_file, sst2_sentences
):
    """transformers 5 turns the model's user_defined_symbols into added tokens.

    Added tokens split the text before SentencePiece sees it, so " ." gives "."
    instead of "▁" "." (see huggingface/transformers#31305). Every sentence without
    such a symbol must still match exactly.
    """
    ours = albert_tokenizer(sst2_sentences).to_list()
    reference = hf_ids(hf_albert_from_file, sst2_sentences)
    plain = [i for i, s in enumerate(sst2_sentences) if not ALBERT_USER_DEFINED & set(s)]
    assert len(plain) >= 5
    assert all(ours[i] == reference[i] for i in plain)
    for i in mismatches(ours, reference):
        assert ALBERT_USER_DEFINED & set(sst2_sentences[i]), sst2_sentences[i]


# ---------------------------------------------------------------------- WordPiece


def test_wordpiece_matches_bert_tokenizer_fast(bert_tokenizer, hf_bert, sst2_sentences):
    ours = bert_tokenizer(sst2_sentences).to_list()
    assert mismatches(ours, hf_ids(hf_bert, sst2_sentences)) == []


def test_wordpiece_normalisation_matches_transformers(bert_tokenizer, hf_bert, bert_vocab_path):
    texts = [
        "Héllo WORLD 中文字 ok",
        "a\x00b\tc\u200bd\ufffde",
        "naïve café — “quotes” ﬁ ½ ＡＢＣ",
        "İstanbul ß ΣΑΣ ΟΔΟΣ",
        "a\u0301\u0941b children´s",
        "hello\u00a0world\u2028again",
        "x" * 150,
        "",
        "   ",
    ]
    assert mismatches(bert_tokenizer(texts).to_list(), hf_ids(hf_bert, texts)) == []
    cased = WordPieceTokenizer(str(bert_vocab_path), lowercase=False, strip_accents=False)
    hf_cased = transformers.BertTokenizerFast(vocab=str(bert_vocab_path), do_lower_case=False)
    assert mismatches(cased(texts).to_list(), hf_ids(hf_cased, texts)) == []


def test_wordpiece_special_ids_and_lookups(bert_tokenizer, bert_vocab_path):
    lines = bert_vocab_path.read_text(encoding="utf-8").split("\n")
    tokenizer = bert_tokenizer
    assert tokenizer.vocabulary_size == 30522
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert special_ids(tokenizer) == [lines.index(t) for t in tokens]
    assert tokenizer.id_to_token(7592) == lines[7592] == "hello"
    assert tokenizer.token_to_id("hello") == 7592
    # Special tokens written in text are plain text, not control ids.
    assert tokenizer.cls_id not in tokenizer("[CLS] hello").numpy().tolist()
    text = tokenizer.detokenize(tokenizer(["The quick brown fox"])).numpy()
    assert text.tolist() == [b"the quick brown fox"]


# ------------------------------------------------------------------------- packing


def hf_packed(hf_tokenizer, first, second=None, max_length=PACKED_LENGTH):
    encoded = hf_tokenizer(
        first,
        second,
        max_length=max_length,
        truncation="longest_first",
        padding="max_length",
    )
    return {
        "input_word_ids": np.array(encoded["input_ids"]),
        "input_type_ids": np.array(encoded["token_type_ids"]),
        "input_mask": np.array(encoded["attention_mask"]),
    }


def assert_same_outputs(ours, expected):
    assert sorted(ours) == sorted(expected)
    for key in expected:
        assert ours[key].dtype == tf.int32
        np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(expected[key]), err_msg=key)


def test_packed_pairs_match_transformers(bert_tokenizer, hf_bert, mrpc_pairs):
    first, second = mrpc_pairs
    tokenizer = bert_tokenizer
    packer = InputPacker(PACKED_LENGTH, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    a, b = bert_tokenizer(first), bert_tokenizer(second)
    assert_same_outputs(packer([a, b]), hf_packed(hf_bert, first, second))
    # Make sure the hard case is covered: both segments cut with the first longer,
    # where tf_text.ShrinkLongestTrimmer would give the odd token to the wrong one.
    len_a, len_b = a.row_lengths().numpy(), b.row_lengths().numpy()
    budget = PACKED_LENGTH - 3
    both_cut = (len_a > budget // 2) & (len_b > budget // 2)
    assert (both_cut & (len_a > len_b)).sum() > 10


def test_packed_single_texts_match_transformers(bert_tokenizer, hf_bert, sst2_sentences):
    packer = InputPacker(PACKED_LENGTH, bert_tokenizer.cls_id, bert_tokenizer.sep_id)
    ids = bert_tokenizer(sst2_sentences)
    assert (ids.row_lengths().numpy() > PACKED_LENGTH - 2).sum() > 10
    assert_same_outputs(packer([ids]), hf_packed(hf_bert, sst2_sentences))


def test_pad_to_batch_uses_longest_row(bert_tokenizer, hf_bert, mrpc_pairs):
    first, second = (texts[:8] for texts in mrpc_pairs)
    fixed = Preprocessor(bert_tokenizer, seq_length=128)((first, second))
    batch = Preprocessor(bert_tokenizer, seq_length=128, pad_to="batch")((first, second))
    lengths = [len(ids) for ids in hf_bert(first, second)["input_ids"]]
    assert batch["input_word_ids"].shape == (8, max(lengths)) and max(lengths) < 128
    for key in fixed:
        np.testing.assert_array_equal(batch[key], fixed[key][:, : max(lengths)])
    # Never wider than seq_length, and rows are cut exactly as with fixed padding.
    short = Preprocessor(bert_tokenizer, seq_length=16, pad_to="batch")((first, second))
    assert_same_outputs(short, hf_packed(hf_bert, first, second, max_length=16))


def round_robin_lengths(lengths, budget):
    """Hands out the budget one token per segment in turn."""
    kept = [0] * len(lengths)
    while sum(kept) < budget and kept != list(lengths):
        for i, length in enumerate(lengths):
            if kept[i] < length and sum(kept) < budget:
                kept[i] += 1
    return kept


def test_round_robin_truncation():
    rows_a = [[1] * n for n in (0, 3, 10, 20, 5, 7)]
    rows_b = [[2] * n for n in (12, 3, 1, 20, 5, 8)]
    packer = InputPacker(10, cls_id=101, sep_id=102, truncation="round_robin")
    outputs = packer([tf.ragged.constant(rows_a), tf.ragged.constant(rows_b)])
    for row, a, b in zip(outputs["input_word_ids"].numpy(), rows_a, rows_b):
        keep_a, keep_b = round_robin_lengths([len(a), len(b)], budget=10 - 3)
        expected = [101] + a[:keep_a] + [102] + b[:keep_b] + [102]
        assert row.tolist() == expected + [0] * (10 - len(expected))


def test_empty_text_packs_to_cls_sep(tokenizers):
    for tokenizer in tokenizers.values():
        outputs = Preprocessor(tokenizer, seq_length=4)(["", "  "])
        cls, sep, pad = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
        assert outputs["input_word_ids"].numpy().tolist() == [[cls, sep, pad, pad]] * 2
        assert outputs["input_mask"].numpy().tolist() == [[1, 1, 0, 0]] * 2


def test_single_example_inputs(bert_tokenizer):
    preprocessor = Preprocessor(bert_tokenizer, seq_length=8)
    batched = preprocessor(["the quick fox"])
    for inputs in ("the quick fox", tf.constant("the quick fox"), {"text": "the quick fox"}):
        outputs = preprocessor(inputs)
        assert outputs["input_word_ids"].shape == (8,)
        np.testing.assert_array_equal(outputs["input_word_ids"], batched["input_word_ids"][0])
    pair = preprocessor({"text_a": ["the quick"], "text_b": ["fox"]})
    assert pair["input_type_ids"].numpy().tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]]


# --------------------------------------------------------------- graph and saving


@pytest.fixture(scope="module")
def pair_texts(mrpc_pairs):
    return [texts[:24] for texts in mrpc_pairs]


def test_preprocessor_in_tf_data(bert_tokenizer, pair_texts):
    preprocessor = Preprocessor(bert_tokenizer, seq_length=PACKED_LENGTH)
    first, second = pair_texts
    expected = preprocessor((first, second))
    dataset = tf.data.Dataset.from_tensor_slices((first, second)).batch(10)
    batches = list(dataset.map(lambda a, b: preprocessor((a, b))))
    assert_same_outputs({k: tf.concat([b[k] for b in batches], 0) for k in expected}, expected)
    singles = list(tf.data.Dataset.from_tensor_slices(first).batch(10).map(preprocessor))
    expected = preprocessor(first)
    assert_same_outputs({k: tf.concat([b[k] for b in singles], 0) for k in expected}, expected)


@pytest.mark.parametrize("family", ["albert", "bert"])
def test_preprocessor_in_saved_model(tokenizers, family, pair_texts, tmp_path):
    preprocessor = Preprocessor(tokenizers[family], seq_length=PACKED_LENGTH)
    spec = tf.TensorSpec([None], tf.string)

    class Export(tf.Module):
        def __init__(self):
            super().__init__()
            self.preprocessor = preprocessor

        @tf.function(input_signature=[spec, spec])
        def pairs(self, first, second):
            return self.preprocessor((first, second))

        @tf.function(input_signature=[spec])
        def singles(self, text):
            return self.preprocessor(text)

    tf.saved_model.save(Export(), str(tmp_path / "export"))
    del preprocessor
    restored = tf.saved_model.load(str(tmp_path / "export"))
    first, second = pair_texts
    expected = Preprocessor(tokenizers[family], seq_length=PACKED_LENGTH)
    outputs = restored.pairs(tf.constant(first), tf.constant(second))
    assert_same_outputs(outputs, expected((first, second)))
    assert_same_outputs(restored.singles(tf.constant(first)), expected(first))


@pytest.mark.parametrize("family", ["albert", "bert"])
def test_preprocessor_config_round_trip(tokenizers, family, pair_texts, tmp_path):
    preprocessor = Preprocessor(
        tokenizers[family], seq_length=20, truncation="round_robin", pad_to="batch"
    )
    config = preprocessor.get_config()
    json.dumps(config)  # plain JSON: the vocabulary is an asset, not config
    restored = Preprocessor.from_config(config)
    assert restored.get_config() == config
    assert type(restored.tokenizer) is type(tokenizers[family])
    with pytest.raises(ValueError, match="no vocabulary"):
        restored(["text"])
    preprocessor.tokenizer.save_assets(str(tmp_path))
    restored.tokenizer.load_assets(str(tmp_path))
    assert restored.packer.get_config()["truncation"] == "round_robin"
    assert_same_outputs(restored(tuple(pair_texts)), preprocessor(tuple(pair_texts)))


@pytest.mark.parametrize("family", ["albert", "bert"])
def test_preprocessor_in_keras_file(tokenizers, family, pair_texts, tmp_path):
    preprocessor = Preprocessor(tokenizers[family], seq_length=PACKED_LENGTH)
    first = keras.Input(shape=(), dtype="string", name="text_a")
    second = keras.Input(shape=(), dtype="string", name="text_b")
    model = keras.Model([first, second], preprocessor((first, second)))
    inputs = [tf.constant(texts) for texts in pair_texts]
    expected = model(inputs)
    assert_same_outputs(expected, preprocessor(tuple(pair_texts)))
    path = str(tmp_path / "preprocessor.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_same_outputs(restored(inputs), expected)
    tokenizer = restored.get_layer(preprocessor.name).tokenizer
    assert tokenizer.get_vocabulary() == tokenizers[family].get_vocabulary()


# ------------------------------------------------------------------------- errors


def test_missing_files_raise_file_not_found(tmp_path):
    missing = tmp_path / "nowhere" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        WordPieceTokenizer(str(missing))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SentencePieceTokenizer(tmp_path / "nowhere" / "spiece.model")


def test_bad_packing_arguments(bert_tokenizer):
    with pytest.raises(ValueError, match="seq_length"):
        InputPacker(1, cls_id=2, sep_id=3)
    with pytest.raises(ValueError, match="seq_length"):
        Preprocessor(bert_tokenizer, seq_length=1)
    with pytest.raises(ValueError, match="longest_first.*round_robin"):
        InputPacker(8, cls_id=2, sep_id=3, truncation="only_first")
    with pytest.raises(ValueError, match="fixed.*batch"):
        Preprocessor(bert_tokenizer, pad_to="longest")
    # Two for [CLS] a [SEP] are enough, pairs need three.
    short = Preprocessor(bert_tokenizer, seq_length=2)
    assert short(["hello"])["input_word_ids"].numpy().tolist() == [[101, 102]]
    with pytest.raises(ValueError, match="seq_length=2"):
        short((["hello"], ["world"]))


def test_too_many_segments(bert_tokenizer):
    ids = tf.ragged.constant([[5]])
    with pytest.raises(ValueError, match="one or two segments"):
        InputPacker(8, cls_id=2, sep_id=3)([ids, ids, ids])
    with pytest.raises(ValueError, match="one or two"):
        Preprocessor(bert_tokenizer)((["a"], ["b"], ["c"]))
    with pytest.raises(ValueError, match="'text'"):
        Preprocessor(bert_tokenizer)({"sentence": ["a"]})


def test_non_string_input(tokenizers):
    for tokenizer in tokenizers.values():
        with pytest.raises(TypeError, match="string tensor"):
            tokenizer(tf.constant([1, 2]))
        with pytest.raises(TypeError, match="string tensor"):
            tokenizer([3.5])


def test_vocabulary_without_special_tokens():
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"])
