"""TF-Hub-style text preprocessor SavedModels (`export_hub_preprocessor`).

The SavedModel runs tensorflow-text ops only: it loads with `tensorflow` +
`tensorflow_text` alone. Its outputs are the inputs of the encoder exported by
`keras_albert.export.hub` (whose docstring has that contract).

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

Bad requests. Called from Python, `strings` of another rank find no matching
function (`TypeError`); `signatures["serving_default"]` checks no shape, so the
graph refuses them with `tf.errors.InvalidArgumentError` (`Shape of tensor strings
[] is not compatible with expected shape [?]`). `bert_pack_inputs` raises it too,
naming the segment, for segments of different batch sizes and for ids outside
[0, `vocab_size`).
"""

import os

import tensorflow as tf
import tensorflow_text as tf_text

from keras_albert.tokenizers._base import _Tokenizer
from keras_albert.tokenizers.packer import _LongestFirstTrimmer
from keras_albert.tokenizers.preprocessor import Preprocessor

DEFAULT_SEQ_LENGTH = 128

_RAGGED_IDS = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)


def checked_strings(strings):
    """`strings`, a signature's tf.string argument, checked at run time to be a batch.

    Call it on the argument itself: the error names the tensor it checks, e.g.
    `Shape of tensor text [] is not compatible with expected shape [?]`.
    """
    # A signature's input_signature [None] is a promise, not a check: the functions
    # of `signatures` (and TensorFlow Serving's Session::Run) feed whatever shape
    # comes. tensorflow-text's FastWordpieceTokenizeWithOffsets kernel (the
    # WordPiece lookup of FastBertTokenizer) views its input as a vector and loops
    # over its dim 0 without checking the rank (the check in its shape function is
    # commented out): a scalar string has no dim 0, the loop reads past the one
    # string and the process dies (SIGSEGV; a model server with it), and a [1, 2]
    # matrix is read as its first row, silently dropping the second text.
    # SentencePiece flattens instead (two rows for [1, 2]). EnsureShape checks the
    # shape that is fed, before the tokenizer runs (data flow); an assert on
    # tf.rank would not: the static [None] folds `rank == 1` to True.
    return tf.ensure_shape(strings, [None])


def _checked_segments(segments, vocab_size):
    """`bert_pack_inputs`' segments behind run-time checks: one batch size for all,
    ids in [0, vocab_size) (a client may build the ragged ids itself)."""
    checks = []
    for index, segment in enumerate(segments):
        if index:
            checks.append(tf.debugging.Assert(
                tf.equal(segment.nrows(), segments[0].nrows()),
                [f"bert_pack_inputs: segment {index} must hold as many texts as segment 0; "
                 "got", segment.nrows(), "and", segments[0].nrows()]))
        ids = segment.flat_values
        checks.append(tf.debugging.Assert(
            tf.reduce_all((ids >= 0) & (ids < vocab_size)),
            [f"bert_pack_inputs: segment {index} must hold token ids in [0, {vocab_size}); "
             "got ids from", tf.reduce_min(ids), "to", tf.reduce_max(ids)]))
    with tf.control_dependencies(checks):
        return [tf.identity(segment) for segment in segments]


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
        return tf.cast(tokenizer(checked_strings(strings)), tf.int32)

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
        return pack(_checked_segments(list(inputs), special["vocab_size"]), seq_length)

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
