"""examples/serving_client.py: the REST and gRPC payloads of docs/serving.md, run
against a real export.

The parent builds a tiny classifier with keras_albert, exports it and computes the
Keras model's outputs (the reference). A fresh child process, importing only
tensorflow, tensorflow_text, tensorflow_serving and the example, sends every payload
through `LocalModelServer` (the JSON parsed as TensorFlow Serving's REST API parses
it) and records the answers and the errors bad requests get.
"""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_albert import Encoder
from keras_albert.export import export_for_serving
from keras_albert.models import SequenceClassifier
from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer

from conftest import read_tsv_column

SEQ = 32
EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "serving_client.py"

CHILD = r"""
import base64, importlib.util, json, sys
import numpy as np

job = json.load(open(sys.argv[1]))
spec = importlib.util.spec_from_file_location("serving_client", job["example"])
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)

server = client.LocalModelServer(job["base"], "sst2")
payloads = client.build_payloads(job["texts"], token_ids=job["ids"])
results = client.query_all(payloads, "sst2", server=server, log=lambda *args: None)
out = {"answers": {f"{signature}/{kind}": {name: value.tolist() for name, value in arrays.items()}
                   for (signature, kind), arrays in results.items()}}

# Strings may come as {"b64": ...} (TensorFlow Serving's convention for bytes).
encoded = [{"b64": base64.b64encode(text.encode("utf-8")).decode("ascii")}
           for text in job["texts"]]
out["b64"] = server.rest_predict({"instances": encoded})["predictions"]
out["empty_columnar"] = server.rest_predict({"inputs": {"text": []}})
out["served_version"] = server.version

def error_of(call):
    try:
        call()
    except client.ServingError as error:
        return str(error)
    return ""

ids = job["ids"]
rows = [{name: ids[name][row] for name in ids} for row in range(len(ids["input_mask"]))]
short_row = dict(rows[1], input_word_ids=rows[1]["input_word_ids"][:5],
                 input_mask=rows[1]["input_mask"][:5], input_type_ids=rows[1]["input_type_ids"][:5])
float_ids = [[float(value) for value in row] for row in ids["input_word_ids"]]
bodies = {
    "unknown_signature": {"signature_name": "classify", "instances": ["a fine film"]},
    "instance_shapes_differ": {"signature_name": "token_ids", "instances": [rows[0], short_row]},
    "instance_missing_input": {"signature_name": "token_ids",
                               "instances": [{"input_word_ids": ids["input_word_ids"][0]}]},
    "plain_list_for_three_inputs": {"signature_name": "token_ids",
                                    "instances": ids["input_word_ids"]},
    "columns_batch_differ": {"signature_name": "token_ids",
                             "inputs": dict(ids, input_mask=ids["input_mask"][:1])},
    "columns_ragged": {"signature_name": "token_ids",
                       "inputs": dict(ids, input_word_ids=[[101, 102], [101]])},
    "number_for_text": {"instances": [1, 2]},
    "float_ids": {"signature_name": "token_ids", "inputs": dict(ids, input_word_ids=float_ids)},
    "bad_base64": {"instances": [{"b64": "not base64!"}]},
    "both_layouts": {"instances": ["a"], "inputs": ["a"]},
    "no_inputs": {"signature_name": "serving_default"},
    "not_json": "{instances: [",
    "not_an_object": "[1, 2]",
}
out["errors"] = {name: error_of(lambda body=body: server.rest_predict(body))
                 for name, body in bodies.items()}
request = client.predict_request({"sentence": ["a"]}, "sst2")
out["errors"]["grpc_wrong_input"] = error_of(lambda: server.predict(request))
request = client.predict_request({"text": [[1, 2]]}, "sst2")
out["errors"]["grpc_wrong_dtype"] = error_of(lambda: server.predict(request))
request = client.predict_request({"text": ["a"]}, "imdb")
out["errors"]["grpc_wrong_model"] = error_of(lambda: server.predict(request))
request = client.predict_request({"text": ["a"]}, "sst2", version=7)
out["errors"]["grpc_missing_version"] = error_of(lambda: server.predict(request))
out["errors"]["rest_bad_url"] = error_of(lambda: client.post_rest("localhost:8501", "sst2", {}))
out["errors"]["rest_unreachable"] = error_of(
    lambda: client.post_rest("http://127.0.0.1:9", "sst2", {"instances": ["a"]}, timeout=5))
out["errors"]["grpc_bad_target"] = error_of(
    lambda: client.predict_grpc("http://localhost:8500", request))

out["imported"] = sorted(name for name in ("keras_albert",) if name in sys.modules)
json.dump(out, open(job["result"], "w"))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, data_dir):
    """Exports a random bert_tiny classifier; returns the child's record and the Keras
    model's logits for the same texts."""
    tmp_path = tmp_path_factory.mktemp("serving_example")
    tokenizer = WordPieceTokenizer(str(data_dir / "vocab" / "bert_uncased_vocab.txt"))
    preprocessor = Preprocessor(tokenizer, seq_length=SEQ)
    classifier = SequenceClassifier(
        Encoder.from_preset("bert_tiny", vocabulary_size=tokenizer.vocabulary_size, seed=4),
        num_classes=2, dropout=0.0)
    # Real SST-2 sentences, one longer than SEQ word pieces, non-ASCII text, empty text.
    texts = read_tsv_column(data_dir / "sst2" / "dev.tsv", "sentence", limit=3)
    texts += ["Un film très réussi — naïve, charmant.", ""]
    base = tmp_path / "serving" / "sst2"
    export_for_serving(classifier, str(base), preprocessor, version=9, warmup_texts=())
    # A newer version: the server must pick 10 (numeric order), not 9 (text order).
    shutil.copytree(base / "9", base / "10")
    features = preprocessor(texts)
    logits = np.asarray(classifier.predict(features, verbose=0), "float32")
    job = {
        "example": str(EXAMPLE),
        "base": str(base),
        "texts": texts,
        "ids": {name: np.asarray(value).tolist() for name, value in features.items()},
        "result": str(tmp_path / "served.json"),
    }
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = subprocess.run([sys.executable, "-c", CHILD, str(job_file)],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((tmp_path / "served.json").read_text()), logits


def _softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def test_every_payload_answers_what_the_keras_model_computes(served):
    record, logits = served
    answers = record["answers"]
    assert sorted(answers) == sorted(
        f"{signature}/{kind}" for signature in ("serving_default", "token_ids")
        for kind in ("rest-row", "rest-columnar", "grpc"))
    for key, outputs in answers.items():
        assert sorted(outputs) == ["logits", "probabilities"], key
        np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5, err_msg=key)
        np.testing.assert_allclose(outputs["probabilities"], _softmax(logits), atol=1e-5,
                                   err_msg=key)
    # REST writes each float32 with the fewest digits that read back to it, so both
    # layouts and gRPC carry identical float32 values; the raw-text and token-id
    # signatures compute the same thing.
    for signature in ("serving_default", "token_ids"):
        grpc = answers[f"{signature}/grpc"]
        for kind in ("rest-row", "rest-columnar"):
            for name, value in answers[f"{signature}/{kind}"].items():
                np.testing.assert_array_equal(np.float32(value), np.float32(grpc[name]))
    for name in ("logits", "probabilities"):
        np.testing.assert_allclose(answers["token_ids/grpc"][name],
                                   answers["serving_default/grpc"][name], atol=1e-6)


def test_base64_strings_empty_batches_and_the_latest_version(served):
    record, logits = served
    np.testing.assert_allclose([row["logits"] for row in record["b64"]], logits, atol=1e-5)
    assert record["empty_columnar"] == {"outputs": {"logits": [], "probabilities": []}}
    assert record["served_version"] == 10
    # The serving side needs tensorflow + tensorflow_text (+ serving protos), not
    # keras_albert (tensorflow_text itself may import keras).
    assert record["imported"] == []


@pytest.mark.parametrize("name, message", [
    ("unknown_signature", 'Serving signature name: "classify" not found in signature def'),
    ("instance_shapes_differ", ("Failed to process element: 1 key: input_", "of 'instances' "
                                "list. Error: Expecting tensor size: 32 but got: 5")),
    ("instance_missing_input", "keys must be equal to: input_mask,input_type_ids,input_word_ids"),
    ("plain_list_for_three_inputs", "instances is a plain list, but expecting list of objects"),
    ("columns_batch_differ", "input_mask must have the shape of input_word_ids"),
    ("columns_ragged", "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ("number_for_text", "JSON Value: 1 Type: Number is not of expected type: string"),
    ("float_ids", "JSON Value: 101.0 Type: Number is not of expected type: int32"),
    ("bad_base64", "Unable to base64 decode"),
    ("both_layouts", "expecting only one of 'inputs' or 'instances'"),
    ("no_inputs", "Missing 'inputs' or 'instances' key"),
    ("not_json", "JSON Parse error"),
    ("not_an_object", "Is not object"),
    ("grpc_wrong_input", "input size does not match signature: 1!=1 len({sentence}) != "
                         "len({text}). Sent extra: {sentence}. Missing but required: {text}."),
    ("grpc_wrong_dtype", "input text is int32; the signature serving_default expects string"),
    ("grpc_wrong_model", "Servable not found for request: Latest(imdb)"),
    ("grpc_missing_version", "Servable not found for request: Specific(sst2, 7)"),
    ("rest_bad_url", "--rest takes the server's base URL, such as http://localhost:8501"),
    ("rest_unreachable", "cannot reach http://127.0.0.1:9/v1/models/sst2:predict"),
    ("grpc_bad_target", "--grpc takes host:port"),
])
def test_bad_requests_get_an_error_naming_the_problem(served, name, message):
    record, _ = served
    for part in (message,) if isinstance(message, str) else message:
        assert part in record["errors"][name]


def test_reduced_demo_exports_and_queries_every_way(tmp_path, capsys):
    # In this process (keras_albert is loaded already): what `python
    # examples/serving_client.py --demo-reduced` runs, with its exit code.
    assert _load_example().main(["--demo-reduced", "--workdir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for signature in ("serving_default", "token_ids"):
        for kind in ("rest-row", "rest-columnar", "grpc"):
            assert f"--- {signature}, {kind}" in printed
    assert '{"predictions": [{"logits": [' in printed
    assert '{"outputs": {"logits": [[' in printed
    worst = float(printed.split("Keras logits| over 6 answers: ")[1].split()[0])
    assert worst <= 1e-5
    assert sorted(os.listdir(tmp_path / "sst2")) == ["1"]


def test_command_line_reports_a_bad_url_and_exits_2(capsys):
    assert _load_example().main(["--rest", "localhost:8501", "a fine film"]) == 2
    assert "serving_client: --rest takes the server's base URL" in capsys.readouterr().err


def _load_example():
    spec = importlib.util.spec_from_file_location("serving_client", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
