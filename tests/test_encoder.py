"""Encoder behaviour: layer assignment, sharing, serialization, dropout, bad input."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from keras_albert.heads import ClassificationHead, SpanHead
from keras_albert.layers import (FactorizedEmbedding, FeedForwardSublayer,
                                 SelfAttentionSublayer, TransformerStack, layer_schedule,
                                 stateless_dropout)
from keras_albert.models.encoder import Encoder


def _inputs(batch=2, length=6, vocabulary=50, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocabulary, size=(batch, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[0, length // 2:] = 0
    return {
        "input_word_ids": tf.constant(ids * mask),
        "input_mask": tf.constant(mask),
        "input_type_ids": tf.zeros_like(ids),
    }


def test_layer_schedule_follows_google_research_albert():
    # modeling.py: group_idx = int(layer_idx / num_hidden_layers * num_hidden_groups)
    groups = [group for _, group, _ in layer_schedule(12, 3, 1)]
    assert groups == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    groups = [group for _, group, _ in layer_schedule(6, 4, 1)]
    assert groups == [int(i / 6 * 4) for i in range(6)] == [0, 0, 1, 2, 2, 3]
    assert layer_schedule(2, 1, 2) == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)]


@pytest.mark.parametrize(
    "sharing, attention_sets, ffn_sets",
    [("all", 2, 2), ("attention", 2, 6), ("ffn", 6, 2), ("none", 6, 6)],
)
def test_sharing_modes_count_weight_sets(sharing, attention_sets, ffn_sets):
    stack = TransformerStack(num_layers=6, hidden_dim=8, num_heads=2, num_groups=2,
                             sharing=sharing)
    assert len(stack.attention_layers) == attention_sets
    assert len(stack.feedforward_layers) == ffn_sets


def test_shared_weights_are_really_reused():
    encoder = Encoder(vocabulary_size=50, hidden_dim=16, num_layers=3, num_heads=2,
                      sharing="all", dropout=0.0)
    inputs = _inputs()
    before = encoder(inputs)["encoder_outputs"]
    # Changing the single shared block changes every layer's output.
    kernel = encoder.transformer.attention_layers[0].output_dense.kernel
    kernel.assign(kernel + tf.random.stateless_normal(kernel.shape, seed=[1, 2]))
    after = encoder(inputs)["encoder_outputs"]
    for old, new in zip(before, after):
        assert np.abs(old.numpy() - new.numpy()).max() > 1e-3


@pytest.mark.parametrize("preset", ["albert_tiny", "bert_tiny", "distilbert_tiny"])
def test_config_and_keras_file_round_trip(preset, tmp_path):
    encoder = Encoder.from_preset(preset, seed=3)
    inputs = _inputs()
    expected = encoder(inputs)
    clone = Encoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(clone(inputs)["sequence_output"], expected["sequence_output"])

    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, Encoder)
    outputs = restored(inputs)
    for key in ("sequence_output", "pooled_output"):
        np.testing.assert_array_equal(outputs[key], expected[key])
    for ours, theirs in zip(outputs["encoder_outputs"], expected["encoder_outputs"]):
        np.testing.assert_array_equal(ours, theirs)


# One of each Keras layer of the library that has a config, by class name.
CONFIGURABLE = {
    "SelfAttentionSublayer": lambda **kw: SelfAttentionSublayer(
        hidden_dim=8, num_heads=2, dropout=0.1, **kw),
    "FeedForwardSublayer": lambda **kw: FeedForwardSublayer(
        hidden_dim=8, intermediate_dim=16, **kw),
    "FactorizedEmbedding": lambda **kw: FactorizedEmbedding(
        vocabulary_size=20, embedding_dim=4, hidden_dim=8, max_sequence_length=16, **kw),
    "TransformerStack": lambda **kw: TransformerStack(
        num_layers=2, hidden_dim=8, num_heads=2, remat="full", **kw),
    "ClassificationHead": lambda **kw: ClassificationHead(num_outputs=3, hidden_dim=8, **kw),
    "SpanHead": lambda **kw: SpanHead(**kw),
    "Encoder": lambda **kw: Encoder(
        vocabulary_size=20, hidden_dim=8, num_layers=1, num_heads=2, embedding_dim=4, **kw),
}


@pytest.mark.parametrize("kind", sorted(CONFIGURABLE))
def test_get_config_builds_on_keras_and_round_trips(kind):
    layer = CONFIGURABLE[kind](name="configured", trainable=False, dtype="mixed_bfloat16")
    config = layer.get_config()
    # Keras's own keys come from `super().get_config()`; the rest are our arguments.
    assert config["name"] == "configured" and config["trainable"] is False
    assert config["dtype"] == keras.dtype_policies.serialize(
        keras.dtype_policies.get("mixed_bfloat16"))
    assert set(config) == set(CONFIGURABLE[kind]().get_config())
    restored = type(layer).from_config(config)
    assert restored.name == "configured" and restored.trainable is False
    assert restored.dtype_policy.name == "mixed_bfloat16"
    assert restored.get_config() == config
    if kind != "Encoder":  # a functional model takes no activity regularizer
        # Only Keras's own get_config knows this argument: proof that ours chains to it.
        regularized = CONFIGURABLE[kind](activity_regularizer="l2").get_config()
        assert regularized["activity_regularizer"]["class_name"] == "L2"
        restored = type(layer).from_config(regularized)
        assert isinstance(restored.activity_regularizer, keras.regularizers.L2)


def test_padding_does_not_change_real_positions():
    encoder = Encoder.from_preset("bert_tiny", dropout=0.0)
    ids = tf.constant([[2, 11, 12, 13, 3]])
    short = encoder({"input_word_ids": ids, "input_mask": tf.ones_like(ids),
                     "input_type_ids": tf.zeros_like(ids)})
    padded_ids = tf.constant([[2, 11, 12, 13, 3, 0, 0, 0]])
    mask = tf.constant([[1, 1, 1, 1, 1, 0, 0, 0]])
    padded = encoder({"input_word_ids": padded_ids, "input_mask": mask,
                      "input_type_ids": tf.zeros_like(padded_ids)})
    np.testing.assert_allclose(padded["sequence_output"][:, :5], short["sequence_output"],
                               atol=1e-5)


def test_dropout_is_active_in_training_and_reproducible_from_the_seed():
    inputs = _inputs()
    first = Encoder.from_preset("bert_tiny", dropout=0.2, seed=7)
    second = Encoder.from_preset("bert_tiny", dropout=0.2, seed=7)
    second.set_weights(first.get_weights())
    inference = first(inputs)["sequence_output"]
    training = first(inputs, training=True)["sequence_output"]
    assert np.abs(inference - training).max() > 1e-2
    np.testing.assert_array_equal(second(inputs, training=True)["sequence_output"], training)
    # A second training call draws new masks.
    again = first(inputs, training=True)["sequence_output"]
    assert np.abs(again - training).max() > 1e-3


def test_stateless_dropout_keeps_expectation_and_rate():
    x = tf.ones([200, 500])
    dropped = stateless_dropout(x, 0.25, tf.constant([3, 4])).numpy()
    assert abs((dropped == 0).mean() - 0.25) < 0.01
    assert abs(dropped.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(dropped, stateless_dropout(x, 0.25, tf.constant([3, 4])))


def test_runs_under_mixed_bfloat16_policy():
    reference = Encoder.from_preset("albert_tiny", dropout=0.0, seed=0)
    mixed = Encoder.from_preset("albert_tiny", dropout=0.0, seed=0, dtype="mixed_bfloat16")
    mixed.set_weights(reference.get_weights())
    inputs = _inputs()
    assert mixed.transformer.attention_layers[0].query.kernel.dtype == "float32"
    out = mixed(inputs)["sequence_output"]
    assert out.dtype == tf.bfloat16
    expected = reference(inputs)["sequence_output"]
    real = inputs["input_mask"].numpy().astype(bool)
    error = np.abs(tf.cast(out, tf.float32).numpy() - expected.numpy())[real]
    # bfloat16 keeps 8 bits of mantissa (about 0.4% per value), through 8 blocks.
    scale = np.abs(expected.numpy()[real]).max()
    assert error.max() < 0.05 * scale and error.mean() < 0.005 * scale


def test_tf_function_with_dynamic_shapes():
    encoder = Encoder.from_preset("albert_tiny")
    spec = {key: tf.TensorSpec([None, None], tf.int32) for key in encoder.input_keys}
    run = tf.function(lambda x: encoder(x)["pooled_output"], input_signature=[spec])
    for length in (3, 9):
        assert run(_inputs(length=length)).shape == (2, 64)


# === Bad input ===


def test_sequence_longer_than_position_table():
    encoder = Encoder.from_preset("bert_tiny")  # 128 positions
    with pytest.raises(ValueError, match="length 200 exceeds max_sequence_length 128"):
        encoder(_inputs(length=200))
    spec = {key: tf.TensorSpec([None, None], tf.int32) for key in encoder.input_keys}
    run = tf.function(lambda x: encoder(x)["sequence_output"], input_signature=[spec])
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds max_sequence_length 128"):
        run(_inputs(length=200))


def test_mismatched_input_shapes():
    encoder = Encoder.from_preset("bert_tiny")
    inputs = dict(_inputs(), input_mask=tf.ones([2, 5], tf.int32))
    with pytest.raises(ValueError, match="'input_word_ids' has \\(2, 6\\) but 'input_mask' has"):
        encoder(inputs)
    spec = {key: tf.TensorSpec([None, None], tf.int32) for key in encoder.input_keys}
    run = tf.function(lambda x: encoder(x)["sequence_output"], input_signature=[spec])
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
        run(inputs)
    with pytest.raises(ValueError, match="must have shape \\[batch, seq\\]"):
        encoder({key: tf.zeros([2, 3, 4], tf.int32) for key in encoder.input_keys})


def test_missing_key_non_dict_and_float_inputs():
    encoder = Encoder.from_preset("albert_tiny")
    inputs = _inputs()
    del inputs["input_mask"]
    with pytest.raises(ValueError, match=r"Missing encoder input\(s\) \['input_mask'\]"):
        encoder(inputs)
    with pytest.raises(TypeError, match="expects a dict with keys"):
        encoder(tf.zeros([2, 3], tf.int32))
    with pytest.raises(TypeError, match="'input_word_ids' must hold integer ids; got float32"):
        encoder(dict(_inputs(), input_word_ids=tf.zeros([2, 6])))


def test_invalid_configurations():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Encoder(vocabulary_size=10, hidden_dim=30, num_layers=1, num_heads=4)
    with pytest.raises(ValueError, match="Unknown sharing='most'"):
        Encoder(vocabulary_size=10, hidden_dim=32, num_layers=1, num_heads=4, sharing="most")
    with pytest.raises(ValueError, match="num_groups \\(3\\) cannot exceed num_layers \\(2\\)"):
        Encoder(vocabulary_size=10, hidden_dim=32, num_layers=2, num_heads=4, num_groups=3)
    with pytest.raises(ValueError, match="Unknown activation 'swishy'"):
        Encoder(vocabulary_size=10, hidden_dim=32, num_layers=1, num_heads=4,
                activation="swishy")


def test_distilbert_style_encoder_ignores_type_ids():
    encoder = Encoder.from_preset("distilbert_tiny", dropout=0.0)
    inputs = _inputs()
    with_types = encoder(dict(inputs, input_type_ids=tf.ones_like(inputs["input_mask"])))
    without = encoder({k: v for k, v in inputs.items() if k != "input_type_ids"})
    np.testing.assert_array_equal(with_types["sequence_output"], without["sequence_output"])
    np.testing.assert_array_equal(without["pooled_output"], without["sequence_output"][:, 0])
