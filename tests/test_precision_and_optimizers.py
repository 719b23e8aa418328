"""Mixed precision under model.fit, the recipe optimizers and schedule, the bench command."""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_albert.models import PretrainingModel, SequenceClassifier
from keras_albert.models.encoder import Encoder
from keras_albert.optimizers.factory import create_optimizer
from keras_albert.optimizers.schedules import WarmupPolynomialDecay
from keras_albert.optimizers.weight_decay import AdamW, Lamb


def _task_data(batch=32, length=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, (batch, length)).astype("int32")
    ids[ids == 7] = 8
    ids[::2, 3] = 7
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
                "input_type_ids": np.zeros_like(ids)}
    return features, (ids == 7).any(axis=1).astype("int32")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_training_under_each_precision_lowers_the_loss(precision):
    keras.utils.set_random_seed(0)
    encoder = Encoder.from_preset("bert_tiny", dropout=0.0, seed=0, dtype=precision)
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if precision == "mixed_float16":
        # compile wraps the optimizer for loss scaling by itself.
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    features, labels = _task_data()
    history = model.fit(features, labels, batch_size=8, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model(features).dtype == tf.float32  # logits (and losses) in float32
    for weight in model.weights:
        assert weight.dtype == "float32" and np.isfinite(weight.numpy()).all()


def test_float16_overflow_steps_are_skipped_without_nan_weights():
    encoder = Encoder.from_preset("bert_tiny", dropout=0.0, seed=0, dtype="mixed_float16")
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    # A loss scale of 2^40 overflows float16 gradients: the step must be skipped.
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(1e-3), initial_scale=2.0**40
    )
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    features, labels = _task_data(batch=8)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.train_on_batch(features, labels)
    for old, weight in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(old, weight.numpy())
    assert float(optimizer.dynamic_scale) < 2.0**40
    for _ in range(40):  # the scale halves per overflow until steps go through
        model.train_on_batch(features, labels)
    moved = max(np.abs(old - w.numpy()).max() for old, w in zip(before, model.trainable_weights))
    assert moved > 0
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)


def test_warmup_polynomial_decay_follows_its_formula():
    schedule = WarmupPolynomialDecay(2e-3, warmup_steps=100, total_steps=1100,
                                     end_learning_rate=1e-5, power=2.0)
    for step in (0, 49, 99, 100, 350, 1099, 1100, 5000):
        if step < 100:
            expected = 2e-3 * (step + 1) / 100
        else:
            progress = min((step - 100) / 1000, 1.0)
            expected = 1e-5 + (2e-3 - 1e-5) * (1 - progress) ** 2
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)
    assert WarmupPolynomialDecay.from_config(schedule.get_config()).power == 2.0
    with pytest.raises(ValueError, match="must exceed warmup_steps"):
        WarmupPolynomialDecay(1e-3, warmup_steps=10, total_steps=10)


@pytest.mark.parametrize("optimizer_class", [AdamW, Lamb])
def test_weight_decay_skips_layer_norm_and_bias_even_after_reload(optimizer_class, tmp_path):
    encoder = Encoder.from_preset("bert_tiny", dropout=0.0, seed=0)
    model = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    model.compile(optimizer=optimizer_class(learning_rate=1e-2, weight_decay=0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.optimizer.get_config()["exclude_from_weight_decay"] == ["gamma", "beta",
                                                                            "bias"]
    # Fresh moments and zero gradients: only weight decay can move a variable.
    zero = [tf.zeros_like(v) for v in restored.trainable_variables]
    before = {v.path: v.numpy().copy() for v in restored.trainable_variables}
    restored.optimizer.apply_gradients(zip(zero, restored.trainable_variables))
    for variable in restored.trainable_variables:
        changed = not np.array_equal(before[variable.path], variable.numpy())
        excluded = variable.name in ("gamma", "beta", "bias")
        assert changed != excluded, variable.path


def test_create_optimizer_builds_each_recipe():
    lamb = create_optimizer("lamb", 1.76e-3, total_steps=1000, warmup_steps=100)
    assert isinstance(lamb, Lamb)
    assert isinstance(lamb.learning_rate, (float, np.floating)) or callable(
        lamb._learning_rate
    )
    adafactor = create_optimizer("adafactor", None)
    assert type(adafactor).__name__ == "AdaFactor"
    with pytest.raises(ValueError, match="Unknown optimizer 'sgdx'"):
        create_optimizer("sgdx")
    adam = create_optimizer("adam", 1e-3, gradient_accumulation_steps=2)
    assert adam.gradient_accumulation_steps == 2


@pytest.mark.parametrize("remat", ["full", "selective"])
def test_pretraining_model_trains_under_bfloat16_with_remat_and_adafactor(remat):
    keras.utils.set_random_seed(0)
    encoder = Encoder.from_preset("albert_tiny", vocabulary_size=64, seed=0, remat=remat,
                                  dtype="mixed_bfloat16")
    model = PretrainingModel(encoder)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 64, (16, 16)).astype("int32")
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
                "input_type_ids": np.zeros_like(ids),
                "masked_positions": np.tile(np.arange(0, 16, 4, dtype="int32"), (16, 1))}
    labels = {"mlm_logits": ids[:, ::4], "sop_logits": (ids[:, 0] % 2).astype("int32")}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=create_optimizer("adafactor", 1e-3),
                  loss={"mlm_logits": loss, "sop_logits": loss})
    history = model.fit(features, labels, batch_size=8, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def _cli():
    return str(pathlib.Path(sys.executable).parent / "keras-albert")


def test_bench_train_reports_time_throughput_and_memory():
    batch, seq, masked = 16, 128, 19  # 15% of 128 positions are masked
    result = subprocess.run(
        [_cli(), "bench", "train", "--preset", "albert_tiny", "--batch", str(batch), "--seq",
         str(seq), "--remat", "none,selective,full", "--steps", "2", "--warmup", "1", "--json"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["remat"] for row in rows] == ["none", "selective", "full"]
    tokens = batch * seq
    for row in rows:
        assert row["step_time_s"] > 0 and row["peak_rss_mb"] > 100
        assert row["peak_tensor_mb"] > 0
        assert row["tokens_per_s"] == pytest.approx(tokens / row["step_time_s"], rel=0.01)
        # albert_tiny: L4 x 2 inner blocks, H64, I256, E32, V30000.
        weights = 8 * (4 * 64 * 64 + 2 * 64 * 256) + 32 * 64
        flops = (6 * tokens * weights + 12 * 8 * 64 * seq * tokens
                 + 6 * batch * masked * (64 * 32 + 32 * 30000))
        assert row["model_gflops_per_step"] == pytest.approx(flops / 1e9, abs=0.01)
    # Recomputation really frees activations (if grappler merged the recomputed
    # operations with the forward ones, selective would keep as much as none).
    none, selective, full = (row["peak_tensor_mb"] for row in rows)
    # Full recompute keeps no more than selective; on a model this small the two differ
    # by allocator noise of about 1% between processes (CI saw 205.9 vs 204.1 MiB), so
    # the bound allows 5%. benchmarks/memory_remat.py measures the gap on albert_base.
    assert selective < 0.8 * none and full <= 1.05 * selective
    bad = subprocess.run([_cli(), "bench", "train", "--precision", "float8"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Unknown precision 'float8'" in bad.stderr
