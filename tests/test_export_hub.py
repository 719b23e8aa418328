"""TF-Hub-style exports: reusable encoder and preprocessor SavedModels.

This process exports with keras_albert and computes the expected values with the
Keras models. Every check of a SavedModel runs in a fresh subprocess that imports
only tensorflow (+ tensorflow_text, + keras or tensorflow_hub/tf_keras for the
reuse tests), never keras_albert; it gets paths and inputs from files and writes
its observations back (result.json, outputs.npz) for the asserts here.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import read_tsv_column
from keras_albert.export.hub import export_hub_encoder
from keras_albert.export.hub_preprocessor import export_hub_preprocessor
from keras_albert.export.keras_reuse import HubEncoderLayer
from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel
from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer, WordPieceTokenizer

KEYS = ("input_word_ids", "input_mask", "input_type_ids")
ALBERT_VOCAB = 30000
BERT_VOCAB = 30522
PREPROCESS_LENGTH = 32  # the preprocessor exports' default seq_length
CHILD_TIMEOUT = 600

# Read by every child: its working directory, config.json, and how to report back.
_PRELUDE = """
import json, os, pathlib, sys
import numpy as np
workdir = pathlib.Path(sys.argv[1])
config = json.loads((workdir / "config.json").read_text())
results, arrays = {}, {}

def raised(function):
    try:
        function()
    except Exception as error:  # the type is reported to the parent
        return type(error).__name__
    return None

def finish():
    results["keras_albert_imported"] = any(
        name.split(".")[0] == "keras_albert" for name in sys.modules)
    np.savez(workdir / "outputs.npz", **arrays)
    (workdir / "result.json").write_text(json.dumps(results))
"""

_HUB_IMPORT = """
import tf_keras
import tensorflow_hub as hub
"""


def _run_child(body, workdir, config, arrays=None):
    """Runs `body` (after `_PRELUDE`) in a fresh interpreter; returns (results, arrays)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    if arrays is not None:
        np.savez(workdir / "inputs.npz", **arrays)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + body + "\nfinish()\n", str(workdir)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    assert done.returncode == 0, f"child failed:\n{done.stderr[-6000:]}"
    results = json.loads((workdir / "result.json").read_text())
    assert results["keras_albert_imported"] is False
    with np.load(workdir / "outputs.npz") as outputs:
        return results, dict(outputs)


def _padded_batch(vocabulary_size, batch=4, length=12, seed=0):
    """Random ids with [CLS]/[SEP], real lengths 3..length, two segments, padding."""
    rng = np.random.default_rng(seed)
    lengths = np.array([length, 3, 7, 10][:batch])
    ids = rng.integers(5, vocabulary_size, size=(batch, length)).astype("int32")
    positions = np.arange(length)[None, :]
    mask = (positions < lengths[:, None]).astype("int32")
    type_ids = ((positions >= lengths[:, None] // 2) & (mask == 1)).astype("int32")
    ids[:, 0] = 2
    ids[np.arange(batch), lengths - 1] = 3
    ids = ids * mask
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": type_ids}


def _numpy_outputs(outputs):
    flat = {
        "pooled_output": np.asarray(outputs["pooled_output"], "float32"),
        "sequence_output": np.asarray(outputs["sequence_output"], "float32"),
    }
    for index, value in enumerate(outputs["encoder_outputs"]):
        flat[f"encoder_outputs/{index}"] = np.asarray(value, "float32")
    return flat


# === Encoder exports, checked in one child ===

_ENCODER_CHILD = """
import tensorflow as tf
inputs = dict(np.load(workdir / "inputs.npz"))
ids = {key: tf.constant(inputs[key]) for key in config["keys"]}
for name, path in config["paths"].items():
    encoder = tf.saved_model.load(path)
    report = results[name] = {}
    out = encoder(ids, training=False)
    again = encoder(ids)
    report["output_keys"] = sorted(out)
    report["dtypes"] = {key: out[key].dtype.name for key in ("pooled_output", "sequence_output", "default")}
    report["dtypes"]["encoder_outputs"] = sorted({value.dtype.name for value in out["encoder_outputs"]})
    report["num_encoder_outputs"] = len(out["encoder_outputs"])
    report["deterministic"] = bool(
        np.array_equal(out["sequence_output"].numpy(), again["sequence_output"].numpy())
        and np.array_equal(out["pooled_output"].numpy(), again["pooled_output"].numpy()))
    arrays[name + "/pooled_output"] = out["pooled_output"].numpy()
    arrays[name + "/sequence_output"] = out["sequence_output"].numpy()
    arrays[name + "/default"] = out["default"].numpy()
    for index, value in enumerate(out["encoder_outputs"]):
        arrays[name + "/encoder_outputs/" + str(index)] = value.numpy()
    trained = encoder(ids, training=True)
    report["training_max_diff"] = float(np.max(np.abs(
        trained["sequence_output"].numpy() - out["sequence_output"].numpy())))
    # Batch and sequence dimensions are free.
    short = encoder({key: value[:1, :5] for key, value in ids.items()})
    report["short_shape"] = short["sequence_output"].shape.as_list()
    signature = encoder.signatures["serving_default"](**ids)
    report["signature_keys"] = sorted(signature)
    arrays[name + "/signature/pooled_output"] = signature["pooled_output"].numpy()
    report["endpoint_max_diff"] = float(np.max(np.abs(
        encoder.serve(ids)["pooled_output"].numpy() - out["pooled_output"].numpy())))
    report["reusable"] = {
        "callable": callable(encoder),
        "variables": len(encoder.variables),
        "trainable_variables": len(encoder.trainable_variables),
        "regularization_losses": len(encoder.regularization_losses),
    }
    if hasattr(encoder, "mlm"):
        features = dict(ids, masked_lm_positions=tf.constant(inputs["masked_lm_positions"]))
        mlm = encoder.mlm(features, training=False)
        arrays[name + "/mlm_logits"] = mlm["mlm_logits"].numpy()
        arrays[name + "/mlm/pooled_output"] = mlm["pooled_output"].numpy()
        report["mlm_dtype"] = mlm["mlm_logits"].dtype.name
        report["mlm_shares_variables"] = all(
            any(v is w for w in encoder.mlm.trainable_variables)
            for v in encoder.trainable_variables)
        report["mlm_reusable"] = [len(encoder.mlm.trainable_variables),
                                  len(encoder.mlm.regularization_losses)]

fixed = tf.saved_model.load(config["fixed_length_path"])
fixed_out = fixed(ids)
arrays["fixed/sequence_output"] = fixed_out["sequence_output"].numpy()
results["fixed"] = {
    "static_shape": fixed.serve.concrete_functions[0].structured_outputs[
        "sequence_output"].shape.as_list(),
    "other_length": raised(lambda: fixed({key: value[:, :5] for key, value in ids.items()})),
}

bad = tf.saved_model.load(config["paths"][config["bad_input_model"]])
results["bad_inputs"] = {
    "float_ids": raised(lambda: bad(dict(ids, input_word_ids=tf.cast(ids["input_word_ids"], tf.float32)))),
    "rank_3": raised(lambda: bad({key: value[:, :, None] for key, value in ids.items()})),
    "rank_1": raised(lambda: bad({key: value[0] for key, value in ids.items()})),
    "missing_key": raised(lambda: bad({key: ids[key] for key in ("input_word_ids", "input_mask")})),
}
"""


@pytest.fixture(scope="module")
def encoder_exports(tmp_path_factory):
    """Exports four tiny encoders; returns (child results, child arrays, expected)."""
    root = tmp_path_factory.mktemp("hub_encoders")
    keras.utils.set_random_seed(1)
    albert = Encoder.from_preset(
        "albert_tiny", vocabulary_size=ALBERT_VOCAB, hidden_dim=32, embedding_dim=16,
        num_heads=2, intermediate_dim=64, num_layers=2, num_groups=1, inner_group_num=2,
    )
    pretraining = PretrainingModel(albert)
    bert = Encoder.from_preset(
        "bert_tiny", vocabulary_size=BERT_VOCAB, hidden_dim=32, num_heads=2,
        intermediate_dim=64, dropout=0.1,
    )
    distilbert = Encoder.from_preset(
        "distilbert_tiny", vocabulary_size=1000, hidden_dim=32, num_heads=2, intermediate_dim=64,
    )
    bfloat16 = Encoder.from_preset(
        "bert_tiny", vocabulary_size=1000, hidden_dim=32, num_heads=2, intermediate_dim=64,
        dtype="mixed_bfloat16",
    )
    inputs = _padded_batch(1000)
    inputs["masked_lm_positions"] = np.array([[1, 2], [1, 1], [3, 5], [2, 8]], "int32")
    features = {key: tf.constant(inputs[key]) for key in KEYS}

    expected = {}
    for name, model in [("albert", albert), ("bert", bert), ("distilbert", distilbert),
                        ("bfloat16", bfloat16)]:
        expected[name] = _numpy_outputs(model(features, training=False))
    pretraining_out = pretraining(
        dict(features, masked_positions=tf.constant(inputs["masked_lm_positions"])),
        training=False,
    )
    expected["albert"]["mlm_logits"] = np.asarray(pretraining_out["mlm_logits"], "float32")

    paths = {
        "albert": export_hub_encoder(pretraining, str(root / "albert")),
        "bert": export_hub_encoder(bert, str(root / "bert")),
        "distilbert": export_hub_encoder(distilbert, str(root / "distilbert")),
        "bfloat16": export_hub_encoder(bfloat16, str(root / "bfloat16")),
    }
    fixed_length_path = export_hub_encoder(
        distilbert, str(root / "distilbert_fixed"), seq_length=inputs["input_mask"].shape[1]
    )
    config = {"paths": paths, "keys": list(KEYS), "bad_input_model": "bert",
              "fixed_length_path": fixed_length_path}
    results, arrays = _run_child(_ENCODER_CHILD, root / "child", config, inputs)
    counts = {
        "albert": (len(albert.variables), len(albert.trainable_variables)),
        "bert": (len(bert.variables), len(bert.trainable_variables)),
    }
    return results, arrays, expected, counts


@pytest.mark.parametrize("name", ["albert", "bert", "distilbert"])
def test_encoder_outputs_match_keras(encoder_exports, name):
    results, arrays, expected, _ = encoder_exports
    report = results[name]
    assert report["output_keys"] == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
    assert report["num_encoder_outputs"] == len(
        [key for key in expected[name] if key.startswith("encoder_outputs/")]
    )
    for key, value in expected[name].items():
        if key == "mlm_logits":
            continue
        np.testing.assert_allclose(arrays[f"{name}/{key}"], value, atol=1e-5, rtol=0, err_msg=key)
    np.testing.assert_allclose(
        arrays[f"{name}/default"], expected[name]["pooled_output"], atol=1e-5, rtol=0
    )
    # Separately traced graphs may round differently in the last bits.
    np.testing.assert_allclose(
        arrays[f"{name}/signature/pooled_output"], arrays[f"{name}/pooled_output"],
        atol=1e-6, rtol=0,
    )
    assert report["signature_keys"] == ["default", "pooled_output", "sequence_output"]
    assert report["endpoint_max_diff"] < 1e-6
    assert report["short_shape"] == [1, 5, 32]


def test_albert_export_has_one_output_per_block_application(encoder_exports):
    results, *_ = encoder_exports
    # 2 layers x 2 inner blocks, one shared group.
    assert results["albert"]["num_encoder_outputs"] == 4


def test_training_flag_turns_dropout_on(encoder_exports):
    results, *_ = encoder_exports
    for name in ("albert", "bert", "distilbert"):
        assert results[name]["deterministic"], name
    assert results["bert"]["training_max_diff"] > 1e-3  # dropout 0.1
    assert results["albert"]["training_max_diff"] == 0.0  # ALBERT presets: dropout 0


def test_reusable_savedmodel_attributes(encoder_exports):
    results, _, _, counts = encoder_exports
    for name in ("albert", "bert"):
        reusable = results[name]["reusable"]
        assert reusable["callable"]
        assert (reusable["variables"], reusable["trainable_variables"]) == counts[name]
        assert reusable["regularization_losses"] == 0


def test_mlm_sub_object_matches_pretraining_model(encoder_exports):
    results, arrays, expected, counts = encoder_exports
    report = results["albert"]
    assert report["mlm_dtype"] == "float32"
    assert arrays["albert/mlm_logits"].shape == (4, 2, ALBERT_VOCAB)
    np.testing.assert_allclose(
        arrays["albert/mlm_logits"], expected["albert"]["mlm_logits"], atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(
        arrays["albert/mlm/pooled_output"], arrays["albert/pooled_output"], atol=1e-6, rtol=0
    )
    assert report["mlm_shares_variables"]
    assert report["mlm_reusable"][0] > counts["albert"][1]  # encoder + masked-LM head
    assert report["mlm_reusable"][1] == 0
    assert "mlm_dtype" not in results["bert"]


def test_mixed_bfloat16_export_returns_float32(encoder_exports):
    results, arrays, expected, _ = encoder_exports
    dtypes = results["bfloat16"]["dtypes"]
    assert dtypes == {
        "pooled_output": "float32",
        "sequence_output": "float32",
        "default": "float32",
        "encoder_outputs": ["float32"],
    }
    np.testing.assert_allclose(
        arrays["bfloat16/sequence_output"], expected["bfloat16"]["sequence_output"],
        atol=2e-2, rtol=2e-2,  # a bf16 ulp at |x| ~ 2 is 0.016; graphs round differently
    )


def test_fixed_seq_length_export(encoder_exports):
    results, arrays, expected, _ = encoder_exports
    length = expected["distilbert"]["sequence_output"].shape[1]
    assert results["fixed"]["static_shape"] == [None, length, 32]
    np.testing.assert_allclose(
        arrays["fixed/sequence_output"], expected["distilbert"]["sequence_output"],
        atol=1e-5, rtol=0,
    )
    assert results["fixed"]["other_length"] in {"TypeError", "ValueError"}


def test_encoder_refuses_bad_inputs(encoder_exports):
    results, *_ = encoder_exports
    allowed = {"TypeError", "ValueError", "InvalidArgumentError"}
    for case, error in results["bad_inputs"].items():
        assert error in allowed, (case, error)


def test_export_hub_encoder_refuses_other_models(tmp_path):
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=100, hidden_dim=16, num_heads=2)
    with pytest.raises(TypeError, match="Encoder"):
        export_hub_encoder(keras.Sequential([keras.layers.Dense(2)]), str(tmp_path / "x"))
    with pytest.raises(ValueError, match="seq_length"):
        export_hub_encoder(encoder, str(tmp_path / "y"), seq_length=10_000)


# === Preprocessor exports, one child per vocabulary ===

_PREPROCESSOR_CHILD = """
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops)
preprocessor = tf.saved_model.load(config["path"])
texts = tf.constant(config["texts"])
text_a, text_b = tf.constant(config["text_a"]), tf.constant(config["text_b"])
for key, value in preprocessor(texts).items():
    arrays["call/" + key] = value.numpy()
    results["call_dtype"] = value.dtype.name
tokens = preprocessor.tokenize(texts)
results["tokenize"] = {"type": type(tokens).__name__, "rank": tokens.shape.rank,
                       "dtype": tokens.dtype.name}
arrays["tokenize/values"] = tokens.flat_values.numpy()
arrays["tokenize/row_splits"] = tokens.row_splits.numpy()
a, b = preprocessor.tokenize(text_a), preprocessor.tokenize(text_b)
packs = {
    "one": preprocessor.bert_pack_inputs([a], seq_length=config["length_one"]),
    "two": preprocessor.bert_pack_inputs([a, b], seq_length=tf.constant(config["length_two"])),
    "two_int64": preprocessor.bert_pack_inputs(
        [a, b], seq_length=tf.constant(config["length_one"], tf.int64)),
    "default": preprocessor.bert_pack_inputs([a]),
}
for name, packed in packs.items():
    for key, value in packed.items():
        arrays[name + "/" + key] = value.numpy()
empty = preprocessor(tf.constant([], tf.string))
results["empty_batch"] = {key: value.shape.as_list() for key, value in empty.items()}
results["special"] = {
    key: int(value) for key, value in preprocessor.tokenize.get_special_tokens_dict().items()}
results["too_short"] = raised(lambda: preprocessor.bert_pack_inputs([a, b], seq_length=2))
"""


def _tokenizer(data_dir, kind):
    vocab = data_dir / "vocab"
    if kind == "sentencepiece":
        path = vocab / "albert_spiece_rebuilt.model"
        return SentencePieceTokenizer(str(path)) if path.exists() else None
    path = vocab / "bert_uncased_vocab.txt"
    return WordPieceTokenizer(str(path)) if path.exists() else None


@pytest.fixture(scope="module")
def sst2(data_dir):
    path = data_dir / "sst2" / "train.tsv"
    sentences = read_tsv_column(path, "sentence", limit=128)
    labels = [int(label) for label in read_tsv_column(path, "label", limit=128)]
    return sentences, labels


@pytest.fixture(scope="module")
def preprocessor_exports(data_dir, tmp_path_factory):
    """One export per vocabulary that exists: {kind: (tokenizer, path)}."""
    root = tmp_path_factory.mktemp("hub_preprocessors")
    exports = {}
    for kind in ("sentencepiece", "wordpiece"):
        tokenizer = _tokenizer(data_dir, kind)
        if tokenizer is not None:
            # From a Preprocessor for one, from a bare tokenizer for the other.
            source = Preprocessor(tokenizer, seq_length=PREPROCESS_LENGTH)
            if kind == "wordpiece":
                source, length = tokenizer, PREPROCESS_LENGTH
            else:
                length = None
            path = export_hub_preprocessor(source, str(root / kind), seq_length=length)
            exports[kind] = (tokenizer, path)
    return exports


def _dense(preprocessor_outputs):
    return {key: np.asarray(value) for key, value in preprocessor_outputs.items()}


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_preprocessor_matches_keras_preprocessor(preprocessor_exports, sst2, kind, tmp_path):
    if kind not in preprocessor_exports:
        pytest.skip(f"no {kind} vocabulary in the shared data folder")
    tokenizer, path = preprocessor_exports[kind]
    sentences = sst2[0][:64]
    long_text = " ".join(sentences[:30])  # hundreds of tokens
    texts = sentences[:32] + [long_text, "", "  ", "Ünïcödé — naïve café!"]
    medium_text = " ".join(sentences[:8])  # > half of either budget, < long_text
    # Pairs where both segments overflow (the longer first, then second, odd and even
    # budgets) are where longest_first differs from tf_text's ShrinkLongestTrimmer.
    text_a = sentences[32:48] + [long_text, "", long_text, medium_text, medium_text]
    text_b = sentences[48:64] + ["", long_text, medium_text, long_text, medium_text]
    config = {"path": path, "texts": texts, "text_a": text_a, "text_b": text_b,
              "length_one": 24, "length_two": 40}
    results, arrays = _run_child(_PREPROCESSOR_CHILD, tmp_path / "child", config)

    expected = {
        "call": Preprocessor(tokenizer, seq_length=PREPROCESS_LENGTH)(tf.constant(texts)),
        "one": Preprocessor(tokenizer, seq_length=24)(tf.constant(text_a)),
        "two": Preprocessor(tokenizer, seq_length=40)((tf.constant(text_a), tf.constant(text_b))),
        "two_int64": Preprocessor(tokenizer, seq_length=24)(
            (tf.constant(text_a), tf.constant(text_b))),
        "default": Preprocessor(tokenizer, seq_length=PREPROCESS_LENGTH)(tf.constant(text_a)),
    }
    for name, outputs in expected.items():
        for key, value in _dense(outputs).items():
            np.testing.assert_array_equal(arrays[f"{name}/{key}"], value, err_msg=f"{name}/{key}")
    assert results["call_dtype"] == "int32"
    assert arrays["call/input_word_ids"].shape == (len(texts), PREPROCESS_LENGTH)

    tokens = tokenizer(tf.constant(texts))
    assert results["tokenize"] == {"type": "RaggedTensor", "rank": 2, "dtype": "int32"}
    np.testing.assert_array_equal(arrays["tokenize/values"], tokens.flat_values.numpy())
    np.testing.assert_array_equal(arrays["tokenize/row_splits"], tokens.row_splits.numpy())

    # The long text was cut, the empty one packed as [CLS] [SEP].
    long_row = texts.index(long_text)
    assert len(tokens[long_row]) > 3 * PREPROCESS_LENGTH
    assert arrays["call/input_mask"][long_row].sum() == PREPROCESS_LENGTH
    assert arrays["call/input_word_ids"][long_row, -1] == tokenizer.sep_id
    empty_row = texts.index("")
    assert arrays["call/input_word_ids"][empty_row, :3].tolist() == [
        tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id]

    assert results["empty_batch"] == {key: [0, PREPROCESS_LENGTH] for key in KEYS}
    assert results["special"] == {
        "vocab_size": tokenizer.vocabulary_size,
        "start_of_sequence_id": tokenizer.cls_id,
        "end_of_segment_id": tokenizer.sep_id,
        "padding_id": tokenizer.pad_id,
        "mask_id": tokenizer.mask_id,
    }
    assert results["too_short"] == "InvalidArgumentError"


def test_export_hub_preprocessor_refuses_bad_arguments(data_dir, tmp_path):
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(ValueError, match="longest_first"):
        export_hub_preprocessor(
            Preprocessor(tokenizer, truncation="round_robin"), str(tmp_path / "x"))
    with pytest.raises(ValueError, match="seq_length"):
        export_hub_preprocessor(tokenizer, str(tmp_path / "y"), seq_length=1)
    with pytest.raises(TypeError):
        export_hub_preprocessor("vocab.txt", str(tmp_path / "z"))


# === Reuse: fine-tuning inside Keras 3 and tf_keras models ===

@pytest.fixture(scope="module")
def reuse_setup(preprocessor_exports, sst2, tmp_path_factory):
    """A tiny BERT with the real WordPiece vocabulary, exported, and its preprocessor."""
    if "wordpiece" not in preprocessor_exports:
        pytest.skip("no WordPiece vocabulary in the shared data folder")
    root = tmp_path_factory.mktemp("hub_reuse")
    keras.utils.set_random_seed(2)
    encoder = Encoder.from_preset(
        "bert_tiny", vocabulary_size=BERT_VOCAB, hidden_dim=32, num_heads=2,
        intermediate_dim=64, dropout=0.1,
    )
    path = export_hub_encoder(encoder, str(root / "encoder"))
    sentences, labels = sst2
    config = {
        "encoder": path,
        "preprocessor": preprocessor_exports["wordpiece"][1],
        "texts": sentences[:96],
        "labels": labels[:96],
        "epochs": 10,
    }
    return root, config


# Shared by the Keras 3 and tf_keras reuse children: fit, then record the losses and
# which encoder weights changed.
_FIT_AND_RECORD = """
before = [weight.numpy().copy() for weight in encoder.trainable_weights]
history = model.fit(features, labels, epochs=config["epochs"], batch_size=16, verbose=0)
results["loss"] = [float(value) for value in history.history["loss"]]
results["num_trainable"] = len(encoder.trainable_weights)
results["num_changed"] = sum(
    int(not np.array_equal(old, weight.numpy()))
    for old, weight in zip(before, encoder.trainable_weights))
"""


_KERAS3_CHILD = """
import tensorflow as tf
import tensorflow_text  # noqa: F401
import keras
keras.utils.set_random_seed(0)
preprocessor = tf.saved_model.load(config["preprocessor"])
features = {key: value.numpy() for key, value in preprocessor(tf.constant(config["texts"])).items()}
labels = np.array(config["labels"], "int32")
encoder = keras.layers.TFSMLayer(config["encoder"], call_endpoint="serve",
                                 call_training_endpoint="call_training", trainable=True)
inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key)
          for key in ("input_word_ids", "input_mask", "input_type_ids")}
logits = keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
model = keras.Model(inputs, logits)
model.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
# Keras builds the optimizer in the first traced step, where TensorFlow refuses the
# ":0" of restored variable names in slot names; built eagerly, it does not check.
model.optimizer.build(model.trainable_variables)
""" + _FIT_AND_RECORD + """results["optimizer"] = type(model.optimizer).__name__
batch = {key: value[:8] for key, value in features.items()}
results["dropout_in_training"] = float(np.max(np.abs(
    encoder(batch, training=True)["sequence_output"].numpy()
    - encoder(batch, training=False)["sequence_output"].numpy())))
"""


def test_keras3_tfsmlayer_fine_tunes_with_adam(reuse_setup):
    root, config = reuse_setup
    results, _ = _run_child(_KERAS3_CHILD, root / "keras3", config)
    assert results["optimizer"] == "Adam"
    assert results["dropout_in_training"] > 1e-3  # call_training_endpoint is wired
    assert results["num_trainable"] > 10
    # Every encoder weight was updated (through the SavedModel's own variables).
    assert results["num_changed"] == results["num_trainable"]
    loss = results["loss"]
    assert loss[-1] < 0.8 * loss[0], loss


_TF_KERAS_CHILD = _HUB_IMPORT + """
import tensorflow as tf
import tensorflow_text  # noqa: F401
tf_keras.utils.set_random_seed(0)
preprocessor = hub.load(config["preprocessor"])
tokenize = hub.KerasLayer(preprocessor.tokenize)
pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=32))
features = {key: value.numpy()
            for key, value in pack([tokenize(tf.constant(config["texts"]))]).items()}
labels = np.array(config["labels"], "int32")
encoder = hub.KerasLayer(config["encoder"], trainable=True)
inputs = {key: tf_keras.Input(shape=(None,), dtype=tf.int32, name=key)
          for key in ("input_word_ids", "input_mask", "input_type_ids")}
logits = tf_keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
model = tf_keras.Model(inputs, logits)
model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
              loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
""" + _FIT_AND_RECORD + """results["optimizer"] = type(model.optimizer).__module__ + "." + type(model.optimizer).__name__
results["shape"] = list(features["input_word_ids"].shape)
"""


def test_tf_keras_hub_layer_fine_tunes_with_adam(reuse_setup):
    root, config = reuse_setup
    results, _ = _run_child(_TF_KERAS_CHILD, root / "tf_keras", config)
    assert results["optimizer"].startswith("tf_keras") and results["optimizer"].endswith("Adam")
    assert results["shape"] == [len(config["texts"]), 32]
    assert results["num_trainable"] > 10
    assert results["num_changed"] == results["num_trainable"]
    loss = results["loss"]
    assert loss[-1] < 0.8 * loss[0], loss


def test_hub_encoder_layer_needs_no_eager_optimizer_build(reuse_setup):
    """keras_reuse.HubEncoderLayer (our loader) trains with a plain `fit`."""
    _, config = reuse_setup
    layer = HubEncoderLayer(config["encoder"])
    assert not any(":" in weight.name for weight in layer.weights)
    inputs = {key: keras.Input(shape=(None,), dtype="int32", name=key) for key in KEYS}
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)["pooled_output"]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    features = _padded_batch(BERT_VOCAB, seed=3)
    before = layer.trainable_weights[0].numpy().copy()
    model.fit(features, np.array([0, 1, 0, 1]), epochs=2, batch_size=2, verbose=0)
    assert not np.array_equal(before, layer.trainable_weights[0].numpy())
