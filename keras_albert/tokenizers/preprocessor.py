"""Raw text -> encoder inputs: a tokenizer followed by an `InputPacker`."""

import keras
import tensorflow as tf

from keras_albert.tokenizers._base import _IdLayer
from keras_albert.tokenizers.packer import (
    InputPacker,
    check_packing_arguments,
    head_tokens_for,
)


@keras.saving.register_keras_serializable(package="keras_albert")
class Preprocessor(_IdLayer):
    """Tokenizes one or two texts per example and packs them for an encoder.

    Call it with a batch of strings (single texts), a tuple/list `(text_a, text_b)`
    of two string batches (pairs), or a dict with a `"text"` key or `"text_a"` /
    `"text_b"` keys. A list of Python strings is a batch of single texts. It returns
    the dict of int32 `input_word_ids`, `input_mask` and `input_type_ids` the
    encoders take. It runs eagerly, in `tf.data`, in `tf.function`s and SavedModels,
    and saves with its tokenizer's vocabulary inside `.keras` files.

    In `tf.data`, map pairs explicitly: `ds.map(lambda a, b: preprocessor((a, b)))`.

    Args:
        tokenizer: a `SentencePieceTokenizer` or `WordPieceTokenizer`; its `cls_id`,
            `sep_id` and `pad_id` are used for packing.
        seq_length, truncation, pad_to, head_tokens: as for `InputPacker`.

    Example:

    >>> from keras_albert.tokenizers import Preprocessor, WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "qu", "##ick", "!"])
    >>> preprocessor = Preprocessor(tokenizer, seq_length=8)
    >>> preprocessor(["The quick!"])["input_word_ids"].numpy().tolist()
    [[2, 5, 6, 7, 8, 3, 0, 0]]
    >>> preprocessor((["the"], ["quick"]))["input_type_ids"].numpy().tolist()
    [[0, 0, 0, 1, 1, 1, 0, 0]]
    """

    def __init__(
        self,
        tokenizer,
        seq_length=128,
        truncation="longest_first",
        pad_to="fixed",
        head_tokens=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_packing_arguments(seq_length, truncation, pad_to, head_tokens)
        self.tokenizer = tokenizer
        self.seq_length = int(seq_length)
        self.truncation = truncation
        self.pad_to = pad_to
        self.head_tokens = head_tokens_for(self.seq_length, truncation, head_tokens)
        self._packer = None
        if tokenizer._vocabulary is not None:
            self._packer = self._make_packer()

    def with_truncation(self, truncation, head_tokens=None):
        """A preprocessor with this one's tokenizer, length and padding, cutting
        too-long texts by `truncation` (and `head_tokens`) instead.

        >>> from keras_albert.tokenizers import WordPieceTokenizer
        >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        ...                                 "a", "b", "c", "d", "e"])
        >>> head_tail = Preprocessor(tokenizer, seq_length=5).with_truncation(
        ...     "head_tail", head_tokens=1)
        >>> head_tail(["a b c d e"])["input_word_ids"].numpy().tolist()  # a ... d e
        [[2, 5, 8, 9, 3]]
        """
        return Preprocessor(self.tokenizer, seq_length=self.seq_length, truncation=truncation,
                            pad_to=self.pad_to, head_tokens=head_tokens)

    def _make_packer(self):
        return InputPacker(
            self.seq_length,
            cls_id=self.tokenizer.cls_id,
            sep_id=self.tokenizer.sep_id,
            pad_id=self.tokenizer.pad_id,
            truncation=self.truncation,
            pad_to=self.pad_to,
            head_tokens=self.head_tokens,
            name="packer",
        )

    @property
    def packer(self):
        # A tokenizer restored from a `.keras` file gets its vocabulary, and so its
        # special ids, only after this layer is constructed.
        if self._packer is None:
            with tf.init_scope():
                self._packer = self._make_packer()
        return self._packer

    @staticmethod
    def _texts(inputs):
        """The list of one or two string batches in `inputs`."""
        if isinstance(inputs, dict):
            if "text" in inputs:
                keys = ["text"]
            elif "text_a" in inputs:
                keys = ["text_a"] + (["text_b"] if "text_b" in inputs else [])
            else:
                raise ValueError(
                    "Preprocessor dict inputs need a 'text' key or 'text_a' (and "
                    f"optionally 'text_b') keys; got keys {sorted(inputs)}."
                )
            return [inputs[key] for key in keys]
        if isinstance(inputs, (list, tuple)) and inputs and not isinstance(inputs[0], (str, bytes)):
            if len(inputs) > 2:
                raise ValueError(
                    f"Preprocessor takes one or two texts per example; got {len(inputs)} segments."
                )
            return list(inputs)
        return [inputs]

    def call(self, inputs):
        return self.packer([self.tokenizer(text) for text in self._texts(inputs)])

    def compute_output_spec(self, inputs):
        first = self._texts(inputs)[0]
        width = self.seq_length if self.pad_to == "fixed" else None
        shape = (width,) if len(first.shape) == 0 else (first.shape[0], width)
        return {
            key: keras.KerasTensor(shape, dtype="int32")
            for key in ("input_word_ids", "input_mask", "input_type_ids")
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "seq_length": self.seq_length,
                "truncation": self.truncation,
                "head_tokens": self.head_tokens,
                "pad_to": self.pad_to,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
