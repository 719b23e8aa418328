"""Query a keras-albert model served by TensorFlow Serving, over REST or gRPC.

`keras-albert export RUN serving/sst2` writes a SavedModel with two signatures:
`serving_default` (raw text: `text`, or `text_a` + `text_b` for pair tasks) and
`token_ids` (int32 `input_word_ids`, `input_mask`, `input_type_ids`). This script
builds the requests TensorFlow Serving takes for both, sends them, and prints the
answers (docs/serving.md is the guide):

    # A running server (docker run ... tensorflow/serving, see docs/serving.md):
    python examples/serving_client.py --rest http://localhost:8501 --model-name sst2 \
        "a fine film" "a dull, lifeless mess"
    python examples/serving_client.py --grpc localhost:8500 --model-name sst2 \
        --vocab vocab.txt --seq 64 "a fine film"

    # No server: the very same payloads against the SavedModel, the JSON parsed the
    # way TensorFlow Serving's REST API parses it (BASE/<latest version> or a version):
    python examples/serving_client.py --saved-model serving/sst2 "a fine film"

    # CI: a tiny random bert_tiny classifier, exported and queried every way.
    python examples/serving_client.py --demo-reduced

The `token_ids` requests need ids: `--vocab FILE --seq N` tokenizes on the client
with keras-albert's `Preprocessor` (any tokenizer giving the same ids will do), or
`--ids-json FILE` gives them (`{"input_word_ids": [[...]], ...}`). Without either,
only `serving_default` is queried.

REST needs only the standard library; gRPC needs `tensorflow` and
`tensorflow-serving-api` (`tf.make_tensor_proto` and the generated stubs);
`--saved-model` needs `tensorflow` and `tensorflow-text` (the graph tokenizes with
its ops), never keras-albert.
"""

import argparse
import base64
import binascii
import json
import os
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

TEXT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "token_ids"
ID_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")

# Two SST-2 dev sentences (label 1 and 0), as GLUE spells them.
DEFAULT_TEXTS = ["lovely and poignant .", "this movie is maddening ."]


class ServingError(Exception):
    """What TensorFlow Serving (or the way to it) answered instead of outputs."""


# ---------------------------------------------------------------------------
# Requests: the inputs of each signature, as the REST JSON body and as gRPC protos.
# ---------------------------------------------------------------------------

def text_inputs(texts, texts_b=None):
    """The named inputs of `serving_default`: a batch of strings (or two, for pairs)."""
    for name, column in (("texts", texts), ("texts_b", texts_b)):
        # list("a fine film") would send eleven one-letter texts.
        if isinstance(column, (str, bytes)):
            raise ValueError(f"{name} must be a list of strings, one per example; got one "
                             f"string: {column!r} (send [{column!r}]).")
    if texts_b is None:
        return {"text": list(texts)}
    if len(texts) != len(texts_b):
        raise ValueError(f"text_a has {len(texts)} rows, text_b {len(texts_b)}.")
    return {"text_a": list(texts), "text_b": list(texts_b)}


def token_id_inputs(features):
    """The named inputs of `token_ids` from a dict of int [batch, seq] arrays (what a
    `Preprocessor` returns), as nested lists of Python ints for JSON."""
    return {name: np.asarray(features[name]).astype(int).tolist() for name in ID_INPUTS}


def rest_body(inputs, signature_name=TEXT_SIGNATURE, row_format=True):
    """The JSON body of `POST /v1/models/NAME:predict` for named columns `inputs`.

    Row format (`instances`): one entry per batch row; a bare value when the
    signature has a single input (`["a", "b"]`), else one object per row holding
    every input. Columnar (`inputs`): the columns as they are. The answer comes back
    in the same layout: `predictions` (a list of per-row objects) for rows,
    `outputs` (an object of columns) for columnar.
    """
    body = {"signature_name": signature_name}
    if not row_format:
        body["inputs"] = dict(inputs)
        return body
    names = list(inputs)
    sizes = {name: len(inputs[name]) for name in names}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"Row format needs one batch size for all inputs; got {sizes}.")
    if len(names) == 1:
        body["instances"] = list(inputs[names[0]])
    else:
        body["instances"] = [{name: inputs[name][row] for name in names}
                             for row in range(sizes[names[0]])]
    return body


def _dtype_of(column):
    leaf = column
    while isinstance(leaf, (list, tuple)) and leaf:
        leaf = leaf[0]
    return "string" if isinstance(leaf, (str, bytes)) else "int32"


def predict_request(inputs, model_name, signature_name=TEXT_SIGNATURE, version=None):
    """A gRPC `PredictRequest` for named columns `inputs` (strings become DT_STRING,
    ids DT_INT32, the dtypes of the export's signatures)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, column in inputs.items():
        dtype = tf.string if _dtype_of(column) == "string" else tf.int32
        request.inputs[name].CopyFrom(tf.make_tensor_proto(column, dtype=dtype))
    return request


# ---------------------------------------------------------------------------
# Sending them to a server.
# ---------------------------------------------------------------------------

def predict_url(base_url, model_name, version=None):
    """`http://host:8501` -> `http://host:8501/v1/models/NAME[/versions/N]:predict`."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServingError(
            f"--rest takes the server's base URL, such as http://localhost:8501; got "
            f"{base_url!r}.")
    path = f"/v1/models/{urllib.parse.quote(model_name)}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return f"{base_url.rstrip('/')}{path}:predict"


def post_rest(base_url, model_name, body, version=None, timeout=30.0):
    """POSTs `body` (a dict, or JSON text) and returns the decoded JSON answer.

    The server's `{"error": ...}` answers and unreachable servers raise
    `ServingError` with the URL and the server's message.
    """
    url = predict_url(base_url, model_name, version)
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    data = data.encode("utf-8") if isinstance(data, str) else data
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            text = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            pass
        raise ServingError(f"POST {url}: HTTP {error.code}: {text}") from None
    except urllib.error.URLError as error:
        raise ServingError(f"cannot reach {url}: {error.reason}") from None


def predict_grpc(target, request, timeout=30.0):
    """Sends a `PredictRequest` to `host:port` (TensorFlow Serving's gRPC port, 8500
    by default) and returns the `PredictResponse`."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    if "://" in target or ":" not in target:
        raise ServingError(f"--grpc takes host:port, such as localhost:8500; got {target!r}.")
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingError(
                f"gRPC Predict at {target}: {error.code().name}: {error.details()}") from None


# ---------------------------------------------------------------------------
# Reading the answers back as arrays.
# ---------------------------------------------------------------------------

def response_arrays(response):
    """`{output name: numpy array}` from a gRPC `PredictResponse`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def rest_arrays(answer, output_name="output"):
    """`{output name: numpy array}` from a REST answer in either layout. A model with
    a single output has its name left out by the server: `output_name` stands in."""
    if "error" in answer:
        raise ServingError(answer["error"])
    if "predictions" in answer:
        rows = answer["predictions"]
        if rows and isinstance(rows[0], dict):
            return {name: np.array([row[name] for row in rows], "float32") for name in rows[0]}
        return {output_name: np.array(rows, "float32")}
    outputs = answer["outputs"]
    if isinstance(outputs, dict):
        return {name: np.array(value, "float32") for name, value in outputs.items()}
    return {output_name: np.array(outputs, "float32")}


# ---------------------------------------------------------------------------
# Offline: the SavedModel behind TensorFlow Serving's REST and gRPC front ends.
# ---------------------------------------------------------------------------

_TF_TYPE_NAMES = {"string": "string", "int32": "int32", "int64": "int64",
                  "float32": "float", "float64": "double", "bool": "bool"}


def _json_text(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_type(value):
    for kind, name in ((bool, "True" if value is True else "False"), (dict, "Object"),
                       (list, "Array"), (str, "String"), ((int, float), "Number")):
        if isinstance(value, kind):
            return name
    return "Null"


def _is_base64_object(value):
    # TensorFlow Serving's convention for bytes: an object with the single key "b64".
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _json_scalar(value, dtype):
    """One JSON leaf as a value of `dtype`, with TensorFlow Serving's rules: strings
    only from JSON strings or {"b64": ...}; integers only from JSON integers (1.0 is
    not an int32); numbers for floats; booleans for bool."""
    def type_error():
        return ServingError(f"JSON Value: {_json_text(value)} Type: {_json_type(value)} "
                            f"is not of expected type: {_TF_TYPE_NAMES[dtype]}")

    if dtype == "string":
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, dict):
            if not _is_base64_object(value):
                raise ServingError(f"JSON Value: {_json_text(value)} not formatted "
                                   "correctly for base64 data")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise ServingError("Unable to base64 decode") from None
        raise type_error()
    if dtype == "bool":
        if not isinstance(value, bool):
            raise type_error()
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error()
    if dtype in ("int32", "int64"):
        bits = 31 if dtype == "int32" else 63
        if not isinstance(value, int) or not -2**bits <= value < 2**bits:
            raise type_error()
    return value


def _json_tensor(value, dtype):
    """A JSON value (scalar or nested lists) as a numpy array of `dtype`.

    The shape is read along the first elements; every list must then match it
    (TensorFlow Serving's json_tensor.cc does the same, with these messages).
    """
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    leaves = []

    def fill(item, level):
        if not isinstance(item, list):
            if level != len(shape):
                raise ServingError(
                    f"JSON Value: {_json_text(item)} found at incorrect level: {level + 1} "
                    f"in the JSON DOM. Expected at level: {len(shape)}")
            leaves.append(_json_scalar(item, dtype))
            return
        if level >= len(shape):
            raise ServingError(
                f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(item) != shape[level]:
            raise ServingError(
                f"Encountered list at unexpected size: {len(item)} at level: {level} "
                f"expected size: {shape[level]}")
        for element in item:
            fill(element, level + 1)

    fill(value, 0)
    numpy_dtype = object if dtype == "string" else dtype
    return np.array(leaves, dtype=numpy_dtype).reshape(shape)


def parse_rest_body(body, input_dtypes):
    """Parses a `:predict` JSON body as TensorFlow Serving's REST API does.

    `input_dtypes` maps the signature's input names to dtype names (the server reads
    them from the SignatureDef named by `signature_name`). Returns
    `(columns, row_format)`: `{name: numpy array}` batched along axis 0, and whether
    the answer must be in row format (`predictions`) or columnar (`outputs`).
    Malformed bodies raise `ServingError` with the server's message.
    """
    if not isinstance(body, dict):
        raise ServingError(f"JSON Value: {_json_text(body)} Is not object")
    instances, columns = body.get("instances"), body.get("inputs")
    if "instances" in body and "inputs" in body:
        raise ServingError("Not formatted correctly expecting only one of 'inputs' or "
                           "'instances' keys to exist")
    if "instances" in body:
        if not isinstance(instances, list):
            raise ServingError("Expecting 'instances' to be an list/array")
        if not instances:
            raise ServingError("No values in 'instances' array")
        return _parse_rows(instances, input_dtypes), True
    if "inputs" in body:
        return _parse_columns(columns, input_dtypes), False
    raise ServingError("Missing 'inputs' or 'instances' key")


def _parse_rows(instances, input_dtypes):
    """`instances`: each element is one batch row; all rows of an input must have the
    same shape, and objects must name every input of the signature."""
    names = sorted(input_dtypes)

    def is_object(value):
        return isinstance(value, dict) and not _is_base64_object(value)

    if not is_object(instances[0]) and len(names) > 1:
        raise ServingError(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map (the inputs are {', '.join(names)})")
    objects = is_object(instances[0])
    rows = {name: [] for name in names}

    def add(name, value):
        if name not in input_dtypes:
            raise ServingError(f"JSON object: does not have named input: {name}")
        tensor = _json_tensor(value, input_dtypes[name])
        if rows[name]:
            first = rows[name][0]
            if first.size != tensor.size:
                raise ServingError(
                    f"Expecting tensor size: {first.size} but got: {tensor.size}")
            if first.shape != tensor.shape:
                raise ServingError(f"Expecting shape {list(first.shape)} but got: "
                                   f"{list(tensor.shape)}")
        rows[name].append(tensor)

    for index, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise ServingError(
                    f"Expecting object but got list at item {index} of input list")
            for name, value in element.items():
                try:
                    add(name, value)
                except ServingError as error:
                    raise ServingError(f"Failed to process element: {index} key: {name} "
                                       f"of 'instances' list. Error: {error}") from None
            if set(element) != set(names):
                raise ServingError(
                    f"Failed to process element: {index} of 'instances' list. JSON "
                    f"object: {_json_text(element)} keys must be equal to: {','.join(names)}")
        else:
            if is_object(element):
                raise ServingError(
                    f"Expecting value/list but got object at item {index} of input list")
            try:
                add(names[0], element)
            except ServingError as error:
                raise ServingError(f"Failed to process element: {index} of 'instances' "
                                   f"list. Error: {error}") from None
    return {name: np.stack(tensors) for name, tensors in rows.items()}


def _parse_columns(columns, input_dtypes):
    """`inputs`: an object of named tensors, or one bare tensor for a single input.
    Inputs need not share a batch size here (the model decides)."""
    names = sorted(input_dtypes)
    if not isinstance(columns, dict) or _is_base64_object(columns):
        if len(names) > 1:
            raise ServingError(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map (the inputs are {', '.join(names)})")
        return {names[0]: _json_tensor(columns, input_dtypes[names[0]])}
    parsed = {}
    for name in names:
        if name not in columns:
            raise ServingError(f"Missing named input: {name} in 'inputs' object.")
        parsed[name] = _json_tensor(columns[name], input_dtypes[name])
    return parsed


def _json_float(value, dtype):
    """A float as TensorFlow Serving writes it: the shortest of 6 significant digits
    that reads back to the same value, else full precision (9 digits for float32)."""
    value = dtype.type(value)
    if np.isnan(value) or np.isinf(value):
        return float(value)
    text = f"{value:g}"
    if dtype.type(float(text)) != value:
        text = f"{value:.{9 if dtype == np.float32 else 17}g}"
    return float(text)


def _json_values(array):
    if array.dtype.kind == "f":
        return np.vectorize(lambda v: _json_float(v, array.dtype), otypes=[object])(
            array).tolist() if array.size else array.tolist()
    if array.dtype.kind in "OSU":
        return np.vectorize(lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes)
                            else v, otypes=[object])(array).tolist() if array.size else []
    return array.tolist()


def rest_answer(outputs, row_format):
    """The JSON answer for `{name: array}` outputs: `predictions` (one entry per batch
    row; an object per row when there are several outputs) or `outputs` (columns)."""
    names = sorted(outputs)
    if row_format:
        sizes = {name: outputs[name].shape[0] for name in names}
        if len(set(sizes.values())) > 1:
            raise ServingError(f"Tensors have inconsistent batch sizes: {sizes}")
        columns = {name: _json_values(outputs[name]) for name in names}
        if len(names) == 1:
            return {"predictions": columns[names[0]]}
        return {"predictions": [{name: columns[name][row] for name in names}
                                for row in range(sizes[names[0]])]}
    columns = {name: _json_values(outputs[name]) for name in names}
    return {"outputs": columns[names[0]] if len(names) == 1 else columns}


def _runtime_message(error):
    """The part of a TensorFlow runtime error a server would report: the failing
    check ("assertion failed: [...]"), without Python's "Graph execution error" and
    node-location lines."""
    message = getattr(error, "message", None) or str(error)
    noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line for line in message.splitlines()
             if line.strip() and not line.startswith(noise) and not line.startswith(("\t", " "))]
    return " ".join(lines) or message.strip()


# The graph refuses a text input of any rank but 1, and id inputs of any rank but 2,
# with EnsureShape's message, which names the tensor (`text`, or the server's
# `_arg_serving_default_text_0_0`) and the shape but not the fix.
_SHAPE_ERROR = re.compile(r"Shape of tensor (\S+) \[([\d,]*)\] is not compatible with "
                          r"expected shape \[([?,]+)\]")
_INPUT_NAMES = ("text_a", "text_b", "input_word_ids", "input_mask", "input_type_ids", "text")


def error_hint(message):
    """What to send instead, for an error the model answered about an input's shape
    ("" for other errors). A scalar string, `{"inputs": "a fine film"}`, is a tensor
    of shape [], not a batch of one."""
    match = _SHAPE_ERROR.search(message)
    if not match:
        return ""
    tensor, got, expected = match.groups()
    name = next((name for name in _INPUT_NAMES if name in tensor), tensor)
    if expected == "?":
        return (f"{name} must be a list of strings, one per example (this request sent "
                f'a tensor of shape [{got}]): {{"inputs": {{"{name}": ["a fine film"]}}}}, '
                'or {"instances": [...]} with one entry per example.')
    return (f"{name} must be a [batch, seq] matrix of ids, one row per example (this "
            f"request sent a tensor of shape [{got}]).")


def _latest_version_dir(path):
    """A SavedModel directory, or the newest numeric version under a base directory
    (TensorFlow Serving's default version policy serves the latest)."""
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        return path, int(path.name) if path.name.isdigit() else 0
    versions = sorted((int(child.name) for child in path.iterdir()
                       if child.name.isdigit() and (child / "saved_model.pb").is_file()),
                      reverse=True) if path.is_dir() else []
    if not versions:
        raise ServingError(f"{path} holds no SavedModel: neither saved_model.pb nor "
                           "numbered version directories (BASE/1/saved_model.pb).")
    return path / str(versions[0]), versions[0]


class LocalModelServer:
    """A SavedModel behind the same front ends as TensorFlow Serving, in process.

    `predict(PredictRequest)` checks the request as the server's Predict does (model
    name, signature, input names, dtypes) and calls the signature;
    `rest_predict(body)` parses the JSON body into such a request exactly as the REST
    API does and writes the answer in the request's layout. Errors raise
    `ServingError` with the message the server would put in `{"error": ...}`.
    Loads with `tensorflow` + `tensorflow_text` only.
    """

    def __init__(self, path, model_name):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

        self.path, self.version = _latest_version_dir(path)
        self.model_name = model_name
        self._loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self._loaded.signatures)

    def input_dtypes(self, signature_name):
        function = self._signature(signature_name)
        specs = function.structured_input_signature[1]
        return {name: spec.dtype.name for name, spec in specs.items()}

    def _signature(self, signature_name):
        name = signature_name or TEXT_SIGNATURE
        if name not in self.signatures:
            raise ServingError(f'Serving signature name: "{name}" not found in signature '
                               f"def (this export has: {', '.join(sorted(self.signatures))})")
        return self.signatures[name]

    def _check_model_spec(self, model_spec):
        version = model_spec.version.value if model_spec.HasField("version") else None
        if model_spec.name != self.model_name or version not in (None, self.version):
            wanted = (f"Specific({model_spec.name}, {version})" if version is not None
                      else f"Latest({model_spec.name})")
            raise ServingError(f"Servable not found for request: {wanted}")

    def predict(self, request):
        """A `PredictResponse` for a `PredictRequest`, as the gRPC API answers."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        self._check_model_spec(request.model_spec)
        signature_name = request.model_spec.signature_name or TEXT_SIGNATURE
        function = self._signature(signature_name)
        dtypes = self.input_dtypes(signature_name)
        sent, wanted = set(request.inputs), set(dtypes)
        if sent != wanted:
            raise ServingError(
                f"input size does not match signature: {len(sent)}!={len(wanted)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. Missing but required: "
                f"{{{','.join(sorted(wanted - sent))}}}.")
        arguments = {}
        for name, proto in request.inputs.items():
            got = tf.dtypes.as_dtype(proto.dtype).name
            if got != dtypes[name]:
                raise ServingError(f"input {name} is {got}; the signature {signature_name} "
                                   f"expects {dtypes[name]}")
            arguments[name] = tf.constant(tf.make_ndarray(proto), dtype=dtypes[name])
        try:
            outputs = function(**arguments)
        except (tf.errors.OpError, ValueError, TypeError) as error:
            raise ServingError(_runtime_message(error)) from None
        names = list(request.output_filter) or sorted(outputs)
        unknown = [name for name in names if name not in outputs]
        if unknown:
            raise ServingError(f"output tensor alias not found in signature: {unknown[0]}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for name in names:
            response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name].numpy()))
        return response

    def rest_predict(self, body, model_name=None, version=None):
        """The JSON answer (decoded) to `POST /v1/models/NAME[/versions/N]:predict`
        with `body` (JSON text, or a dict that is serialized first)."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        text = body if isinstance(body, (str, bytes)) else json.dumps(body)
        if not text:
            raise ServingError("JSON Parse error: The document is empty")
        try:
            parsed = json.loads(text)
        except ValueError as error:
            raise ServingError(f"JSON Parse error: {error}") from None
        if isinstance(parsed, dict) and not isinstance(parsed.get("signature_name", ""), str):
            raise ServingError("'signature_name' key must be a string value.")
        signature_name = parsed.get("signature_name", "") if isinstance(parsed, dict) else ""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name or self.model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = int(version)
        self._check_model_spec(request.model_spec)
        dtypes = self.input_dtypes(signature_name)
        columns, row_format = parse_rest_body(parsed, dtypes)
        for name, column in columns.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(column, dtype=dtypes[name]))
        outputs = response_arrays(self.predict(request))
        # Round trip through JSON text, so callers see exactly what a client would read.
        return json.loads(json.dumps(rest_answer(outputs, row_format)))


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------

def build_payloads(texts, texts_b=None, token_ids=None):
    """`{signature name: named inputs}` for the signatures the client can query."""
    payloads = {TEXT_SIGNATURE: text_inputs(texts, texts_b)}
    if token_ids is not None:
        payloads[IDS_SIGNATURE] = token_id_inputs(token_ids)
    return payloads


def client_token_ids(texts, texts_b, vocab, seq_length):
    """Client-side tokenization for `token_ids`, with keras-albert's Preprocessor (the
    one the export packs in its graph; any tokenizer giving the same ids will do)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_albert.tokenizers import Preprocessor, SentencePieceTokenizer, WordPieceTokenizer

    tokenizer = (SentencePieceTokenizer(vocab) if str(vocab).endswith(".model")
                 else WordPieceTokenizer(vocab))
    # Padded to the longest text of the batch, not to seq_length: the token_ids
    # signature takes any length up to the model's, and the mask hides the padding.
    preprocessor = Preprocessor(tokenizer, seq_length=seq_length, pad_to="batch")
    features = preprocessor(texts if texts_b is None else (texts, texts_b))
    return {name: np.asarray(features[name]) for name in ID_INPUTS}


def query_all(payloads, model_name, rest=None, grpc_target=None, server=None, version=None,
              log=print):
    """Sends every payload as REST rows, REST columns and gRPC to one back end (a REST
    URL, a gRPC target or a `LocalModelServer`); returns
    `{(signature, "rest-row" | "rest-columnar" | "grpc"): {output: array}}`."""
    results = {}
    for signature_name, inputs in payloads.items():
        if rest or server:
            for row_format, kind in ((True, "rest-row"), (False, "rest-columnar")):
                body = rest_body(inputs, signature_name, row_format)
                log(f"--- {signature_name}, {kind}: POST /v1/models/{model_name}:predict")
                log(_json_text(body))
                answer = (post_rest(rest, model_name, body, version) if rest
                          else server.rest_predict(body, model_name, version))
                log(json.dumps(answer))
                results[signature_name, kind] = rest_arrays(answer)
        if grpc_target or server:
            request = predict_request(inputs, model_name, signature_name, version)
            log(f"--- {signature_name}, grpc: PredictionService.Predict")
            response = (predict_grpc(grpc_target, request) if grpc_target
                        else server.predict(request))
            arrays = response_arrays(response)
            log(json.dumps({name: _json_values(value) for name, value in arrays.items()}))
            results[signature_name, "grpc"] = arrays
    return results


def demo_reduced(workdir, seq_length=32, log=print):
    """Builds a tiny random `bert_tiny` classifier with the real BERT vocabulary,
    exports it with `export_for_serving`, queries both signatures every way through
    `LocalModelServer`, and checks the answers against the Keras model. Returns the
    largest difference to the Keras model's probabilities."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_albert import Encoder
    from keras_albert.export import export_for_serving
    from keras_albert.models import SequenceClassifier
    from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer

    import keras

    keras.utils.set_random_seed(0)  # the head's initialisation too: the same model each run
    data = _data_dir()
    tokenizer = WordPieceTokenizer(str(data / "vocab" / "bert_uncased_vocab.txt"))
    preprocessor = Preprocessor(tokenizer, seq_length=seq_length)
    encoder = Encoder.from_preset("bert_tiny", vocabulary_size=tokenizer.vocabulary_size,
                                  seed=0)
    classifier = SequenceClassifier(encoder, num_classes=2, dropout=0.0)
    texts = _sst2_sentences(data, 3) or DEFAULT_TEXTS
    path = export_for_serving(classifier, os.path.join(workdir, "sst2"), preprocessor)
    log(f"exported {path}")
    features = preprocessor(texts)
    expected = np.asarray(classifier.predict(features, verbose=0), "float32")
    payloads = build_payloads(texts, token_ids={k: np.asarray(v) for k, v in features.items()})
    server = LocalModelServer(os.path.join(workdir, "sst2"), "sst2")
    results = query_all(payloads, "sst2", server=server, log=log)
    worst = max(float(np.abs(arrays["logits"] - expected).max()) for arrays in results.values())
    log(f"largest |served logits - Keras logits| over {len(results)} answers: {worst:.2e}")
    return worst


def _data_dir():
    configured = os.environ.get("KERAS_ALBERT_DATA")
    if configured:
        return pathlib.Path(configured)
    return pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def _sst2_sentences(data, limit):
    path = data / "sst2" / "dev.tsv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        handle.readline()
        return [line.split("\t")[0] for _, line in zip(range(limit), handle)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    backend = parser.add_mutually_exclusive_group(required=True)
    backend.add_argument("--rest", metavar="URL", help="REST base URL, e.g. http://localhost:8501")
    backend.add_argument("--grpc", metavar="HOST:PORT", help="gRPC target, e.g. localhost:8500")
    backend.add_argument("--saved-model", metavar="DIR",
                         help="no server: BASE (its latest version) or BASE/VERSION")
    backend.add_argument("--demo-reduced", action="store_true",
                         help="export a tiny random classifier and query it every way")
    parser.add_argument("--model-name", default="sst2", help="the server's MODEL_NAME (sst2)")
    parser.add_argument("--version", type=int, help="a specific version (default: latest)")
    parser.add_argument("--pairs", action="store_true",
                        help="texts are text_a<TAB>text_b pairs (pair-task exports)")
    parser.add_argument("--vocab", help="vocab.txt or spiece.model, to tokenize for token_ids")
    parser.add_argument("--seq", type=int, default=128,
                        help="sequence length for --vocab (the export's; default 128)")
    parser.add_argument("--ids-json", help="token ids for token_ids, a JSON object of "
                        "input_word_ids / input_mask / input_type_ids lists")
    parser.add_argument("--body", metavar="FILE", help="send this JSON body as it is (what "
                        "`curl -d @FILE` sends) to --rest or --saved-model, print the answer")
    parser.add_argument("--workdir", help="--demo-reduced: where to export (default: a "
                        "temporary directory)")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    args = parser.parse_args(argv)
    try:
        if args.demo_reduced:
            import tempfile

            with tempfile.TemporaryDirectory() as temporary:
                worst = demo_reduced(args.workdir or temporary)
            return 0 if worst <= 1e-5 else 1
        if args.body:
            if args.grpc:
                raise ServingError("--body is a REST body; use it with --rest or --saved-model.")
            body = pathlib.Path(args.body).read_text(encoding="utf-8")
            answer = (post_rest(args.rest, args.model_name, body, args.version) if args.rest
                      else LocalModelServer(args.saved_model, args.model_name).rest_predict(
                          body, args.model_name, args.version))
            print(json.dumps(answer))
            return 0
        texts = args.texts or DEFAULT_TEXTS
        texts_b = None
        if args.pairs:
            pairs = [text.split("\t") for text in texts]
            if any(len(pair) != 2 for pair in pairs):
                raise ServingError("--pairs takes 'text_a<TAB>text_b' arguments.")
            texts, texts_b = [a for a, _ in pairs], [b for _, b in pairs]
        token_ids = None
        if args.ids_json:
            token_ids = json.loads(pathlib.Path(args.ids_json).read_text())
        elif args.vocab:
            token_ids = client_token_ids(texts, texts_b, args.vocab, args.seq)
        payloads = build_payloads(texts, texts_b, token_ids)
        server = (LocalModelServer(args.saved_model, args.model_name)
                  if args.saved_model else None)
        query_all(payloads, args.model_name, rest=args.rest, grpc_target=args.grpc,
                  server=server, version=args.version)
    except (ServingError, OSError, ValueError) as error:
        hint = error_hint(str(error))
        print(f"serving_client: {error}" + (f"\n  {hint}" if hint else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
