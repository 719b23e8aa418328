"""TensorFlow Serving exports, checked in a fresh process that imports only
tensorflow + tensorflow_text (and tensorflow-serving-api's protos for the warm-up file).

The parent exports with keras_albert and computes the Keras model's outputs; the
child loads the SavedModels, serves them and writes what it saw to an .npz file.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_albert import Encoder
from keras_albert.conversion.huggingface import write_tokenizer
from keras_albert.export import export_for_serving, export_saved_model
from keras_albert.models import student_from_teacher
from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer, WordPieceTokenizer
from keras_albert.models.task_kinds import task_model

from conftest import read_tsv_column

SEQ = 24

# Serves every export listed in the job file and records outputs, warm-up replays and
# the errors bad requests raise. Imports nothing of keras_albert.
CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the graphs use)
from tensorflow_serving.apis import prediction_log_pb2

job = json.load(open(sys.argv[1]))
out = {}

def error_of(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the type is what we record
        return type(error).__name__ + ": " + str(error)[:300]
    return ""

for name, spec in job["exports"].items():
    served = tf.saved_model.load(spec["path"])
    text_fn = served.signatures["serving_default"]
    ids_fn = served.signatures["token_ids"]
    if spec["pairs"]:
        texts = {"text_a": tf.constant(job["text_a"]), "text_b": tf.constant(job["text_b"])}
    else:
        texts = {"text": tf.constant(job["texts"])}
    for key, value in text_fn(**texts).items():
        out[f"{name}/text/{key}"] = value.numpy()
        out[f"{name}/dtype/{key}"] = np.array(value.dtype.name)
    ids = {k: tf.constant(v) for k, v in np.load(spec["ids"]).items()}
    for key, value in ids_fn(**ids).items():
        out[f"{name}/ids/{key}"] = value.numpy()
    # The warm-up records parse as PredictionLogs and replay against the model.
    replayed = []
    for record in tf.data.TFRecordDataset(spec["path"] + "/assets.extra/tf_serving_warmup_requests"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        fn = served.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        result = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        replayed.append([sorted(inputs), len(next(iter(inputs.values()))),
                         {k: list(v.shape) for k, v in result.items()}])
    out[f"{name}/warmup"] = np.array(json.dumps(replayed))
    # Bad requests.
    first_key = sorted(texts)[0]
    bad = dict(texts)
    bad[first_key] = tf.constant([1, 2])
    out[f"{name}/error/non_string"] = np.array(error_of(lambda: text_fn(**bad)))
    flat = {k: tf.reshape(v, [-1]) for k, v in ids.items()}
    out[f"{name}/error/rank1_ids"] = np.array(error_of(lambda: ids_fn(**flat)))
    short = dict(ids)
    short["input_mask"] = ids["input_mask"][:, :3]
    out[f"{name}/error/mismatched_ids"] = np.array(error_of(lambda: ids_fn(**short)))
    if spec["pairs"]:
        uneven = {"text_a": texts["text_a"], "text_b": texts["text_b"][:-1]}
        out[f"{name}/error/uneven_pairs"] = np.array(error_of(lambda: text_fn(**uneven)))
    empty = {k: tf.constant([], tf.string) for k in texts}
    for key, value in text_fn(**empty).items():
        out[f"{name}/empty/{key}"] = np.array(value.shape.as_list())

out["imported_keras_albert"] = np.array("keras_albert" in sys.modules)
np.savez(job["result"], **out)
"""


@pytest.fixture(scope="module")
def wordpiece(data_dir):
    return WordPieceTokenizer(str(data_dir / "vocab" / "bert_uncased_vocab.txt"))


@pytest.fixture(scope="module")
def sentencepiece(data_dir):
    return SentencePieceTokenizer(str(data_dir / "vocab" / "albert_spiece_rebuilt.model"))


@pytest.fixture(scope="module")
def sentences(data_dir):
    texts = read_tsv_column(data_dir / "sst2" / "dev.tsv", "sentence", limit=6)
    # Longer than SEQ word pieces (truncated, never an error) and empty.
    return texts + [" ".join(texts), ""]


def _serve(tmp_path, exports, texts, pairs_texts=None):
    """Runs CHILD on the exports; returns its outputs as a dict of arrays."""
    job = {"exports": exports, "texts": texts, "result": str(tmp_path / "served.npz")}
    if pairs_texts is not None:
        job["text_a"], job["text_b"] = pairs_texts
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = subprocess.run([sys.executable, "-c", CHILD, str(job_file)],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(tmp_path / "served.npz") as served:
        return {key: served[key] for key in served.files}


def _ids_file(tmp_path, name, features):
    path = tmp_path / f"{name}_ids.npz"
    np.savez(path, **{key: np.asarray(value) for key, value in features.items()})
    return str(path)


def _keras_outputs(model, features):
    outputs = model(features, training=False)
    if isinstance(model, Encoder):
        return {key: np.asarray(outputs[key], "float32")
                for key in ("pooled_output", "sequence_output")}
    return {"logits": np.asarray(outputs, "float32")}


def test_served_outputs_equal_keras_for_albert_bert_and_a_student(
        tmp_path, wordpiece, sentencepiece, sentences):
    albert = task_model(
        Encoder.from_preset("albert_tiny", vocabulary_size=sentencepiece.vocabulary_size,
                            seed=1), "classification", num_classes=3)
    bert_encoder = Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size,
                                       seed=2)
    bert = task_model(bert_encoder, "classification", num_classes=2)
    student = task_model(student_from_teacher(bert_encoder, num_layers=1),
                         "classification", num_classes=2)
    regressor = task_model(
        Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=3),
        "regression")
    multilabel = task_model(
        Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=4),
        "multilabel", num_classes=4)
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size,
                                  seed=5)
    albert_pre = Preprocessor(sentencepiece, seq_length=SEQ)
    bert_pre = Preprocessor(wordpiece, seq_length=SEQ)
    cases = {
        "albert": (albert, albert_pre, {}),
        "bert": (bert, bert_pre, {}),
        "student": (student, bert_pre, {}),
        "regressor": (regressor, bert_pre, {}),
        "multilabel": (multilabel, bert_pre, {"task": "multilabel"}),
        "encoder": (encoder, bert_pre, {}),
    }
    exports = {}
    expected = {}
    for name, (model, preprocessor, kwargs) in cases.items():
        path = export_saved_model(model, str(tmp_path / name), preprocessor, **kwargs)
        features = preprocessor(sentences)
        expected[name] = _keras_outputs(model, features)
        exports[name] = {"path": path, "pairs": False,
                         "ids": _ids_file(tmp_path, name, features)}
    served = _serve(tmp_path, exports, sentences)

    assert not served["imported_keras_albert"]
    for name, outputs in expected.items():
        for key, value in outputs.items():
            np.testing.assert_allclose(served[f"{name}/text/{key}"], value, atol=1e-5,
                                       err_msg=f"{name} {key}")
            np.testing.assert_allclose(served[f"{name}/ids/{key}"],
                                       served[f"{name}/text/{key}"], atol=1e-6)
            assert str(served[f"{name}/dtype/{key}"]) == "float32"
    # Derived outputs.
    for name in ("albert", "bert", "student"):
        probabilities = served[f"{name}/text/probabilities"]
        np.testing.assert_allclose(
            probabilities, _softmax(expected[name]["logits"]), atol=1e-6)
    np.testing.assert_allclose(served["regressor/text/predictions"],
                               expected["regressor"]["logits"][:, 0], atol=1e-5)
    np.testing.assert_allclose(served["multilabel/text/probabilities"],
                               1 / (1 + np.exp(-expected["multilabel"]["logits"])), atol=1e-6)
    np.testing.assert_array_equal(served["encoder/text/input_mask"],
                                  np.asarray(bert_pre(sentences)["input_mask"]))
    # Over-long texts were truncated to SEQ, empty ones served.
    assert served["encoder/text/sequence_output"].shape[:2] == (len(sentences), SEQ)

    # Warm-up: one request with all default texts, then one per text, all replayed.
    replayed = json.loads(str(served["bert/warmup"]))
    assert [batch for _, batch, _ in replayed] == [3, 1, 1, 1]
    assert all(keys == ["text"] for keys, _, _ in replayed)
    assert replayed[0][2]["logits"] == [3, 2]

    # Bad requests fail with an error, they do not serve garbage.
    assert served["bert/error/non_string"]
    assert "Shape of tensor" in str(served["bert/error/rank1_ids"])  # ensure_shape's message
    assert "must have the shape of input_word_ids" in str(served["bert/error/mismatched_ids"])
    assert list(served["bert/empty/logits"]) == [0, 2]
    assert list(served["encoder/empty/sequence_output"])[:2] == [0, SEQ]


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def test_pairs_and_mixed_precision_serve_float32(tmp_path, wordpiece, data_dir):
    text_a = read_tsv_column(data_dir / "mrpc" / "dev.tsv", "#1 String", limit=5)
    text_b = read_tsv_column(data_dir / "mrpc" / "dev.tsv", "#2 String", limit=5)
    preprocessor = Preprocessor(wordpiece, seq_length=SEQ)  # pairs are truncated here
    model = task_model(
        Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=6,
                            dtype="mixed_bfloat16"), "classification", num_classes=2)
    features = preprocessor((text_a, text_b))
    path = export_saved_model(model, str(tmp_path / "pairs"), preprocessor, pairs=True,
                              warmup_texts=[(text_a[0], text_b[0])])
    served = _serve(tmp_path, {"pairs": {"path": path, "pairs": True,
                                         "ids": _ids_file(tmp_path, "pairs", features)}},
                    [], pairs_texts=(text_a, text_b))
    assert str(served["pairs/dtype/logits"]) == "float32"
    # bfloat16 compute: the Keras model's own (bfloat16) logits, cast, within its precision.
    np.testing.assert_allclose(served["pairs/text/logits"],
                               np.asarray(model(features), "float32"), atol=2e-2)
    np.testing.assert_allclose(served["pairs/ids/logits"], served["pairs/text/logits"],
                               atol=1e-6)
    assert "text_a and text_b must hold the same number of texts" in str(
        served["pairs/error/uneven_pairs"])
    replayed = json.loads(str(served["pairs/warmup"]))
    assert [(keys, batch) for keys, batch, _ in replayed] == [
        (["text_a", "text_b"], 1), (["text_a", "text_b"], 1)]


def test_saved_model_cli_lists_the_documented_signatures(tmp_path, wordpiece):
    model = task_model(
        Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=7),
        "classification", num_classes=2)
    path = export_saved_model(model, str(tmp_path / "cli"), Preprocessor(wordpiece, SEQ))
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
         "--dir", path, "--all"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    default = text.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    ids = text.split("signature_def['token_ids']")[1].split("signature_def[")[0]
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING" in default
    for name in ("logits", "probabilities"):
        assert f"outputs['{name}'] tensor_info:\n        dtype: DT_FLOAT" in default
        assert f"outputs['{name}'] tensor_info:\n        dtype: DT_FLOAT" in ids
    for name in ("input_word_ids", "input_mask", "input_type_ids"):
        assert f"inputs['{name}'] tensor_info:\n        dtype: DT_INT32" in ids


def test_versioned_layout_never_overwrites(tmp_path, wordpiece):
    model = Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=8)
    preprocessor = Preprocessor(wordpiece, SEQ)
    base = tmp_path / "serving" / "encoder"
    first = export_for_serving(model, str(base), preprocessor, warmup_texts=())
    second = export_for_serving(model, str(base), preprocessor, warmup_texts=())
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging folder left behind
    assert not os.path.exists(os.path.join(first, "assets.extra"))
    with pytest.raises(FileExistsError, match="Version 2 already exists"):
        export_for_serving(model, str(base), preprocessor, version=2)
    with pytest.raises(ValueError, match="non-negative integer"):
        export_for_serving(model, str(base), preprocessor, version="3")
    with pytest.raises(TypeError, match="warmup_texts must be strings"):
        export_for_serving(model, str(base), preprocessor, warmup_texts=[1])
    with pytest.raises(ValueError, match="preprocessor"):
        export_saved_model(model, str(tmp_path / "x"), None)
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_export_command_from_a_finetune_directory(tmp_path, wordpiece, capsys):
    from keras_albert.cli import main

    model = task_model(
        Encoder.from_preset("bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=9),
        "classification", num_classes=2)
    run = tmp_path / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    write_tokenizer(wordpiece, str(run))
    (run / "summary.json").write_text(json.dumps(
        {"task": "classification", "text_inputs": 1, "seq_length": SEQ}))
    assert main(["export", str(run), str(tmp_path / "serving")]) == 0
    assert main(["export", str(run), str(tmp_path / "serving")]) == 0
    assert sorted(os.listdir(tmp_path / "serving")) == ["1", "2"]
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "serving" / "2"))
    out = served.signatures["serving_default"](text=tf.constant(["a fine film"]))
    expected = model(Preprocessor(wordpiece, SEQ)(["a fine film"]))
    np.testing.assert_allclose(out["logits"].numpy(), np.asarray(expected), atol=1e-5)

    # --format hub: encoder/ and preprocessor/ beside each other, the run's seq length.
    assert main(["export", str(run), str(tmp_path / "hub"), "--format", "hub"]) == 0
    hub_encoder = tf.saved_model.load(str(tmp_path / "hub" / "encoder"))
    hub_preprocessor = tf.saved_model.load(str(tmp_path / "hub" / "preprocessor"))
    features = hub_preprocessor(tf.constant(["a fine film"]))
    expected_features = Preprocessor(wordpiece, SEQ)(["a fine film"])
    for key, value in expected_features.items():
        np.testing.assert_array_equal(features[key].numpy(), np.asarray(value))
    np.testing.assert_allclose(
        hub_encoder(features)["pooled_output"].numpy(),
        np.asarray(model.encoder(expected_features)["pooled_output"]), atol=1e-5)

    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "hub"), "--format", "hub"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err
