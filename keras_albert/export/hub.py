"""TF-Hub-style encoder SavedModels (the text preprocessor: `hub_preprocessor.py`).

The SavedModel loads with `tensorflow` alone; no keras_albert is needed to use it.

Encoder (`export_hub_encoder`), a Reusable SavedModel
------------------------------------------------------

`encoder = tf.saved_model.load(export_dir)`, then:

- `encoder(inputs, training=False)`: `inputs` is a dict of three int32 tensors
  of shape [batch_size, seq_length] (both dimensions may vary, unless the export
  fixed `seq_length`):
    - `input_word_ids`: token ids, including the special tokens `[CLS]`/`[SEP]`.
    - `input_mask`: 1 for real tokens, 0 for padding.
    - `input_type_ids`: the segment id of each token (0 for the first segment,
      1 for the second). Every export takes this key, also the DistilBERT-style
      encoders without token types, which ignore it.
  `training` is a Python bool; `True` turns dropout on (for fine-tuning).
  It returns a dict of float32 tensors (float32 also when the model computes in
  mixed precision):
    - `pooled_output`: [batch_size, hidden_size], the pooled `[CLS]` token
      (`tanh(dense(.))`; the raw first token for encoders without a pooler).
    - `sequence_output`: [batch_size, seq_length, hidden_size], the last block's
      hidden states.
    - `encoder_outputs`: a list of [batch_size, seq_length, hidden_size]
      tensors, the hidden states after every block application (its last entry
      equals `sequence_output`).
    - `default`: the same as `pooled_output`.
- `encoder.variables`, `encoder.trainable_variables`: the encoder's variables,
  and `encoder.regularization_losses`: a list of zero-argument functions
  returning scalar losses (empty here). With `__call__` this makes it a
  Reusable SavedModel: `hub.KerasLayer(export_dir, trainable=True)` fine-tunes it.
- `encoder.serve(inputs)` and `encoder.call_training(inputs)`: the same
  function as `__call__` with `training=False` / `True` fixed, for
  `keras.layers.TFSMLayer(export_dir, call_endpoint="serve",
  call_training_endpoint="call_training")` in Keras 3 (see "Keras 3" below).
- `encoder.signatures["serving_default"]`: keyword arguments `input_word_ids`,
  `input_mask`, `input_type_ids`; outputs `pooled_output`, `sequence_output` and
  `default` (signatures cannot return lists, so no `encoder_outputs`).
- `encoder.mlm` (only when a `PretrainingModel` was exported): a Reusable
  SavedModel sub-object sharing the encoder's variables. `encoder.mlm(inputs,
  training=False)` takes the three inputs above plus `masked_lm_positions`
  (int32 [batch_size, num_predictions], positions in the sequence) and returns
  the encoder's outputs plus `mlm_logits` (float32 [batch_size, num_predictions,
  vocab_size]). It has its own `variables`, `trainable_variables` (the encoder's
  and the masked-LM head's) and `regularization_losses`.

Inputs of another dtype or rank find no matching function and raise an error
(`TypeError`/`ValueError`); sequences longer than the encoder's
`max_sequence_length` fail at run time, and so do ids the encoder cannot embed
(`tf.errors.InvalidArgumentError` naming the input): `input_word_ids` outside
[0, vocabulary size), `input_mask` other than 0 and 1, `input_type_ids` outside
[0, number of segments) (when the encoder reads them) and `masked_lm_positions`
outside [0, seq_length).

Keras 3 and tf_keras
--------------------

    # tf_keras (Keras 2) with tensorflow_hub:
    encoder = hub.KerasLayer("export/encoder", trainable=True)
    pooled = encoder(inputs)["pooled_output"]

    # Keras 3:
    encoder = keras.layers.TFSMLayer(
        "export/encoder", call_endpoint="serve",
        call_training_endpoint="call_training", trainable=True)
    pooled = encoder(inputs)["pooled_output"]
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    model.compile(keras.optimizers.Adam(2e-5), loss=...)
    model.optimizer.build(model.trainable_variables)  # see below
    model.fit(...)

Keras 3's `TFSMLayer` names its weights after the restored variables, whose
TensorFlow names always end in `:0`; Keras's optimizers build slot names from
those (`"..._kernel:0_momentum"`), which TensorFlow refuses as scope names when
the optimizer builds inside the first traced training step. Building the
optimizer once, eagerly, before `fit` avoids it (slot names are not checked
eagerly); so does `keras_albert.export.keras_reuse.HubEncoderLayer`. No export
can avoid it: every restored `tf.Variable` name ends in `:0`.
"""


import os

import keras
import tensorflow as tf

from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
MLM_POSITIONS_KEY = "masked_lm_positions"

def _float32(value):
    return tf.cast(value, tf.float32)


def _tf_variables(layers):
    """The distinct tf.Variables behind the Keras variables of `layers`.

    The SavedModel tracks these, not Keras objects, so that each variable is one
    node of the object graph, shared by every function that captures it.
    """
    seen, trainable, variables = set(), [], []
    for layer in layers:
        for variable in layer.variables:
            value = variable.value if isinstance(variable, keras.Variable) else variable
            if not isinstance(value, tf.Variable):
                raise TypeError(f"Cannot export variable {variable.path}: {type(value)}.")
            if id(value) in seen:
                continue
            seen.add(id(value))
            variables.append(value)
            if variable.trainable:
                trainable.append(value)
    return variables, trainable


def _reusable(variables, trainable_variables):
    """An object with the attributes of the Reusable SavedModel API (less `__call__`)."""
    obj = tf.__internal__.tracking.AutoTrackable()
    obj.variables = list(variables)
    obj.trainable_variables = list(trainable_variables)
    obj.regularization_losses = []
    return obj


def id_checks(inputs, encoder):
    """Run-time asserts that the ids in `inputs` are ones `encoder` can embed.

    The lookups do not refuse every bad id: Keras's `take` reads a negative id
    from the end of the table (-1 is the last token) and, on GPU, an id past the
    table reads zeros. So `input_word_ids` must be in [0, vocabulary_size),
    `input_mask` 0 or 1, and `input_type_ids` (if the encoder reads them) in
    [0, num_segments). Returns the assert ops, for `tf.control_dependencies`;
    a failed one raises `tf.errors.InvalidArgumentError` naming the input.
    """
    rules = {
        "input_word_ids": (encoder.vocabulary_size,
                           f"token ids in [0, {encoder.vocabulary_size})"),
        "input_mask": (2, "1 (token) or 0 (padding)"),
    }
    if "input_type_ids" in encoder.input_keys:
        rules["input_type_ids"] = (encoder.num_segments,
                                   f"segment ids in [0, {encoder.num_segments})")
    checks = []
    for key, (limit, what) in rules.items():
        if key in inputs:
            value = inputs[key]
            checks.append(tf.debugging.Assert(
                tf.reduce_all((value >= 0) & (value < limit)),
                [f"{key} must hold {what}; got values from", tf.reduce_min(value),
                 "to", tf.reduce_max(value)]))
    return checks


def _run_encoder(encoder, inputs, training):
    """Returns `(the export's float32 output dict, the raw sequence_output)`."""
    with tf.control_dependencies(id_checks(inputs, encoder)):
        inputs = {key: tf.identity(value) for key, value in inputs.items()}
    # DistilBERT-style encoders read no type ids: the key is accepted and dropped.
    outputs = encoder({key: inputs[key] for key in encoder.input_keys}, training=training)
    pooled = _float32(outputs["pooled_output"])
    exported = {
        "pooled_output": pooled,
        "sequence_output": _float32(outputs["sequence_output"]),
        "encoder_outputs": [_float32(value) for value in outputs["encoder_outputs"]],
        "default": tf.identity(pooled),
    }
    return exported, outputs["sequence_output"]


def _encoder_outputs(encoder, inputs, training):
    return _run_encoder(encoder, inputs, training)[0]


def _trace_both(function, *specs):
    """Traces `function` for `training=False` and `training=True`."""
    for training in (False, True):
        function.get_concrete_function(*specs, training=training)


def export_hub_encoder(model, export_dir, seq_length=None):
    """Writes `model` as a TF-Hub-style Reusable SavedModel in `export_dir`.

    The module docstring has the contract. `model` is an `Encoder`, or a
    `PretrainingModel`, whose encoder is exported with an extra `mlm`
    sub-object for masked-LM logits.

    Args:
        model: an `Encoder` or a `PretrainingModel`.
        export_dir: the SavedModel directory to write.
        seq_length: None (default) to accept any sequence length, or an int to
            fix the sequence dimension of the inputs (static output shapes).

    Returns:
        `export_dir`.

    Example:

    >>> encoder = Encoder.from_preset("bert_tiny")  # doctest: +SKIP
    >>> export_hub_encoder(encoder, "/tmp/bert_tiny_hub")  # doctest: +SKIP
    >>> reloaded = tf.saved_model.load("/tmp/bert_tiny_hub")  # doctest: +SKIP
    >>> ids = tf.constant([[2, 15, 27, 3, 0]])
    >>> out = reloaded({"input_word_ids": ids,
    ...                 "input_mask": tf.cast(ids > 0, tf.int32),
    ...                 "input_type_ids": tf.zeros_like(ids)})  # doctest: +SKIP
    >>> out["pooled_output"].shape  # doctest: +SKIP
    TensorShape([1, 64])
    """
    if isinstance(model, PretrainingModel):
        encoder, mlm_head = model.encoder, model.mlm_head
    elif isinstance(model, Encoder):
        encoder, mlm_head = model, None
    else:
        raise TypeError(
            "export_hub_encoder exports an `Encoder` or a `PretrainingModel`; got "
            f"{type(model).__name__}. For a task model, export its `encoder`."
        )
    if seq_length is not None:
        if not isinstance(seq_length, int) or not 1 <= seq_length <= encoder.max_sequence_length:
            raise ValueError(
                f"`seq_length` must be None or an int in [1, {encoder.max_sequence_length}] "
                f"(the encoder's max_sequence_length); got {seq_length!r}."
            )
    id_spec = tf.TensorSpec([None, seq_length], tf.int32)
    input_specs = {key: id_spec for key in INPUT_KEYS}

    variables, trainable = _tf_variables([encoder])
    root = _reusable(variables, trainable)

    @tf.function
    def call(inputs, training=False):
        return _encoder_outputs(encoder, inputs, training)

    _trace_both(call, input_specs)
    root.__call__ = call

    # Single-argument endpoints for Keras 3's TFSMLayer, which passes no `training`.
    # They call the traced `__call__`, so every entry point runs the same graphs.
    @tf.function(input_signature=[input_specs])
    def serve(inputs):
        return call(inputs, training=False)

    @tf.function(input_signature=[input_specs])
    def call_training(inputs):
        return call(inputs, training=True)

    root.serve = serve
    root.call_training = call_training

    @tf.function(
        input_signature=[tf.TensorSpec([None, seq_length], tf.int32, name=key) for key in INPUT_KEYS]
    )
    def serving_default(input_word_ids, input_mask, input_type_ids):
        outputs = call(
            {
                "input_word_ids": input_word_ids,
                "input_mask": input_mask,
                "input_type_ids": input_type_ids,
            },
            training=False,
        )
        return {key: outputs[key] for key in ("pooled_output", "sequence_output", "default")}

    if mlm_head is not None:
        mlm_variables, mlm_trainable = _tf_variables([encoder, mlm_head])
        root.mlm = _reusable(mlm_variables, mlm_trainable)
        mlm_specs = dict(input_specs)
        mlm_specs[MLM_POSITIONS_KEY] = tf.TensorSpec([None, None], tf.int32)

        @tf.function
        def mlm_call(inputs, training=False):
            outputs, sequence_output = _run_encoder(encoder, inputs, training)
            positions = inputs[MLM_POSITIONS_KEY]
            length = tf.shape(inputs["input_word_ids"])[1]
            check = tf.debugging.Assert(
                tf.reduce_all((positions >= 0) & (positions < length)),
                [f"{MLM_POSITIONS_KEY} must hold positions in [0, seq_length); got values "
                 "from", tf.reduce_min(positions), "to", tf.reduce_max(positions),
                 "with seq_length", length])
            with tf.control_dependencies([check]):
                positions = tf.identity(positions)
            # As in PretrainingModel: the head reads the encoder's sequence output
            # in the compute dtype, with its decoder tied to the word embeddings.
            logits = mlm_head(sequence_output, positions, training=training)
            outputs["mlm_logits"] = _float32(logits)
            return outputs

        _trace_both(mlm_call, mlm_specs)
        root.mlm.__call__ = mlm_call

    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tf.saved_model.save(root, export_dir, signatures={"serving_default": serving_default})
    return export_dir
