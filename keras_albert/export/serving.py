"""TensorFlow Serving exports: raw text in, named float32 outputs out.

The contract (what a client of the SavedModel may rely on):

Layout. `export_for_serving(model, BASE, preprocessor)` writes `BASE/<version>/`, the
layout TensorFlow Serving watches: `version` is an integer (the next free one by
default). A version appears only once complete (it is written under a temporary name
and renamed), so a server polling `BASE` never loads half an export.

Signatures.
- `serving_default`: raw text, a tf.string tensor [batch] named `text`, or `text_a`
  and `text_b` for models trained on pairs (`pairs=True`). Tokenization and packing
  run in the graph with tensorflow-text ops only, so `tensorflow` +
  `tensorflow_text` load it (and stock TensorFlow Serving, which links
  tensorflow-text's ops). Texts longer than the sequence length are truncated
  (longest first for pairs); empty strings and empty batches are served.
- `token_ids`: the same model on int32 [batch, seq] `input_word_ids`, `input_mask`
  and `input_type_ids`, for clients that tokenize themselves (ids of any length up
  to the model's position table; the three must have the same shape).

Bad requests. Neither the loaded signatures nor TensorFlow Serving check an input's
shape against the signature, so the graph does, before tokenizing or embedding
anything; a bad request raises `tf.errors.InvalidArgumentError` (the `{"error":
...}` of TensorFlow Serving) whose message names the input, and serves nothing:
texts of any rank but 1 (a scalar string: `Shape of tensor text [] is not
compatible with expected shape [?]`), `text_a` and `text_b` of different lengths,
id tensors of another rank or shape, `input_word_ids` outside [0, vocabulary size),
`input_mask` other than 0 and 1, `input_type_ids` outside [0, number of segments)
(when the encoder reads them).

Outputs (always float32, whatever the training precision):
- an `Encoder`: `pooled_output` [batch, H], `sequence_output` [batch, seq, H] and
  `input_mask` [batch, seq] (int32, so clients can mean-pool over real tokens);
- a sequence classifier: `logits` [batch, C] and `probabilities` (softmax; sigmoid
  for `task="multilabel"`); a regressor (one output): `logits` [batch, 1] and
  `predictions` [batch];
- a token classifier: `logits` [batch, seq, C], `probabilities` and `input_mask`;
- any other model with named outputs (span QA, pretraining heads): each output
  under its own name.

Warm-up. `assets.extra/tf_serving_warmup_requests` holds `PredictionLog` records
(tensorflow-serving-api protos) for `serving_default`, built from a few example
texts, so TensorFlow Serving runs (and traces) the model before the first request.

    path = export_for_serving(classifier, "serving/sst2", preprocessor)
    served = tf.saved_model.load(path)            # tf + tf_text only
    served.signatures["serving_default"](text=tf.constant(["a fine film"]))
"""

import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_albert.export.hub import id_checks
from keras_albert.export.hub_preprocessor import checked_strings
from keras_albert.models.encoder import Encoder

_ID_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
TEXT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "token_ids"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
TASKS = ("classification", "regression", "multilabel", "token", None)

# Requests replayed by TensorFlow Serving at load time when the caller gives none:
# plain sentences of different lengths (the warm-up traces the shapes they produce).
DEFAULT_WARMUP_TEXTS = (
    "a fine film.",
    "The plot never quite holds together, but the actors make up for most of it.",
    "",
)


def _float32(value):
    return tf.cast(value, tf.float32)


def _output_names(model):
    output = model.output
    if isinstance(output, dict):
        return list(output)
    if isinstance(output, (list, tuple)):
        raise ValueError(
            f"{type(model).__name__} has {len(output)} unnamed outputs; export a model "
            "with one output or a dict of named outputs."
        )
    return None


def _infer_task(model, task):
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS[:-1]} or None; got {task!r}.")
    if task is not None or isinstance(model, Encoder) or _output_names(model):
        return task
    rank = len(model.output.shape)
    if rank == 3:
        return "token"
    return "regression" if model.output.shape[-1] == 1 else "classification"


class _ServingModule(tf.Module):
    """Holds the model's variables and the preprocessor, so that both are saved,
    and maps model outputs to the contract's named float32 tensors."""

    def __init__(self, model, preprocessor, task):
        super().__init__(name="keras_albert_serving")
        self._hold(model)
        # The tf.Variables behind the Keras ones are what the SavedModel saves: only
        # they get into its TF1 restore op, which TensorFlow Serving (like any
        # Session loader) runs. Saved as Keras variables, they are restored by
        # `tf.saved_model.load` only, and the server answers every request with
        # "Could not find variable pooler/kernel".
        self.tf_variables = [
            variable.value if isinstance(variable, keras.Variable) else variable
            for variable in model.variables
        ]
        self.preprocessor = preprocessor
        self._task = task
        self._input_keys = tuple(getattr(model, "input_keys", _ID_KEYS))

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _hold(self, model):
        # Not tracked: the SavedModel would save its (Keras) variables a second time.
        self.model = model

    def run(self, features):
        features = {key: tf.cast(features[key], tf.int32) for key in _ID_KEYS}
        inputs = {key: features[key] for key in self._input_keys}
        outputs = self.model(inputs, training=False)
        if isinstance(self.model, Encoder):
            return {
                "pooled_output": _float32(outputs["pooled_output"]),
                "sequence_output": _float32(outputs["sequence_output"]),
                "input_mask": features["input_mask"],
            }
        if isinstance(outputs, dict):
            return {name: _float32(value) for name, value in outputs.items()}
        logits = _float32(outputs)
        served = {"logits": logits}
        if self._task == "regression":
            served["predictions"] = logits[:, 0]
        elif self._task == "multilabel":
            served["probabilities"] = tf.sigmoid(logits)
        else:
            served["probabilities"] = tf.nn.softmax(logits, axis=-1)
        if self._task == "token":
            served["input_mask"] = features["input_mask"]
        return served

    def run_ids(self, input_word_ids, input_mask, input_type_ids):
        # Signatures check dtypes, not ranks: ensure_shape (data flow, so nothing runs
        # before it) refuses anything but matrices.
        input_word_ids, input_mask, input_type_ids = (
            tf.ensure_shape(value, [None, None])
            for value in (input_word_ids, input_mask, input_type_ids))
        shape = tf.shape(input_word_ids)
        checks = [
            tf.debugging.assert_equal(
                tf.shape(value), shape,
                message=f"{key} must have the shape of input_word_ids [batch, seq]",
            )
            for key, value in (("input_mask", input_mask), ("input_type_ids", input_type_ids))
        ]
        # The encoder's vocabulary and segments bound the ids (task models hold one).
        encoder = self.model if isinstance(self.model, Encoder) else getattr(
            self.model, "encoder", None)
        if encoder is not None:
            checks += id_checks({"input_word_ids": input_word_ids, "input_mask": input_mask,
                                 "input_type_ids": input_type_ids}, encoder)
        with tf.control_dependencies(checks):
            return self.run({
                "input_word_ids": tf.identity(input_word_ids),
                "input_mask": tf.identity(input_mask),
                "input_type_ids": tf.identity(input_type_ids),
            })


def _warmup_requests(texts, pairs):
    """TensorFlow Serving `PredictionLog` protos for `serving_default`: one request with
    the whole batch and one per text (batch 1, the usual online request)."""
    try:
        from tensorflow_serving.apis import model_pb2
        from tensorflow_serving.apis import predict_pb2
        from tensorflow_serving.apis import prediction_log_pb2
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ImportError(
            "Warm-up records need tensorflow-serving-api: pip install "
            "'tensorflow-serving-api>=2.21,<2.22' (or pass warmup_texts=())."
        ) from error
    batches = [list(texts)] + [[text] for text in texts]
    logs = []
    for batch in batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(signature_name=TEXT_SIGNATURE)
        )
        if pairs:
            columns = {"text_a": [a for a, _ in batch], "text_b": [b for _, b in batch]}
        else:
            columns = {"text": batch}
        for name, column in columns.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(column, dtype=tf.string))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        ))
    return logs


def _check_warmup_texts(texts, pairs):
    texts = list(texts)
    for text in texts:
        ok = (isinstance(text, (tuple, list)) and len(text) == 2
              and all(isinstance(part, str) for part in text)) if pairs else isinstance(text, str)
        if not ok:
            kind = "(text_a, text_b) string pairs" if pairs else "strings"
            raise TypeError(f"warmup_texts must be {kind}; got {text!r}.")
    return texts


def export_saved_model(model, export_dir, preprocessor, pairs=False, task=None,
                       warmup_texts=None):
    """Writes `model` with `preprocessor` as one SavedModel in `export_dir`.

    See the module docstring for the signatures and outputs. `model` is an `Encoder`
    or a task model (one output, or a dict of named outputs); `pairs=True` makes
    `serving_default` take `text_a` and `text_b`; `task` (`"classification"`,
    `"regression"`, `"multilabel"`, `"token"`) picks the derived outputs and is
    inferred from the output shape when None (multi-label must be given).
    `warmup_texts` are strings (pairs of strings with `pairs=True`) for the warm-up
    records; None uses a few default sentences, `()` writes no warm-up file.
    `export_dir` must not exist yet. Returns `export_dir`.
    """
    if preprocessor is None:
        raise ValueError("export_saved_model needs the model's preprocessor for raw text.")
    if os.path.exists(export_dir):
        raise FileExistsError(f"{export_dir} exists; export to a new directory.")
    task = _infer_task(model, task)
    if warmup_texts is None:
        warmup_texts = ([(text, text) for text in DEFAULT_WARMUP_TEXTS] if pairs
                        else DEFAULT_WARMUP_TEXTS)
    warmup_texts = _check_warmup_texts(warmup_texts, pairs)

    module = _ServingModule(model, preprocessor, task)
    ids = tf.TensorSpec([None, None], tf.int32)
    text = tf.TensorSpec([None], tf.string)
    if pairs:
        @tf.function(input_signature=[text, text])
        def serve_text(text_a, text_b):
            text_a, text_b = checked_strings(text_a), checked_strings(text_b)
            # One text_b per text_a; without this check the mismatch surfaces deep in
            # the packer as "Incompatible shapes".
            check = tf.debugging.assert_equal(
                tf.shape(text_a), tf.shape(text_b),
                message="text_a and text_b must hold the same number of texts")
            with tf.control_dependencies([check]):
                text_a = tf.identity(text_a)
            return module.run(module.preprocessor((text_a, text_b)))
    else:
        @tf.function(input_signature=[text])
        def serve_text(text):
            return module.run(module.preprocessor(checked_strings(text)))

    @tf.function(input_signature=[ids, ids, ids])
    def serve_ids(input_word_ids, input_mask, input_type_ids):
        return module.run_ids(input_word_ids, input_mask, input_type_ids)

    module.serve_text = serve_text
    module.serve_ids = serve_ids
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    tf.saved_model.save(
        module,
        export_dir,
        signatures={TEXT_SIGNATURE: serve_text, IDS_SIGNATURE: serve_ids},
    )
    if warmup_texts:
        os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(export_dir, WARMUP_FILE)) as writer:
            for log in _warmup_requests(warmup_texts, pairs):
                writer.write(log.SerializeToString())
    return export_dir


def next_version(base_dir):
    """The next free integer version under `base_dir` (1 for a new directory)."""
    if not os.path.isdir(base_dir):
        return 1
    versions = [int(name) for name in os.listdir(base_dir) if name.isdigit()]
    return max(versions, default=0) + 1


def export_for_serving(model, base_dir, preprocessor, version=None, **kwargs):
    """Exports `model` as `base_dir/<version>/` for TensorFlow Serving.

    `version` defaults to the next free integer; an existing version is never
    overwritten. The export is written under a temporary name in `base_dir` and
    renamed when complete. Other arguments as `export_saved_model`. Returns the
    version directory.

    >>> path = export_for_serving(classifier, "serving/sst2", preprocessor)  # doctest: +SKIP
    >>> os.path.basename(path)                                               # doctest: +SKIP
    '1'
    """
    version = next_version(base_dir) if version is None else version
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"`version` must be a non-negative integer; got {version!r}.")
    target = os.path.join(base_dir, str(version))
    if os.path.exists(target):
        raise FileExistsError(f"Version {version} already exists in {base_dir}.")
    os.makedirs(base_dir, exist_ok=True)
    # Not a number, so TensorFlow Serving ignores it while it is being written.
    staging = tempfile.mkdtemp(prefix=".export-", dir=base_dir)
    try:
        export_saved_model(model, os.path.join(staging, "model"), preprocessor, **kwargs)
        os.rename(os.path.join(staging, "model"), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
