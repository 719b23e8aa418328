"""Task models own their training defaults: `compile()` picks the task's loss and
metrics (checked against the formulas written out in NumPy), a value you pass wins,
and `task_model` builds a model that trains for every kind in `TASK_KINDS`."""

import warnings

import keras
import numpy as np
import pytest

from keras_albert.losses import ZLPRLoss
from keras_albert.models import MultipleChoiceClassifier, PretrainingModel, SequenceClassifier
from keras_albert.models.encoder import Encoder
from keras_albert.models.task_kinds import TASK_KINDS, task_model
from keras_albert.optimizers import AdamW

BATCH, LENGTH, VOCABULARY = 4, 8, 100


def _encoder(seed=0):
    return Encoder.from_preset("bert_tiny", vocabulary_size=VOCABULARY, seed=seed)


def _features(rng, extra_dims=()):
    ids = rng.integers(5, VOCABULARY, size=(BATCH, *extra_dims, LENGTH)).astype("int32")
    return {"input_word_ids": ids, "input_mask": np.ones_like(ids),
            "input_type_ids": np.zeros_like(ids)}


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _cross_entropy(logits, labels):
    """Per-example -log softmax(logits)[label], for labels of any leading shape."""
    log_probabilities = _log_softmax(logits)
    return -np.take_along_axis(log_probabilities, labels[..., None], axis=-1)[..., 0]


def _zlpr(logits, labels):
    logits = np.asarray(logits, np.float64)
    positives = np.where(labels > 0.5, np.exp(-logits), 0.0).sum(axis=1)
    negatives = np.where(labels > 0.5, 0.0, np.exp(logits)).sum(axis=1)
    return np.mean(np.log1p(positives) + np.log1p(negatives))


def _case(kind, rng):
    """(model, x, y, sample_weight, expected loss from the model's logits)."""
    encoder = _encoder()
    if kind == "multiple_choice":
        model, x = MultipleChoiceClassifier(encoder, num_choices=3), _features(rng, (3,))
        y = rng.integers(0, 3, size=BATCH).astype("int32")
        return model, x, y, None, lambda out: _cross_entropy(out, y).mean()
    if kind == "pretraining":
        model, x = PretrainingModel(encoder), _features(rng)
        x["masked_positions"] = rng.integers(1, LENGTH, size=(BATCH, 3)).astype("int32")
        y = {"mlm_logits": rng.integers(0, VOCABULARY, size=(BATCH, 3)).astype("int32"),
             "sop_logits": rng.integers(0, 2, size=BATCH).astype("int32")}
        # Padded masked positions (weight 0) count in neither the loss nor its mean.
        weights = {"mlm_logits": np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 0]],
                                          "float32"), "sop_logits": np.ones(BATCH, "float32")}

        def expected(out):
            mlm = _cross_entropy(out["mlm_logits"], y["mlm_logits"])
            mlm = (mlm * weights["mlm_logits"]).sum() / weights["mlm_logits"].sum()
            return mlm + _cross_entropy(out["sop_logits"], y["sop_logits"]).mean()

        return model, x, y, weights, expected
    x = _features(rng)
    model = task_model(encoder, kind, num_classes=3)
    if kind == "classification":
        y = rng.integers(0, 3, size=BATCH).astype("int32")
        return model, x, y, None, lambda out: _cross_entropy(out, y).mean()
    if kind == "regression":
        y = rng.normal(size=BATCH).astype("float32")
        return model, x, y, None, lambda out: np.mean((out[:, 0] - y) ** 2)
    if kind == "multilabel":
        y = (rng.random((BATCH, 3)) > 0.5).astype("float32")
        return model, x, y, None, lambda out: _zlpr(out, y)
    if kind == "token":
        y = rng.integers(0, 3, size=(BATCH, LENGTH)).astype("int32")
        y[:, 0] = y[:, -2:] = -100  # unlabelled: special tokens, continuation pieces
        labelled = y != -100
        return model, x, y, None, lambda out: _cross_entropy(out, np.where(
            labelled, y, 0))[labelled].mean()
    y = {"start_logits": rng.integers(1, 4, size=BATCH).astype("int32"),
         "end_logits": rng.integers(4, LENGTH, size=BATCH).astype("int32")}
    return model, x, y, None, lambda out: sum(
        _cross_entropy(out[key], y[key]).mean() for key in y)


@pytest.mark.parametrize("kind", TASK_KINDS + ("multiple_choice", "pretraining"))
def test_compile_without_a_loss_uses_the_tasks_loss(kind):
    model, x, y, weights, expected = _case(kind, np.random.default_rng(0))
    model.compile()
    assert model.task == kind
    assert type(model.optimizer) is AdamW
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-5)
    outputs = keras.tree.map_structure(np.asarray, model.predict(x, verbose=0))
    results = model.evaluate(x, y, sample_weight=weights, batch_size=BATCH, verbose=0,
                             return_dict=True)
    np.testing.assert_allclose(results["loss"], expected(outputs), rtol=1e-5)
    if kind == "token":  # accuracy over the labelled tokens only
        labelled = y != -100
        accuracy = (outputs.argmax(-1) == y)[labelled].mean()
        np.testing.assert_allclose(results["accuracy"], accuracy, rtol=1e-6)
    if kind == "classification":
        assert {"accuracy", "mcc"} <= set(results)


def test_what_you_pass_wins():
    rng = np.random.default_rng(1)
    model = task_model(_encoder(), "multilabel", num_classes=3)
    x, y = _features(rng), (rng.random((BATCH, 3)) > 0.5).astype("float32")
    optimizer = keras.optimizers.SGD(0.1)
    model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)], jit_compile=False,
                  steps_per_execution=2)
    assert model.optimizer is optimizer
    assert model.jit_compile is False and model.steps_per_execution == 2
    logits = np.asarray(model.predict(x, verbose=0), np.float64)
    results = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    binary_cross_entropy = np.mean(np.logaddexp(0.0, logits) - y * logits)
    np.testing.assert_allclose(results["loss"], binary_cross_entropy, rtol=1e-5)
    assert not np.isclose(binary_cross_entropy, _zlpr(logits, y))
    assert set(results) == {"loss", "binary_accuracy"}


def test_compiled_classifier_keeps_its_task_through_a_keras_file(tmp_path):
    rng = np.random.default_rng(2)
    model = SequenceClassifier(_encoder(), num_classes=3, task="multilabel")
    x, y = _features(rng), (rng.random((BATCH, 3)) > 0.5).astype("float32")
    model.compile()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    path = tmp_path / "multilabel.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not called as part of model loading")
        restored = keras.saving.load_model(path)
    assert restored.task == "multilabel" and restored.get_config() == model.get_config()
    assert isinstance(restored.loss, ZLPRLoss)
    assert int(restored.optimizer.iterations) == 1
    expected = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    results = restored.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    assert set(results) == {"loss", "micro_f1"}
    np.testing.assert_allclose(results["loss"], expected["loss"], rtol=1e-6)


def test_sequence_classifier_task_argument():
    encoder = _encoder()
    assert SequenceClassifier(encoder, num_classes=1).task == "regression"
    assert SequenceClassifier(encoder, num_classes=2).task == "classification"
    # A config saved before `task` existed loads as it trained: 1 output -> regression.
    config = SequenceClassifier(encoder, num_classes=1).get_config()
    del config["task"]
    assert SequenceClassifier.from_config(config).task == "regression"
    with pytest.raises(ValueError, match="`task` must be one of"):
        SequenceClassifier(encoder, num_classes=2, task="token")
    with pytest.raises(ValueError, match="num_classes=1"):
        SequenceClassifier(encoder, num_classes=2, task="regression")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        SequenceClassifier(encoder, num_classes=1, task="classification")


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_every_kind_fits_one_step(kind):
    model, x, y, _, _ = _case(kind, np.random.default_rng(3))
    before = [np.array(weight) for weight in model.head.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # no tracing
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and int(model.optimizer.iterations) == 1
    after = model.head.get_weights()
    assert any(not np.allclose(old, new) for old, new in zip(before, after))
