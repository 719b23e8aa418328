"""Heads and task models: the loss formula, tied weights, masking, training with fit."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_albert.losses import ZLPRLoss
from keras_albert.models import (
    MultipleChoiceClassifier,
    PretrainingModel,
    SequenceClassifier,
    SpanQuestionAnswerer,
    TokenClassifier,
)
from keras_albert.models.encoder import Encoder


def _zlpr_reference(labels, logits):
    """The ZLPR formula written out with Python floats, one row at a time."""
    losses = []
    for row_labels, row_logits in zip(labels, logits):
        positives = sum(math.exp(-s) for y, s in zip(row_labels, row_logits) if y == 1)
        negatives = sum(math.exp(s) for y, s in zip(row_labels, row_logits) if y == 0)
        losses.append(math.log(1 + negatives) + math.log(1 + positives))
    return sum(losses) / len(losses)


def test_zlpr_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6, 5)).astype("float32")
    labels = (rng.random((6, 5)) > 0.6).astype("float32")
    labels[0] = 1.0  # no negatives
    labels[1] = 0.0  # no positives
    np.testing.assert_allclose(
        float(ZLPRLoss()(labels, logits)), _zlpr_reference(labels, logits), rtol=1e-6
    )
    # Large logits stay finite (log-sum-exp, not exp then log).
    big = np.array([[80.0, -80.0]], "float32")
    assert np.isfinite(float(ZLPRLoss()(np.array([[0.0, 1.0]]), big)))


def _batch(encoder, batch=8, length=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, size=(batch, length)).astype("int32")
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[: batch // 2, length - 3:] = 0
    ids = ids * mask
    features = {"input_word_ids": ids, "input_mask": mask}
    if encoder.num_segments:
        features["input_type_ids"] = np.zeros_like(ids)
    return features


def test_masked_lm_decoder_is_tied_to_word_embeddings():
    encoder = Encoder.from_preset("albert_tiny", vocabulary_size=100)
    model = PretrainingModel(encoder)
    # No V x E decoder of its own: dense H->E, LayerNorm(E), output bias V, SOP 2H+2.
    hidden, embedding = encoder.hidden_dim, encoder.embedding_dim
    head_params = hidden * embedding + embedding + 2 * embedding + 100 + 2 * hidden + 2
    assert model.count_params() == encoder.count_params() + head_params

    features = dict(_batch(encoder), masked_positions=np.array([[1, 2]] * 8, "int32"))
    with tf.GradientTape() as tape:
        logits = model(features)["mlm_logits"]
        loss = tf.reduce_sum(logits[..., 42])
    gradient = tape.gradient(loss, encoder.token_embedding.embeddings)
    gradient = tf.convert_to_tensor(gradient).numpy()
    assert np.abs(gradient[42]).sum() > 0  # the decoder row of token 42 is the embedding

    before = logits.numpy()
    table = encoder.token_embedding.embeddings
    table.assign(table.numpy() * 0.0)
    after = model(features)["mlm_logits"].numpy()
    # Zero embeddings leave only the output bias (zeros) in the logits.
    assert np.abs(before).max() > 1e-3 and np.abs(after).max() < 1e-6


def test_span_head_never_predicts_padding():
    model = SpanQuestionAnswerer(Encoder.from_preset("bert_tiny"))
    features = _batch(model.encoder)
    outputs = model(features)
    padding = features["input_mask"] == 0
    assert (outputs["start_logits"].numpy()[padding] < -1e8).all()
    assert (outputs["end_logits"].numpy()[~padding] > -1e8).all()


def test_multiple_choice_scores_each_choice_independently():
    model = MultipleChoiceClassifier(Encoder.from_preset("bert_tiny"), num_choices=3)
    choices = [_batch(model.encoder, batch=2, seed=seed) for seed in range(3)]
    stacked = {key: np.stack([c[key] for c in choices], axis=1) for key in choices[0]}
    logits = model(stacked).numpy()
    for index, features in enumerate(choices):
        pooled = model.encoder(features)["pooled_output"]
        expected = model.head(pooled).numpy()[:, 0]
        np.testing.assert_allclose(logits[:, index], expected, atol=1e-5)


def _fit(model, features, labels, loss="auto", epochs=30):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    history = model.fit(features, labels, batch_size=8, epochs=epochs, verbose=0)
    return history.history["loss"]


def _signal(features):
    # Learnable from the tokens: does token id 7 (placed in half the rows) appear?
    ids = features["input_word_ids"]
    ids[::2, 3] = 7
    ids[1::2][ids[1::2] == 7] = 8
    return (ids == 7).any(axis=1).astype("int32")


@pytest.mark.parametrize("preset", ["albert_tiny", "distilbert_tiny"])
def test_sequence_classifier_learns_with_fit(preset):
    keras.utils.set_random_seed(1)
    model = SequenceClassifier(Encoder.from_preset(preset, seed=1), num_classes=2, dropout=0.0)
    features = _batch(model.encoder, batch=32)
    labels = _signal(features)
    losses = _fit(model, features, labels,
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert losses[-1] < 0.5 * losses[0]


def test_regression_and_multi_label_and_token_heads_train():
    """With the loss each task's `compile()` picks: MSE, ZLPR, token cross-entropy."""
    keras.utils.set_random_seed(2)
    encoder = Encoder.from_preset("bert_tiny", seed=2, dropout=0.0)
    features = _batch(encoder, batch=32)
    signal = _signal(features)

    regressor = SequenceClassifier(encoder, num_classes=1, dropout=0.0)
    losses = _fit(regressor, features, signal.astype("float32"), epochs=60)
    # Predicting the mean would leave the targets' variance, 0.25.
    assert losses[-1] < 0.05

    labels = np.stack([signal, 1 - signal, np.ones_like(signal)], axis=1).astype("float32")
    multi_label = SequenceClassifier(Encoder.from_preset("bert_tiny", seed=3), num_classes=3,
                                     task="multilabel")
    losses = _fit(multi_label, features, labels)
    assert isinstance(multi_label.loss, ZLPRLoss)
    assert losses[-1] < 0.5 * losses[0]
    predicted = (multi_label(features).numpy() > 0).astype("float32")
    assert (predicted == labels).mean() > 0.9

    tagger = TokenClassifier(Encoder.from_preset("bert_tiny", seed=4), num_classes=2)
    tags = (features["input_word_ids"] % 2).astype("int32")
    losses = _fit(tagger, features, tags)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "build",
    [
        lambda: SequenceClassifier(Encoder.from_preset("distilbert_tiny"), 3, hidden_dim=64),
        lambda: SequenceClassifier(Encoder.from_preset("bert_tiny"), 1, task="multilabel"),
        lambda: TokenClassifier(Encoder.from_preset("bert_tiny"), 5),
        lambda: SpanQuestionAnswerer(Encoder.from_preset("albert_tiny")),
        lambda: MultipleChoiceClassifier(Encoder.from_preset("bert_tiny"), 2),
        lambda: PretrainingModel(Encoder.from_preset("albert_tiny")),
        lambda: PretrainingModel(Encoder.from_preset("distilbert_tiny"), sentence_order=False),
    ],
)
def test_task_models_round_trip_through_keras_files(build, tmp_path):
    model = build()
    features = _batch(model.encoder, batch=2)
    if isinstance(model, MultipleChoiceClassifier):
        features = {key: np.stack([value, value], axis=1) for key, value in features.items()}
    if isinstance(model, PretrainingModel):
        features["masked_positions"] = np.array([[1, 4], [2, 3]], "int32")
    expected = model(features)
    path = tmp_path / "task.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    assert restored.task == model.task  # a one-label multi-label model stays one
    for ours, theirs in zip(tf.nest.flatten(restored(features)), tf.nest.flatten(expected)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_sequence_classifier_pooling_reads_the_right_vector(pooling, tmp_path):
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=100, seed=0)
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0, pooling=pooling)
    ids = np.array([[2, 5, 6, 7, 3, 0, 0], [2, 9, 3, 0, 0, 0, 0]], "int32")
    inputs = {"input_word_ids": ids, "input_mask": (ids > 0).astype("int32"),
              "input_type_ids": np.zeros_like(ids)}
    sequence = np.asarray(encoder(inputs)["sequence_output"])
    mask = inputs["input_mask"][..., None]
    # Independent NumPy pooling: padding never counts in the mean.
    pooled = (sequence * mask).sum(1) / mask.sum(1) if pooling == "mean" else sequence[:, 0]
    kernel, bias = model.head.get_weights()[-2:]
    np.testing.assert_allclose(np.asarray(model(inputs)), pooled @ kernel + bias, atol=1e-5)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.pooling == pooling
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), np.asarray(model(inputs)), atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(encoder, num_classes=2, pooling="max")
