"""In-graph SentencePiece tokenizer for ALBERT."""

import functools
import os
import sys
import unicodedata

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from keras_albert.tokenizers._base import _Tokenizer, _read_file

PROTO_FILENAME = "spiece.model"

# Every character Python's `str.split()` treats as whitespace, which is what ALBERT's
# `" ".join(text.strip().split())` collapses. RE2's `\s` only knows ASCII whitespace.
_WHITESPACE_RUN = (
    r"[\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}"
    r"\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+"
)


@functools.lru_cache(maxsize=None)
def _combining_marks_pattern():
    """An RE2 class of the characters `unicodedata.combining` flags.

    ALBERT strips accents with `unicodedata.combining(c)` (canonical combining class
    != 0). That is not a general category RE2 knows (`\\p{Mn}` differs, e.g. on Thai
    and Indic vowel signs), so spell the class out from Python's Unicode database.
    """
    ranges = []
    for code_point in range(sys.maxunicode + 1):
        if unicodedata.combining(chr(code_point)):
            if ranges and ranges[-1][1] == code_point - 1:
                ranges[-1][1] = code_point
            else:
                ranges.append([code_point, code_point])
    return "[" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


@keras.saving.register_keras_serializable(package="keras_albert")
class SentencePieceTokenizer(_Tokenizer):
    """ALBERT's tokenizer: ALBERT's text normalisation, then SentencePiece, in-graph.

    Before SentencePiece it does what ALBERT's `preprocess_text` does: collapses
    whitespace, turns ``` `` ``` and `''` into `"`, strips accents (NFKD, then drops
    combining characters) and lowercases. It maps a batch of strings to a ragged
    int32 batch of ids (a scalar string gives one dense row), with no special tokens;
    `InputPacker` adds those. The model proto is saved as an asset of `.keras` files.

    Unlike ALBERT's original Python tokenizer (and like transformers' fast
    `AlbertTokenizer`), it does not re-split pieces such as `"▁2010,"` into
    `"▁2010" ","`.

    Args:
        proto: path to a SentencePiece `.model` file, or its serialized bytes.
        lowercase: lowercase the text (uncased models).
        strip_accents: remove accents and other combining marks.

    Example:

    >>> from keras_albert.tokenizers import SentencePieceTokenizer
    >>> tokenizer = SentencePieceTokenizer("albert_spiece_rebuilt.model")  # doctest: +SKIP
    >>> tokenizer(["Hello, my dog is cute"]).to_list()  # doctest: +SKIP
    [[10975, 15, 51, 1952, 25, 10901]]
    >>> tokenizer.detokenize([10975, 15, 51])  # doctest: +SKIP
    <tf.Tensor: shape=(), dtype=string, numpy=b'hello, my'>
    """

    special_tokens = {
        "pad": "<pad>",
        "unk": "<unk>",
        "cls": "[CLS]",
        "sep": "[SEP]",
        "mask": "[MASK]",
    }
    _vocabulary_argument = "proto"

    def __init__(self, proto=None, lowercase=True, strip_accents=True, **kwargs):
        super().__init__(lowercase=lowercase, strip_accents=strip_accents, **kwargs)
        self.proto = None
        self._sentencepiece = None
        if proto is not None:
            self.set_proto(proto)

    def set_proto(self, proto):
        """Sets the SentencePiece model from a file path or serialized bytes."""
        if isinstance(proto, (str, os.PathLike)):
            proto = _read_file(proto, "SentencePiece model", binary=True)
        if not isinstance(proto, bytes):
            raise TypeError(
                "`proto` must be a path to a SentencePiece model file or its bytes; "
                f"got {type(proto).__name__}."
            )
        # Build the op resource eagerly even when called while tracing, so that one
        # resource is shared by every trace and tracked for SavedModel export.
        with tf.init_scope():
            try:
                sentencepiece = tf_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
                pieces = sentencepiece.id_to_string(tf.range(sentencepiece.vocab_size()))
            except tf.errors.OpError as error:
                raise ValueError("`proto` is not a valid SentencePiece model.") from error
            tokens = [piece.decode("utf-8") for piece in pieces.numpy()]
        self._set_vocabulary(tokens)
        self.proto = proto
        self._sentencepiece = sentencepiece

    def _normalize(self, text):
        text = tf.strings.regex_replace(text, _WHITESPACE_RUN, " ")
        text = tf.strings.strip(text)
        text = tf.strings.regex_replace(text, "``|''", '"')
        if self.strip_accents:
            text = tf_text.normalize_utf8(text, "NFKD")
            text = tf.strings.regex_replace(text, _combining_marks_pattern(), "")
        if self.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def _tokenize(self, text):
        return self._with_live_resource(lambda: self._sentencepiece.tokenize(text))

    def _detokenize(self, ids):
        return self._with_live_resource(lambda: self._sentencepiece.detokenize(ids))

    def _with_live_resource(self, run):
        # tensorflow-text's SentencePiece resource is owned by an op kernel, and
        # `tf.random.set_seed` (so `keras.utils.set_random_seed`) clears TensorFlow's
        # kernel cache, which deletes it. Eagerly, rebuild it and carry on; graphs
        # traced before the reset keep the dead handle, so seed before tokenizing.
        if not tf.executing_eagerly():
            return run()
        try:
            return run()
        except tf.errors.NotFoundError:
            self.set_proto(self.proto)
            return run()

    def save_assets(self, dir_path):
        if self.proto is not None:
            with open(os.path.join(dir_path, PROTO_FILENAME), "wb") as handle:
                handle.write(self.proto)

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, PROTO_FILENAME)
        if os.path.exists(path):
            self.set_proto(path)

    def get_config(self):
        config = super().get_config()
        # The proto travels as an asset of `.keras` files, not in the JSON config.
        config["proto"] = None
        return config
