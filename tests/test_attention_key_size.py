"""Attention with a key size independent of the head count, and the three GELU forms.

The numbers checked against are independent of the code under test: the parameter
counts of the project's reference sheet (query and key widen from H x H to
H x heads x key_size, plus their biases: 2 x (H + 1) x heads x (key_size - H / heads)
more per block), attention written out in NumPy from the layer's weights, and GELU
from its formulas with SciPy's erf.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from keras_albert.conversion.huggingface import save_huggingface
from keras_albert.conversion.transformers_weights import transformers_state_dict
from keras_albert.export.hub import export_hub_encoder
from keras_albert.layers import SelfAttentionSublayer, gelu_approximate, gelu_exact, gelu_sigmoid
from keras_albert.models.encoder import Encoder
from keras_albert.training.fingerprint import encoder_settings, run_differences


def _cli():
    return [sys.executable, "-m", "keras_albert.cli"]


@pytest.mark.parametrize("preset, default_count, key_size_128_count", [
    ("albert_base", 11_683_584, 12_864_768),
    ("bert_base", 109_482_240, 123_656_448),
])
def test_exact_parameter_counts_with_key_size_128(preset, default_count, key_size_128_count):
    assert Encoder.from_preset(preset).count_params() == default_count
    encoder = Encoder.from_preset(preset, key_size=128)
    assert encoder.count_params() == key_size_128_count
    attention = encoder.transformer.attention_layers[0]
    # Query and key widen to 12 heads x 128; value and output keep 12 x 64 = 768.
    assert tuple(attention.query.kernel.shape) == (768, 1536)
    assert tuple(attention.key.kernel.shape) == (768, 1536)
    assert tuple(attention.value.kernel.shape) == (768, 768)
    assert tuple(attention.output_dense.kernel.shape) == (768, 768)


def _numpy_attention(layer, x, mask):
    """Multi-head self-attention + output projection + residual + LayerNorm, from the
    layer's weights with the textbook formulas."""
    def dense(sublayer, values):
        return values @ sublayer.kernel.numpy() + sublayer.bias.numpy()

    batch, length, _ = x.shape
    heads, key_size, value_size = layer.num_heads, layer.key_size, layer.value_size
    query = dense(layer.query, x).reshape(batch, length, heads, key_size)
    key = dense(layer.key, x).reshape(batch, length, heads, key_size)
    value = dense(layer.value, x).reshape(batch, length, heads, value_size)
    scores = np.einsum("bqhd,bkhd->bhqk", query, key) / np.sqrt(key_size)
    scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bhqk,bkhd->bqhd", probs, value).reshape(batch, length, -1)
    residual = x + dense(layer.output_dense, context)
    mean = residual.mean(-1, keepdims=True)
    variance = residual.var(-1, keepdims=True)
    normed = (residual - mean) / np.sqrt(variance + layer.layer_norm_epsilon)
    return normed * layer.layer_norm.gamma.numpy() + layer.layer_norm.beta.numpy()


@pytest.mark.parametrize("hidden_dim, num_heads, key_size, value_size", [
    (12, 3, 16, None),  # key size above H / heads
    (12, 3, 2, 8),  # both sizes set, below and above H / heads
    (10, 4, 6, 5),  # H not divisible by heads: allowed once both sizes are given
])
def test_attention_matches_the_formula_and_ignores_padding(hidden_dim, num_heads, key_size,
                                                           value_size):
    layer = SelfAttentionSublayer(hidden_dim, num_heads, key_size=key_size,
                                  value_size=value_size, kernel_initializer="random_normal")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, hidden_dim)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 1, 0, 0]], "int32")
    ours = layer(x, mask).numpy()
    assert layer.value_size == (value_size or hidden_dim // num_heads)
    assert tuple(layer.query.kernel.shape) == (hidden_dim, num_heads * key_size)
    assert tuple(layer.output_dense.kernel.shape) == (num_heads * layer.value_size, hidden_dim)
    np.testing.assert_allclose(ours, _numpy_attention(layer, x, mask), atol=1e-5)
    # What sits in the padding positions does not reach the real tokens.
    changed = x.copy()
    changed[1, 4:] = rng.normal(size=(2, hidden_dim))
    np.testing.assert_allclose(layer(changed, mask).numpy()[1, :4], ours[1, :4], atol=1e-6)


def test_head_sizes_are_checked():
    with pytest.raises(ValueError, match=r"hidden_dim \(10\) is not divisible by num_heads "
                                         r"\(4\): give key_size and value_size explicitly"):
        Encoder(vocabulary_size=50, hidden_dim=10, num_layers=1, num_heads=4, key_size=8)
    with pytest.raises(ValueError, match=r"key_size must be a positive integer, got 0"):
        Encoder(vocabulary_size=50, hidden_dim=8, num_layers=1, num_heads=2, key_size=0)
    with pytest.raises(ValueError, match=r"value_size must be a positive integer, got 2.5"):
        SelfAttentionSublayer(8, 2, value_size=2.5)


def _inputs(vocabulary_size):
    ids = np.array([[2, 7, 9, 11, 3, 0, 0], [2, 5, 3, 8, 12, 4, 3]], "int32")
    ids = np.minimum(ids, vocabulary_size - 1)
    return {"input_word_ids": ids, "input_mask": (ids > 0).astype("int32"),
            "input_type_ids": np.zeros_like(ids)}


def test_key_size_round_trips_through_keras_file_and_saved_model(tmp_path):
    encoder = Encoder.from_preset("albert_tiny", vocabulary_size=60, key_size=32,
                                  value_size=8)
    inputs = _inputs(60)
    expected = encoder(inputs)["sequence_output"].numpy()

    encoder.save(tmp_path / "encoder.keras")
    reloaded = keras.saving.load_model(tmp_path / "encoder.keras")
    assert (reloaded.key_size, reloaded.value_size) == (32, 8)
    assert reloaded.get_config() == encoder.get_config()
    np.testing.assert_allclose(reloaded(inputs)["sequence_output"].numpy(), expected,
                               atol=1e-6)

    export_hub_encoder(encoder, str(tmp_path / "hub"))
    saved = tf.saved_model.load(str(tmp_path / "hub"))
    outputs = saved({key: tf.constant(value) for key, value in inputs.items()})
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), expected, atol=1e-6)


def test_default_sizes_keep_the_checkpoint_layout_and_config():
    # Spelled-out defaults build the same model as the preset: presets, conversions and
    # parity results do not move.
    default = Encoder.from_preset("bert_tiny", seed=3, name="encoder")
    explicit = Encoder.from_preset("bert_tiny", seed=3, key_size=16, value_size=16,
                                   name="encoder")
    assert default.get_config() == explicit.get_config()
    assert default.get_config()["key_size"] == 64 // 4
    for ours, theirs in zip(default.weights, explicit.weights, strict=True):
        assert ours.path == theirs.path
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_student_keeps_the_teachers_head_sizes_and_reproduces_its_layers():
    from keras_albert.models.student import student_from_teacher

    # H 10 is not divisible by 4 heads: only explicit sizes make it a valid model.
    teacher = Encoder(vocabulary_size=60, hidden_dim=10, num_layers=2, num_heads=4,
                      key_size=6, value_size=5, sharing="none", dropout=0.0)
    student = student_from_teacher(teacher, num_layers=2, teacher_layers=[0, 1],
                                   token_types=True, pooler=True)
    assert (student.key_size, student.value_size) == (6, 5)
    inputs = _inputs(60)
    np.testing.assert_allclose(student(inputs)["sequence_output"].numpy(),
                               teacher(inputs)["sequence_output"].numpy(), atol=1e-6)


def test_transformers_export_refuses_sizes_it_cannot_express(tmp_path):
    encoder = Encoder.from_preset("bert_tiny", key_size=32)
    message = (r"transformers' bert ties each head's query/key and value size to "
               r"hidden_dim / num_heads = 64 / 4; this encoder has key_size=32 and "
               r"value_size=16")
    with pytest.raises(ValueError, match=message):
        save_huggingface(encoder, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    with pytest.raises(ValueError, match=message):
        transformers_state_dict(encoder)


def test_run_fingerprints_name_head_sizes_only_when_they_differ_from_the_default():
    # Checkpoints written before key_size existed hold fingerprints without it; a run
    # with default sizes must still match them (and resume).
    default = encoder_settings(Encoder.from_preset("bert_tiny", num_heads=np.int64(4)))
    assert "key_size" not in default and "value_size" not in default
    wide = encoder_settings(Encoder.from_preset("bert_tiny", key_size=32))
    assert wide["key_size"] == 32 and "value_size" not in wide
    assert run_differences({"model": default}, {"model": wide})


def test_cli_info_counts_parameters_with_key_size():
    result = subprocess.run(_cli() + ["info", "albert_base", "--set", "key_size=128"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "12,864,768" in result.stdout
    assert "key_size" in result.stdout and "128" in result.stdout


def test_gelu_forms_against_their_formulas():
    x = np.linspace(-10, 10, 200_001).astype("float64")
    exact = 0.5 * x * (1 + erf(x / np.sqrt(2)))
    tanh_form = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    sigmoid_form = x / (1 + np.exp(-1.702 * x))
    x32 = tf.constant(x, tf.float32)
    np.testing.assert_allclose(gelu_sigmoid(x32).numpy(), sigmoid_form, atol=2e-6)
    np.testing.assert_allclose(gelu_approximate(x32).numpy(), tanh_form, atol=2e-6)
    np.testing.assert_allclose(gelu_exact(x32).numpy(), exact, atol=2e-6)
    # The errors against the exact GELU that gelu_sigmoid's docstring states.
    assert 0.0200 < np.abs(sigmoid_form - exact).max() < 0.0206
    assert 4.6e-4 < np.abs(tanh_form - exact).max() < 4.8e-4
    # An encoder takes it by name, and it survives the config.
    encoder = Encoder.from_preset("bert_tiny", activation="gelu_sigmoid")
    assert Encoder.from_config(encoder.get_config()).activation == "gelu_sigmoid"


def test_gelu_sigmoid_matches_transformers_quick_gelu():
    import torch  # the tests extra installs both
    import transformers

    from keras_albert.conversion import encoder_from_transformers

    torch.manual_seed(2)
    config = transformers.BertConfig(
        vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16, hidden_act="quick_gelu",
    )
    hf_model = transformers.BertModel(config).eval()
    encoder = encoder_from_transformers(hf_model.config, hf_model.state_dict())
    assert encoder.activation == "gelu_sigmoid"
    inputs = _inputs(97)
    with torch.no_grad():
        expected = hf_model(input_ids=torch.tensor(inputs["input_word_ids"]),
                            attention_mask=torch.tensor(inputs["input_mask"]))
    real = inputs["input_mask"].astype(bool)
    difference = np.abs(encoder(inputs)["sequence_output"].numpy()
                        - expected.last_hidden_state.numpy())
    assert difference[real].max() <= 1e-5


def test_bench_train_times_an_overridden_preset_and_refuses_bad_keys():
    # The pretraining study times its arms with these overrides (benchmarks/
    # pretraining_study.py); FLOPs follow the key size.
    result = subprocess.run(
        _cli() + ["bench", "train", "--preset", "albert_tiny", "--batch", "2", "--seq", "16",
                  "--set", "key_size=32", "--set", "vocabulary_size=100", "--steps", "1",
                  "--warmup", "1", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import json

    [row] = json.loads(result.stdout.strip().splitlines()[-1])
    expected = Encoder.from_preset("albert_tiny", key_size=32, vocabulary_size=100)
    assert row["overrides"] == {"key_size": 32, "vocabulary_size": 100}
    assert row["params"] > expected.count_params()  # the encoder and its MLM + SOP heads
    refused = subprocess.run(
        _cli() + ["bench", "train", "--preset", "albert_tiny", "--set", "key_dim=32"],
        capture_output=True, text=True)
    assert refused.returncode == 2
    assert "Unknown Encoder configuration key(s) ['key_dim']" in refused.stderr
