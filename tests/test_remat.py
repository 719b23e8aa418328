"""Gradient checkpointing: recomputed blocks (or their cheap parts) give the
gradients of stored ones."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_albert.layers.activations import get_activation
from keras_albert.layers.dropout import stateless_dropout
from keras_albert.layers.recompute import activation_then_dense
from keras_albert.layers.transformer_stack import parse_remat
from keras_albert.models import SequenceClassifier
from keras_albert.models.encoder import Encoder

TOLERANCE = 1e-6


def _features(seed=0, batch=4, length=16):
    ids = np.random.default_rng(seed).integers(5, 60, (batch, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[0, 10:] = 0
    return {"input_word_ids": ids * mask, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


def _gradients(preset, weights, remat, compiled):
    encoder = Encoder.from_preset(preset, dropout=0.2, seed=5, remat=remat)
    encoder.set_weights(weights)

    def step(features):
        with tf.GradientTape() as tape:
            outputs = encoder(features, training=True)
            loss = tf.reduce_mean(outputs["sequence_output"] ** 2) + tf.reduce_mean(
                outputs["pooled_output"]
            )
        return loss, tape.gradient(loss, encoder.trainable_variables)

    if compiled:
        step = tf.function(step, jit_compile=compiled == "xla")
    loss, gradients = step(_features())
    return loss.numpy(), [tf.convert_to_tensor(g).numpy() for g in gradients]


@pytest.mark.parametrize("preset", ["albert_tiny", "bert_tiny"])
@pytest.mark.parametrize("compiled", [False, "graph", "xla"], ids=["eager", "tf_function", "xla"])
def test_recomputed_gradients_equal_stored_ones_with_dropout(preset, compiled):
    weights = Encoder.from_preset(preset, seed=1).get_weights()
    loss, expected = _gradients(preset, weights, "none", compiled)
    # Dropout is really active: the loss differs from an inference pass.
    for remat in ("selective", "full", "every_3"):
        remat_loss, gradients = _gradients(preset, weights, remat, compiled)
        assert remat_loss == pytest.approx(loss, abs=1e-7)
        for ours, theirs in zip(gradients, expected):
            assert np.abs(ours - theirs).max() <= TOLERANCE


def test_dropout_changes_the_recomputed_forward_pass():
    # Guards the test above: with dropout, two training calls differ, so equal
    # gradients really need the recomputation to redraw the same masks.
    encoder = Encoder.from_preset("albert_tiny", dropout=0.2, seed=5, remat="full")
    first = encoder(_features(), training=True)["sequence_output"]
    second = encoder(_features(), training=True)["sequence_output"]
    assert np.abs(first.numpy() - second.numpy()).max() > 1e-2


def _fit_weights(remat, weights):
    encoder = Encoder.from_preset("albert_tiny", dropout=0.1, seed=11, remat=remat)
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    features = _features(batch=12)
    labels = np.arange(12) % 2
    model.fit(features, labels, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("remat", ["selective", "full"])
def test_model_fit_with_remat_ends_with_the_same_weights(remat):
    reference = SequenceClassifier(Encoder.from_preset("albert_tiny", seed=3), 2).get_weights()
    expected = _fit_weights("none", reference)  # 3 steps of 4 examples
    got = _fit_weights(remat, reference)
    moved = max(np.abs(a - b).max() for a, b in zip(expected, reference))
    assert moved > 1e-4
    for ours, theirs in zip(got, expected):
        assert np.abs(ours - theirs).max() <= TOLERANCE


@pytest.mark.parametrize("activation", ["gelu", "gelu_approximate", "relu"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_activation_then_dense_matches_plain_autodiff(activation, dtype):
    # The reference is TensorFlow's own gradient of the plain expression.
    function = get_activation(activation)
    rng = np.random.default_rng(0)
    pre, kernel, bias, weight = (
        tf.constant(rng.normal(size=shape), dtype)
        for shape in ([2, 5, 16], [16, 8], [8], [2, 5, 8])
    )
    results = []
    for recompute in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([pre, kernel, bias])
            if recompute:
                output = activation_then_dense(pre, function, kernel, bias)
            else:
                output = tf.einsum("bsi,ih->bsh", function(pre), kernel) + bias
            loss = tf.reduce_sum(tf.cast(output * weight, "float32"))
        results.append([output] + tape.gradient(loss, [pre, kernel, bias]))
    tolerance = 1e-5 if dtype == "float32" else 5e-2
    for plain, recomputed in zip(*results):
        assert recomputed.dtype == plain.dtype
        np.testing.assert_allclose(
            tf.cast(recomputed, "float32"), tf.cast(plain, "float32"), atol=tolerance,
            rtol=tolerance,
        )


def test_dropout_with_a_recomputed_mask_has_the_stored_mask_gradient():
    inputs = tf.random.normal([3, 40])
    weight = tf.random.normal([3, 40])
    seed = tf.constant([4, 2])
    gradients = []
    for recompute_mask in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = stateless_dropout(inputs, 0.3, seed, recompute_mask=recompute_mask)
            loss = tf.reduce_sum(output * weight)
        gradients.append(tape.gradient(loss, inputs).numpy())
    dropped = gradients[0] == 0
    assert 0.1 < dropped.mean() < 0.5  # the mask really drops units
    np.testing.assert_array_equal(gradients[1], gradients[0])


def test_remat_setting_is_validated_and_serialized():
    assert parse_remat("every_2") == 2
    assert parse_remat("selective") is None
    with pytest.raises(ValueError, match="Unknown remat='some'.*'every_k'"):
        Encoder.from_preset("bert_tiny", remat="some")
    with pytest.raises(ValueError, match="Unknown remat='every_0'"):
        Encoder.from_preset("bert_tiny", remat="every_0")
    encoder = Encoder.from_preset("bert_tiny", remat="every_2")
    assert Encoder.from_config(encoder.get_config()).transformer.remat_segment == 2
    encoder = Encoder.from_preset("bert_tiny", remat="selective")
    assert Encoder.from_config(encoder.get_config()).transformer.remat == "selective"
