"""Malformed requests to exported SavedModels get an error naming the input; they never
crash the process or silently serve something else.

The parent exports tiny models with the real vocabularies (ALBERT SentencePiece and
BERT WordPiece) and computes the Keras answers. A child process importing only
tensorflow + tensorflow_text (and, for the REST cases, examples/serving_client.py with
tensorflow-serving-api's protos) sends each request and records the answer or the
error. A request that kills the child (the scalar string that used to reach the
WordPiece op: SIGSEGV) is recorded as crashed, and the child restarts after it.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import read_tsv_column
from keras_albert import Encoder
from keras_albert.export import export_hub_encoder, export_hub_preprocessor
from keras_albert.export import export_saved_model
from keras_albert.models.task_kinds import task_model
from keras_albert.models.tasks import PretrainingModel
from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer, WordPieceTokenizer

SEQ = 16
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "serving_client.py"
KEYS = ("input_word_ids", "input_mask", "input_type_ids")

CHILD = r"""
import contextlib, importlib.util, io, json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

job = json.load(open(sys.argv[1]))
progress = open(job["progress"], "a")
loaded, servers = {}, {}

def saved_model(path):
    if path not in loaded:
        loaded[path] = tf.saved_model.load(path)
    return loaded[path]

def example():
    if "client" not in loaded:
        spec = importlib.util.spec_from_file_location("serving_client", job["example"])
        loaded["client"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded["client"])
    return loaded["client"]

def session_run(path, signature, inputs, output):
    # TensorFlow Serving loads a SavedModel into a Session (the TF1 restore op) and
    # calls Session::Run, which checks no feed against the signature's shape.
    # Session.run would, in Python, so this calls the runtime directly.
    if ("session", path) not in loaded:
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph)
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        loaded["session", path] = graph, session, meta
    graph, session, meta = loaded["session", path]
    spec = meta.signature_def[signature]
    feeds = {}
    for name, value in inputs.items():
        array = np.array(value)
        if array.dtype.kind == "U":
            array = np.vectorize(str.encode, otypes=[object])(array)
        else:
            array = array.astype(np.int32)
        feeds[graph.get_tensor_by_name(spec.inputs[name].name)._as_tf_output()] = array
    fetch = graph.get_tensor_by_name(spec.outputs[output].name)._as_tf_output()
    return {output: session._call_tf_sessionrun(None, feeds, [fetch], [], None)[0]}

def run(case):
    kind = case["kind"]
    if kind == "signature":
        function = saved_model(case["path"]).signatures[case["signature"]]
        return function(**{name: tf.constant(value) for name, value in case["inputs"].items()})
    if kind == "session":
        return session_run(case["path"], case["signature"], case["inputs"], case["output"])
    if kind == "pack":
        segments = [tf.ragged.constant(segment, tf.int32, row_splits_dtype=tf.int64)
                    for segment in case["segments"]]
        return saved_model(case["path"]).bert_pack_inputs(segments, seq_length=case["seq_length"])
    if kind in ("encoder", "mlm"):
        encoder = saved_model(case["path"])
        call = encoder.mlm if kind == "mlm" else encoder
        return call({name: tf.constant(value) for name, value in case["inputs"].items()})
    client = example()
    if kind == "rest":
        try:
            if case["path"] not in servers:
                servers[case["path"]] = client.LocalModelServer(case["path"], "m")
            return {"answer": servers[case["path"]].rest_predict(case["body"])}
        except client.ServingError as error:
            return {"served_error": str(error), "hint": client.error_hint(str(error))}
    if kind == "client_main":
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = client.main(["--saved-model", case["path"], "--body", case["body_file"]])
        return {"exit_code": code, "stderr": stderr.getvalue()}
    raise ValueError(kind)

def plain(value):
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return np.asarray(value).tolist() if hasattr(value, "shape") else value

for name in job["names"]:
    progress.write(json.dumps({"start": name}) + "\n")
    progress.flush()
    try:
        record = {"value": plain(run(job["cases"][name]))}
    except Exception as error:  # noqa: BLE001 - the type and message are the record
        record = {"error_type": type(error).__name__, "message": str(error)}
    progress.write(json.dumps(dict(record, case=name)) + "\n")
    progress.flush()
progress.write(json.dumps({"keras_albert_imported": "keras_albert" in sys.modules}) + "\n")
"""


def _run_cases(workdir, cases):
    """Runs every case in child processes; returns {case: record}. A case during
    which the child died is recorded as {"crashed": returncode}."""
    results, names, imported = {}, list(cases), []
    while names:
        job = {"cases": cases, "names": names, "example": str(EXAMPLE),
               "progress": str(workdir / "progress.jsonl")}
        (workdir / "progress.jsonl").write_text("")
        (workdir / "job.json").write_text(json.dumps(job))
        done = subprocess.run([sys.executable, "-c", CHILD, str(workdir / "job.json")],
                              capture_output=True, text=True, cwd=str(workdir), timeout=600)
        started = None
        for line in (workdir / "progress.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            elif "case" in record:
                results[record.pop("case")] = record
                started = None
            else:
                imported.append(record["keras_albert_imported"])
        if done.returncode == 0:
            break
        assert started is not None, done.stderr[-4000:]  # died outside a request
        results[started] = {"crashed": done.returncode, "stderr": done.stderr[-2000:]}
        names = names[names.index(started) + 1:]
    assert not any(imported), "the child imported keras_albert"
    return results


@pytest.fixture(scope="module")
def served(tmp_path_factory, data_dir):
    """Exports, the Keras answers, and every request's record from the child."""
    root = tmp_path_factory.mktemp("bad_requests")
    vocab = data_dir / "vocab"
    wordpiece = WordPieceTokenizer(str(vocab / "bert_uncased_vocab.txt"))
    sentencepiece = SentencePieceTokenizer(str(vocab / "albert_spiece_rebuilt.model"))
    texts = read_tsv_column(data_dir / "sst2" / "dev.tsv", "sentence", limit=3)
    text_a = read_tsv_column(data_dir / "mrpc" / "dev.tsv", "#1 String", limit=3)
    text_b = read_tsv_column(data_dir / "mrpc" / "dev.tsv", "#2 String", limit=3)

    bert = task_model(Encoder.from_preset(
        "bert_tiny", vocabulary_size=wordpiece.vocabulary_size, seed=1), "classification",
        num_classes=2)
    albert = task_model(Encoder.from_preset(
        "albert_tiny", vocabulary_size=sentencepiece.vocabulary_size, seed=2),
        "classification", num_classes=3)
    bert_pre, albert_pre = Preprocessor(wordpiece, SEQ), Preprocessor(sentencepiece, SEQ)
    paths = {
        "bert": export_saved_model(bert, str(root / "bert"), bert_pre, warmup_texts=()),
        "albert": export_saved_model(albert, str(root / "albert"), albert_pre,
                                     warmup_texts=()),
        "albert_pairs": export_saved_model(albert, str(root / "albert_pairs"), albert_pre,
                                           pairs=True, warmup_texts=()),
        "hub_wordpiece": export_hub_preprocessor(wordpiece, str(root / "hub_wp"), SEQ),
        "hub_sentencepiece": export_hub_preprocessor(sentencepiece, str(root / "hub_sp"), SEQ),
        "hub_encoder": export_hub_encoder(PretrainingModel(bert.encoder), str(root / "enc")),
    }
    features = {name: np.asarray(value).tolist() for name, value in bert_pre(texts).items()}
    expected = {
        "bert": np.asarray(bert(bert_pre(texts)), "float32"),
        "albert": np.asarray(albert(albert_pre(texts)), "float32"),
        "albert_pairs": np.asarray(albert(albert_pre((text_a, text_b))), "float32"),
        "hub_wordpiece": features["input_word_ids"],
        "hub_sentencepiece": np.asarray(albert_pre(texts)["input_word_ids"]),
        "hub_encoder": np.asarray(bert.encoder(bert_pre(texts))["pooled_output"], "float32"),
    }

    def ids(**changes):
        return dict(features, **changes)

    def bad_row(key, value):  # row 1, position 2 of one id input set to `value`
        rows = [list(row) for row in features[key]]
        rows[1][2] = value
        return ids(**{key: rows})

    def text(path, value, key="text"):
        return {"kind": "signature", "path": paths[path], "signature": "serving_default",
                "inputs": {key: value}}

    def token_ids(inputs):
        return {"kind": "signature", "path": paths["bert"], "signature": "token_ids",
                "inputs": inputs}

    def pairs(a, b):
        return {"kind": "signature", "path": paths["albert_pairs"],
                "signature": "serving_default", "inputs": {"text_a": a, "text_b": b}}

    def pack(path, segments):
        return {"kind": "pack", "path": paths[path], "segments": segments, "seq_length": SEQ}

    def encoder(inputs, kind="encoder"):
        return {"kind": kind, "path": paths["hub_encoder"], "inputs": inputs}

    body_file = root / "scalar_body.json"
    body_file.write_text(json.dumps({"inputs": "a fine film"}))
    cases = {
        "bert/valid": text("bert", texts),
        "bert/valid_ids": token_ids(features),
        "albert/valid": text("albert", texts),
        "albert_pairs/valid": pairs(text_a, text_b),
        "hub_wordpiece/valid": text("hub_wordpiece", texts, "strings"),
        "hub_sentencepiece/valid": text("hub_sentencepiece", texts, "strings"),
        "hub_encoder/valid": encoder(features),
        "session/valid": {"kind": "session", "path": paths["bert"],
                          "signature": "serving_default", "inputs": {"text": texts},
                          "output": "logits"},
        # A scalar string.
        "bert/scalar": text("bert", texts[0]),
        "albert/scalar": text("albert", texts[0]),
        "albert_pairs/scalars": pairs(text_a[0], text_b[0]),
        "albert_pairs/scalar_b": pairs(text_a[:1], text_b[0]),
        "hub_wordpiece/scalar": text("hub_wordpiece", texts[0], "strings"),
        "hub_sentencepiece/scalar": text("hub_sentencepiece", texts[0], "strings"),
        "session/scalar": {"kind": "session", "path": paths["bert"],
                           "signature": "serving_default", "inputs": {"text": texts[0]},
                           "output": "logits"},
        "rest/columnar_scalar": {"kind": "rest", "path": paths["bert"],
                                 "body": {"inputs": "a fine film"}},
        "rest/named_scalar": {"kind": "rest", "path": paths["albert"],
                              "body": {"inputs": {"text": "a fine film"}}},
        "rest/main_scalar_body": {"kind": "client_main", "path": paths["bert"],
                                  "body_file": str(body_file)},
        # Rank 2: a row of two texts, a column of two texts.
        "bert/row": text("bert", [texts[:2]]),
        "albert/row": text("albert", [texts[:2]]),
        "bert/column": text("bert", [[texts[0]], [texts[1]]]),
        "albert_pairs/row_a": pairs([text_a[:2]], text_b[:1]),
        "hub_wordpiece/row": text("hub_wordpiece", [texts[:2]], "strings"),
        "hub_sentencepiece/row": text("hub_sentencepiece", [texts[:2]], "strings"),
        "rest/rows_of_lists": {"kind": "rest", "path": paths["bert"],
                               "body": {"instances": [texts[:2]]}},
        # Uneven pairs.
        "albert_pairs/uneven": pairs(text_a, text_b[:2]),
        "hub_wordpiece/uneven": pack("hub_wordpiece", [[[5, 6], [7]], [[8]]]),
        # Ids the model cannot embed.
        "ids/negative": token_ids(bad_row("input_word_ids", -3)),
        "ids/too_large": token_ids(bad_row("input_word_ids", wordpiece.vocabulary_size)),
        "ids/mask_two": token_ids(bad_row("input_mask", 2)),
        "ids/type_two": token_ids(bad_row("input_type_ids", 2)),
        "hub_encoder/negative": encoder(bad_row("input_word_ids", -1)),
        "hub_encoder/too_large": encoder(bad_row("input_word_ids", 10 ** 6)),
        "hub_encoder/mask_two": encoder(bad_row("input_mask", 2)),
        "hub_encoder/type_two": encoder(bad_row("input_type_ids", 2)),
        "hub_encoder/position_past_end": encoder(
            dict(features, masked_lm_positions=[[1, SEQ]] * len(texts)), kind="mlm"),
        "hub_wordpiece/negative": pack("hub_wordpiece", [[[5, -1], [7]]]),
        "hub_sentencepiece/too_large": pack(
            "hub_sentencepiece", [[[5, sentencepiece.vocabulary_size], [7]]]),
    }
    workdir = root / "child"
    workdir.mkdir()
    return _run_cases(workdir, cases), expected


def _refused(results, case, *names):
    """The InvalidArgumentError message of `case`, which must name each of `names`."""
    record = results[case]
    assert "crashed" not in record, f"{case}: the process died ({record['crashed']})"
    assert record.get("error_type") == "InvalidArgumentError", (case, record)
    for name in names:
        assert name in record["message"], (case, name, record["message"][:600])
    return record["message"]


def test_valid_requests_answer_what_keras_computes(served):
    results, expected = served
    for case, key in [("bert/valid", "logits"), ("bert/valid_ids", "logits"),
                      ("albert/valid", "logits"), ("albert_pairs/valid", "logits"),
                      ("hub_encoder/valid", "pooled_output"),
                      # TensorFlow Serving's way: a Session after the TF1 restore op.
                      ("session/valid", "logits")]:
        assert "value" in results[case], (case, results[case])
        name = case.split("/")[0].replace("session", "bert")
        np.testing.assert_allclose(results[case]["value"][key], expected[name], atol=1e-5,
                                   err_msg=case)
    for name in ("hub_wordpiece", "hub_sentencepiece"):
        np.testing.assert_array_equal(
            results[f"{name}/valid"]["value"]["input_word_ids"], expected[name])


@pytest.mark.parametrize("case, name", [
    ("bert/scalar", "text"), ("albert/scalar", "text"),
    ("albert_pairs/scalars", "text_"),  # text_a or text_b: whichever check ran first
    ("albert_pairs/scalar_b", "text_b"), ("hub_wordpiece/scalar", "strings"),
    ("hub_sentencepiece/scalar", "strings"), ("session/scalar", "text")])
def test_a_scalar_string_is_refused_naming_the_input(served, case, name):
    message = _refused(served[0], case, name)
    assert "[] is not compatible with expected shape [?]" in message


@pytest.mark.parametrize("case, name, shape", [
    ("bert/row", "text", "[1,2]"), ("albert/row", "text", "[1,2]"),
    ("bert/column", "text", "[2,1]"), ("albert_pairs/row_a", "text_a", "[1,2]"),
    ("hub_wordpiece/row", "strings", "[1,2]"), ("hub_sentencepiece/row", "strings", "[1,2]")])
def test_rank_2_texts_are_refused_not_reshaped(served, case, name, shape):
    _refused(served[0], case, name, shape)


def test_uneven_pairs_are_refused(served):
    _refused(served[0], "albert_pairs/uneven", "text_a and text_b must hold the same number")
    _refused(served[0], "hub_wordpiece/uneven", "segment 1 must hold as many texts as segment 0")


@pytest.mark.parametrize("case, message", [
    ("ids/negative", "input_word_ids must hold token ids in [0, 30522)"),
    ("ids/too_large", "input_word_ids must hold token ids in [0, 30522)"),
    ("ids/mask_two", "input_mask must hold 1 (token) or 0 (padding)"),
    ("ids/type_two", "input_type_ids must hold segment ids in [0, 2)"),
    ("hub_encoder/negative", "input_word_ids must hold token ids in [0, 30522)"),
    ("hub_encoder/too_large", "input_word_ids must hold token ids in [0, 30522)"),
    ("hub_encoder/mask_two", "input_mask must hold 1 (token) or 0 (padding)"),
    ("hub_encoder/type_two", "input_type_ids must hold segment ids in [0, 2)"),
    ("hub_encoder/position_past_end", "masked_lm_positions must hold positions in [0, "),
    ("hub_wordpiece/negative", "segment 0 must hold token ids in [0, 30522)"),
    ("hub_sentencepiece/too_large", "segment 0 must hold token ids in [0, 30000)")])
def test_ids_out_of_range_are_refused_naming_the_input(served, case, message):
    _refused(served[0], case, message)


def test_rest_scalar_bodies_get_a_clear_error(served):
    results = served[0]
    for case in ("rest/columnar_scalar", "rest/named_scalar", "rest/rows_of_lists"):
        record = results[case]
        assert "crashed" not in record, f"{case}: the process died ({record['crashed']})"
        value = record.get("value", {})
        assert "Shape of tensor text [" in value.get("served_error", ""), (case, record)
        assert value["hint"].startswith("text must be a list of strings, one per example")
    assert "shape []" in results["rest/columnar_scalar"]["value"]["hint"]
    assert "shape [1,2]" in results["rest/rows_of_lists"]["value"]["hint"]
    main = results["rest/main_scalar_body"]
    assert "crashed" not in main, main
    assert main["value"]["exit_code"] == 2
    stderr = main["value"]["stderr"]
    assert stderr.startswith("serving_client: Shape of tensor text [] is not compatible")
    assert '{"inputs": {"text": ["a fine film"]}}' in stderr


def test_the_client_refuses_one_string_for_a_batch():
    spec = importlib.util.spec_from_file_location("serving_client", EXAMPLE)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    with pytest.raises(ValueError, match="texts must be a list of strings"):
        client.text_inputs("a fine film")
    with pytest.raises(ValueError, match="texts_b must be a list of strings"):
        client.build_payloads(["a"], "b")
    assert client.text_inputs(["a fine film"]) == {"text": ["a fine film"]}
    hint = client.error_hint("Shape of tensor _arg_token_ids_input_mask_0_0 [3] is not "
                             "compatible with expected shape [?,?].")
    assert hint.startswith("input_mask must be a [batch, seq] matrix of ids")
    assert client.error_hint("input_mask must have the shape of input_word_ids") == ""
