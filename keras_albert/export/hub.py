"""TF-Hub-style SavedModels: a reusable encoder and a text preprocessor.

Both SavedModels load with `tensorflow` (+ `tensorflow_text` for the
preprocessor) alone; no keras_albert is needed to use them.

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
`max_sequence_length` fail at run time.

Preprocessor (`export_hub_preprocessor`)
----------------------------------------

`preprocessor = tf.saved_model.load(export_dir)` (needs `import tensorflow_text`):

- `preprocessor(strings)`: `strings` is a tf.string [batch_size] tensor; it
  returns the three encoder inputs above, int32 [batch_size, seq_length] with
  the export's default `seq_length`, as `[CLS] tokens [SEP]` padded with the pad
  id. Longer texts are truncated; an empty string gives `[CLS] [SEP]`; an empty
  batch gives shape [0, seq_length].
- `preprocessor.tokenize(strings)`: a RaggedTensor of int32 token ids,
  [batch_size, (tokens)] with `row_splits` int64 and no special tokens. The ids
  are returned at rank 2 (one row of word pieces per text), as ALBERT's TF Hub
  preprocessor does; BERT's TF Hub preprocessors return rank 3 (words, then
  pieces). `preprocessor.tokenize.get_special_tokens_dict()` returns int32
  scalars `vocab_size`, `start_of_sequence_id`, `end_of_segment_id`,
  `padding_id` and `mask_id`.
- `preprocessor.bert_pack_inputs(segments, seq_length=...)`: `segments` is a
  list of one or two tokenized batches (as `tokenize` returns them) and
  `seq_length` a Python int or a scalar int32/int64 tensor (any value >= the
  number of segments + 1 works with the same export). It returns the three
  encoder inputs, int32 [batch_size, seq_length]: `[CLS] a [SEP]` or
  `[CLS] a [SEP] b [SEP]`, `input_type_ids` 0 up to the first `[SEP]` and 1 after.
  Too-long inputs are truncated as transformers' `truncation="longest_first"`
  (the longer segment loses its last tokens first), exactly as
  `keras_albert.tokenizers.InputPacker`.

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
import tensorflow_text as tf_text

from keras_albert.models.encoder import Encoder
from keras_albert.models.tasks import PretrainingModel
from keras_albert.tokenizers._base import _Tokenizer
from keras_albert.tokenizers.preprocessor import Preprocessor
from keras_albert.tokenizers.packer import _LongestFirstTrimmer

INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
MLM_POSITIONS_KEY = "masked_lm_positions"
DEFAULT_SEQ_LENGTH = 128

_RAGGED_IDS = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)


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


def _run_encoder(encoder, inputs, training):
    """Returns `(the export's float32 output dict, the raw sequence_output)`."""
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
            # As in PretrainingModel: the head reads the encoder's sequence output
            # in the compute dtype, with its decoder tied to the word embeddings.
            logits = mlm_head(sequence_output, inputs[MLM_POSITIONS_KEY], training=training)
            outputs["mlm_logits"] = _float32(logits)
            return outputs

        _trace_both(mlm_call, mlm_specs)
        root.mlm.__call__ = mlm_call

    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tf.saved_model.save(root, export_dir, signatures={"serving_default": serving_default})
    return export_dir


def _pack(segments, seq_length, cls_id, sep_id, pad_id):
    """`[CLS] a [SEP] (b [SEP])`, truncated longest-first and padded to `seq_length`."""
    seq_length = tf.convert_to_tensor(seq_length)
    check = tf.debugging.assert_greater_equal(
        seq_length,
        tf.cast(len(segments) + 1, seq_length.dtype),
        message=f"seq_length is too short for {len(segments)} segment(s) and the special tokens",
    )
    with tf.control_dependencies([check]):
        budget = seq_length - len(segments) - 1
    segments = [tf.cast(segment, tf.int32) for segment in segments]
    # The packer's own longest-first rule, with a tensor budget.
    masks = _LongestFirstTrimmer(budget).generate_mask(segments)
    trimmed = [tf.ragged.boolean_mask(segment, mask) for segment, mask in zip(segments, masks)]
    token_ids, type_ids = tf_text.combine_segments(
        trimmed, start_of_sequence_id=cls_id, end_of_segment_id=sep_id
    )
    word_ids, mask = tf_text.pad_model_inputs(token_ids, seq_length, pad_id)
    type_ids, _ = tf_text.pad_model_inputs(tf.cast(type_ids, tf.int32), seq_length, 0)
    outputs = {
        "input_word_ids": tf.cast(word_ids, tf.int32),
        "input_mask": tf.cast(mask, tf.int32),
        "input_type_ids": type_ids,
    }
    static_length = tf.get_static_value(seq_length)
    if static_length is not None:
        outputs = {
            key: tf.ensure_shape(value, [None, int(static_length)])
            for key, value in outputs.items()
        }
    return outputs


def export_hub_preprocessor(preprocessor_or_tokenizer, export_dir, seq_length=None):
    """Writes a TF-Hub-style text preprocessor SavedModel in `export_dir`.

    The SavedModel runs tensorflow-text ops only: `tensorflow` + `tensorflow_text`
    load and run it. The module docstring has the contract (`__call__`,
    `tokenize`, `tokenize.get_special_tokens_dict`, `bert_pack_inputs`).

    Args:
        preprocessor_or_tokenizer: a `Preprocessor`, or a `SentencePieceTokenizer`
            or `WordPieceTokenizer` (with its vocabulary).
        export_dir: the SavedModel directory to write.
        seq_length: the length `preprocessor(strings)` pads to (128 by default,
            or the `Preprocessor`'s own `seq_length`). `bert_pack_inputs` takes any
            length as its `seq_length=` argument.

    Packing is always TF Hub's: padded to `seq_length`, truncated longest-first;
    a `Preprocessor` with another `truncation` is refused.

    Returns:
        `export_dir`.

    Example:

    >>> tokenizer = WordPieceTokenizer("vocab.txt")  # doctest: +SKIP
    >>> export_hub_preprocessor(tokenizer, "/tmp/bert_preprocess")  # doctest: +SKIP
    >>> import tensorflow_text  # registers the ops  # doctest: +SKIP
    >>> preprocessor = tf.saved_model.load("/tmp/bert_preprocess")  # doctest: +SKIP
    >>> preprocessor(tf.constant(["a test"]))["input_word_ids"].shape  # doctest: +SKIP
    TensorShape([1, 128])
    >>> a = preprocessor.tokenize(tf.constant(["first text"]))  # doctest: +SKIP
    >>> b = preprocessor.tokenize(tf.constant(["second text"]))  # doctest: +SKIP
    >>> preprocessor.bert_pack_inputs([a, b], seq_length=32)  # doctest: +SKIP
    """
    if isinstance(preprocessor_or_tokenizer, Preprocessor):
        tokenizer = preprocessor_or_tokenizer.tokenizer
        if preprocessor_or_tokenizer.truncation != "longest_first":
            raise ValueError(
                "export_hub_preprocessor packs with truncation='longest_first' (as TF "
                f"Hub); the Preprocessor has truncation={preprocessor_or_tokenizer.truncation!r}."
            )
        if seq_length is None:
            seq_length = preprocessor_or_tokenizer.seq_length
    elif isinstance(preprocessor_or_tokenizer, _Tokenizer):
        tokenizer = preprocessor_or_tokenizer
    else:
        raise TypeError(
            "export_hub_preprocessor takes a Preprocessor, SentencePieceTokenizer or "
            f"WordPieceTokenizer; got {type(preprocessor_or_tokenizer).__name__}."
        )
    if seq_length is None:
        seq_length = DEFAULT_SEQ_LENGTH
    if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 2:
        raise ValueError(f"`seq_length` must be an int >= 2; got {seq_length!r}.")
    tokenizer._check_vocabulary()
    special = {
        "vocab_size": tokenizer.vocabulary_size,
        "start_of_sequence_id": tokenizer.cls_id,
        "end_of_segment_id": tokenizer.sep_id,
        "padding_id": tokenizer.pad_id,
        "mask_id": tokenizer.mask_id,
    }
    strings_spec = tf.TensorSpec([None], tf.string)

    root = tf.__internal__.tracking.AutoTrackable()
    # Tracking the tokenizer layer saves its tensorflow-text resources.
    root.tokenizer_layer = tokenizer

    def tokenize_strings(strings):
        return tf.cast(tokenizer(strings), tf.int32)

    def pack(segments, length):
        return _pack(
            segments,
            length,
            cls_id=special["start_of_sequence_id"],
            sep_id=special["end_of_segment_id"],
            pad_id=special["padding_id"],
        )

    tokenize = tf.__internal__.tracking.AutoTrackable()
    tokenize.__call__ = tf.function(tokenize_strings, input_signature=[strings_spec])
    tokenize.get_special_tokens_dict = tf.function(
        lambda: {key: tf.constant(value, tf.int32) for key, value in special.items()},
        input_signature=[],
    )
    root.tokenize = tokenize

    @tf.function
    def bert_pack_inputs(inputs, seq_length=seq_length):
        if not isinstance(inputs, (list, tuple)) or not 1 <= len(inputs) <= 2:
            raise ValueError("bert_pack_inputs takes a list of one or two tokenized segments.")
        return pack(list(inputs), seq_length)

    for num_segments in (1, 2):
        for length_dtype in (tf.int32, tf.int64):
            bert_pack_inputs.get_concrete_function(
                [_RAGGED_IDS] * num_segments, tf.TensorSpec([], length_dtype)
            )
    root.bert_pack_inputs = bert_pack_inputs

    @tf.function(input_signature=[strings_spec])
    def preprocess(strings):
        return pack([tokenize_strings(strings)], seq_length)

    root.__call__ = preprocess

    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    tf.saved_model.save(root, export_dir, signatures={"serving_default": preprocess})
    return export_dir
