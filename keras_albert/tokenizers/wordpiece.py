"""In-graph WordPiece tokenizer for BERT and DistilBERT."""

import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from keras_albert.tokenizers._base import _Tokenizer, _read_file

VOCABULARY_FILENAME = "vocab.txt"


@keras.saving.register_keras_serializable(package="keras_albert")
class WordPieceTokenizer(_Tokenizer):
    """BERT's tokenizer: BERT's text normalisation, punctuation split and WordPiece.

    It gives the ids of transformers' `BertTokenizerFast` (without special tokens):
    control characters are dropped, accents stripped (NFD, then nonspacing marks
    dropped), text lowercased, words split on whitespace, punctuation and CJK
    characters, then looked up greedily longest-match-first with `##` continuations.
    A batch of strings gives a ragged int32 batch of ids (a scalar string gives one
    dense row); `InputPacker` adds the special tokens. Special tokens written in the
    text (`"[CLS]"`) are tokenized as text, not as special tokens, and words over 100
    bytes become `[UNK]` (transformers counts 100 characters). The vocabulary is
    saved as an asset of `.keras` files.

    Args:
        vocabulary: path to a `vocab.txt` (one token a line) or a list of tokens.
        lowercase: lowercase the text (uncased models).
        strip_accents: remove accents (as bert-base-uncased does).

    Example:

    >>> from keras_albert.tokenizers import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "qu", "##ick", "!"])
    >>> tokenizer(["The quick!", "Thé"]).to_list()
    [[5, 6, 7, 8], [5]]
    >>> tokenizer.detokenize([5, 6, 7]).numpy()
    b'the quick'
    """

    special_tokens = {
        "pad": "[PAD]",
        "unk": "[UNK]",
        "cls": "[CLS]",
        "sep": "[SEP]",
        "mask": "[MASK]",
    }
    _vocabulary_argument = "vocabulary"

    def __init__(self, vocabulary=None, lowercase=True, strip_accents=True, **kwargs):
        super().__init__(lowercase=lowercase, strip_accents=strip_accents, **kwargs)
        self._fast_bert = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary from a `vocab.txt` path or a list of tokens."""
        if isinstance(vocabulary, (str, os.PathLike)):
            text = _read_file(vocabulary, "WordPiece vocabulary", binary=False)
            vocabulary = [line.rstrip("\r") for line in text.split("\n")]
            # A final newline ends the last token; it does not add an empty one.
            if vocabulary and vocabulary[-1] == "":
                vocabulary.pop()
        if not isinstance(vocabulary, (list, tuple)) or not all(
            isinstance(token, str) for token in vocabulary
        ):
            raise TypeError(
                "`vocabulary` must be a path to a vocab.txt file or a list of strings."
            )
        self._set_vocabulary(vocabulary)
        with tf.init_scope():
            # Normalisation is done by `_normalize`, to match transformers exactly;
            # the op only splits words and looks up word pieces.
            self._fast_bert = tf_text.FastBertTokenizer(
                vocab=list(vocabulary),
                token_out_type=tf.int32,
                unknown_token=self.special_tokens["unk"],
                support_detokenization=True,
                lower_case_nfd_strip_accents=False,
            )

    @property
    def vocabulary(self):
        return self._vocabulary

    def _normalize(self, text):
        # transformers' BertNormalizer(clean_text=True): tabs and newlines become
        # spaces, other control/format characters and U+FFFD disappear.
        text = tf.strings.regex_replace(text, r"[\t\n\r]", " ")
        text = tf.strings.regex_replace(text, r"[\p{C}\x{FFFD}]", "")
        if self.strip_accents:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        if self.lowercase:
            # transformers lowercases character by character, so a word-final
            # capital sigma becomes "σ"; `tf.strings.lower` would give "ς".
            text = tf.strings.regex_replace(text, "Σ", "σ")
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def _tokenize(self, text):
        return self._fast_bert.tokenize(text)

    def _detokenize(self, ids):
        return self._fast_bert.detokenize(ids)

    def tokenize_with_offsets(self, inputs):
        """The ids of `inputs` and where each piece is in the text, for span labels.

        Returns `(ids, starts, ends)`, ragged int32 [batch, pieces] (one row for a
        scalar string): piece i covers `text[starts[i]:ends[i]]` of the input as Python
        indexes a `str` (characters, not bytes), as transformers' `offset_mapping`.
        The ids are `self(inputs)`'s: the normalisation changes each character on its
        own, so it runs per character here and the offsets map back through it.

        >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        ...                                 "the", "qu", "##ick", "!"])
        >>> ids, starts, ends = tokenizer.tokenize_with_offsets(["Thé quick!"])
        >>> ids.to_list(), starts.to_list(), ends.to_list()
        ([[5, 6, 7, 8]], [[0, 4, 6, 9]], [[3, 6, 9, 10]])
        """
        self._check_vocabulary()
        strings, single = self._string_batch(inputs)
        characters = tf.strings.unicode_split(strings, "UTF-8")
        normalized = characters.with_flat_values(self._normalize(characters.flat_values))
        ids, byte_starts, byte_ends = self._fast_bert.tokenize_with_offsets(
            tf.strings.reduce_join(normalized, axis=-1))
        # Where each character's normalised bytes end; a piece starts in the character
        # whose bytes hold its first byte and ends with the one holding its last.
        char_ends = tf.math.cumsum(tf.cast(tf.strings.length(normalized), tf.int64), axis=-1)
        char_ends = char_ends.to_tensor(tf.int64.max)
        lengths = ids.row_lengths()
        starts = tf.searchsorted(char_ends, tf.cast(byte_starts, tf.int64).to_tensor(),
                                 side="right")
        ends = tf.searchsorted(char_ends, tf.cast(byte_ends, tf.int64).to_tensor(),
                               side="left") + 1
        starts = tf.RaggedTensor.from_tensor(tf.cast(starts, tf.int32), lengths=lengths)
        ends = tf.RaggedTensor.from_tensor(tf.cast(ends, tf.int32), lengths=lengths)
        if single:
            return ids[0], starts[0], ends[0]
        return ids, starts, ends

    def save_assets(self, dir_path):
        if self._vocabulary is not None:
            with open(os.path.join(dir_path, VOCABULARY_FILENAME), "w", encoding="utf-8") as f:
                f.write("".join(token + "\n" for token in self._vocabulary))

    def load_assets(self, dir_path):
        path = os.path.join(dir_path, VOCABULARY_FILENAME)
        if os.path.exists(path):
            self.set_vocabulary(path)

    def get_config(self):
        config = super().get_config()
        # The vocabulary travels as an asset of `.keras` files, not in the JSON config.
        config["vocabulary"] = None
        return config
