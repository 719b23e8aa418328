"""`keras_albert.load`: one loader for presets, our `.keras` files and run directories,
and every checkpoint `from_pretrained` reads."""

import numpy as np
import pytest

import keras_albert
from keras_albert.conversion.huggingface import write_tokenizer
from keras_albert.conversion.pretrained import source_format, tokenizer_from_file
from keras_albert.models import Encoder, SequenceClassifier


@pytest.fixture(scope="module")
def vocab(data_dir):
    return data_dir / "vocab" / "bert_uncased_vocab.txt"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, vocab):
    """What `keras-albert finetune` leaves: model.keras and the vocabulary beside it."""
    folder = tmp_path_factory.mktemp("run")
    classifier = SequenceClassifier(Encoder.from_preset("bert_tiny", seed=3), num_classes=3)
    classifier.save(folder / "model.keras")
    write_tokenizer(tokenizer_from_file(vocab), folder)
    return folder, classifier


def test_source_formats(run_dir, tmp_path):
    folder, _ = run_dir
    assert source_format("bert_tiny") == "preset"
    assert source_format(folder) == "keras"
    assert source_format(folder / "model.keras") == "keras"
    assert source_format("hf://owner/name") == "hub"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        source_format(tmp_path / "nowhere")


def test_preset_needs_a_vocabulary_and_is_sized_by_it(vocab):
    with pytest.raises(ValueError, match=r"A preset \(bert_tiny\) has no vocabulary"):
        keras_albert.load("bert_tiny")
    encoder, preprocessor = keras_albert.load("bert_tiny", vocab=vocab, seq_length=16)
    assert isinstance(encoder, Encoder)
    lines = [line for line in vocab.read_text(encoding="utf-8").splitlines() if line]
    assert encoder.vocabulary_size == len(lines) == preprocessor.tokenizer.vocabulary_size
    ids = preprocessor(["hello world"])["input_word_ids"].numpy()[0]
    assert ids.shape == (16,) and ids[0] == lines.index("[CLS]")
    assert [lines[i] for i in ids[1:3]] == ["hello", "world"]


def test_run_directory_gives_the_saved_model_or_its_rebuilt_encoder(run_dir):
    folder, classifier = run_dir
    model, preprocessor = keras_albert.load(folder, task_model=True, seq_length=32)
    assert isinstance(model, SequenceClassifier) and model.num_classes == 3
    assert preprocessor.seq_length == 32
    for loaded, saved in zip(model.get_weights(), classifier.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    encoder, _ = keras_albert.load(folder / "model.keras", remat="full")
    assert isinstance(encoder, Encoder) and encoder.remat == "full"
    for loaded, saved in zip(encoder.get_weights(), classifier.encoder.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    with pytest.raises(ValueError, match="do not apply with task_model=True"):
        keras_albert.load(folder, task_model=True, remat="full")


def test_bad_sources_get_one_clear_error(run_dir, tmp_path, vocab):
    folder, classifier = run_dir
    bare = tmp_path / "bare"
    bare.mkdir()
    classifier.save(bare / "model.keras")
    with pytest.raises(ValueError, match=r"No spiece.model or vocab.txt beside .*pass vocab="):
        keras_albert.load(bare)
    model, _ = keras_albert.load(bare, vocab=vocab, task_model=True)  # vocab= fills the gap
    assert isinstance(model, SequenceClassifier)
    classifier.save(bare / "other.keras")
    with pytest.raises(ValueError, match="holds several .keras files"):
        keras_albert.load(bare)
    with pytest.raises(FileNotFoundError, match="Vocabulary file not found"):
        keras_albert.load("bert_tiny", vocab=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"use keras_albert.load\(\.\.\.\)"):
        keras_albert.from_pretrained("bert_tiny")
