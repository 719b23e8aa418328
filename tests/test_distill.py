"""DistilBERT-style distillation: the loss terms against NumPy, student initialisation
from teacher layers (BERT and shared ALBERT teachers), and `Distiller` under `fit`,
`MirroredStrategy` and mixed precision."""

import json
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_albert.models import (
    Distiller,
    PretrainingModel,
    SequenceClassifier,
    student_from_teacher,
)
from keras_albert.models.distillation_losses import distillation_losses
from keras_albert.models.encoder import Encoder

VOCABULARY = 64


# === NumPy reference formulas ==========================================================


def np_log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_reference_losses(teacher_logits, student_logits, labels, teacher_hidden,
                        student_hidden, mask, temperature, weights=None):
    """DistilBERT's loss terms written out in float64 NumPy."""
    teacher_logits = np.asarray(teacher_logits, np.float64)
    student_logits = np.asarray(student_logits, np.float64)
    if weights is None:
        weights = np.ones(student_logits.shape[:-1])
    weights = np.asarray(weights, np.float64)
    if student_logits.ndim == 2 and student_logits.shape[-1] == 1:
        keep = weights > 0
        ce = np.mean(((student_logits[:, 0] - teacher_logits[:, 0]) ** 2)[keep])
        errors = (student_logits[:, 0] - np.asarray(labels, np.float64).reshape(-1)) ** 2
        hard = (weights * errors).sum() / weights.sum()
    else:
        t = temperature
        p_teacher = np.exp(np_log_softmax(teacher_logits / t))
        kl = (p_teacher * (np.log(p_teacher) - np_log_softmax(student_logits / t))).sum(-1)
        ce = t**2 * kl[weights > 0].mean()
        log_p = np_log_softmax(student_logits)
        nll = -np.take_along_axis(log_p, np.asarray(labels)[..., None], -1)[..., 0]
        hard = (weights * nll).sum() / weights.sum()
    a = np.asarray(teacher_hidden, np.float64)
    b = np.asarray(student_hidden, np.float64)
    cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    cos = (1.0 - cosine)[np.asarray(mask) > 0].mean()
    return {"ce": ce, "hard": hard, "cos": cos}


def _hidden_pair_with_padding(rng, batch=2, length=4, width=5):
    """Hidden states where the padded position points the other way: counted, it
    would add 2 to the cosine loss there."""
    teacher = rng.normal(size=(batch, length, width)).astype("float32")
    student = (teacher + 0.5 * rng.normal(size=teacher.shape)).astype("float32")
    mask = np.ones((batch, length), "int32")
    mask[1, -1] = 0
    student[1, -1] = -teacher[1, -1]
    return teacher, student, mask


# === distillation_losses ================================================================


def test_masked_lm_losses_match_numpy():
    rng = np.random.default_rng(0)
    teacher_logits = rng.normal(scale=3.0, size=(2, 3, 7)).astype("float32")
    student_logits = rng.normal(scale=3.0, size=(2, 3, 7)).astype("float32")
    labels = rng.integers(0, 7, (2, 3)).astype("int32")
    weights = np.array([[1.0, 0.5, 0.0], [1.0, 1.0, 0.0]], "float32")
    teacher_hidden, student_hidden, mask = _hidden_pair_with_padding(rng)

    got = distillation_losses(teacher_logits, student_logits, labels, teacher_hidden,
                              student_hidden, mask, temperature=2.0, label_weights=weights)
    want = np_reference_losses(teacher_logits, student_logits, labels, teacher_hidden,
                               student_hidden, mask, 2.0, weights)
    for name in ("ce", "hard", "cos"):
        assert got[name].dtype == tf.float32
        np.testing.assert_allclose(float(got[name]), want[name], rtol=1e-5, err_msg=name)

    # The temperature enters squared: at T = 1 the KL term differs from T = 2.
    cold = distillation_losses(teacher_logits, student_logits, labels, teacher_hidden,
                               student_hidden, mask, temperature=1.0, label_weights=weights)
    assert abs(float(cold["ce"]) - want["ce"]) > 1e-2
    # The padded position must not count: counting it changes the mean noticeably.
    counted = np_reference_losses(teacher_logits, student_logits, labels, teacher_hidden,
                                  student_hidden, np.ones_like(mask), 2.0, weights)
    assert abs(counted["cos"] - want["cos"]) > 0.05
    # Zero-weight positions (padding of masked_positions) must not count in `ce` either.
    everything = np_reference_losses(teacher_logits, student_logits, labels, teacher_hidden,
                                     student_hidden, mask, 2.0, np.ones_like(weights))
    assert abs(everything["ce"] - want["ce"]) > 1e-3


def test_task_and_regression_losses_match_numpy():
    rng = np.random.default_rng(1)
    teacher_hidden, student_hidden, mask = _hidden_pair_with_padding(rng, batch=3)
    teacher_logits = rng.normal(size=(3, 4)).astype("float32")
    student_logits = rng.normal(size=(3, 4)).astype("float32")
    labels = np.array([0, 3, 1], "int32")
    got = distillation_losses(teacher_logits, student_logits, labels, teacher_hidden,
                              student_hidden, mask, temperature=3.0)
    want = np_reference_losses(teacher_logits, student_logits, labels, teacher_hidden,
                               student_hidden, mask, 3.0)
    for name in ("ce", "hard", "cos"):
        np.testing.assert_allclose(float(got[name]), want[name], rtol=1e-5, err_msg=name)

    # Regression (one output): squared errors, to the teacher and to the labels.
    teacher_scores = np.array([[0.5], [2.0], [-1.0]], "float32")
    student_scores = np.array([[1.0], [1.0], [0.0]], "float32")
    targets = np.array([1.5, 0.0, 0.5], "float32")
    got = distillation_losses(teacher_scores, student_scores, targets, teacher_hidden,
                              student_hidden, mask, temperature=2.0)
    np.testing.assert_allclose(float(got["hard"]), (0.25 + 1.0 + 0.25) / 3, rtol=1e-6)
    np.testing.assert_allclose(float(got["ce"]), (0.25 + 1.0 + 1.0) / 3, rtol=1e-6)


# === student_from_teacher ================================================================


def randomized(model, seed=0):
    """Gives every weight its own random values.

    `Encoder` builds all its kernels from one Keras initializer object, and a Keras 3
    initializer with an int (or no) seed returns the same values on every call, so a
    fresh encoder's layers are identical copies (query == key, layer 0 == layer 1).
    Layer-copy tests need layers that differ.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if weight.name == "gamma":
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.05 * rng.normal(size=shape)
        weight.assign(value.astype("float32"))
    return model


def _weights(layer):
    return [np.array(w) for w in layer.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def _inputs(batch=2, length=10, seed=0, padded=True):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCABULARY, (batch, length)).astype("int32")
    mask = np.ones_like(ids)
    if padded:
        mask[0, length - 3:] = 0
        ids[0, length - 3:] = 0
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


@pytest.fixture(scope="module")
def bert_teacher():
    return randomized(Encoder.from_preset("bert_tiny", num_layers=4, vocabulary_size=VOCABULARY))


def test_bert_student_takes_every_other_layer(bert_teacher):
    student = student_from_teacher(bert_teacher)
    assert student.num_layers == 2 and student.num_segments == 0 and student.pooler is None
    assert student.hidden_dim == bert_teacher.hidden_dim
    assert student.dropout == bert_teacher.dropout and student.activation == "gelu"
    teacher_stack, student_stack = bert_teacher.transformer, student.transformer
    for i in range(2):
        for part in ("attention_layer", "feedforward_layer"):
            mine = _weights(getattr(student_stack, part)("layer", i))
            assert _same(mine, _weights(getattr(teacher_stack, part)("layer", 2 * i)))
            assert not _same(mine, _weights(getattr(teacher_stack, part)("layer", 2 * i + 1)))
    embedding, teacher_embedding = student.embedding, bert_teacher.embedding
    assert _same(_weights(embedding.word_embeddings), _weights(teacher_embedding.word_embeddings))
    folded = (np.array(teacher_embedding.position_embeddings)
              + np.array(teacher_embedding.token_type_embeddings.embeddings)[0])
    np.testing.assert_array_equal(np.array(embedding.position_embeddings), folded)

    # Explicit choice, token types and pooler kept; the task model's encoder is used.
    task = SequenceClassifier(bert_teacher, num_classes=2)
    kept = student_from_teacher(task, teacher_layers=[3, 1], token_types=True, pooler=True,
                                dropout=0.0)
    assert isinstance(kept, Encoder) and kept.dropout == 0.0
    assert _same(_weights(kept.transformer.attention_layer("layer", 0)),
                 _weights(teacher_stack.attention_layer("layer", 3)))
    assert _same(_weights(kept.pooler), _weights(bert_teacher.pooler))
    np.testing.assert_array_equal(np.array(kept.embedding.position_embeddings),
                                  np.array(teacher_embedding.position_embeddings))


def test_student_of_all_layers_reproduces_the_teacher_on_type_0_inputs(bert_teacher):
    albert = randomized(Encoder.from_preset("albert_tiny", vocabulary_size=VOCABULARY), 1)
    inputs = _inputs()
    for teacher in (bert_teacher, albert):
        student = student_from_teacher(teacher, teacher_layers=list(range(4)))
        assert "input_type_ids" not in student.input_keys
        want = teacher(inputs)["sequence_output"].numpy()
        got = student(inputs)["sequence_output"].numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        # Without the folded type-0 embedding the outputs would differ.
        unfolded = np.array(student.embedding.position_embeddings) - np.array(
            teacher.embedding.token_type_embeddings.embeddings)[0]
        student.embedding.position_embeddings.assign(unfolded)
        assert np.abs(student(inputs)["sequence_output"].numpy() - want).max() > 1e-3


def _albert_parameters(vocabulary, embedding, hidden, ffn, positions, blocks, types, pooler):
    embeddings = (vocabulary + positions + types) * embedding + 2 * embedding
    projection = embedding * hidden + hidden
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden
    feedforward = hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden
    return (embeddings + projection + blocks * (attention + feedforward)
            + (hidden * hidden + hidden if pooler else 0))


def test_albert_student_copies_the_groups_its_layers_ran():
    teacher = randomized(Encoder.from_preset("albert_tiny", vocabulary_size=VOCABULARY), 2)
    # albert_tiny: 4 layers, 2 groups x 2 inner blocks; layers 0, 1 -> group 0; 2, 3 -> 1.
    student = student_from_teacher(teacher)  # teacher layers [0, 2]: groups 0 and 1
    assert (student.num_layers, student.num_groups, student.sharing) == (2, 2, "all")
    for group in range(2):
        for inner in range(2):
            for part in ("attention_layer", "feedforward_layer"):
                mine = _weights(getattr(student.transformer, part)("group", group, inner))
                assert _same(mine, _weights(
                    getattr(teacher.transformer, part)("group", group, inner)))
                assert not _same(mine, _weights(
                    getattr(teacher.transformer, part)("group", 1 - group, inner)))
    assert _same(_weights(student.embedding.projection), _weights(teacher.embedding.projection))
    # Four shared blocks, no token types, no pooler.
    assert student.count_params() == _albert_parameters(VOCABULARY, 32, 64, 256, 128, 4, 0, False)
    assert teacher.count_params() == _albert_parameters(VOCABULARY, 32, 64, 256, 128, 4, 2, True)

    # One group: both student layers run teacher group 1 (layers 2 and 3).
    single = student_from_teacher(teacher, teacher_layers=[2, 3], num_groups=1)
    assert len(single.transformer.attention_layers) == 2  # 1 group x 2 inner blocks
    for inner in range(2):
        assert _same(_weights(single.transformer.attention_layer("group", 0, inner)),
                     _weights(teacher.transformer.attention_layer("group", 1, inner)))
    assert single.count_params() == _albert_parameters(VOCABULARY, 32, 64, 256, 128, 2, 0, False)


def test_attention_sharing_teacher_copies_shared_and_per_layer_halves():
    teacher = randomized(Encoder.from_preset("bert_tiny", num_layers=4,
                                             vocabulary_size=VOCABULARY, sharing="attention"), 3)
    student = student_from_teacher(teacher)
    assert len(student.transformer.attention_layers) == 1
    assert len(student.transformer.feedforward_layers) == 2
    assert _same(_weights(student.transformer.attention_layer("group", 0)),
                 _weights(teacher.transformer.attention_layer("group", 0)))
    for i in range(2):
        assert _same(_weights(student.transformer.feedforward_layer("layer", i)),
                     _weights(teacher.transformer.feedforward_layer("layer", 2 * i)))


def test_bad_teacher_layers_raise(bert_teacher):
    albert = Encoder.from_preset("albert_tiny", vocabulary_size=VOCABULARY)
    with pytest.raises(ValueError, match="out of range"):
        student_from_teacher(bert_teacher, teacher_layers=[0, 4])
    with pytest.raises(ValueError, match="one teacher layer per student layer"):
        student_from_teacher(bert_teacher, num_layers=3, teacher_layers=[0, 2])
    with pytest.raises(ValueError, match="integers"):
        student_from_teacher(bert_teacher, teacher_layers=[0.5, 2])
    # 3 student layers in 2 groups: layers 0, 1 share group 0, but teacher layers 0 and
    # 2 ran different groups: no copy expresses that.
    with pytest.raises(ValueError, match="num_groups=3 would express them"):
        student_from_teacher(albert, teacher_layers=[0, 2, 3])
    with pytest.raises(ValueError, match="no token-type"):
        student_from_teacher(Encoder.from_preset("distilbert_tiny", vocabulary_size=VOCABULARY),
                             token_types=True)


# === Distiller ================================================================================


def _mlm_data(count=16, length=12, seed=0, padded=True):
    """Masked-LM batches: uneven padding and masked-position weights."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCABULARY, (count, length)).astype("int32")
    mask = np.ones_like(ids)
    weights = np.ones((count, 4), "float32")
    if padded:
        for row in range(0, count, 2):  # every other example: 4 padding tokens, 1 weight 0
            mask[row, length - 4:] = 0
            ids[row, length - 4:] = 0
            weights[row, 3] = 0.0
    positions = np.tile(np.array([1, 3, 5, 7], "int32"), (count, 1))
    labels = np.take_along_axis(ids, positions, 1)
    features = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids),
                "masked_positions": positions}
    return features, {"mlm_logits": labels}, {"mlm_logits": weights}


def _dataset(data, batch):
    return tf.data.Dataset.from_tensor_slices(data).batch(batch)


def _pretraining_pair(dtype=None, dropout=0.0):
    teacher_encoder = Encoder.from_preset("bert_tiny", num_layers=4, vocabulary_size=VOCABULARY,
                                          dropout=0.0)
    teacher = randomized(PretrainingModel(teacher_encoder, sentence_order=False), 4)
    overrides = {"dtype": dtype} if dtype else {}
    student = PretrainingModel(
        student_from_teacher(teacher, dropout=dropout, **overrides), sentence_order=True)
    return teacher, student


def _assert_weighted_sum(logs, distiller):
    for step in range(len(logs["loss"])):
        expected = (distiller.alpha_ce * logs["ce_loss"][step]
                    + distiller.alpha_hard * logs["hard_loss"][step]
                    + distiller.alpha_cos * logs["cos_loss"][step])
        np.testing.assert_allclose(logs["loss"][step], expected, rtol=1e-5)


def test_masked_lm_distillation_with_fit(tmp_path):
    keras.utils.set_random_seed(0)
    teacher, student = _pretraining_pair(dropout=0.1)
    distiller = Distiller(teacher, student, alpha_mlm=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.encoder.get_weights()]
    features, labels, weights = _mlm_data()

    # The terms are the losses of the two models' own outputs (an independent path
    # through the task models' __call__), in inference mode.
    terms = distiller.distillation_losses(features, labels, weights)
    task_inputs = dict(features)
    want = np_reference_losses(
        teacher(task_inputs)["mlm_logits"], student(task_inputs)["mlm_logits"],
        labels["mlm_logits"], teacher.encoder(features)["sequence_output"],
        student.encoder(features)["sequence_output"], features["input_mask"], 2.0,
        weights["mlm_logits"])
    for name in ("ce", "hard", "cos"):
        np.testing.assert_allclose(float(terms[name]), want[name], rtol=1e-4, atol=1e-7)

    history = distiller.fit(_dataset((features, labels, weights), 8), epochs=8, verbose=0)
    logs = history.history
    assert {"loss", "ce_loss", "hard_loss", "cos_loss", "accuracy"} <= set(logs)
    assert logs["loss"][-1] < 0.8 * logs["loss"][0]
    _assert_weighted_sum(logs, distiller)
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), teacher_before))
    assert not teacher.trainable
    assert any(not np.array_equal(a, b)
               for a, b in zip(student.encoder.get_weights(), student_before))
    # The unused sentence-order head is left alone rather than failing the step.
    assert student.sop_head is not None

    predicted = distiller.predict(features, verbose=0)
    alone = student.predict(features, verbose=0)
    np.testing.assert_allclose(predicted["mlm_logits"], alone["mlm_logits"], atol=1e-6)
    evaluated = distiller.evaluate(_dataset((features, labels, weights), 8), verbose=0,
                                   return_dict=True)
    assert evaluated["hard_loss"] > 0 and 0 <= evaluated["accuracy"] <= 1

    # The trained student saves and reloads alone.
    path = str(tmp_path / "student.keras")
    student.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(features, verbose=0)["mlm_logits"],
                               alone["mlm_logits"], atol=1e-5)


def test_task_distillation_with_fit_and_config_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    teacher = randomized(SequenceClassifier(
        Encoder.from_preset("bert_tiny", num_layers=4, vocabulary_size=VOCABULARY),
        num_classes=3), 5)
    # A mixed_float16 student: `compile` must add loss scaling.
    student = SequenceClassifier(
        student_from_teacher(teacher, dropout=0.0, dtype="mixed_float16"), num_classes=3,
        dropout=0.0)
    distiller = Distiller(teacher, student, temperature=3.0, alpha_ce=1.0, alpha_hard=0.5,
                          alpha_cos=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(3e-3))
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    features = _inputs(batch=16, length=8)
    del features["input_type_ids"]  # the teacher gets type ids 0; the student needs none
    labels = (features["input_word_ids"][:, 1] % 3).astype("int32")
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    history = distiller.fit(_dataset((features, labels), 8), epochs=6, verbose=0)
    logs = history.history
    assert {"loss", "ce_loss", "hard_loss", "cos_loss", "accuracy"} <= set(logs)
    assert logs["loss"][-1] < 0.8 * logs["loss"][0]
    _assert_weighted_sum(logs, distiller)
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), teacher_before))
    assert any(not np.array_equal(a, b) for a, b in zip(student.get_weights(), student_before))
    np.testing.assert_allclose(distiller.predict(features, verbose=0),
                               student.predict(features, verbose=0), atol=1e-6)

    config = distiller.get_config()
    clone = Distiller.from_config(json.loads(json.dumps(config)))
    assert (clone.temperature, clone.alpha_ce, clone.alpha_hard, clone.alpha_cos) == (
        3.0, 1.0, 0.5, 2.0)
    assert isinstance(clone.student, SequenceClassifier) and not clone.teacher.trainable
    assert clone.student.encoder.dtype_policy.name == "mixed_float16"
    # Only the student trains, also when the teacher comes back from a config.
    assert len(clone.trainable_weights) == len(student.trainable_weights) > 0
    assert not any(v.trainable for v in clone.teacher.weights)
    clone.set_weights(distiller.get_weights())
    np.testing.assert_allclose(clone.predict(features, verbose=0),
                               student.predict(features, verbose=0), atol=1e-6)
    with pytest.raises(TypeError, match="same kind"):
        Distiller(teacher, PretrainingModel(student.encoder))


def test_mixed_bfloat16_student_trains():
    keras.utils.set_random_seed(2)
    features, labels, weights = _mlm_data(count=8)
    teacher, student = _pretraining_pair(dtype="mixed_bfloat16", dropout=0.1)
    assert student.encoder.dtype_policy.name == "mixed_bfloat16"
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = distiller.fit(_dataset((features, labels, weights), 4), epochs=3, verbose=0)
    assert all(np.isfinite(history.history[key]).all() for key in history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(np.isfinite(w).all() for w in student.get_weights())


_MIRRORED = textwrap.dedent(
    """
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    sys.path.insert(0, {root!r})
    from tests.test_distill import _mlm_data, randomized, VOCABULARY
    from keras_albert.models import Distiller, PretrainingModel, student_from_teacher
    from keras_albert.models.encoder import Encoder

    def build():
        teacher_encoder = Encoder.from_preset("bert_tiny", num_layers=4, dropout=0.0,
                                              vocabulary_size=VOCABULARY)
        teacher = randomized(PretrainingModel(teacher_encoder, sentence_order=False))
        student = PretrainingModel(student_from_teacher(teacher_encoder),
                                   sentence_order=False)
        return teacher, student

    reference = build()
    initial = [model.get_weights() for model in reference]

    def train(strategy):
        with strategy.scope():
            teacher, student = build()
            teacher.set_weights(initial[0])
            student.set_weights(initial[1])
            distiller = Distiller(teacher, student)
            distiller.compile(optimizer=keras.optimizers.SGD(0.1))
        # Global batch 8 = 2 replicas x 4; the replicas hold different numbers of real
        # tokens and masked positions (rows alternate), which per-replica means would
        # weigh wrongly.
        features, labels, weights = _mlm_data(count=24)
        features["input_mask"][:4, 4:] = 0
        weights["mlm_logits"][:4, 1:] = 0.0
        data = tf.data.Dataset.from_tensor_slices((features, labels, weights)).batch(8)
        history = distiller.fit(data, epochs=1, verbose=0)
        return student.get_weights(), history.history["loss"][-1]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    one, one_loss = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two, two_loss = train(mirrored)
    print(json.dumps({{
        "difference": max(float(np.abs(a - b).max()) for a, b in zip(one, two)),
        "moved": max(float(np.abs(a - b).max()) for a, b in zip(one, initial[1])),
        "losses": [one_loss, two_loss]}}))
    """
)


def test_mirrored_strategy_matches_one_device():
    root = str(pathlib.Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", _MIRRORED.format(root=root)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["moved"] > 1e-3
    assert result["difference"] <= 1e-5, result
    np.testing.assert_allclose(result["losses"][0], result["losses"][1], rtol=1e-5)
