"""AdaFactor: the paper's algorithm (against NumPy), state size, training, saving,
gradient accumulation, mixed precision and weight decay."""

import copy
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_albert
from keras_albert.models import SequenceClassifier
from keras_albert.optimizers import AdaFactor, optimizer_state_bytes


class NumpyAdafactor:
    """Shazeer & Stern 2018 (Alg. 4/5, T5 factoring) written out in float64 NumPy."""

    def __init__(self, shape, beta_1=None, clip_threshold=1.0, scale=True,
                 learning_rate=None, warmup_init=False, weight_decay=0.0,
                 min_dim=128, decay_rate=0.8):
        self.beta_1, self.d, self.scale = beta_1, clip_threshold, scale
        self.lr, self.warmup_init, self.wd = learning_rate, warmup_init, weight_decay
        self.decay_rate, self.t, self.clipped_steps = decay_rate, 0, 0
        self.axes = None
        if len(shape) >= 2:
            largest = np.argsort(shape, kind="stable")[-2:]  # later axes win ties
            if shape[largest[0]] >= min_dim:
                self.axes = (int(min(largest)), int(max(largest)))
        if self.axes:
            self.r = np.zeros([1 if i == self.axes[1] else n for i, n in enumerate(shape)])
            self.c = np.zeros([1 if i == self.axes[0] else n for i, n in enumerate(shape)])
        else:
            self.v = np.zeros(shape)
        self.m = np.zeros(shape)

    def step(self, x, g):
        x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
        self.t += 1
        t = self.t
        if callable(self.lr):
            rho = self.lr(t)
        elif self.lr is not None:
            rho = self.lr
        elif self.warmup_init:
            rho = min(1e-6 * t, 1 / math.sqrt(t))
        else:
            rho = min(1e-2, 1 / math.sqrt(t))
        alpha = rho * max(1e-3, np.sqrt(np.mean(x ** 2))) if self.scale else rho
        beta2 = 1 - t ** (-self.decay_rate)
        g2 = g ** 2 + 1e-30
        if self.axes:
            row, col = self.axes
            self.r = beta2 * self.r + (1 - beta2) * g2.mean(axis=col, keepdims=True)
            self.c = beta2 * self.c + (1 - beta2) * g2.mean(axis=row, keepdims=True)
            v = self.r * self.c / self.r.mean(axis=row, keepdims=True)
        else:
            self.v = beta2 * self.v + (1 - beta2) * g2
            v = self.v
        u = g / np.sqrt(v)
        if self.d is not None:
            factor = max(1.0, np.sqrt(np.mean(u ** 2)) / self.d)
            self.clipped_steps += factor > 1.0 + 1e-6
            u = u / factor
        if self.beta_1 is not None:
            self.m = self.beta_1 * self.m + (1 - self.beta_1) * u
            u = self.m
        return x - alpha * u - alpha * self.wd * x


SHAPES = {"1d": (300,), "2d_factored": (256, 130), "2d_full": (64, 100),
          "3d": (4, 200, 150), "3d_outer_axes": (160, 4, 200)}
CONFIGS = {
    "default": ({}, {}),
    "beta_1": ({"beta_1": 0.9}, {"beta_1": 0.9}),
    # Keras's sign convention: beta_2_t = 1 - t ** beta_2_decay, the paper's 1 - t ** -0.6.
    "beta_2_decay": ({"beta_2_decay": -0.6}, {"decay_rate": 0.6}),
    "no_clipping": ({"clip_threshold": None}, {"clip_threshold": None}),
    "no_parameter_scale": ({"multiply_by_parameter_scale": False}, {"scale": False}),
    "explicit_lr": ({"relative_step": False, "learning_rate": 3e-3},
                    {"learning_rate": 3e-3}),
    "schedule_lr": (
        {"relative_step": False,
         "learning_rate": keras.optimizers.schedules.ExponentialDecay(3e-3, 2, 0.5)},
        {"learning_rate": lambda t: 3e-3 * 0.5 ** ((t - 1) / 2)}),
    "warmup_decay_beta_1": ({"warmup_init": True, "weight_decay": 0.5, "beta_1": 0.5},
                            {"warmup_init": True, "weight_decay": 0.5, "beta_1": 0.5}),
}
# Gradient scales that change from step to step, so the second moment lags behind
# and update clipping engages.
GRADIENT_SCALES = [1.0, 4.0, 0.5, 20.0, 2.0, 1.0]


def _assert_close(ours, reference, path, step):
    """`ours` equals `reference` to 1e-6 relative; more sharply, their difference is
    within 1e-5 of the distance `path` each element travelled (sum of the reference's
    |updates|) plus float32 rounding of the stored values (one ulp per step)."""
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-7,
                               err_msg=f"step {step + 1}")
    rounding = (step + 1) * np.spacing(np.abs(reference).astype(np.float32))
    error = np.abs(ours - reference)
    bound = 1e-5 * path + rounding
    worst = np.argmax(error / bound)
    assert (error <= bound).all(), (
        f"step {step + 1}: error {error.flat[worst]} for a path of {path.flat[worst]}")


def _slots(optimizer):
    """The optimizer's variables other than its iteration count and learning rate."""
    return [v for v in optimizer.variables
            if v is not optimizer._iterations and v is not optimizer._learning_rate]


def _run_ours(optimizer, shape, seed, jit=False):
    rng = np.random.default_rng(seed)
    # The 1-D variable starts at zero (as biases do): RMS(x) < epsilon_2 at first.
    x0 = rng.normal(scale=0.0 if len(shape) == 1 else 0.3, size=shape).astype("float32")
    variable = keras.Variable(x0, name="w")
    gradients = [rng.normal(scale=s, size=shape).astype("float32") for s in GRADIENT_SCALES]

    def apply(g):
        optimizer.apply_gradients([(g, variable)])

    if jit:
        apply = tf.function(apply, jit_compile=True)
    values = []
    for g in gradients:
        apply(tf.constant(g))
        values.append(variable.numpy().copy())
    return x0, gradients, values, variable


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_updates_match_numpy_reference(shape_name, config):
    shape = SHAPES[shape_name]
    ours_kwargs, reference_kwargs = CONFIGS[config]
    optimizer = AdaFactor(**ours_kwargs)
    x0, gradients, values, variable = _run_ours(optimizer, shape, seed=len(shape))
    reference = NumpyAdafactor(shape, **reference_kwargs)
    x, path = x0.astype(np.float64), np.zeros(shape)
    for step, (g, ours) in enumerate(zip(gradients, values)):
        x, previous = reference.step(x, g), x
        path += np.abs(x - previous)
        _assert_close(ours, x, path, step)
    if reference_kwargs.get("clip_threshold", 1.0) is not None:
        assert reference.clipped_steps > 0  # the clipping branch was exercised
    slot_shapes = [tuple(v.shape) for v in _slots(optimizer)]
    if reference.axes:  # row + column accumulators, no full-size second moment
        expected_full = 1 if "beta_1" in ours_kwargs else 0
        assert slot_shapes.count(shape) == expected_full
        assert len(slot_shapes) == 2 + expected_full


def test_factoring_picks_the_two_largest_axes_later_on_ties_and_runs_under_xla():
    optimizer = AdaFactor(beta_1=0.9)
    for shape, axes in [((130, 4, 200), (0, 2)), ((128, 128, 128), (1, 2)),
                        ((200, 127), None), ((128, 500), (0, 1))]:
        assert optimizer._factored_axes(shape) == axes, shape
    # The same 3-D variable stepped inside tf.function(jit_compile=True).
    shape = SHAPES["3d"]
    x0, gradients, values, _ = _run_ours(AdaFactor(beta_1=0.9), shape, seed=5, jit=True)
    reference = NumpyAdafactor(shape, beta_1=0.9)
    x, path = x0.astype(np.float64), np.zeros(shape)
    for g in gradients:
        x, previous = reference.step(x, g), x
        path += np.abs(x - previous)
    _assert_close(values[-1], x, path, len(gradients) - 1)


def test_state_of_albert_base_is_under_one_percent_of_adams():
    encoder = keras_albert.Encoder.from_preset("albert_base")
    variables = encoder.trainable_variables
    assert 11_000_000 < encoder.count_params() < 12_500_000
    adafactor, adam = AdaFactor(), keras.optimizers.Adam()
    adafactor.build(variables)
    adam.build(variables)
    adafactor_bytes, adam_bytes = optimizer_state_bytes(adafactor), optimizer_state_bytes(adam)
    assert adafactor_bytes == adafactor.slot_bytes()
    assert adam_bytes == 2 * 4 * encoder.count_params()
    # Count independently: n + m floats per matrix whose smaller side is >= 128.
    expected = 0
    for v in variables:
        shape = tuple(v.shape)
        if len(shape) == 2 and min(shape) >= 128:
            expected += shape[0] + shape[1]
        else:
            expected += math.prod(shape)
    assert adafactor_bytes == 4 * expected
    assert adafactor_bytes <= 0.01 * adam_bytes, (adafactor_bytes, adam_bytes)
    largest_slot = max(math.prod(v.shape) for v in adafactor.variables)
    assert largest_slot < 128 * 768  # nothing near the size of the 30000 x 128 table


def _classifier_data():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, size=(32, 10)).astype("int32")
    ids[:, 0] = 2
    ids[::2, 3] = 7
    ids[1::2][ids[1::2] == 7] = 8
    labels = (ids == 7).any(axis=1).astype("int32")
    features = {"input_word_ids": ids, "input_mask": np.ones_like(ids),
                "input_type_ids": np.zeros_like(ids)}
    return features, labels


def _fit_classifier(optimizer, epochs, jit_compile=False):
    keras.utils.set_random_seed(0)
    model = SequenceClassifier(keras_albert.Encoder.from_preset("albert_tiny", seed=0),
                               num_classes=2, dropout=0.0)
    model.compile(optimizer=optimizer, jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    features, labels = _classifier_data()
    history = model.fit(features, labels, batch_size=8, epochs=epochs, verbose=0,
                        shuffle=False)
    return history.history["loss"]


def test_trains_a_classifier_about_as_well_as_adam():
    epochs = 30
    adam = _fit_classifier(keras.optimizers.Adam(1e-3), epochs)
    ours = _fit_classifier(AdaFactor(), epochs)
    ours_xla = _fit_classifier(AdaFactor(), epochs, jit_compile=True)
    assert adam[-1] < 0.5 * adam[0]
    for losses in (ours, ours_xla):
        assert losses[-1] < 0.5 * losses[0], losses
        assert losses[-1] < max(2 * adam[-1], 0.1), (losses[-1], adam[-1])
    # XLA computes the same steps. Compare the first dozen epochs tightly: later, float
    # rounding differences between the two compilers grow as training turns chaotic.
    np.testing.assert_allclose(ours_xla[:12], ours[:12], rtol=1e-3)


def test_config_round_trip():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 100, 0.5)
    optimizer = AdaFactor(
        learning_rate=schedule, relative_step=False, beta_1=0.8, beta_2_decay=-0.7,
        clip_threshold=None, epsilon_2=1e-4, warmup_init=True,
        multiply_by_parameter_scale=False, exclude_from_parameter_scale=["emb"],
        min_dim_size_to_factor=64, momentum_dtype="bfloat16", weight_decay=0.01,
        exclude_from_weight_decay=["norm"], gradient_accumulation_steps=3, name="ada",
    )
    config = optimizer.get_config()
    json.dumps(config)
    assert config["beta_1"] == 0.8 and config["exclude_from_weight_decay"] == ["norm"]
    assert config["beta_2_decay"] == -0.7 and config["epsilon_2"] == 1e-4
    # (`from_config` deserializes the schedule in place: give it a copy.)
    assert AdaFactor.from_config(copy.deepcopy(config)).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, AdaFactor)
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    default = AdaFactor(name="default").get_config()
    assert AdaFactor.from_config(dict(default)).get_config() == default
    assert default["learning_rate"] == pytest.approx(0.01) and default["relative_step"] is True
    with pytest.raises(ValueError):
        AdaFactor(momentum_dtype="float16")
    with pytest.raises(ValueError, match="beta_2_decay"):
        AdaFactor(beta_2_decay=0.8)  # the paper's positive decay rate, wrongly signed


def test_arguments_use_keras_adafactor_names():
    # Every argument of keras.optimizers.Adafactor means the same here, by the same name.
    ours, theirs = AdaFactor().get_config(), keras.optimizers.Adafactor().get_config()
    assert set(theirs) <= set(ours)
    for key in ("beta_2_decay", "epsilon_1", "epsilon_2", "clip_threshold", "relative_step"):
        assert ours[key] == theirs[key], key
    # The former names are refused by the constructor, not silently dropped ...
    for old in ("beta1", "decay_rate", "clipping_threshold", "epsilon1", "epsilon2"):
        with pytest.raises(ValueError, match="not recognized"):
            AdaFactor(**{old: 0.5})
    # ... but a config saved under them (a .keras file of an earlier run) still loads,
    # meaning the same: the paper's positive decay rate is Keras's negative exponent.
    saved = {key: value for key, value in AdaFactor().get_config().items()
             if key not in ("beta_1", "beta_2_decay", "clip_threshold", "epsilon_1",
                            "epsilon_2")}
    saved.update(beta1=0.9, decay_rate=0.6, clipping_threshold=2.0, epsilon1=1e-29,
                 epsilon2=2e-3)
    loaded = AdaFactor.from_config(saved).get_config()
    assert (loaded["beta_1"], loaded["beta_2_decay"], loaded["clip_threshold"],
            loaded["epsilon_1"], loaded["epsilon_2"]) == (0.9, -0.6, 2.0, 1e-29, 2e-3)


def _small_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((150,)),
        keras.layers.Dense(200, activation="tanh", name="hidden"),  # factored kernel
        keras.layers.LayerNormalization(name="layer_norm"),
        keras.layers.Dense(3, name="out"),
    ])


def _small_data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 150)).astype("float32"),
            rng.normal(size=(n, 3)).astype("float32"))


def _slot_values(optimizer):
    # By position (as `.keras` files store them): variable paths may differ after loading.
    return [(v.path, v.numpy()) for v in optimizer.variables]


def test_keras_file_and_checkpoint_restore_the_slots(tmp_path):
    x, y = _small_data(12)
    model = _small_model()
    model.compile(optimizer=AdaFactor(beta_1=0.9, weight_decay=0.01), loss="mse")
    model.fit(x[:8], y[:8], batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == 2
    model.save(tmp_path / "model.keras")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    checkpoint_path = checkpoint.write(str(tmp_path / "ckpt"))

    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, AdaFactor)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    saved_slots, loaded_slots = _slot_values(model.optimizer), _slot_values(loaded.optimizer)
    assert len(saved_slots) == len(loaded_slots) == 2 + 5 + 2 * 4  # iteration, lr, slots
    for (path, value), (_, loaded_value) in zip(saved_slots, loaded_slots):
        np.testing.assert_array_equal(loaded_value, value, err_msg=path)
    assert [p.split("/")[-1] for p, _ in saved_slots[2:5]] == [
        "sequential_hidden_kernel_v_row", "sequential_hidden_kernel_v_col",
        "sequential_hidden_kernel_m"]
    assert all(np.abs(v).max() > 0 for _, v in saved_slots)

    # tf.train.Checkpoint into a fresh model and optimizer.
    fresh = _small_model(seed=1)
    fresh.compile(optimizer=AdaFactor(beta_1=0.9, weight_decay=0.01), loss="mse")
    fresh.optimizer.build(fresh.trainable_variables)
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).read(
        checkpoint_path).assert_existing_objects_matched()
    for (path, value), (_, restored) in zip(saved_slots, _slot_values(fresh.optimizer)):
        np.testing.assert_array_equal(restored, value, err_msg=path)

    # One more step on each: identical weights, unlike a model whose state was lost.
    forgetful = keras.models.clone_model(model)
    forgetful.set_weights(model.get_weights())
    forgetful.compile(optimizer=AdaFactor(beta_1=0.9, weight_decay=0.01), loss="mse")
    for m in (model, loaded, fresh, forgetful):
        m.fit(x[8:], y[8:], batch_size=4, epochs=1, verbose=0)
    for other in (loaded, fresh):
        for a, b in zip(model.get_weights(), other.get_weights()):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    assert not np.allclose(forgetful.get_weights()[0], model.get_weights()[0], rtol=1e-5)


def test_gradient_accumulation_equals_one_step_on_the_mean_gradient():
    x, y = _small_data(8)
    accumulating, single = _small_model(), _small_model()
    initial = single.get_weights()
    kwargs = dict(beta_1=0.9, weight_decay=0.1)
    accumulating.compile(optimizer=AdaFactor(gradient_accumulation_steps=2, **kwargs),
                         loss="mse")
    single.compile(optimizer=AdaFactor(**kwargs), loss="mse")
    # Half an accumulation leaves the weights alone (no decay either).
    accumulating.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    for a, b in zip(accumulating.get_weights(), initial):
        np.testing.assert_array_equal(a, b)
    accumulating.fit(x[4:], y[4:], batch_size=4, epochs=1, verbose=0)
    single.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # Two more updates: t = 2, 3 must count updates, not micro-batches.
    accumulating.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    single.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert int(accumulating.optimizer.iterations) == int(single.optimizer.iterations) == 3
    for a, b, start in zip(accumulating.get_weights(), single.get_weights(), initial):
        assert np.abs(b - start).max() > 3e-6  # zero biases move slowest: alpha = 1e-5
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_mixed_precision_keeps_float32_slots_and_finite_weights():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = SequenceClassifier(
            keras_albert.Encoder.from_preset("albert_tiny", seed=0), num_classes=2,
            dropout=0.0)
        before = [w.copy() for w in model.get_weights()]
        optimizer = keras.optimizers.LossScaleOptimizer(AdaFactor(beta_1=0.9))
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        features, labels = _classifier_data()
        losses = model.fit(features, labels, batch_size=8, epochs=2, verbose=0,
                           shuffle=False).history["loss"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(losses).all()
    inner = optimizer.inner_optimizer
    assert int(inner.iterations) > 0  # some steps were applied, not all skipped
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    assert any(np.abs(w - b).max() > 0 for w, b in zip(weights, before))
    slots = _slots(inner)
    assert slots and all(v.dtype == "float32" for v in slots)

    # bfloat16 variables: float32 slots (bfloat16 momentum if asked), steps as float32.
    rng = np.random.default_rng(0)
    x0 = rng.normal(scale=0.3, size=(256, 130)).astype("float32")
    g = rng.normal(size=(256, 130)).astype("float32")
    variable = keras.Variable(x0, dtype="bfloat16", name="w")
    optimizer = AdaFactor(beta_1=0.9, momentum_dtype="bfloat16")
    optimizer.apply_gradients([(tf.constant(g, "bfloat16"), variable)])
    dtypes = {v.path.split("/")[-1]: v.dtype for v in _slots(optimizer)}
    assert dtypes == {"w_v_row": "float32", "w_v_col": "float32", "w_m": "bfloat16"}
    def through_bf16(a):
        return tf.cast(tf.cast(a, "bfloat16"), "float32").numpy()

    x0_bf16 = through_bf16(x0)
    expected = NumpyAdafactor(x0.shape, beta_1=0.9).step(x0_bf16, through_bf16(g))
    got = keras.ops.convert_to_numpy(keras.ops.cast(variable, "float32"))
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)
    assert np.abs(got - x0_bf16).max() > 1e-3


def test_weight_decay_skips_layer_norm_and_bias():
    def build():
        model = keras.Sequential([
            keras.Input((8,)),
            keras.layers.Dense(4, name="proj"),
            keras.layers.Dense(4, name="LayerNorm_dense", use_bias=False),
            keras.layers.LayerNormalization(name="layer_norm"),
        ])
        for v in model.trainable_variables:
            v.assign(np.full(v.shape, 2.0 if "gamma" in v.path else 1.0, "float32")
                     + (np.arange(math.prod(v.shape)).reshape(v.shape) % 3) * 0.1)
        return model

    def step(optimizer):
        model = build()
        before = [v.numpy().copy() for v in model.trainable_variables]
        zeros = [tf.zeros(v.shape) for v in model.trainable_variables]
        optimizer.apply_gradients(zip(zeros, model.trainable_variables))
        return {"/".join(v.path.split("/")[-2:]): (b, v.numpy())
                for v, b in zip(model.trainable_variables, before)}

    def decayed_by(before, after, wd, scale=True):
        rms = np.sqrt(np.mean(before.astype(np.float64) ** 2)) if scale else 1.0
        np.testing.assert_allclose(after, before * (1 - 1e-2 * rms * wd), rtol=1e-6)

    # Zero gradients: the update U is 0, so only decay can move a variable.
    result = step(AdaFactor(weight_decay=0.5))
    decayed_by(*result["proj/kernel"], 0.5)
    assert np.abs(result["proj/kernel"][1] - result["proj/kernel"][0]).max() > 1e-3
    for path in ("proj/bias", "LayerNorm_dense/kernel", "layer_norm/gamma",
                 "layer_norm/beta"):
        np.testing.assert_array_equal(result[path][1], result[path][0], err_msg=path)

    # Without the exclusions everything decays; the parameter scale can be left out.
    result = step(AdaFactor(weight_decay=0.5, exclude_from_weight_decay=(),
                            exclude_from_parameter_scale=["gamma"]))
    for path, (before, after) in result.items():
        decayed_by(before, after, 0.5, scale="gamma" not in path)

    # Keras's own exclusion method adds to ours.
    optimizer = AdaFactor(weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    result = step(optimizer)
    np.testing.assert_array_equal(*result["proj/kernel"])
