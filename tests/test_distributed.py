"""Data-parallel `fit` equals one device: `mirrored` over 2 logical CPUs and
`multi_worker` (MultiWorkerMirroredStrategy) with 2 worker processes on 127.0.0.1.

The models are our own task models (classifier, pretrainer) and the `Distiller`,
dropout off, trained for 4 steps of a global batch of 8 with Adam / AdamW (so
optimizer slots and the update, not only gradients, must agree), validated after each
epoch (`test_step` under the strategy) and then used for `predict`.

Each multi-worker process gets data in which the *other* worker's slice of every
global batch is corrupted (other tokens, other labels). Only true synchronous training
(each worker computing on its own clean slice, gradients all-reduced) matches the
one-device run on the clean data; a worker training alone (e.g. a model built outside
`strategy.scope()`) sees the corrupted rows and ends elsewhere, which the reference
process measures as a negative control.
"""

import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import free_ports, subprocess_env

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
KINDS = ("classifier", "pretrainer", "distiller")

_SCRIPT = r'''
import json, os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
mode, out = sys.argv[1], sys.argv[2]
import tensorflow as tf
if mode == "reference":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, ROOT)
from keras_albert.training.strategy import DistributionPlan, resolve_strategy, worker_role
worker_strategy = resolve_strategy("multi_worker") if mode == "worker" else None
import keras
import numpy as np
from keras_albert.models import (Distiller, PretrainingModel, SequenceClassifier,
                                 student_from_teacher)
from keras_albert.models.encoder import Encoder
from keras_albert.optimizers import create_optimizer

VOCAB, SEQ, GLOBAL, ROWS, M = 64, 12, 8, 16, 3


def features(rng, rows):
    ids = rng.integers(5, VOCAB, size=(rows, SEQ)).astype("int32")
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    mask[::2, SEQ - 3:] = 0  # some padding, the same pattern in every slice
    return {"input_word_ids": ids * mask, "input_mask": mask,
            "input_type_ids": np.zeros_like(ids)}


def data(kind, corrupt_other_than=None, seed=0):
    """(x, y[, w]) arrays of ROWS rows (two global batches). With
    `corrupt_other_than=i`, the rows of every global batch that belong to the other
    worker (the other half) are replaced by different random rows."""
    rng = np.random.default_rng(seed)
    x = features(rng, ROWS)
    if kind == "pretrainer":
        x["masked_positions"] = np.tile(np.array([1, 4, 7], "int32"), (ROWS, 1))
        y = {"mlm_logits": rng.integers(5, VOCAB, size=(ROWS, M)).astype("int32"),
             "sop_logits": rng.integers(0, 2, size=ROWS).astype("int32")}
        w = {"mlm_logits": np.ones((ROWS, M), "float32"),
             "sop_logits": np.ones(ROWS, "float32")}
        w["mlm_logits"][:, 2] = 0.0  # a padded prediction in every row
    else:
        y = (x["input_word_ids"][:, 1] % 2).astype("int32")
        w = None
    if corrupt_other_than is not None:
        bad = np.random.default_rng(1000 + corrupt_other_than)
        half = GLOBAL // 2
        rows = [r for r in range(ROWS) if (r % GLOBAL) // half != corrupt_other_than]
        noise = features(bad, len(rows))
        for key in ("input_word_ids",):
            x[key][rows] = noise[key]
        if kind == "pretrainer":
            y["mlm_logits"][rows] = bad.integers(5, VOCAB, size=(len(rows), M))
            y["sop_logits"][rows] = 1 - y["sop_logits"][rows]
        else:
            y[rows] = 1 - y[rows]
    return (x, y) if w is None else (x, y, w)


def classifier(num_layers=2):
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=VOCAB, dropout=0.0,
                                  num_layers=num_layers, seed=0)
    return SequenceClassifier(encoder, num_classes=2, dropout=0.0)


def build(kind):
    keras.utils.set_random_seed(0)
    if kind == "classifier":
        model = classifier()
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        return model, model
    if kind == "pretrainer":
        from keras_albert.training.pretrain import compile_pretrainer

        encoder = Encoder.from_preset("bert_tiny", vocabulary_size=VOCAB, dropout=0.0, seed=0)
        model = PretrainingModel(encoder)
        # AdamW here: AdaFactor normalises each update by the root of its second
        # moments (epsilon 1e-30), so float32 rounding differences of near-zero
        # gradients between two summation orders become differences of the order of
        # the learning rate (see tests/test_memory_options_together.py); its slots are
        # checked bit for bit by the resume tests instead.
        compile_pretrainer(model, create_optimizer("adamw", 1e-2, weight_decay=0.01))
        return model, model
    teacher = classifier(num_layers=2)
    student = SequenceClassifier(student_from_teacher(teacher.encoder, num_layers=1,
                                                      pooler=True),
                                 num_classes=2, dropout=0.0)
    student.head.set_weights(teacher.head.get_weights())
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    return distiller, student


def train(kind, strategy, corrupt_other_than=None):
    plan = DistributionPlan(strategy, GLOBAL)
    with strategy.scope():
        model, trained = build(kind)
    import tensorflow as tf

    def dataset(arrays):
        return plan.prepare(tf.data.Dataset.from_tensor_slices(arrays).batch(GLOBAL))

    history = model.fit(dataset(data(kind, corrupt_other_than)), epochs=2, verbose=0,
                        validation_data=dataset(data(kind, seed=7)))
    x = data(kind, seed=7)[0]
    predictions = model.predict(dataset(x), verbose=0)
    if isinstance(predictions, dict):
        predictions = predictions["mlm_logits"]
    return ([np.asarray(w) for w in trained.get_weights()], np.asarray(predictions),
            {key: [float(v) for v in values] for key, values in history.history.items()})


def save(name, result):
    weights, predictions, history = result
    np.savez(os.path.join(out, name + ".npz"), predictions=predictions,
             **{f"w{i}": w for i, w in enumerate(weights)})
    with open(os.path.join(out, name + ".json"), "w") as handle:
        json.dump(history, handle)


if mode == "reference":
    # One strategy object per process: two MirroredStrategy objects reuse collective
    # instance keys, and the second one's all-reduce then meets the first one's shapes.
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
for kind in KINDS:
    if mode == "reference":
        save(f"{kind}-one", train(kind, one))
        save(f"{kind}-mirrored", train(kind, mirrored))
        # Negative control: worker 0's data trained by one worker alone.
        save(f"{kind}-alone", train(kind, one, corrupt_other_than=0))
        with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
            model, trained = build(kind)
        np.savez(os.path.join(out, f"{kind}-initial.npz"),
                 **{f"w{i}": w for i, w in enumerate(trained.get_weights())})
    else:
        index = worker_role(worker_strategy)[0]
        assert worker_strategy.num_replicas_in_sync == 2
        save(f"{kind}-worker{index}", train(kind, worker_strategy, corrupt_other_than=index))
print("done")
'''.replace("ROOT", repr(ROOT)).replace("KINDS", repr(KINDS))


def _weights(path):
    with np.load(path) as saved:
        count = len([key for key in saved.files if key.startswith("w")])
        return [saved[f"w{i}"] for i in range(count)]


def _predictions(path):
    with np.load(path) as saved:
        return saved["predictions"]


def _max_difference(a, b):
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def _start_workers(out, count=2):
    ports = free_ports(count)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(count):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, "worker", str(out)],
            env=subprocess_env(TF_CONFIG=config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT))
    return processes


def _wait(processes, timeout):
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(1, deadline - time.monotonic()))
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs the reference process (one device, mirrored, negative control) and the two
    workers at the same time; returns the output folder."""
    out = tmp_path_factory.mktemp("distributed")
    reference = subprocess.Popen([sys.executable, "-c", _SCRIPT, "reference", str(out)],
                                 env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, cwd=ROOT)
    workers = _start_workers(out)
    outputs = _wait([reference] + workers, timeout=900)
    for name, (code, _, stderr) in zip(("reference", "worker 0", "worker 1"), outputs):
        assert code == 0, f"{name} failed:\n{stderr[-4000:]}"
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_mirrored_over_two_logical_cpus_matches_one_device(results, kind):
    one = _weights(results / f"{kind}-one.npz")
    moved = _max_difference(one, _weights(results / f"{kind}-initial.npz"))
    assert moved > 1e-3, "training did not change the weights"
    difference = _max_difference(one, _weights(results / f"{kind}-mirrored.npz"))
    print(f"{kind}: weights moved {moved:.3g}; mirrored vs one device {difference:.3g}")
    assert difference <= 1e-5
    np.testing.assert_allclose(_predictions(results / f"{kind}-mirrored.npz"),
                               _predictions(results / f"{kind}-one.npz"), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_multi_worker_matches_one_device_and_detects_lone_workers(results, kind):
    one = _weights(results / f"{kind}-one.npz")
    # The control: one worker training alone on its (partly corrupted) data differs.
    alone = _max_difference(one, _weights(results / f"{kind}-alone.npz"))
    assert alone > 1e-3, alone
    for index in (0, 1):
        worker = _weights(results / f"{kind}-worker{index}.npz")
        difference = _max_difference(one, worker)
        print(f"{kind}: worker {index} vs one device {difference:.3g} (a lone worker: "
              f"{alone:.3g})")
        assert difference <= 1e-5, (index, alone)
        # predict() under the strategy gathers both workers' rows in order.
        np.testing.assert_allclose(_predictions(results / f"{kind}-worker{index}.npz"),
                                   _predictions(results / f"{kind}-one.npz"), atol=1e-4)
    reference = json.loads((results / f"{kind}-one.json").read_text())
    for index in (0, 1):
        history = json.loads((results / f"{kind}-worker{index}.json").read_text())
        assert set(history) == set(reference)
        assert all(np.isfinite(v).all() for v in history.values())
        # Logs are means over the replicas; training losses agree with one device.
        np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-4)


def test_steps_per_execution_is_refused_where_keras_fails():
    code = (
        "import tensorflow as tf\n"
        "from keras_albert.training.strategy import DistributionPlan, check_steps_per_execution\n"
        "assert DistributionPlan('cpu', 8, steps_per_execution=4).steps_per_execution == 4\n"
        "try:\n"
        "    check_steps_per_execution(tf.distribute.MirroredStrategy(['/cpu:0']), 2)\n"
        "except ValueError as error:\n"
        "    assert 'steps_per_execution=2' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('not refused')\n"
        "try:\n"
        "    DistributionPlan(tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1']), 7)\n"
        "except ValueError as error:\n"
        "    assert 'multiple' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('odd batch accepted')\n"
        "print('ok')\n"
    )
    prelude = ("import tensorflow as tf\n"
               "cpu = tf.config.list_physical_devices('CPU')[0]\n"
               "tf.config.set_logical_device_configuration(cpu, "
               "[tf.config.LogicalDeviceConfiguration()] * 2)\n")
    done = subprocess.run([sys.executable, "-c", prelude + code], env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
