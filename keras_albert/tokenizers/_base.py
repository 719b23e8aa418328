"""The shared plumbing of the string -> int32 id tokenizers."""

import os

import keras
import tensorflow as tf


def _read_file(path, what, binary):
    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{what} file not found: '{path}'")
    with tf.io.gfile.GFile(path, "rb" if binary else "r") as handle:
        return handle.read()


class _IdLayer(keras.layers.Layer):
    """A built, int32-output layer that takes strings and ragged ids as they are.

    Tokenizers, the packer and the preprocessor all output int32 ids whatever dtype
    policy is active (a dtype coming back from `get_config` is ignored), and their
    inputs (tf.string tensors, Python strings, ragged or lists of segments) must not
    be converted by Keras.
    """

    def __init__(self, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="int32", **kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True


class _Tokenizer(_IdLayer):
    """Shared plumbing of the string -> int32 id tokenizers (not exported).

    Subclasses set `special_tokens` and implement `_normalize`, `_tokenize` and
    `_detokenize` on rank-1 batches.
    """

    # Special-id attribute prefix -> token, e.g. {"cls": "[CLS]"} gives `cls_id`.
    special_tokens = {}
    # The constructor argument holding the vocabulary, for error messages.
    _vocabulary_argument = None

    def __init__(self, lowercase=True, strip_accents=True, **kwargs):
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self._vocabulary = None
        self._token_to_id_map = None

    def _set_vocabulary(self, tokens):
        token_to_id = {}
        for index, token in enumerate(tokens):
            token_to_id.setdefault(token, index)
        missing = [t for t in self.special_tokens.values() if t not in token_to_id]
        if missing:
            raise ValueError(
                f"{type(self).__name__}: the vocabulary lacks the special tokens "
                f"{missing}; it needs all of {list(self.special_tokens.values())}."
            )
        self._vocabulary = list(tokens)
        self._token_to_id_map = token_to_id

    def _check_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                f"{type(self).__name__} has no vocabulary yet: pass "
                f"`{self._vocabulary_argument}=` or load the layer from a `.keras` file."
            )

    @property
    def vocabulary_size(self):
        """The number of ids."""
        self._check_vocabulary()
        return len(self._vocabulary)

    def get_vocabulary(self):
        """The tokens as a list of strings, indexed by id."""
        self._check_vocabulary()
        return list(self._vocabulary)

    def token_to_id(self, token):
        """The id of `token`, or `unk_id` when it is not in the vocabulary."""
        self._check_vocabulary()
        return self._token_to_id_map.get(token, self.unk_id)

    def id_to_token(self, id):
        self._check_vocabulary()
        if not 0 <= id < len(self._vocabulary):
            raise ValueError(f"`id` must be in [0, {len(self._vocabulary) - 1}]; got {id}.")
        return self._vocabulary[id]

    def _special_id(self, name):
        self._check_vocabulary()
        return self._token_to_id_map[self.special_tokens[name]]

    # The special token ids, read from the vocabulary.
    pad_id = property(lambda self: self._special_id("pad"))
    unk_id = property(lambda self: self._special_id("unk"))
    cls_id = property(lambda self: self._special_id("cls"))
    sep_id = property(lambda self: self._special_id("sep"))
    mask_id = property(lambda self: self._special_id("mask"))

    def _string_batch(self, inputs):
        """Returns `(rank-1 tf.string tensor, whether the input was one string)`."""
        name = type(self).__name__
        if isinstance(inputs, tf.RaggedTensor):
            raise TypeError(f"{name} expects a dense string tensor, got a RaggedTensor.")
        try:
            inputs = tf.convert_to_tensor(inputs)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} expects a string tensor; got a {type(inputs).__name__}."
            ) from error
        if inputs.dtype != tf.string:
            raise TypeError(f"{name} expects a string tensor; got dtype {inputs.dtype.name}.")
        rank = inputs.shape.rank
        if rank is None:
            # e.g. the output of `tf.py_function`: take it as a batch, checked at run time.
            return tf.ensure_shape(inputs, [None]), False
        if rank == 0:
            return inputs[tf.newaxis], True
        # A [batch, 1] column, e.g. from `keras.Input(shape=(1,), dtype="string")`.
        if rank == 2 and inputs.shape[-1] == 1:
            return tf.squeeze(inputs, -1), False
        if rank != 1:
            raise ValueError(
                f"{name} expects a scalar string or a rank-1 batch of strings; got "
                f"shape {inputs.shape}."
            )
        return inputs, False

    def call(self, inputs):
        self._check_vocabulary()
        strings, single = self._string_batch(inputs)
        ids = self._tokenize(self._normalize(strings))
        return ids[0] if single else ids

    def detokenize(self, ids):
        """Maps ids (one sequence, or a ragged/dense batch) back to text."""
        self._check_vocabulary()
        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids, dtype=tf.int32)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
            if ids.shape.rank == 1:
                return self._detokenize(tf.RaggedTensor.from_tensor(ids[tf.newaxis]))[0]
            ids = tf.RaggedTensor.from_tensor(ids)
        return self._detokenize(tf.cast(ids, tf.int32))

    def compute_output_spec(self, inputs):
        shape = tuple(inputs.shape)
        if not shape:
            return keras.KerasTensor((None,), dtype="int32")
        return keras.KerasTensor(shape[:1] + (None,), dtype="int32", ragged=True)

    def get_config(self):
        config = super().get_config()
        config.update({"lowercase": self.lowercase, "strip_accents": self.strip_accents})
        return config
